"""The embedded store: SQLite state (``SqliteStore``) and zips on disk (``LocalCodeStore``).

``SqliteStore`` implements ``ManagementStore`` and ``ControllerStore`` (and through them
``CatalogSource``); ``LocalCodeStore`` implements ``CodeStore``. The embedded launcher
opens both and hands them to the components; nothing else constructs them.
"""

from kubelambda.store.code import LocalCodeStore
from kubelambda.store.sqlite import SqliteStore

__all__ = ["LocalCodeStore", "SqliteStore"]
