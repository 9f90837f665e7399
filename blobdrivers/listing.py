"""FileInfo, and the order in which ``walk`` yields entries.

``walk`` yields a pre-order traversal in which siblings are sorted by name, a
directory's name comparing as if it ended in ``/``. That is exactly the byte order
of object keys, so an object store can walk a tree from one flat, paginated key
listing while holding only the current directory chain in memory, and a
filesystem produces the very same order by sorting each directory the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from . import paths


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

    Directories are inferred: each is yielded just before the first file below it,
    with that file's modification time. Every file must lie strictly below ``base``.
    """
    open_dirs: list[str] = []
    depth_of_base = 0 if base == paths.ROOT else base.count("/")
    for info in files:
        while open_dirs and not info.path.startswith(open_dirs[-1] + "/"):
            open_dirs.pop()
        for directory in paths.ancestors(info.path)[depth_of_base + len(open_dirs) :]:
            open_dirs.append(directory)
            yield FileInfo(path=directory, size=0, modified=info.modified, is_dir=True)
        yield info
