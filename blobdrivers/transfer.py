"""Chunk buffering, part sizing and bounded parallel part scheduling (puts and writers), shared by every driver.

Memory rule: a transfer of any size holds at most ``part_size * (concurrency + 1)``
bytes of payload: ``concurrency`` parts in flight plus the one being filled.
"""

from __future__ import annotations

import io
import itertools
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar, cast

from .params import GiB, MiB

T = TypeVar("T")

#: The part-count limit shared by S3, OSS and GCS-compatible multipart protocols.
MAX_PARTS = 10_000

Data = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


class Source:
    """A uniform, read-once view over the ``data`` argument of ``put``.

    Accepts bytes-like objects (read without copying), binary file objects
    (``readinto`` where available) and iterables of bytes. ``size`` is the number of
    bytes left when it can be known without reading (bytes, regular or seekable
    files), else ``None``.
    """

    def __init__(self, data: Data) -> None:
        self._view: memoryview | None = None
        self._file: BinaryIO | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self.size: int | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            self._view = memoryview(data).cast("B")
            self.size = self._view.nbytes
        elif hasattr(data, "read"):
            self._file = cast(BinaryIO, data)
            self.size = _remaining_size(self._file)
        elif isinstance(data, Iterable) and not isinstance(data, str):
            self._chunks = iter(data)
        else:
            raise TypeError(
                "put() data must be bytes-like, a binary file object or an iterable of bytes, "
                f"not {type(data).__name__}"
            )

    @property
    def in_memory(self) -> bool:
        """True when the data is bytes-like, so parts can be slices of it rather than copies."""
        return self._view is not None

    @property
    def file(self) -> BinaryIO | None:
        """The file object behind the data, if it is one (a driver that resumes by seeking may use it)."""
        return self._file

    def read(self, n: int) -> memoryview:
        """Up to ``n`` bytes; fewer only at the end. Bytes-like data is sliced, never copied."""
        if self._view is not None:
            part, self._view = self._view[:n], self._view[n:]
            return part
        buffer = bytearray(n)
        return memoryview(buffer)[: self.readinto(buffer)]

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` completely unless the data ends first; return the bytes filled."""
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            got = self._read_some(target[filled:])
            if got == 0:
                break
            filled += got
        return filled

    def _read_some(self, target: memoryview) -> int:
        if self._view is not None:
            n = min(len(target), len(self._view))
            target[:n] = self._view[:n]
            self._view = self._view[n:]
            return n
        if self._file is not None:
            readinto = getattr(self._file, "readinto", None)
            if readinto is not None:
                return int(readinto(target) or 0)
            chunk = self._file.read(len(target))
            target[: len(chunk)] = chunk
            return len(chunk)
        while not self._pending and self._chunks is not None:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._chunks = None
                break
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"put() iterables must yield bytes, not {type(chunk).__name__}")
            self._pending = memoryview(chunk).cast("B")
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _remaining_size(file: BinaryIO) -> int | None:
    try:
        fileno = file.fileno()
        status = os.fstat(fileno)
        position = file.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        try:
            if not file.seekable():
                return None
            position = file.tell()
            end = file.seek(0, io.SEEK_END)
            file.seek(position)
            return end - position
        except (OSError, AttributeError, io.UnsupportedOperation):
            return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return max(0, status.st_size - position)


def part_size_for(
    size: int | None, chunk_size: int, *, max_parts: int = MAX_PARTS, max_part_size: int = 5 * GiB
) -> int:
    """The part size for an upload of ``size`` bytes (``None``: unknown).

    It is ``chunk_size`` unless that would need more than ``max_parts`` parts, in
    which case it grows, in whole MiB, to the smallest size that fits. Raises
    ``ValueError`` when the object cannot fit at all.
    """
    if size is None or size <= chunk_size * max_parts:
        return chunk_size
    needed = -(-size // max_parts)
    needed = -(-needed // MiB) * MiB
    if needed > max_part_size:
        raise ValueError(f"an object of {size} bytes exceeds {max_parts} parts of at most {max_part_size} bytes")
    return needed


def growing_part_sizes(chunk_size: int, *, max_parts: int = MAX_PARTS, max_part_size: int = 5 * GiB) -> Iterator[int]:
    """Part sizes for data of unknown length.

    ``chunk_size`` for the first tenth of the part budget, then doubling each
    further tenth, so the budget reaches far beyond what equal parts would (10 MiB
    parts reach about 10 TB instead of 100 GB).
    """
    step = max(1, max_parts // 10)
    for index in range(max_parts):
        yield min(max_part_size, chunk_size << (index // step))


@dataclass(frozen=True)
class PutPlan:
    """How one put goes out: in one request (``whole``) or as parts of ``part_sizes`` read from ``source``."""

    #: All the data, when it fits one request; ``None`` for a multipart upload.
    whole: memoryview | None
    #: What the parts are read from (the data, or the bytes already read followed by the rest).
    source: Source
    #: Part sizes in order: ``chunk_size``, larger to fit ``max_parts``, growing when the length is unknown.
    part_sizes: Iterable[int]


def plan_put(source: Source, chunk_size: int, *, max_parts: int, max_part_size: int) -> PutPlan:
    """Decide between one request and parts: the one rule every driver's ``put`` follows.

    Data of known size up to ``chunk_size`` goes in one request. Data of unknown
    size is read one chunk ahead: if it ends within that chunk it also goes in one
    request, otherwise the chunk read ahead becomes the head of the parts. Raises
    ``ValueError`` when a known size cannot fit ``max_parts`` parts.
    """
    size = source.size
    if size is not None and size <= chunk_size:
        return PutPlan(read_exact(source, size), source, ())
    if size is None:
        head = bytearray(chunk_size)
        got = source.readinto(head)
        if got < chunk_size:
            return PutPlan(memoryview(head)[:got], source, ())
        sizes: Iterable[int] = growing_part_sizes(chunk_size, max_parts=max_parts, max_part_size=max_part_size)
        return PutPlan(None, Source(HeadThenRest(memoryview(head), source)), sizes)
    part_size = part_size_for(size, chunk_size, max_parts=max_parts, max_part_size=max_part_size)
    return PutPlan(None, source, itertools.repeat(part_size, max_parts))


def read_exact(source: Source, size: int) -> memoryview:
    """The next ``size`` bytes of ``source`` (fewer only at its end); sliced, not copied, when in memory."""
    if source.in_memory:
        return source.read(size)
    buffer = bytearray(size)
    return memoryview(buffer)[: source.readinto(buffer)]


class HeadThenRest(io.RawIOBase):
    """A read-once stream: ``head`` (bytes already read, to size a put), then the rest of ``source``."""

    def __init__(self, head: memoryview, source: Source) -> None:
        super().__init__()
        self._head: memoryview | None = head
        self._source = source

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Bytes of the head while any are left, then of the source."""
        target = memoryview(buffer).cast("B")
        if self._head is not None:
            count = min(len(target), len(self._head))
            target[:count] = self._head[:count]
            self._head = self._head[count:] or None
            return count
        return self._source.readinto(target)


def run_bounded(tasks: Iterable[Callable[[], T]], concurrency: int) -> list[T]:
    """Run callables with at most ``concurrency`` at once; results in task order.

    The first failure stops the submission of further tasks; tasks already running
    finish, then that first exception is raised.
    """
    results: dict[int, T] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="blobdrivers") as pool:
        running: dict[Future[T], int] = {}
        failure: BaseException | None = None
        for index, task in enumerate(tasks):
            if len(running) >= concurrency:
                failure = _collect(running, results, return_when=FIRST_COMPLETED) or failure
            if failure is not None:
                break
            running[pool.submit(task)] = index
        while running:
            failure = _collect(running, results, return_when=FIRST_COMPLETED) or failure
        if failure is not None:
            raise failure
    return [results[i] for i in sorted(results)]


def _collect(running: dict[Future[T], int], results: dict[int, T], *, return_when: str) -> BaseException | None:
    done, _ = wait(running, return_when=return_when)
    failure: BaseException | None = None
    for future in done:
        index = running.pop(future)
        error = future.exception()
        if error is not None:
            failure = failure or error
        else:
            results[index] = future.result()
    return failure


def upload_parts(
    source: Source,
    part_sizes: Iterable[int],
    upload_part: Callable[[int, memoryview], T],
    *,
    concurrency: int,
) -> list[T]:
    """Read ``source`` into parts and upload them in parallel; return the results in part order.

    ``upload_part(number, data)`` is called with 1-based part numbers; ``data`` is
    only valid during the call. At most ``concurrency`` parts are in flight and one
    more is being read, so memory stays within ``max(part_sizes) * (concurrency + 1)``.
    Bytes-like sources are sliced, never copied. An empty source yields one empty
    part, because every multipart protocol needs at least one.
    """
    free_buffers: list[bytearray] = []
    lock = threading.Lock()

    def tasks() -> Iterator[Callable[[], T]]:
        for number, size in enumerate(part_sizes, start=1):
            if source.in_memory:
                view, buffer = source.read(size), None
            else:
                with lock:
                    buffer = free_buffers.pop() if free_buffers else None
                if buffer is None or len(buffer) < size:
                    buffer = bytearray(size)
                view = memoryview(buffer)[: source.readinto(memoryview(buffer)[:size])]
            if not view and number > 1:
                return
            yield _part_task(upload_part, number, view, buffer, free_buffers, lock)
            if len(view) < size:
                return

    return run_bounded(tasks(), concurrency)


def _part_task(
    upload_part: Callable[[int, memoryview], T],
    number: int,
    view: memoryview,
    buffer: bytearray | None,
    free_buffers: list[bytearray],
    lock: threading.Lock,
) -> Callable[[], T]:
    def task() -> T:
        try:
            return upload_part(number, view)
        finally:
            if buffer is not None:
                with lock:
                    free_buffers.append(buffer)

    return task


class PartBuffer:
    """Collects writes into parts of exactly ``part_size`` bytes for a resumable writer.

    ``write`` returns the full parts ready to send (each a fresh ``bytes``, so the
    caller may hand it to another thread); ``take_rest`` returns what is left.
    ``cut`` is the lazy form for a writer that bounds the parts in memory, and
    ``rest`` shows what is left without copying it. ``initial`` (a bytearray) is
    taken over as the first buffered bytes, not copied.
    """

    def __init__(self, part_size: int, initial: bytearray | None = None) -> None:
        self.part_size = part_size
        self._buffer = initial if initial is not None else bytearray()

    def __len__(self) -> int:
        return len(self._buffer)

    def write(self, data: Any) -> list[bytes]:
        """Add ``data``; return every complete part now available."""
        return [bytes(part) for part in self.cut(data)]

    def cut(self, data: bytes | bytearray | memoryview = b"") -> Iterator[bytearray | memoryview]:
        """Add ``data``, yielding each complete part only when the caller asks for the next one.

        A part is a ``bytearray`` the caller now owns, or a ``memoryview`` slice of
        ``data`` (no copy: the caller copies it if it keeps it). So a caller that
        waits for a free upload slot before taking the next part holds at most its
        parts in flight plus less than one part here, and every byte is copied at
        most once. Parts already buffered beyond one (a resumed large tail) come first.
        """
        part_size = self.part_size
        view = memoryview(data).cast("B")
        while len(self._buffer) >= part_size:
            if len(self._buffer) == part_size:
                full, self._buffer = self._buffer, bytearray()
            else:
                full = self._buffer[:part_size]
                del self._buffer[:part_size]
            yield full
        while view:
            if not self._buffer and len(view) >= part_size:
                yield view[:part_size]
                view = view[part_size:]
                continue
            count = min(part_size - len(self._buffer), len(view))
            self._buffer += view[:count]
            view = view[count:]
            if len(self._buffer) == part_size:
                full, self._buffer = self._buffer, bytearray()
                yield full

    @property
    def rest(self) -> memoryview:
        """The buffered bytes that are not a full part, without copying them (valid until the next change)."""
        return memoryview(self._buffer)

    def take_rest(self) -> bytes:
        """Everything buffered that is not a full part, emptying the buffer."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def clear(self) -> None:
        """Drop everything buffered."""
        self._buffer = bytearray()


class BackgroundParts:
    """A writer's parts sent in the background, at most ``concurrency`` at a time.

    :meth:`send` takes a free slot *before* it copies a part, so a writer holds at
    most ``concurrency`` parts in flight plus the one it fills:
    ``part_size * (concurrency + 1)`` bytes. ``upload(index, data)`` sends one part
    in a worker thread (``data`` is the part's own copy, valid during the call). A
    part that fails does not stop the others: the first failure (in time) is kept
    in :attr:`failure`, the lowest index that failed in :attr:`first_failed`. Every
    index :meth:`send` handed out either succeeds or fails, so once :meth:`drain`
    returned, every part below ``first_failed`` succeeded: the consistent prefix a
    writer may keep.

    Parts run on ``executor()``, asked for every part (a driver's per-process pool
    stays right after a fork); without one, on a pool of ``concurrency`` threads
    made at the first part and ended by :meth:`shutdown`.
    """

    def __init__(
        self,
        concurrency: int,
        upload: Callable[[int, memoryview], object],
        *,
        executor: Callable[[], Executor] | None = None,
    ) -> None:
        self._concurrency = concurrency
        self._upload = upload
        self._executor = executor
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(concurrency)
        self._running: list[Future[None]] = []
        self._lock = threading.Lock()  # taken only when a part fails
        #: The first exception a part raised, ``None`` while every part succeeded.
        self.failure: BaseException | None = None
        #: The lowest index of a part that failed: the parts below it are the consistent prefix.
        self.first_failed: int | None = None

    def send(self, part: bytes | bytearray | memoryview, start: Callable[[int], int]) -> None:
        """Upload ``part`` in the background, once a slot is free.

        ``start(len(part))`` runs in the slot, before the part is copied, and returns
        the part's index; when it raises (an earlier failure, a limit), the slot is
        freed and nothing is sent. A ``memoryview`` is copied (it shows the caller's
        memory); ``bytes`` and a ``bytearray`` are taken over.
        """
        self._slots.acquire()
        try:
            index = start(len(part))
        except BaseException:
            self._slots.release()
            raise
        try:
            owned = bytes(part) if isinstance(part, memoryview) else part
            self._running = [future for future in self._running if not future.done()]
            self._running.append(self._pool_for_parts().submit(self._run, index, owned))
        except BaseException as exc:
            self._failed(index, exc)  # the index was handed out: a part that never went out failed
            self._slots.release()
            raise

    def drain(self) -> None:
        """Wait until no part is in flight."""
        wait(self._running)
        self._running.clear()

    def shutdown(self) -> None:
        """End the pool made for the parts, if any, once its parts are done (a later part makes a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _pool_for_parts(self) -> Executor:
        if self._executor is not None:
            return self._executor()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="blobdrivers-writer")
        return self._pool

    def _run(self, index: int, part: bytes | bytearray) -> None:
        try:
            self._upload(index, memoryview(part))
        except BaseException as exc:
            self._failed(index, exc)
        finally:
            self._slots.release()

    def _failed(self, index: int, exc: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = exc
            if self.first_failed is None or index < self.first_failed:
                self.first_failed = index


class ViewFile(io.RawIOBase):
    """A seekable, read-only file over a memoryview, so an SDK can send (and re-send) a part without a copy.

    Make a fresh one for every attempt of a request, or seek it back to 0: a retry re-sends from the start.
    """

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable (an SDK rewinds a body to retry)."""
        return True

    def __len__(self) -> int:
        """Total size of the view (SDKs take it as the Content-Length)."""
        return len(self._view)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Copy the next bytes into ``buffer``; 0 at the end."""
        target = memoryview(buffer).cast("B")
        chunk = self._view[self._position : self._position + len(target)]
        target[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        """The next ``size`` bytes (all the rest when negative or ``None``)."""
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._position + size)
        chunk = bytes(self._view[self._position : end])
        self._position = max(self._position, end)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (clamped at 0); return it."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        """The position."""
        return self._position
