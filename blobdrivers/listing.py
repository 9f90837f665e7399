"""FileInfo, and the order in which ``walk`` yields entries.

``walk`` yields a pre-order traversal in which siblings are sorted by name, a
directory's name comparing as if it ended in ``/``. That is exactly the byte order
of object keys, so an object store can walk a tree from one flat, paginated key
listing while holding only the current directory chain in memory, and a
filesystem produces the very same order by sorting each directory the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from . import paths
from .transfer import run_bounded

T = TypeVar("T")


@dataclass(frozen=True)
class FileInfo:
    """What ``stat`` and ``walk`` report about one path.

    ``modified`` is an aware UTC datetime. ``size`` is 0 for directories, which are
    implicit: a directory exists while some file lies below it. On object stores a
    directory's ``modified`` is that of a file below it. ``etag`` identifies the
    current content of a file for conditional writes (``if_match``); it is ``None``
    for directories.
    """

    path: str
    size: int
    modified: datetime
    is_dir: bool = False
    etag: str | None = None

    def moved_to(self, path: str) -> FileInfo:
        """The same entry reported under another path (used to strip a root prefix)."""
        if path == self.path:
            return self
        return FileInfo(path, self.size, self.modified, self.is_dir, self.etag)


def walk_key(info: FileInfo) -> str:
    """Sort key giving walk order: a directory sorts as its path followed by ``/``."""
    return info.path + "/" if info.is_dir else info.path


def walk_flat(files: Iterable[FileInfo], base: str) -> Iterator[FileInfo]:
    """Yield the walk of ``base`` from its files listed in key (byte) order.

    Directories are inferred: each is yielded just before the first valid file below
    it, with that file's modification time. Every file must lie strictly below
    ``base``; files whose path breaks the path rule (keys other tools wrote, hidden
    bookkeeping) are skipped, so they never invent a directory.
    """
    open_dirs: list[str] = []
    depth_of_base = 0 if base == paths.ROOT else base.count("/")
    for info in files:
        if not paths.is_valid(info.path):
            continue
        while open_dirs and not info.path.startswith(open_dirs[-1] + "/"):
            open_dirs.pop()
        for directory in paths.ancestors(info.path)[depth_of_base + len(open_dirs) :]:
            open_dirs.append(directory)
            yield FileInfo(path=directory, size=0, modified=info.modified, is_dir=True)
        yield info


def visible_children(names: Iterable[str], holds_valid: Callable[[str], bool], concurrency: int) -> list[str]:
    """Full paths of the children named by one delimiter (``/``) listing of an object store.

    ``names`` are the listing's keys and common prefixes (those end in ``/``). A key
    is a child file when it maps to a valid path. A common prefix is a child
    directory only when its own name is valid *and* ``holds_valid(prefix)`` finds a
    valid key below it: a prefix made only of keys other tools wrote (``x/``,
    ``console/folder/``) or of a child store's bookkeeping is no directory. Prefixes
    with an invalid name (``a//``, ``~blobdrivers/``) cost nothing; each other prefix
    costs ``holds_valid`` (a one-key listing when its first key is valid), run up to
    ``concurrency`` at once.
    """
    found: list[str] = []
    prefixes: list[tuple[str, str]] = []
    for name in names:
        path = paths.from_key(name[:-1] if name.endswith("/") else name)
        if path is None:
            continue
        if name.endswith("/"):
            prefixes.append((path, name))
        else:
            found.append(path)
    checks = [functools.partial(holds_valid, prefix) for _, prefix in prefixes]
    held = run_bounded(checks, concurrency) if len(checks) > 1 else [check() for check in checks]
    found += [path for (path, _), ok in zip(prefixes, held, strict=True) if ok]
    return found


def first_valid(pages: Iterable[Iterable[tuple[str, T]]]) -> T | None:
    """The item of the first key that maps to a valid path, scanning ``(key, item)`` pages in order.

    Callers pass a first page of one key and then the full listing: when the first
    key is valid (every key written through a driver) that costs one request; a
    prefix whose first keys are foreign costs the pages up to its first valid key.
    """
    for page in pages:
        for key, item in page:
            if paths.from_key(key) is not None:
                return item
    return None
