"""Replication between any two stores: a missing check, then updates, with failure thresholds.

:func:`replicate` makes ``target`` hold what ``source`` holds below ``path``. It
works in two phases, run as one pipeline:

1. **Missing check.** Both sides are listed with ``walk`` (one flat, paginated
   listing on object stores: no request per object) and the two listings are
   merged as sorted streams. ``walk`` yields files in the same order on every
   driver (:func:`blobdrivers.listing.walk_key`, which for files is plain string
   order), so a merge join decides each path in one pass holding neither listing
   in memory: missing on the target, different under ``compare``, the same, or
   extra on the target (absent from the source).
2. **Updates.** Wanted files are copied by ``concurrency`` worker threads as the
   merge finds them: streamed from ``source.stream`` into ``target.put`` (atomic,
   bounded memory), or copied server-side with the store's own ``cat`` when both
   drivers address the same bucket/container of the same account. With
   ``delete=True`` the files extra on the target are deleted once every copy has
   finished, unless the run was aborted.

Every update succeeds or fails on its own; a failure never leaves a partial object
on the target, because ``put`` and ``cat`` publish atomically. When the failures
reach ``failure_threshold`` and their ratio to the successes exceeds
``failure_ratio``, no further update starts and the report says why. Running
again after a success copies nothing; after an interruption it copies only what
is still missing. See ``docs/replication.md``.

The ``blobdrivers sync`` command is built here too (:func:`add_sync_parser`,
:func:`run_sync`) and wired into :mod:`blobdrivers.cli`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, NamedTuple, TextIO, cast

from . import paths
from .driver import StorageDriver
from .errors import PathNotFoundError, StorageError, UnsupportedMethodError
from .listing import FileInfo
from .redaction import redact_url

__all__ = [
    "COMPARE_MODES",
    "MODIFY_WINDOW",
    "ReplicationFailure",
    "ReplicationInterrupted",
    "ReplicationProgress",
    "ReplicationReport",
    "add_sync_parser",
    "replicate",
    "run_sync",
]

Compare = Literal["size", "etag", "sha256"]
#: The accepted values of ``compare``.
COMPARE_MODES: tuple[str, ...] = ("size", "etag", "sha256")
#: Seconds by which a source file must be newer than its target copy to count as changed
#: (``compare="etag"`` without comparable etags). Covers timestamps truncated to whole
#: seconds by object stores and small clock differences between two stores.
MODIFY_WINDOW = 2.0

# Parameters that tune a driver without changing which store it addresses; ignored
# when deciding whether two drivers are on the same store.
_TUNING_PARAMS = frozenset(
    {
        "rootdirectory",
        "chunksize",
        "maxconcurrency",
        "concurrency",
        "multipartcopychunksize",
        "multipartcopymaxconcurrency",
        "multipartcopythresholdsize",
        "fsync",
        "retries",
        "maxretries",
        "timeout",
        "loglevel",
    }
)
_MD5 = re.compile(r"[0-9a-f]{32}")
_MULTIPART_MD5 = re.compile(r"[0-9a-f]{32}-[0-9]+")
_LISTING_BATCH = 1000  # files handed from a listing thread to the merge at once
_LISTING_FLUSH = 0.05  # ... or after this many seconds, so the first copies start early
_TICK = 0.1  # seconds between progress callbacks while nothing else happens
_COMPARE_CHUNK = 1024 * 1024
_COPY_ATTEMPTS = 3  # copies of a file whose source changes during each, before it is a failure


# ---------------------------------------------------------------------- results


class ReplicationFailure(NamedTuple):
    """One failed update: the path, why it failed, and what was attempted.

    ``operation`` is ``"copy"``, ``"delete"``, ``"compare"`` (reading both sides
    under ``compare="sha256"``) or ``"list"`` (a listing failed, which aborts the run).
    ``reason`` is the error's type and message; driver messages never carry credentials.
    """

    path: str
    reason: str
    operation: str = "copy"


@dataclass
class ReplicationReport:
    """What a replication did; ``ok`` is true when nothing failed and nothing was aborted.

    Counts are of files (directories are implicit and never counted).

    * ``offered``/``offered_bytes``: files listed on the source.
    * ``wanted``/``wanted_bytes``: offered files the target wanted, ``missing`` there
      or ``changed`` (different under ``compare``).
    * ``copied``/``copied_bytes``: wanted files written to the target
      (``server_side`` of them by a server-side copy). Zero in a dry run.
    * ``skipped``: offered files the target already had the same.
    * ``vanished``: wanted files deleted from the source before they could be copied.
    * ``extra``: target files absent from the source; ``deleted`` of them were
      deleted (``delete=True``; never in a dry run or an aborted run).
    * ``failed``: every failed update with its path and reason.
    * ``aborted``/``abort_reason``: the run stopped early (failure threshold, a
      listing error, an interruption, or an empty source with ``delete``).
    * ``elapsed``: wall time in seconds; ``throughput`` bytes copied per second.
    """

    compare: str = "size"
    dry_run: bool = False
    offered: int = 0
    offered_bytes: int = 0
    wanted: int = 0
    wanted_bytes: int = 0
    missing: int = 0
    changed: int = 0
    copied: int = 0
    copied_bytes: int = 0
    server_side: int = 0
    skipped: int = 0
    vanished: int = 0
    extra: int = 0
    deleted: int = 0
    failed: list[ReplicationFailure] = field(default_factory=list)
    aborted: bool = False
    abort_reason: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no update failed and the run was not aborted."""
        return not self.failed and not self.aborted

    @property
    def throughput(self) -> float:
        """Bytes copied per second of the whole run (0.0 when nothing was timed)."""
        return self.copied_bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def objects_per_second(self) -> float:
        """Files copied per second of the whole run."""
        return self.copied / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field, plus ``ok``, ``throughput`` and ``objects_per_second``."""
        data: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["failed"] = [failure._asdict() for failure in self.failed]
        data["ok"] = self.ok
        data["throughput"] = self.throughput
        data["objects_per_second"] = self.objects_per_second
        return data


@dataclass(frozen=True)
class ReplicationProgress:
    """A snapshot passed to the ``progress`` callback.

    ``action`` says what just happened to ``path``: ``"copied"``, ``"deleted"``,
    ``"failed"``, and in a dry run ``"would-copy"`` and ``"would-delete"``; it is
    ``None`` for a periodic update (at most every 0.1 s while listing or copying).
    ``objects`` counts finished updates (copied, deleted or failed) and ``bytes`` the
    bytes copied so far, including those of copies still running. The totals
    ``wanted``/``wanted_bytes``/``extra`` grow while ``listing_done`` is false.
    """

    offered: int
    wanted: int
    wanted_bytes: int
    extra: int
    objects: int
    bytes: int
    listing_done: bool
    action: str | None = None
    path: str | None = None


class ReplicationInterrupted(KeyboardInterrupt):
    """Raised by :func:`replicate` when interrupted (Ctrl-C, or a ``progress`` callback raising ``KeyboardInterrupt``).

    Copies in flight were cancelled, each leaving nothing behind on the target;
    ``report`` tells what was done before. Running again copies only the rest.
    """

    def __init__(self, report: ReplicationReport) -> None:
        super().__init__("replication interrupted")
        self.report = report


# ---------------------------------------------------------------------- API


def replicate(
    source: StorageDriver,
    target: StorageDriver,
    path: str = paths.ROOT,
    *,
    delete: bool = False,
    compare: Compare = "size",
    concurrency: int = 8,
    failure_threshold: int = 100,
    failure_ratio: float = 1.0,
    dry_run: bool = False,
    progress: Callable[[ReplicationProgress], None] | None = None,
) -> ReplicationReport:
    """Make ``target`` hold every file ``source`` holds below ``path`` (one-way), and report.

    ``compare`` decides when a file present on both sides is copied again:

    * ``"size"``: when the sizes differ. Cheapest; blind to a rewrite of equal size.
    * ``"etag"``: when the sizes differ; otherwise by etag where both etags are
      content MD5s (S3 and OSS objects; multipart etags only prove equality), and
      else when the source file is newer than its copy by more than
      :data:`MODIFY_WINDOW` seconds. Catches same-size rewrites (a registry's tag
      ``link`` files) without reading any content. Because a copy is newer than its
      source, each copy is checked: the source's etag is read again after it, and a
      source that changed meanwhile is copied again (a copy never looks current
      without holding the source's content as of its end).
    * ``"sha256"``: when the sizes differ, or the contents differ: both files are read
      and compared (the check ``sha256`` digests would make, stopping at the first
      difference). Reads every common file on both sides: expensive.

    Updates run in up to ``concurrency`` threads while the listing goes on; a
    streamed copy to an object store takes one of those slots per chunk of the
    target, so memory stays near ``concurrency`` target chunks. Same-store copies
    use the store's own ``cat`` (server-side where it can). With ``delete`` the
    files extra on the target are deleted after all copies, unless the run aborted
    or the source listed no file at all (a safety stop: an empty or mistyped source
    would otherwise empty the target). ``dry_run`` decides everything (reading contents
    under ``"sha256"``) and changes nothing. ``progress`` is called from the calling
    thread with :class:`ReplicationProgress` snapshots; an exception it raises stops
    the run (``KeyboardInterrupt`` becomes :class:`ReplicationInterrupted`).

    Store errors never raise: they are failures in the report (a listing error
    aborts the run). Raises ``ValueError`` for bad arguments, when source and
    target overlap (the same store with one location inside the other), and when
    the source is a filesystem folder that does not exist (a mistyped source is not
    an empty one).
    """
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare must be one of {', '.join(COMPARE_MODES)}, not {compare!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
    if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
        raise ValueError(f"failure_threshold must be an integer >= 1, not {failure_threshold!r}")
    if isinstance(failure_ratio, bool) or not isinstance(failure_ratio, int | float) or failure_ratio < 0:
        raise ValueError(f"failure_ratio must be a number >= 0, not {failure_ratio!r}")
    paths.validate(path, allow_root=True)
    _refuse_overlap(source, target, path)
    _refuse_missing_folder(source)
    run = _Run(
        source,
        target,
        path,
        delete=delete,
        compare=compare,
        concurrency=concurrency,
        failure_threshold=failure_threshold,
        failure_ratio=float(failure_ratio),
        dry_run=dry_run,
        progress=progress,
    )
    return run.execute()


# ---------------------------------------------------------------------- same store


def _store_identity(driver: StorageDriver) -> tuple[Any, ...]:
    """What identifies the store a driver addresses: its class and non-tuning parameters.

    Reads the driver's parameters (``_params``): the public API has no accessor for
    them yet. Two drivers with equal identities see the same objects.
    """
    params = getattr(driver, "_params", {})
    kept = tuple(sorted((key, repr(value)) for key, value in params.items() if key not in _TUNING_PARAMS))
    return (type(driver), kept)


def _location(driver: StorageDriver, path: str) -> str:
    """Where ``path`` of ``driver`` lies in its store, as a prefix ("" is the whole store)."""
    os_root = _os_root(driver)
    if os_root is not None:
        # A filesystem driver's root is a folder, not a prefix of its store.
        return os_root + ("" if path == paths.ROOT else path)
    root = str(getattr(driver, "_root", ""))
    full = paths.join(root, path)
    return "" if full == paths.ROOT else full


def _os_root(driver: StorageDriver) -> str | None:
    from .drivers.filesystem import FilesystemDriver

    if isinstance(driver, FilesystemDriver):
        return os.path.realpath(driver.root)
    return None


def _refuse_overlap(source: StorageDriver, target: StorageDriver, path: str) -> None:
    same_kind = _os_root(source) is not None and _os_root(target) is not None
    if not same_kind and _store_identity(source) != _store_identity(target):
        return
    a, b = _location(source, path), _location(target, path)
    if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
        raise ValueError(
            f"source and target overlap ({a or '/'} and {b or '/'} on the same store): "
            "replicating one into the other would copy or delete its own files"
        )


def _refuse_missing_folder(source: StorageDriver) -> None:
    # Reading a missing root creates nothing and lists nothing: without this a typo
    # in the source would replicate an "empty store" and succeed.
    folder = _os_root(source)
    if folder is not None and not os.path.isdir(folder):
        raise ValueError(f"the source folder {folder} does not exist")


def _server_side_copier(source: StorageDriver, target: StorageDriver) -> Callable[[str], None] | None:
    """A function copying one path from source to target inside the store, or ``None``.

    Only when both drivers address the same store (same class and parameters but
    ``rootdirectory`` and tuning ones) and it is not a filesystem (whose ``cat``
    copies through this process anyway). The copy is the store's own
    ``cat(dst, [src])`` on a driver rooted where both roots meet: one source is a
    server-side copy on object stores, and atomic everywhere.
    """
    if _os_root(source) is not None or _os_root(target) is not None:
        return None
    if _store_identity(source) != _store_identity(target):
        return None
    source_root = str(getattr(source, "_root", ""))
    target_root = str(getattr(target, "_root", ""))
    common_parts: list[str] = []
    for a, b in zip(source_root.split("/")[1:], target_root.split("/")[1:], strict=False):
        if a != b:
            break
        common_parts.append(a)
    common = "/" + "/".join(common_parts) if common_parts else ""
    params = dict(getattr(target, "_params", {}))
    params["rootdirectory"] = common
    try:
        store = type(target)(**params)
    except (StorageError, TypeError, ValueError):
        return None  # the driver will not take these parameters back: stream instead

    def copy(path: str) -> None:
        src = paths.strip(common, source_root + path)
        dst = paths.strip(common, target_root + path)
        store.cat(dst, [src])

    return copy


# ---------------------------------------------------------------------- comparing


def _etag_value(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.strip().strip('"').lower()


def _is_newer(source: FileInfo, target: FileInfo) -> bool:
    return (source.modified - target.modified).total_seconds() > MODIFY_WINDOW


def _differs_by_etag(source: FileInfo, target: FileInfo) -> bool:
    a, b = _etag_value(source.etag), _etag_value(target.etag)
    if a and b:
        if _MD5.fullmatch(a) and _MD5.fullmatch(b):
            return a != b
        if a == b and _MULTIPART_MD5.fullmatch(a):
            # A multipart etag is a digest of the part digests: equal means equal content,
            # different may only mean a different part size.
            return False
    return _is_newer(source, target)


# ---------------------------------------------------------------------- listing


class _ListingError(Exception):
    def __init__(self, side: str, path: str, error: BaseException) -> None:
        super().__init__(f"listing the {side} failed: {_reason(error)}")
        self.side = side
        self.path = path


class _Listing:
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
        """The files in walk order; a listing error is raised as :class:`_ListingError`."""
        previous = ""
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise _ListingError(self.side, self._path, item)
            for info in item:
                # The merge join is only right for sorted listings; a driver breaking the
                # order would make it delete or re-copy files, so stop instead.
                if info.path <= previous:
                    error = StorageError(f"walk order broken: {info.path} after {previous}")
                    raise _ListingError(self.side, info.path, error)
                previous = info.path
                yield info

    def close(self) -> None:
        self._stop.set()


def _merge(source: Iterator[FileInfo], target: Iterator[FileInfo]) -> Iterator[tuple[FileInfo | None, FileInfo | None]]:
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


# ---------------------------------------------------------------------- updates


class _Cancelled(Exception):
    """Raised inside a copy's source reader when the run is interrupted."""


@dataclass
class _Task:
    kind: str  # "copy", "verify" (compare contents, then copy if they differ) or "delete"
    path: str
    size: int
    transferred: int = 0  # bytes read from the source so far (progress)
    weight: int = 1  # concurrency slots taken (see _Run._weight)
    etag: str | None = None  # the source's etag when listed (copies under compare="etag")


class _CountingReader:
    """The source reader handed to ``target.put``: counts bytes and obeys cancellation.

    ``head`` holds bytes already read from ``reader``, served first. Deliberately
    has no ``fileno``/``seek``: the target learns no size and streams.
    """

    def __init__(self, reader: Any, task: _Task, cancel: threading.Event, head: bytes = b"") -> None:
        self._reader = reader
        self._task = task
        self._cancel = cancel
        self._head = memoryview(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._cancel.is_set():
            raise _Cancelled("replication interrupted")
        if self._head:
            target = memoryview(buffer).cast("B")
            got = min(len(target), len(self._head))
            target[:got] = self._head[:got]
            self._head = self._head[got:]
        else:
            got = int(self._reader.readinto(buffer) or 0)
        self._task.transferred += got
        return got

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise _Cancelled("replication interrupted")
        if self._head:
            end = len(self._head) if size < 0 else min(size, len(self._head))
            data = bytes(self._head[:end])
            self._head = self._head[end:]
        else:
            data = self._reader.read(size)
        self._task.transferred += len(data)
        return data


def _reason(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Run:
    """One replication: the merge in the calling thread, updates in a thread pool."""

    def __init__(
        self,
        source: StorageDriver,
        target: StorageDriver,
        path: str,
        *,
        delete: bool,
        compare: str,
        concurrency: int,
        failure_threshold: int,
        failure_ratio: float,
        dry_run: bool,
        progress: Callable[[ReplicationProgress], None] | None,
    ) -> None:
        self.source = source
        self.target = target
        self.path = path
        self.delete = delete
        self.compare = compare
        self.concurrency = concurrency
        self.failure_threshold = failure_threshold
        self.failure_ratio = failure_ratio
        self.dry_run = dry_run
        self.progress = progress
        self.report = ReplicationReport(compare=compare, dry_run=dry_run)
        self.cancel = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="blobdrivers-replicate")
        self.pending: collections.deque[_Task] = collections.deque()
        self.inflight: dict[Future[tuple[str, int]], _Task] = {}
        self.finished: queue.SimpleQueue[Future[tuple[str, int]]] = queue.SimpleQueue()
        self.done_bytes = 0
        self.objects = 0
        self.listing_done = False
        self.stopping = False
        self.silent = False
        self.slots = 0  # concurrency slots taken by the updates in flight
        self.weighted = _os_root(target) is None
        self.last_tick = 0.0
        self.extras: list[str] = []
        self.server_side = None if dry_run else _server_side_copier(source, target)
        self.server_side_lock = threading.Lock()

    # ------------------------------------------------------------------ driving

    def execute(self) -> ReplicationReport:
        started = time.monotonic()
        listings = [
            _Listing(self.source, self.path, "source", missing_ok=self.path == paths.ROOT),
            _Listing(self.target, self.path, "target", missing_ok=True),
        ]
        try:
            try:
                for source_info, target_info in _merge(listings[0].files(), listings[1].files()):
                    self._decide(source_info, target_info)
                    if self.stopping:
                        break
                    self._maybe_tick()
                else:
                    self.listing_done = True
            except _ListingError as exc:
                self.report.failed.append(ReplicationFailure(exc.path, str(exc), "list"))
                self._abort(f"listing the {exc.side} failed")
            self._drain()
            self._delete_extras()
            self._drain()
        except BaseException as exc:
            # Interrupted (or the progress callback failed): cancel the copies in flight
            # (each put aborts and publishes nothing), then hand the report over.
            self.cancel.set()
            self.stopping = True
            self.silent = True  # the callback may be what failed
            self._settle()
            self.report.elapsed = time.monotonic() - started
            if not self.report.aborted:
                self.report.aborted = True
                self.report.abort_reason = "interrupted"
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, ReplicationInterrupted):
                raise ReplicationInterrupted(self.report) from exc
            raise
        finally:
            for listing in listings:
                listing.close()
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.report.elapsed = time.monotonic() - started
        self._emit(None, None)
        return self.report

    def _decide(self, source: FileInfo | None, target: FileInfo | None) -> None:
        report = self.report
        if source is None:
            assert target is not None
            report.extra += 1
            if self.delete:
                self.extras.append(target.path)
            return
        report.offered += 1
        report.offered_bytes += source.size
        if target is None:
            report.missing += 1
            self._want(source.path, source.size, source.etag)
        elif source.size != target.size or (self.compare == "etag" and _differs_by_etag(source, target)):
            report.changed += 1
            self._want(source.path, source.size, source.etag)
        elif self.compare == "sha256":
            self._submit(_Task("verify", source.path, source.size))
        else:
            report.skipped += 1

    def _want(self, path: str, size: int, etag: str | None = None) -> None:
        self.report.wanted += 1
        self.report.wanted_bytes += size
        if self.dry_run:
            self._emit("would-copy", path)
        else:
            self._submit(_Task("copy", path, size, etag=etag))

    def _delete_extras(self) -> None:
        if not self.delete or self.report.aborted or not self.extras:
            return
        if self.report.offered == 0:
            self._abort(
                f"the source listed no file below {self.path}: refusing to delete all "
                f"{len(self.extras)} files of the target"
            )
            return
        for path in self.extras:
            if self.stopping:
                return
            if self.dry_run:
                self._emit("would-delete", path)
            else:
                self._submit(_Task("delete", path, 0))

    def _submit(self, task: _Task) -> None:
        """Queue an update and start queued ones while fewer than ``concurrency`` run."""
        self.pending.append(task)
        self._pump()

    def _pump(self) -> None:
        # Handling a finished comparison may queue its copy; the loop picks it up
        # without recursing.
        while self.pending and not self.stopping:
            task = self.pending[0]
            task.weight = self._weight(task)
            if self.inflight and self.slots + task.weight > self.concurrency:
                self._collect(block=True)
                continue
            self.pending.popleft()
            self.slots += task.weight
            future = self.pool.submit(self._perform, task)
            self.inflight[future] = task
            future.add_done_callback(self.finished.put)
            self._collect(block=False)

    def _weight(self, task: _Task) -> int:
        """How many of the ``concurrency`` slots an update takes.

        A streamed copy to an object store takes one slot per chunk of the target,
        up to all of them: the driver uploads those parts in parallel, each in a
        chunk-sized buffer, so the memory of a run stays near ``concurrency`` chunks
        whatever the mix of sizes, and large objects go one (or a few) at a time
        with their parts in parallel. Filesystem writes hold one buffer: one slot.
        """
        if task.kind != "copy" or self.server_side is not None or not self.weighted:
            return 1
        return max(1, min(self.concurrency, -(-task.size // self.target.chunk_size)))

    def _drain(self) -> None:
        """Wait for every update, starting the queued ones unless the run is stopping."""
        while True:
            self._pump()
            if not self.inflight:
                return
            self._collect(block=True)

    def _settle(self) -> None:
        """Wait for the updates in flight after an interruption, without the completion queue.

        The interruption may have struck between a submission and its completion
        callback, or between taking a future from the queue and handling it: wait
        on the futures themselves so that none is waited for in vain.
        """
        self.pending.clear()
        futures = list(self.inflight)
        wait(futures)
        for future in futures:
            if future in self.inflight:
                self._finish(future)

    def _collect(self, *, block: bool) -> None:
        """Handle finished updates; with ``block`` wait up to one tick for one."""
        try:
            future = self.finished.get(timeout=_TICK) if block else self.finished.get_nowait()
        except queue.Empty:
            if block:
                self._maybe_tick()
            return
        while True:
            self._finish(future)
            try:
                future = self.finished.get_nowait()
            except queue.Empty:
                return

    def _finish(self, future: Future[tuple[str, int]]) -> None:
        task = self.inflight.pop(future)
        self.slots -= task.weight
        report = self.report
        error = future.exception()
        if error is not None:
            if self.cancel.is_set():
                return  # cancelled by an interruption: neither done nor failed
            operation = "compare" if task.kind == "verify" else task.kind
            report.failed.append(ReplicationFailure(task.path, _reason(error), operation))
            self.objects += 1
            self._emit("failed", task.path)
            self._check_failures()
            return
        outcome, size = future.result()
        if outcome == "same":
            report.skipped += 1
        elif outcome == "differs":
            report.changed += 1
            if not self.stopping:
                self._want(task.path, task.size)
        elif outcome == "vanished":
            report.vanished += 1
        elif outcome == "deleted":
            report.deleted += 1
            self.objects += 1
            self._emit("deleted", task.path)
        else:
            report.copied += 1
            report.copied_bytes += size
            report.server_side += outcome == "server-side"
            self.done_bytes += size
            self.objects += 1
            self._emit("copied", task.path)

    def _check_failures(self) -> None:
        failures = len(self.report.failed)
        successes = self.report.copied + self.report.deleted
        if failures >= self.failure_threshold and (successes == 0 or failures / successes > self.failure_ratio):
            self._abort(
                f"{failures} updates failed against {successes} succeeded "
                f"(failure_threshold {self.failure_threshold}, failure_ratio {self.failure_ratio:g})"
            )

    def _abort(self, why: str) -> None:
        if not self.report.aborted:
            self.report.aborted = True
            self.report.abort_reason = why
        self.stopping = True

    # ------------------------------------------------------------------ progress

    def _maybe_tick(self) -> None:
        if self.progress is None or self.silent:
            return
        now = time.monotonic()
        if now - self.last_tick >= _TICK:
            self._emit(None, None)

    def _emit(self, action: str | None, path: str | None) -> None:
        if self.progress is None or self.silent:
            return
        self.last_tick = time.monotonic()
        report = self.report
        in_flight = sum(task.transferred for task in self.inflight.values())
        self.progress(
            ReplicationProgress(
                offered=report.offered,
                wanted=report.wanted,
                wanted_bytes=report.wanted_bytes,
                extra=report.extra,
                objects=self.objects,
                bytes=self.done_bytes + in_flight,
                listing_done=self.listing_done,
                action=action,
                path=path,
            )
        )

    # ------------------------------------------------------------------ workers

    def _perform(self, task: _Task) -> tuple[str, int]:
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

    def _copy(self, task: _Task) -> tuple[str, int]:
        """Copy one file; under ``compare="etag"`` only a copy the source did not change during counts.

        That mode may judge by modification times, and a copy is always newer than its
        source: a source rewritten while its copy ran would look current on every later
        run. So the source's etag is read again after the copy; if it changed, the file
        is copied again, and after :data:`_COPY_ATTEMPTS` changes the copy is deleted (a
        later run sees it missing) and the update fails. A source without etags is copied once.
        """
        if self.compare != "etag":
            return self._copy_once(task)
        before = task.etag if task.etag is not None else self._source_etag(task.path)
        for _ in range(_COPY_ATTEMPTS):
            result = self._copy_once(task)
            after = None if result[0] == "vanished" else self._source_etag(task.path)
            if before is None or after is None or after == before:
                return result  # unchanged, vanished (the next run decides) or no etags to tell
            before = after
        with contextlib.suppress(PathNotFoundError):
            self.target.delete(task.path)
        raise StorageError(
            f"{task.path} changed during each of {_COPY_ATTEMPTS} copies: its copy was deleted, "
            "so that a later run copies it again"
        )

    def _source_etag(self, path: str) -> str | None:
        try:
            return self.source.stat(path).etag
        except PathNotFoundError:
            return None

    def _copy_once(self, task: _Task) -> tuple[str, int]:
        task.transferred = 0
        copier = self.server_side
        if copier is not None:
            try:
                copier(task.path)
            except PathNotFoundError:
                return "vanished", 0
            except UnsupportedMethodError:
                # This store has no server-side copy after all: stream from now on.
                with self.server_side_lock:
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
                        raise _Cancelled("replication interrupted")
                    self.target.put(task.path, head)
                    task.transferred = len(head)
                    return "streamed", len(head)
            self.target.put(task.path, cast(BinaryIO, _CountingReader(reader, task, self.cancel, head)))
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
                raise _Cancelled("replication interrupted")
            left, right = a.read(_COMPARE_CHUNK), b.read(_COMPARE_CHUNK)
            if left != right:
                return False
            if not left:
                return True


# ---------------------------------------------------------------------- CLI


def add_sync_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] | None = None,
) -> argparse.ArgumentParser:
    """Add the ``sync`` subcommand to ``subparsers`` and return its parser.

    ``parents`` are the parsers of options shared by every subcommand; without
    them the command gets its own ``-q/--quiet``. The parser's ``handler(args,
    context)`` default runs :func:`run_sync`.
    """
    parser = subparsers.add_parser(
        "sync",
        parents=list(parents or ()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="replicate one store into another: missing check, then copies (and deletes)",
        description=(
            "Make DST_URL hold every file SRC_URL holds (one-way): list both stores, copy what\n"
            "DST_URL lacks or holds differently, and with --delete remove what SRC_URL lacks.\n"
            "Re-running after a success copies nothing; after an interruption, only the rest."
        ),
        epilog=(
            "A URL's path is the store's root directory, so 's3://bucket/mirror' replicates into\n"
            "the prefix mirror/ of the bucket; --path limits both sides to one folder.\n\n"
            "exit status: 0 done, 1 an update failed or the run stopped early, 2 bad arguments,\n"
            "130 interrupted (copies in flight are cancelled; nothing partial is left behind).\n\n"
            "examples:\n"
            "  blobdrivers sync file:///var/lib/registry 's3://mirror/registry?region=eu-west-1'\n"
            "  blobdrivers sync s3://old azure://new --delete --compare etag --concurrency 32\n"
            "  blobdrivers sync file:///srv/a file:///srv/b --dry-run --json\n"
            "Reference: docs/replication.md"
        ),
    )
    parser.add_argument("source", metavar="SRC_URL", help="store to copy from")
    parser.add_argument("target", metavar="DST_URL", help="store to copy to")
    parser.add_argument("--path", default=paths.ROOT, help="replicate only below this path (default: /)")
    parser.add_argument("--delete", action="store_true", help="delete files of DST that SRC does not have")
    parser.add_argument(
        "--compare",
        choices=COMPARE_MODES,
        default="size",
        help="when a file on both sides is copied again: size (default), etag (etag or newer), sha256 (contents)",
    )
    parser.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="parallel updates (8)")
    parser.add_argument(
        "--failure-threshold",
        type=_positive_int,
        default=100,
        metavar="N",
        help="stop once N updates failed and failures outnumber successes by --failure-ratio (100)",
    )
    parser.add_argument(
        "--failure-ratio", type=float, default=1.0, metavar="R", help="failures per success that stop the run (1.0)"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be copied and deleted; change nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    if parents is None:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_sync_handler)
    return parser


def _sync_handler(args: argparse.Namespace, context: object) -> int:
    return run_sync(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _open_store(url: str) -> StorageDriver:
    from .factory import from_url

    if "://" not in url:
        raise ValueError(f"{url!r} is not a store URL (for a local folder write file://{os.path.abspath(url)})")
    if "#" in url:
        raise ValueError(f"{url!r}: sync takes store URLs without #PATH; use --path to limit both sides to a folder")
    return from_url(url)


def run_sync(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run ``blobdrivers sync`` with parsed arguments; return the exit status.

    0 when everything was replicated, 1 when an update failed or the run stopped
    early, 2 for bad arguments or store configuration, 130 when interrupted.
    """
    from .progress import Progress, progress_wanted

    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    opened: list[StorageDriver] = []

    def shown(text: str) -> str:
        # Everything printed may quote the URLs: mask their credentials.
        for driver in opened:
            text = driver.redact(text)
        return redact_url(text, {name for driver in opened for name in driver.secret_params})

    try:
        opened.append(_open_store(args.source))
        opened.append(_open_store(args.target))
    except (StorageError, ValueError) as exc:
        print(shown(f"blobdrivers sync: error: {exc}"), file=err)
        return 2
    source, target = opened
    quiet = bool(getattr(args, "quiet", False))
    show_bar = not args.dry_run and progress_wanted(quiet=quiet, stream=err)
    bar = Progress("sync", enabled=show_bar, stream=err)
    plan: list[dict[str, str]] = []
    last_bytes = 0

    def on_progress(event: ReplicationProgress) -> None:
        nonlocal last_bytes
        if event.action in ("would-copy", "would-delete") and event.path is not None:
            if args.json:
                plan.append({"action": event.action, "path": event.path})
            else:
                print(f"{event.action} {event.path}", file=out)
            return
        total = event.wanted + (event.extra if args.delete else 0)
        bar.label = f"sync {event.objects:,}/{total:,}{'' if event.listing_done else '+'} files"
        bar.total = event.wanted_bytes if event.listing_done else None
        bar.update(event.bytes - last_bytes)
        last_bytes = event.bytes

    status = 0
    try:
        report = replicate(
            source,
            target,
            args.path,
            delete=args.delete,
            compare=args.compare,
            concurrency=args.concurrency,
            failure_threshold=args.failure_threshold,
            failure_ratio=args.failure_ratio,
            dry_run=args.dry_run,
            progress=on_progress,
        )
    except ReplicationInterrupted as exc:
        report, status = exc.report, 130
    except (StorageError, ValueError) as exc:
        bar.abort()
        print(shown(f"blobdrivers sync: error: {exc}"), file=err)
        return 2
    if report.ok:
        bar.finish()
    else:
        bar.abort()
    if args.json:
        data = report.to_dict()
        data["source"] = args.source
        data["target"] = args.target
        if args.dry_run:
            data["plan"] = plan
        print(shown(json.dumps(data, indent=2)), file=out)
    else:
        print(shown(summary_table(report, args.source, args.target)), file=out)
    if status:
        return status
    return 0 if report.ok else 1


def summary_table(report: ReplicationReport, source: str, target: str, *, max_failures: int = 20) -> str:
    """The end-of-run summary of ``blobdrivers sync`` as text (credentials in the URLs masked)."""
    from .progress import format_size

    verb = "would copy" if report.dry_run else "copied"
    rows = [
        ("offered", report.offered, format_size(report.offered_bytes), ""),
        (
            "wanted",
            report.wanted,
            format_size(report.wanted_bytes),
            f"missing {report.missing:,}, changed {report.changed:,}",
        ),
    ]
    if not report.dry_run:
        rows.append((verb, report.copied, format_size(report.copied_bytes), f"server-side {report.server_side:,}"))
    rows.append(("skipped", report.skipped, "", f"same under compare={report.compare}"))
    if report.vanished:
        rows.append(("vanished", report.vanished, "", "deleted from the source meanwhile"))
    rows.append(
        ("extra", report.extra, "", "on the target only" + ("" if report.dry_run else f", deleted {report.deleted:,}"))
    )
    rows.append(("failed", len(report.failed), "", ""))
    title = redact_url(f"{'dry run: ' if report.dry_run else ''}{source} -> {target}")
    lines = [title, f"  {'':<10} {'files':>12} {'bytes':>12}"]
    for name, count, size, note in rows:
        lines.append(f"  {name:<10} {count:>12,} {size:>12}  {note}".rstrip())
    rate = f"{format_size(report.throughput)}/s, {report.objects_per_second:,.1f} files/s"
    lines.append(f"  elapsed {report.elapsed:.1f} s, {rate}")
    if report.aborted:
        lines.append(f"  ABORTED: {report.abort_reason}")
    for failure in report.failed[:max_failures]:
        lines.append(f"  FAILED {failure.operation} {failure.path}: {failure.reason}")
    if len(report.failed) > max_failures:
        lines.append(f"  ... and {len(report.failed) - max_failures:,} more failures (--json lists them all)")
    return "\n".join(lines)
