"""Alias use cases of the management API: create, get, update, delete, list.

Called by ``gateway.api.aliases``. Checks the alias name and its routing configuration
(at most one more published version, weight 0-1, never ``$LATEST``, not the primary);
the store checks that the versions exist and that an expected RevisionId still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.services import paging, validation
from gateway.services.functions import function_key_only
from kubelambda import errors, names
from kubelambda.models import LATEST, Alias
from kubelambda.ports.management import ManagementStore

__all__ = ["AliasService"]

log = logging.getLogger(__name__)


class AliasService:
    def __init__(self, store: ManagementStore) -> None:
        self._store = store

    async def create(
        self,
        namespace: str,
        function_name: str,
        *,
        name: str,
        function_version: str,
        description: str,
        weights: Mapping[str, float],
    ) -> Alias:
        function = function_key_only(namespace, function_name)
        alias = Alias(
            namespace=function.namespace,
            function_name=function.name,
            name=names.validate_alias_name(name),
            function_version=_version(function_version),
            revision_id="",
            description=validation.check_description(description),
            additional_version_weights=dict(validation.check_routing(function_version, weights)),
        )
        created = await self._store.create_alias(alias)
        log.info(
            "alias created namespace=%s function=%s alias=%s version=%s weights=%s",
            alias.namespace,
            alias.function_name,
            alias.name,
            alias.function_version,
            dict(alias.additional_version_weights),
        )
        return created

    async def get(self, namespace: str, function_name: str, name: str) -> Alias:
        return await self._store.get_alias(function_key_only(namespace, function_name), name)

    async def update(
        self,
        namespace: str,
        function_name: str,
        name: str,
        *,
        function_version: str | None,
        description: str | None,
        weights: Mapping[str, float] | None,
        revision_id: str | None,
    ) -> Alias:
        if function_version is not None:
            _version(function_version)
        if description is not None:
            validation.check_description(description)

        def change(current: Alias) -> Alias:
            primary = current.function_version if function_version is None else function_version
            routing = current.additional_version_weights if weights is None else weights
            return current.with_changes(
                function_version=primary,
                description=current.description if description is None else description,
                additional_version_weights=dict(validation.check_routing(primary, routing)),
            )

        updated = await self._store.update_alias(
            function_key_only(namespace, function_name),
            name,
            change,
            expected_revision_id=revision_id,
        )
        log.info(
            "alias updated namespace=%s function=%s alias=%s version=%s weights=%s",
            updated.namespace,
            updated.function_name,
            updated.name,
            updated.function_version,
            dict(updated.additional_version_weights),
        )
        return updated

    async def delete(self, namespace: str, function_name: str, name: str) -> None:
        function = function_key_only(namespace, function_name)
        await self._store.delete_alias(function, name)
        log.info("alias deleted namespace=%s function=%s alias=%s", namespace, function.name, name)

    async def list(
        self,
        namespace: str,
        function_name: str,
        *,
        function_version: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> paging.Page[Alias]:
        function = function_key_only(namespace, function_name)
        return await paging.by_name(
            lambda after, limit: self._store.list_aliases(
                function, function_version=function_version, after=after, limit=limit
            ),
            lambda alias: alias.name,
            marker=marker,
            max_items=max_items,
        )


def _version(version: str) -> str:
    if version != LATEST and not version.isdigit():
        raise errors.InvalidParameterValue(
            f"1 validation error detected: Value '{version}' at 'functionVersion' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "(\\$LATEST|[0-9]+)"
        )
    return version
