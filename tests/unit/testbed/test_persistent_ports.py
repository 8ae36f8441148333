"""Ports the testbed's daemons keep for the life of a state dir
(kubelambda_testbed.process.persistent_ports): saved once, and a name added later leaves the
saved ones where they are, so clients pointed at them before stay right."""

from __future__ import annotations

import json
from pathlib import Path

from kubelambda_testbed import process


def test_ports_are_probed_once_then_read_back(tmp_path: Path) -> None:
    path = tmp_path / "ports.json"

    first = process.persistent_ports(path, ["broker", "controller"])
    again = process.persistent_ports(path, ["broker", "controller"])

    assert again == first
    assert json.loads(path.read_text()) == first
    assert first["broker"] != first["controller"]


def test_a_name_added_later_gets_a_new_port_and_the_others_keep_theirs(tmp_path: Path) -> None:
    path = tmp_path / "ports.json"
    path.write_text(json.dumps({"broker": 40001, "controller": 40002}))

    ports = process.persistent_ports(path, ["broker", "controller", "pods"])

    assert (ports["broker"], ports["controller"]) == (40001, 40002)
    assert ports["pods"] not in (40001, 40002)
    assert json.loads(path.read_text()) == ports


def test_an_unreadable_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ports.json"
    path.write_text("not json")

    ports = process.persistent_ports(path, ["web"])

    assert json.loads(path.read_text()) == ports
