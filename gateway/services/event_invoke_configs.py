"""Event invoke config use cases: Put, Update, Get, Delete and List, per qualifier.

Called by ``gateway.api.event_invoke_configs`` with the caller's namespace. A config
says how asynchronous invocations of ``$LATEST``, a version or an alias are retried
(``MaximumRetryAttempts``, ``MaximumEventAgeInSeconds``) and where their outcome goes
(OnSuccess/OnFailure destinations); the dispatcher reads it from the catalog. Put
replaces the whole config (members not given take Lambda's defaults); Update changes
only the members given (``DestinationConfig`` counts as one), and only a config that
exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.services import paging, validation
from gateway.services.functions import function_key_only
from kubelambda import errors, names
from kubelambda.models import LATEST, EventInvokeConfig, FunctionKey
from kubelambda.ports.management import ManagementStore

__all__ = ["Destinations", "EventInvokeConfigChange", "EventInvokeConfigService"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Destinations:
    """A request's ``DestinationConfig``: ``None`` (or ``""``) is no destination."""

    on_success: str | None = None
    on_failure: str | None = None


@dataclass(frozen=True, slots=True)
class EventInvokeConfigChange:
    """The members of a Put or Update request; ``None`` is a member not given.
    ``DestinationConfig`` is one member: given, it sets both destinations."""

    maximum_retry_attempts: int | None = None
    maximum_event_age_seconds: int | None = None
    destinations: Destinations | None = None


class EventInvokeConfigService:
    """What the event-invoke-config routes call; each method takes the caller's
    namespace first and a (possibly qualified) function name or ARN."""

    def __init__(self, store: ManagementStore) -> None:
        self._store = store

    async def put(
        self,
        namespace: str,
        function_name: str,
        qualifier: str | None,
        change: EventInvokeConfigChange,
    ) -> EventInvokeConfig:
        function, chosen = _qualified(namespace, function_name, qualifier)
        fields = _checked(change, function)
        config = await self._store.put_event_invoke_config(
            EventInvokeConfig(function.namespace, function.name, chosen).with_changes(**fields)
        )
        log.info(
            "event invoke config put function=%s qualifier=%s fields=%s",
            function,
            chosen,
            sorted(fields),
        )
        return config

    async def update(
        self,
        namespace: str,
        function_name: str,
        qualifier: str | None,
        change: EventInvokeConfigChange,
    ) -> EventInvokeConfig:
        function, chosen = _qualified(namespace, function_name, qualifier)
        fields = _checked(change, function)
        current = await self._store.get_event_invoke_config(function, chosen)
        # Read, then replace: of two concurrent Updates of one qualifier the last write
        # wins whole (the port has no read-modify-write for these configs).
        config = await self._store.put_event_invoke_config(current.with_changes(**fields))
        log.info(
            "event invoke config updated function=%s qualifier=%s fields=%s",
            function,
            chosen,
            sorted(fields),
        )
        return config

    async def get(
        self, namespace: str, function_name: str, qualifier: str | None
    ) -> EventInvokeConfig:
        function, chosen = _qualified(namespace, function_name, qualifier)
        return await self._store.get_event_invoke_config(function, chosen)

    async def delete(self, namespace: str, function_name: str, qualifier: str | None) -> None:
        function, chosen = _qualified(namespace, function_name, qualifier)
        await self._store.delete_event_invoke_config(function, chosen)
        log.info("event invoke config deleted function=%s qualifier=%s", function, chosen)

    async def list_configs(
        self, namespace: str, function_name: str, *, marker: str | None, max_items: int | None
    ) -> paging.Page[EventInvokeConfig]:
        function = function_key_only(namespace, function_name)
        return await paging.by_name(
            lambda after, limit: self._store.list_event_invoke_configs(
                function, after=after, limit=limit
            ),
            lambda config: config.qualifier,
            marker=marker,
            max_items=max_items,
        )


def _qualified(
    namespace: str, function_name: str, qualifier: str | None
) -> tuple[FunctionKey, str]:
    """The function and qualifier named by the path and ``Qualifier``; ``$LATEST`` when
    neither names one (as Lambda)."""
    ref = names.parse_function_ref(function_name, qualifier, namespace=namespace)
    return ref.key, ref.qualifier or LATEST


def _checked(change: EventInvokeConfigChange, function: FunctionKey) -> dict[str, object]:
    """The model fields ``change`` sets, validated; refuses a request that sets nothing."""
    if change == EventInvokeConfigChange():
        raise errors.InvalidParameterValue(
            "You must specify at least one of error handling or destination setting."
        )
    fields: dict[str, object] = {}
    if change.maximum_retry_attempts is not None:
        fields["maximum_retry_attempts"] = validation.check_maximum_retry_attempts(
            change.maximum_retry_attempts
        )
    if change.maximum_event_age_seconds is not None:
        fields["maximum_event_age_seconds"] = validation.check_maximum_event_age(
            change.maximum_event_age_seconds
        )
    if change.destinations is not None:
        on_success, on_failure = change.destinations.on_success, change.destinations.on_failure
        fields["on_success"] = (
            validation.check_destination(on_success, function=function) if on_success else None
        )
        fields["on_failure"] = (
            validation.check_destination(on_failure, function=function) if on_failure else None
        )
    return fields
