"""One update, run in a worker thread: a copy (streamed or inside the store), a content comparison, a delete.

A copy publishes atomically (``put`` and ``cat`` do), so a failed or cancelled one
leaves nothing behind on the target. Cancellation reaches a streamed copy through
its source reader, which raises once the run is interrupted: the target driver
then aborts the upload.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from ..driver import StorageDriver
from ..errors import PathNotFoundError, StorageError, UnsupportedMethodError
from ..transfer import HeadThenRest, Source

__all__ = ["COPY_ATTEMPTS", "Cancelled", "Task", "Updater"]

_COMPARE_CHUNK = 1024 * 1024
#: Copies of a file whose source changes during each, before it is a failure.
COPY_ATTEMPTS = 3


class Cancelled(Exception):
    """Raised inside a copy's source reader when the run is interrupted."""


@dataclass
class Task:
    """One update and what the run needs to know about it while it runs."""

    kind: str  # "copy", "verify" (compare contents, then copy if they differ) or "delete"
    path: str
    size: int
    transferred: int = 0  # bytes read from the source so far (progress)
    weight: int = 1  # concurrency slots taken (see Run._weight)
    etag: str | None = None  # the source's etag when listed (copies under compare="etag")


class _CountingReader:
    """The source reader handed to ``target.put``: counts bytes and obeys cancellation.

    Deliberately has no ``fileno``/``seek``: the target learns no size and streams.
    """

    def __init__(self, reader: Any, task: Task, cancel: threading.Event) -> None:
        self._reader = reader
        self._task = task
        self._cancel = cancel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._cancel.is_set():
            raise Cancelled("replication interrupted")
        got = int(self._reader.readinto(buffer) or 0)
        self._task.transferred += got
        return got

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled("replication interrupted")
        data = self._reader.read(size) or b""
        self._task.transferred += len(data)
        return data


class Updater:
    """Runs updates from ``source`` to ``target``; ``server_side`` copies inside the store while it can."""

    def __init__(
        self,
        source: StorageDriver,
        target: StorageDriver,
        *,
        compare: str,
        cancel: threading.Event,
        server_side: Callable[[str], None] | None,
    ) -> None:
        self.source = source
        self.target = target
        self.compare = compare
        self.cancel = cancel
        #: The in-store copy, until the store says it has none (then every copy streams).
        self.server_side = server_side
        self._server_side_lock = threading.Lock()

    def perform(self, task: Task) -> tuple[str, int]:
        """Run one update in a worker thread: ``(outcome, bytes copied)``; raises on failure."""
        if task.kind == "delete":
            with contextlib.suppress(PathNotFoundError):  # already gone: the goal is reached
                self.target.delete(task.path)
            return "deleted", 0
        if task.kind == "verify":
            try:
                return ("same" if self._same_content(task.path) else "differs"), 0
            except PathNotFoundError:
                # Gone from the source (or the target) since the listing: the next run decides.
                return "vanished", 0
        return self._copy(task)

    def _copy(self, task: Task) -> tuple[str, int]:
        """Copy one file; under ``compare="etag"`` only a copy the source did not change during counts.

        That mode may judge by modification times, and a copy is always newer than its
        source: a source rewritten while its copy ran would look current on every later
        run. So the source's etag is read again after the copy; if it changed, the file
        is copied again, and after :data:`COPY_ATTEMPTS` changes the copy is deleted (a
        later run sees it missing) and the update fails. A source without etags is copied once.
        """
        if self.compare != "etag":
            return self._copy_once(task)
        before = task.etag if task.etag is not None else self._source_etag(task.path)
        for _ in range(COPY_ATTEMPTS):
            result = self._copy_once(task)
            after = None if result[0] == "vanished" else self._source_etag(task.path)
            if before is None or after is None or after == before:
                return result  # unchanged, vanished (the next run decides) or no etags to tell
            before = after
        with contextlib.suppress(PathNotFoundError):
            self.target.delete(task.path)
        raise StorageError(
            f"{task.path} changed during each of {COPY_ATTEMPTS} copies: its copy was deleted, "
            "so that a later run copies it again"
        )

    def _source_etag(self, path: str) -> str | None:
        try:
            return self.source.stat(path).etag
        except PathNotFoundError:
            return None

    def _copy_once(self, task: Task) -> tuple[str, int]:
        task.transferred = 0
        copier = self.server_side
        if copier is not None:
            try:
                copier(task.path)
            except PathNotFoundError:
                return "vanished", 0
            except UnsupportedMethodError:
                # This store has no server-side copy after all: stream from now on.
                with self._server_side_lock:
                    self.server_side = None
            else:
                return "server-side", task.size
        try:
            reader = self.source.stream(task.path)
        except PathNotFoundError:
            return "vanished", 0
        with reader:
            head = b""
            if task.size < self.target.chunk_size:
                # Small: read it whole (one byte more shows whether it grew since the
                # listing), so the target knows its size and sends it in one request
                # instead of staging it in a chunk-sized buffer.
                head = reader.read(task.size + 1)
                if len(head) <= task.size:
                    if self.cancel.is_set():
                        raise Cancelled("replication interrupted")
                    self.target.put(task.path, head)
                    task.transferred = len(head)
                    return "streamed", len(head)
            # A small file that grew since the listing: the bytes read, then the rest.
            rest = HeadThenRest(memoryview(head), Source(cast(BinaryIO, reader))) if head else reader
            self.target.put(task.path, cast(BinaryIO, _CountingReader(rest, task, self.cancel)))
        return "streamed", task.transferred

    def _same_content(self, path: str) -> bool:
        with self.source.stream(path) as a:
            try:
                b = self.target.stream(path)
            except PathNotFoundError:
                return False  # deleted from the target since the listing: copy it again
            with b:
                return self._same_stream(a, b)

    def _same_stream(self, a: Any, b: Any) -> bool:
        while True:
            if self.cancel.is_set():
                raise Cancelled("replication interrupted")
            left, right = a.read(_COMPARE_CHUNK), b.read(_COMPARE_CHUNK)
            if left != right:
                return False
            if not left:
                return True
