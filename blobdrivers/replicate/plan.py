"""The missing check: both listings merged as sorted streams, and when a file present on both sides differs.

``walk`` yields files in the same order on every driver
(:func:`blobdrivers.listing.walk_key`, plain string order for files), so a merge
join decides each path in one pass holding neither listing in memory. Each side
is listed by its own thread a batch ahead, so the two sides' latencies overlap.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import Literal

from ..driver import StorageDriver
from ..errors import PathNotFoundError, StorageError
from ..listing import FileInfo
from .report import reason

Compare = Literal["size", "etag", "sha256"]
#: The accepted values of ``compare``.
COMPARE_MODES: tuple[str, ...] = ("size", "etag", "sha256")
#: Seconds by which a source file must be newer than its target copy to count as changed
#: (``compare="etag"`` without comparable etags). Covers timestamps truncated to whole
#: seconds by object stores and small clock differences between two stores.
MODIFY_WINDOW = 2.0
_MD5 = re.compile(r"[0-9a-f]{32}")
_MULTIPART_MD5 = re.compile(r"[0-9a-f]{32}-[0-9]+")
_LISTING_BATCH = 1000  # files handed from a listing thread to the merge at once
_LISTING_FLUSH = 0.05  # ... or after this many seconds, so the first copies start early


def _etag_value(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.strip().strip('"').lower()


def _is_newer(source: FileInfo, target: FileInfo) -> bool:
    return (source.modified - target.modified).total_seconds() > MODIFY_WINDOW


def differs_by_etag(source: FileInfo, target: FileInfo) -> bool:
    """Whether same-size ``source`` and ``target`` differ under ``compare="etag"``: MD5 etags, else times."""
    a, b = _etag_value(source.etag), _etag_value(target.etag)
    if a and b:
        if _MD5.fullmatch(a) and _MD5.fullmatch(b):
            return a != b
        if a == b and _MULTIPART_MD5.fullmatch(a):
            # A multipart etag is a digest of the part digests: equal means equal content,
            # different may only mean a different part size.
            return False
    return _is_newer(source, target)


class ListingError(Exception):
    """A listing failed (or broke the walk order): the run stops, reporting ``path`` of ``side``."""

    def __init__(self, side: str, path: str, error: BaseException) -> None:
        super().__init__(f"listing the {side} failed: {reason(error)}")
        self.side = side
        self.path = path


class Listing:
    """The files of a walk, listed by a background thread a batch ahead of the merge.

    Listing both sides at once overlaps their request latencies on object stores.
    Batches keep the hand-over cheap; a bounded queue keeps memory bounded.
    """

    def __init__(self, driver: StorageDriver, path: str, side: str, *, missing_ok: bool) -> None:
        self.side = side
        self._path = path
        self._missing_ok = missing_ok
        self._queue: queue.Queue[list[FileInfo] | BaseException | None] = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(driver,), name=f"blobdrivers-list-{side}", daemon=True)
        self._thread.start()

    def _run(self, driver: StorageDriver) -> None:
        batch: list[FileInfo] = []
        listed = 0
        flushed = time.monotonic()
        try:
            for info in driver.walk(self._path):
                if info.is_dir:
                    continue
                batch.append(info)
                listed += 1
                if len(batch) >= _LISTING_BATCH or time.monotonic() - flushed >= _LISTING_FLUSH:
                    if not self._put(batch):
                        return
                    batch, flushed = [], time.monotonic()
            if batch and not self._put(batch):
                return
            self._put(None)
        except PathNotFoundError as exc:
            # walk() raises this only when nothing at all lies below the path.
            if self._missing_ok and listed == 0:
                self._put(None)
            else:
                self._put(exc)
        except BaseException as exc:  # handed to the merge, which reports it
            self._put(exc)

    def _put(self, item: list[FileInfo] | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def files(self) -> Iterator[FileInfo]:
        """The files in walk order; a listing error is raised as :class:`ListingError`."""
        previous = ""
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise ListingError(self.side, self._path, item)
            for info in item:
                # The merge join is only right for sorted listings; a driver breaking the
                # order would make it delete or re-copy files, so stop instead.
                if info.path <= previous:
                    error = StorageError(f"walk order broken: {info.path} after {previous}")
                    raise ListingError(self.side, info.path, error)
                previous = info.path
                yield info

    def close(self) -> None:
        """Stop the listing thread (it exits at its next hand-over)."""
        self._stop.set()


def merge(source: Iterator[FileInfo], target: Iterator[FileInfo]) -> Iterator[tuple[FileInfo | None, FileInfo | None]]:
    """Join two path-sorted file streams: (source, target) pairs, ``None`` where a side lacks the path."""
    s = next(source, None)
    t = next(target, None)
    while s is not None or t is not None:
        if t is None or (s is not None and s.path < t.path):
            yield s, None
            s = next(source, None)
        elif s is None or t.path < s.path:
            yield None, t
            t = next(target, None)
        else:
            yield s, t
            s = next(source, None)
            t = next(target, None)
