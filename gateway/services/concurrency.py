"""Concurrency use cases: reserved concurrency (function-wide) and provisioned configs.

Called by ``gateway.api.concurrency``. A provisioned-concurrency config targets a
published version or an alias (never ``$LATEST``); putting one answers at once with
``IN_PROGRESS``, and the controller reports ``READY``/``FAILED`` through the store.
"""

from __future__ import annotations

import logging

from gateway.services import paging, validation
from gateway.services.functions import function_key_only
from kubelambda import errors, names
from kubelambda.models import FunctionKey, ProvisionedConcurrency
from kubelambda.ports.management import ManagementStore

__all__ = ["ConcurrencyService"]

log = logging.getLogger(__name__)


class ConcurrencyService:
    def __init__(self, store: ManagementStore) -> None:
        self._store = store

    async def put_reserved(self, namespace: str, function_name: str, reserved: int) -> int:
        function = function_key_only(namespace, function_name)
        await self._store.put_reserved_concurrency(
            function, validation.check_reserved_concurrency(reserved)
        )
        log.info("reserved concurrency set function=%s reserved=%d", function, reserved)
        return reserved

    async def get_reserved(self, namespace: str, function_name: str) -> int | None:
        settings = await self._store.get_settings(function_key_only(namespace, function_name))
        return settings.reserved_concurrency

    async def delete_reserved(self, namespace: str, function_name: str) -> None:
        function = function_key_only(namespace, function_name)
        await self._store.delete_reserved_concurrency(function)
        log.info("reserved concurrency removed function=%s", function)

    async def put_provisioned(
        self, namespace: str, function_name: str, qualifier: str | None, requested: int
    ) -> ProvisionedConcurrency:
        name, chosen = _qualified(namespace, function_name, qualifier)
        if requested < 1:
            raise errors.InvalidParameterValue(
                "ProvisionedConcurrentExecutions must be greater than or equal to 1"
            )
        config = await self._store.put_provisioned(name, chosen, requested=requested)
        log.info(
            "provisioned concurrency requested function=%s qualifier=%s requested=%d",
            name,
            chosen,
            requested,
        )
        return config

    async def get_provisioned(
        self, namespace: str, function_name: str, qualifier: str | None
    ) -> ProvisionedConcurrency:
        name, chosen = _qualified(namespace, function_name, qualifier)
        return await self._store.get_provisioned(name, chosen)

    async def delete_provisioned(
        self, namespace: str, function_name: str, qualifier: str | None
    ) -> None:
        name, chosen = _qualified(namespace, function_name, qualifier)
        await self._store.delete_provisioned(name, chosen)
        log.info("provisioned concurrency removed function=%s qualifier=%s", name, chosen)

    async def list_provisioned(
        self, namespace: str, function_name: str, *, marker: str | None, max_items: int | None
    ) -> paging.Page[ProvisionedConcurrency]:
        function = function_key_only(namespace, function_name)
        return await paging.by_name(
            lambda after, limit: self._store.list_provisioned(function, after=after, limit=limit),
            lambda config: config.qualifier,
            marker=marker,
            max_items=max_items,
        )


def _qualified(
    namespace: str, function_name: str, qualifier: str | None
) -> tuple[FunctionKey, str]:
    ref = names.parse_function_ref(function_name, qualifier, namespace=namespace)
    if ref.qualifier is None:
        raise errors.InvalidParameterValue("The Qualifier parameter is required")
    return ref.key, ref.qualifier
