"""One replication run: the merge in the calling thread, updates in a thread pool, failure thresholds, progress.

The merge decides each path as the listings arrive and queues the wanted updates;
at most ``concurrency`` slots of updates run at once (a streamed copy to a target
with ``parallel_put`` takes one slot per chunk of the target). Finished updates are
handled in the calling thread, which also calls the ``progress`` callback, so the
callback never runs concurrently.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .. import paths
from ..driver import StorageDriver
from ..listing import FileInfo
from .copy import Task, Updater
from .plan import Listing, ListingError, differs_by_etag, merge
from .report import ReplicationFailure, ReplicationInterrupted, ReplicationProgress, ReplicationReport, reason
from .stores import server_side_copier

__all__ = ["Run"]

_TICK = 0.1  # seconds between progress callbacks while nothing else happens


class Run:
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
        self.pending: collections.deque[Task] = collections.deque()
        self.inflight: dict[Future[tuple[str, int]], Task] = {}
        self.finished: queue.SimpleQueue[Future[tuple[str, int]]] = queue.SimpleQueue()
        self.done_bytes = 0
        self.objects = 0
        self.listing_done = False
        self.stopping = False
        self.silent = False
        self.slots = 0  # concurrency slots taken by the updates in flight
        self.last_tick = 0.0
        self.extras: list[str] = []
        self.updater = Updater(
            source,
            target,
            compare=compare,
            cancel=self.cancel,
            server_side=None if dry_run else server_side_copier(source, target),
        )

    # ------------------------------------------------------------------ driving

    def execute(self) -> ReplicationReport:
        """Run the replication to its end (or its abort) and return the report."""
        started = time.monotonic()
        listings = [
            Listing(self.source, self.path, "source", missing_ok=self.path == paths.ROOT),
            Listing(self.target, self.path, "target", missing_ok=True),
        ]
        try:
            try:
                for source_info, target_info in merge(listings[0].files(), listings[1].files()):
                    self._decide(source_info, target_info)
                    if self.stopping:
                        break
                    self._maybe_tick()
                else:
                    self.listing_done = True
            except ListingError as exc:
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
        elif source.size != target.size or (self.compare == "etag" and differs_by_etag(source, target)):
            report.changed += 1
            self._want(source.path, source.size, source.etag)
        elif self.compare == "sha256":
            self._submit(Task("verify", source.path, source.size))
        else:
            report.skipped += 1

    def _want(self, path: str, size: int, etag: str | None = None) -> None:
        self.report.wanted += 1
        self.report.wanted_bytes += size
        if self.dry_run:
            self._emit("would-copy", path)
        else:
            self._submit(Task("copy", path, size, etag=etag))

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
                self._submit(Task("delete", path, 0))

    def _submit(self, task: Task) -> None:
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
            future = self.pool.submit(self.updater.perform, task)
            self.inflight[future] = task
            future.add_done_callback(self.finished.put)
            self._collect(block=False)

    def _weight(self, task: Task) -> int:
        """How many of the ``concurrency`` slots an update takes.

        A streamed copy to a target with ``parallel_put`` (an object store) takes one
        slot per chunk of the target, up to all of them: the driver uploads those
        parts in parallel, each in a chunk-sized buffer, so the memory of a run stays
        near ``concurrency`` chunks whatever the mix of sizes, and large objects go
        one (or a few) at a time with their parts in parallel. A target writing from
        one buffer (a filesystem) takes one slot.
        """
        if task.kind != "copy" or self.updater.server_side is not None or not self.target.parallel_put:
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
            report.failed.append(ReplicationFailure(task.path, reason(error), operation))
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
