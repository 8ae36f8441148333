"""The Events the controller records on kubelambda's resources."""

from __future__ import annotations

from datetime import UTC, datetime

from kubelambda.kubernetes import events
from kubelambda.kubernetes.workloads import Owner

OWNER = Owner("kubelambda.io/v1alpha1", "Function", "hello", "uid-1")
NOW = datetime(2026, 12, 1, 12, 30, 5, tzinfo=UTC)


def test_an_event_is_about_its_owner_and_says_who_recorded_it() -> None:
    made = events.event(
        OWNER, namespace="team-a", reason="ScaledUp", message="Scaled 0 to 1", now=NOW
    )
    assert made["involvedObject"] == {
        "apiVersion": "kubelambda.io/v1alpha1",
        "kind": "Function",
        "name": "hello",
        "namespace": "team-a",
        "uid": "uid-1",
    }
    assert (made["reason"], made["message"], made["type"]) == (
        "ScaledUp",
        "Scaled 0 to 1",
        "Normal",
    )
    assert made["source"] == {"component": "kubelambda-controller"}
    assert made["firstTimestamp"] == made["lastTimestamp"] == "2026-12-01T12:30:05Z"
    assert made["metadata"] == {"generateName": "hello.", "namespace": "team-a"}


def test_a_warning_is_marked_so() -> None:
    made = events.event(OWNER, namespace="n", reason="R", message="m", now=NOW, warning=True)
    assert made["type"] == "Warning"
