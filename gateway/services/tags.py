"""Tag use cases (TagResource, UntagResource, ListTags) on a function's ARN.

Called by ``gateway.api.tags``. Tags are function-wide settings; two of them are
kubelambda's knobs until CRDs carry them (``kubelambda.io/idle-timeout-seconds``,
``kubelambda.io/instance-concurrency``), so their values are checked here too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gateway.services import validation
from kubelambda import errors, names
from kubelambda.models import FunctionKey
from kubelambda.ports.management import ManagementStore

__all__ = ["TagService"]

log = logging.getLogger(__name__)


class TagService:
    def __init__(self, store: ManagementStore) -> None:
        self._store = store

    async def list(self, namespace: str, resource: str) -> Mapping[str, str]:
        settings = await self._store.get_settings(_function(namespace, resource))
        return settings.tags

    async def tag(self, namespace: str, resource: str, tags: Mapping[str, str]) -> None:
        name = _function(namespace, resource)
        current = await self._store.get_settings(name)
        validation.check_tags(tags, existing=current.tags)
        await self._store.tag(name, tags)
        log.info("function tagged function=%s keys=%s", name, sorted(tags))

    async def untag(self, namespace: str, resource: str, keys: Sequence[str]) -> None:
        name = _function(namespace, resource)
        await self._store.untag(name, keys)
        log.info("function untagged function=%s keys=%s", name, sorted(keys))


def _function(namespace: str, resource: str) -> FunctionKey:
    """Tags belong to a function's unqualified ARN (as on Lambda)."""
    if not resource.startswith("arn:"):
        raise errors.InvalidParameterValue(f"Invalid ARN: {resource}")
    ref = names.parse_function_ref(resource, namespace=namespace)
    if ref.qualifier is not None:
        raise errors.InvalidParameterValue(
            "Tags are not supported on a function version or alias; use the function's "
            f"unqualified ARN, not {resource}"
        )
    return ref.key
