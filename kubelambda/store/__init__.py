"""The embedded store: SQLite state (``SqliteStore``), zips on disk (``LocalCodeStore``)
and the SQLite event queue (``SqliteQueue``).

``SqliteStore`` implements ``ManagementStore`` and ``ControllerStore`` (and through them
``CatalogSource``); ``LocalCodeStore`` implements ``CodeStore``; ``SqliteQueue``
implements ``Queue`` and ``TopicLog``. The embedded launcher (and the CLI, for the
queue) opens them and hands them to the components; nothing else constructs them.
"""

from kubelambda.store.code import LocalCodeStore
from kubelambda.store.queue import SqliteQueue
from kubelambda.store.sqlite import SqliteStore

__all__ = ["LocalCodeStore", "SqliteQueue", "SqliteStore"]
