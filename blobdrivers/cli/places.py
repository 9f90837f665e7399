"""Where the data a location names is kept, so that no copy or move lands on its own source.

Two spellings can name one file: ``./a.txt`` and ``a.txt``, ``file:///s#/d/a`` and
``file:///s/d#/a``, or a local path inside a ``file://`` store's folder. A move
between two spellings of one file copies it onto itself and then deletes it, so
``cp`` and ``mv`` compare *places*: the store (compared with
:meth:`StorageDriver.shares_store`, whatever the two roots) and the full path from
the store's top (the driver's root followed by the path). Every ``file://`` store
and every local file share one store, this machine's files, with real paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..driver import StorageDriver
from .locations import UsageError

#: The :meth:`StorageDriver.store_identity` of the filesystem driver: this machine's files.
LOCAL_FILES = "filesystem://"


@dataclass(frozen=True)
class Place:
    """A file or folder: in ``driver``'s store (``None``: this machine's files) at the full path ``path``."""

    driver: StorageDriver | None
    path: str

    def same_store(self, other: Place) -> bool:
        """True when both are in one store (local files and ``file://`` stores are one)."""
        if self.driver is None or other.driver is None:
            return self.driver is other.driver
        return self.driver.shares_store(other.driver)

    def contains(self, other: Place) -> bool:
        """True when ``other`` is this place or below it."""
        if not self.same_store(other):
            return False
        return self.path in (other.path, "/") or other.path.startswith(self.path + "/")


def local_place(path: str) -> Place:
    """The place of a local file or folder: its real path (links followed, as the system would)."""
    return Place(None, os.path.realpath(path))


def store_place(driver: StorageDriver, path: str) -> Place:
    """The place of the path ``path`` (logical: no trailing ``/``) of ``driver``."""
    # identity() is store_identity() followed by the root ("" or "/a/b"); the
    # filesystem driver's root is its folder's real path.
    root = driver.identity()[len(driver.store_identity()) :]
    full = (root + ("" if path == "/" else path)) or "/"
    if driver.store_identity() == LOCAL_FILES and not driver.secret_params:
        return Place(None, full)
    return Place(driver, full)


def refuse_same_file(source: Place, target: Place, shown: str) -> None:
    """Raise :class:`UsageError` when a copy or move of the file ``source`` would write ``target``, itself."""
    if source.same_store(target) and source.path == target.path:
        raise UsageError(f"the source and the destination are the same file ({shown}): nothing to copy or move")


def refuse_overlap(
    source: Place, target: Place, relatives: Callable[[], Iterable[str]], shown: str, target_shown: str
) -> None:
    """Raise :class:`UsageError` when copying the directory ``source`` to ``target`` would write over itself.

    ``target`` inside ``source`` (or the same folder) copies the directory into itself.
    ``target`` above ``source`` is refused only when a file would land on another
    source file (``/d/x/x/a`` copied to ``/d/x/a``): ``relatives`` (the files' paths
    below ``source``) is called only then, so an unrelated copy lists nothing twice.
    """
    if source.contains(target):
        raise UsageError(f"cannot copy or move the directory {shown} into itself ({target_shown})")
    if not target.contains(source):
        return
    names = list(relatives())
    sources = {_below(source.path, name) for name in names}
    for name in names:
        if _below(target.path, name) in sources:
            overwritten = _below(target_shown, name)
            raise UsageError(f"copying the directory {shown} to {target_shown} would overwrite its file {overwritten}")


def _below(folder: str, relative: str) -> str:
    return folder.rstrip("/") + "/" + relative
