"""The embedded store: SQLite state (``SqliteStore``) and code packages (``CodePackages``)."""

from kubelambda.store.packages import CodePackages, Package, PackageError
from kubelambda.store.sqlite import SqliteStore

__all__ = ["CodePackages", "Package", "PackageError", "SqliteStore"]
