"""Replication between stores: missing check, updates, failure thresholds, resume, and the sync command.

Real backends: filesystem, in-memory, S3 on moto, Azure on Azurite, GCS on
gcp-storage-emulator and OSS on the project's OSS test server (their fixtures fail
under CI=true and skip locally when the server or the driver is unavailable).
Faults are injected by subclassing a driver's backend hooks: a target whose
writes break midway, a source whose reads break midway, a source that blocks
until the run is interrupted.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import itertools
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers.cli.sync import add_sync_parser, run_sync
from blobdrivers.conditions import Conditions
from blobdrivers.driver import StorageDriver
from blobdrivers.drivers.filesystem import STAGING, FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.listing import FileInfo
from blobdrivers.reader import RangeReader
from blobdrivers.replicate import ReplicationInterrupted, ReplicationProgress, ReplicationReport, replicate
from blobdrivers.replicate.plan import differs_by_etag
from blobdrivers.transfer import Source
from tests.network import s3_params, server_params
from tests.servers.local import require

KiB = 1024
MiB = 1024 * KiB

Factory = Callable[[str], StorageDriver]


# --------------------------------------------------------------------------- stores


def _create_or_require(server: str, driver: str, params: dict[str, Any]) -> Factory:
    """A factory of drivers below fresh prefixes; fails under CI / skips locally when the driver cannot be made."""
    try:
        blobdrivers.create(driver, params).list("/")
    except Exception as exc:
        require(server, f"the {driver} driver cannot be used: {type(exc).__name__}: {exc}")
    return lambda name: blobdrivers.create(driver, {**params, "rootdirectory": name})


@pytest.fixture(
    params=[
        "filesystem",
        "inmemory",
        pytest.param("s3", marks=pytest.mark.servers),
        pytest.param("azure", marks=pytest.mark.servers),
        pytest.param("gcs", marks=pytest.mark.servers),
        pytest.param("oss", marks=pytest.mark.servers),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """``backend(name)`` gives a fresh, empty store named ``name`` on the parametrised backend."""
    kind = request.param
    if kind == "filesystem":
        return lambda name: FilesystemDriver(
            rootdirectory=str(tmp_path / "fs" / name), chunksize="64KiB", fsync="false"
        )
    if kind == "inmemory":
        store = f"replicate-{os.urandom(6).hex()}"
        return lambda name: InMemoryDriver(name=store, rootdirectory=name, chunksize=64 * KiB)
    server, chunk_size = _NETWORK_BACKENDS[kind]
    params = server_params(kind, request)
    if kind == "gcs":
        _no_soft_delete(params["endpoint"], params["bucket"])
    return _create_or_require(server, kind, {**params, "chunksize": chunk_size})


#: Each network kind's server (as the fixtures name it) and its writers' chunk size.
_NETWORK_BACKENDS = {
    "s3": ("moto (S3)", 5 * MiB),  # moto enforces S3's 5 MiB minimum part
    "azure": ("Azurite (Azure Blob)", 256 * KiB),
    "gcs": ("gcp-storage-emulator (GCS)", 256 * KiB),
    "oss": ("OSS test server", 100 * KiB),  # OSS's minimum part size
}


def _no_soft_delete(endpoint: str, bucket: str) -> None:
    """Turn soft delete off: the emulator otherwise keeps (and rewrites) every deleted object."""
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b/{bucket}",
        data=json.dumps({"softDeletePolicy": {"retentionDurationSeconds": "0"}}).encode(),
        headers={"Content-Type": "application/json"},
        method="PATCH",
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as response:
        response.read()


@pytest.fixture
def fs_source(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(rootdirectory=str(tmp_path / "source"), chunksize="64KiB", fsync="false")


def tree(big: int) -> dict[str, bytes]:
    """Small files in nested folders, names that test the walk order, an empty file, multi-part files."""
    files = {f"/small/d{i % 3}/f{i}.txt": os.urandom(i * 37) for i in range(12)}
    for name in ("p-q", "p.q", "p_q", "pq", "p/q", "p/r/s"):
        files[f"/order/{name}"] = os.urandom(50)
    files["/empty"] = b""
    files["/big/blob-a"] = os.urandom(big)
    files["/big/blob-b"] = os.urandom(big + 1)
    return files


def fill(store: StorageDriver, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        store.put(path, data)


def digests(store: StorageDriver) -> dict[str, str]:
    """sha256 of every file, streamed."""
    result = {}
    try:
        entries = list(store.walk("/"))
    except blobdrivers.errors.PathNotFoundError:
        return {}
    for info in entries:
        if info.is_dir:
            continue
        digest = hashlib.sha256()
        with store.stream(info.path) as reader:
            for chunk in reader:
                digest.update(chunk)
        result[info.path] = digest.hexdigest()
    return result


def expected(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}


def multipart_size(store: StorageDriver) -> int:
    return store.chunk_size + 12_345


# --------------------------------------------------------------------------- fault injection


class FailingWrites(FilesystemDriver):
    """A filesystem target whose writes of paths containing ``bad`` break after 1,000 bytes (EIO)."""

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        if "bad" not in full:
            super()._put(full, source, conditions)
            return

        def broken() -> Iterator[bytes]:
            yield bytes(source.read(1000))
            raise OSError(errno.EIO, "injected write failure")

        super()._put(full, Source(broken()), conditions)


class _BreakingReader:
    def __init__(self, data: bytes, after: int) -> None:
        self._data = io.BytesIO(data)
        self._left = after

    def readinto(self, buffer: memoryview) -> int:
        if self._left <= 0:
            raise ConnectionResetError("injected read failure")
        got = self._data.readinto(buffer[: self._left])
        self._left -= got
        return got

    def close(self) -> None:
        pass


class FailingReads(InMemoryDriver):
    """An in-memory source whose reads of paths containing ``bad`` break after ``break_after`` bytes."""

    break_after = 1000

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        if "bad" not in full:
            return super()._open(full, offset, length)
        data = self.get(full)[offset:]
        return _BreakingReader(data, self.break_after), len(data)


class _GatedReader:
    def __init__(self, data: bytes, gate: threading.Event) -> None:
        self._data = io.BytesIO(data)
        self._gate = gate
        self._first = True

    def readinto(self, buffer: memoryview) -> int:
        if not self._first:
            self._gate.wait(30)
            time.sleep(0.002)  # slow after the gate: the interruption lands before the end
        self._first = False
        return self._data.readinto(buffer[: 64 * KiB])

    def close(self) -> None:
        pass


class GatedReads(InMemoryDriver):
    """An in-memory source whose reads of ``/big`` give one chunk, then wait for ``gate``."""

    gate = threading.Event()

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        if not full.endswith("/big"):
            return super()._open(full, offset, length)
        data = self.get(full)[offset:]
        return _GatedReader(data, self.gate), len(data)


class _RewritingReader:
    """A source reader that runs ``rewrite`` once, right after the first chunk it hands out."""

    def __init__(self, reader: Any, rewrite: Callable[[], None]) -> None:
        self._reader = reader
        self._rewrite: Callable[[], None] | None = rewrite

    def __enter__(self) -> _RewritingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._reader.read(size)
        self._after_chunk()
        return data

    def readinto(self, buffer: memoryview) -> int:
        got = int(self._reader.readinto(buffer) or 0)
        self._after_chunk()
        return got

    def _after_chunk(self) -> None:
        rewrite, self._rewrite = self._rewrite, None
        if rewrite is not None:
            rewrite()


def rewrite_while_streaming(source: StorageDriver, path: str, versions: Iterator[bytes], times: int) -> threading.Event:
    """Make ``source`` rewrite ``path`` (same size, the next of ``versions``) while each of ``times`` copies streams it.

    The returned event is set once the first rewrite happened.
    """
    rewritten = threading.Event()
    stream = source.stream
    left = [times]

    def rewriting_stream(name: str, offset: int = 0, length: int | None = None) -> Any:
        reader = stream(name, offset, length)
        if name != path or left[0] == 0:
            return reader
        left[0] -= 1

        def rewrite() -> None:
            source.put(path, next(versions))
            rewritten.set()

        return _RewritingReader(reader, rewrite)

    source.stream = rewriting_stream  # type: ignore[method-assign]
    return rewritten


def staging_leftovers(store: FilesystemDriver) -> list[str]:
    return os.listdir(os.path.join(store.root, STAGING, "tmp"))


def no_partial_uploads(store: StorageDriver, request: pytest.FixtureRequest) -> None:
    """On S3, assert that no multipart upload was left behind."""
    if store.name != "s3":
        return
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# --------------------------------------------------------------------------- replication on every backend


def test_tree_replicates_and_a_second_run_copies_nothing(backend: Factory, fs_source: FilesystemDriver) -> None:
    target = backend("mirror")
    files = tree(multipart_size(target))
    fill(fs_source, files)

    report = replicate(fs_source, target, concurrency=4)
    assert report.ok, report.failed
    assert (report.offered, report.wanted, report.missing, report.copied) == (len(files),) * 4
    assert report.copied_bytes == sum(map(len, files.values())) == report.wanted_bytes
    assert digests(target) == expected(files)

    for compare in ("size", "etag", "sha256"):
        again = replicate(fs_source, target, compare=compare)  # type: ignore[arg-type]
        assert again.ok
        assert (again.wanted, again.copied, again.skipped) == (0, 0, len(files)), compare


def test_backend_as_source(backend: Factory, tmp_path: Path) -> None:
    source = backend("origin")
    files = tree(multipart_size(source))
    fill(source, files)
    target = FilesystemDriver(rootdirectory=str(tmp_path / "copy"), chunksize="64KiB", fsync="false")

    assert replicate(source, target).copied == len(files)
    assert digests(target) == expected(files)
    assert replicate(source, target, compare="etag").copied == 0


def test_changes_and_deletions_propagate_with_delete(backend: Factory, fs_source: FilesystemDriver) -> None:
    target = backend("mirror")
    files = tree(multipart_size(target))
    fill(fs_source, files)
    replicate(fs_source, target)

    fs_source.delete("/small/d1")  # a whole folder
    fs_source.delete("/order/p.q")
    fs_source.put("/big/blob-a", os.urandom(multipart_size(target) + 1))  # new size
    fs_source.put("/small/d0/f0.txt", b"grown")
    fs_source.put("/order/pq", os.urandom(50))  # same size, new content
    fs_source.put("/new/file", b"new")
    deleted = {p for p in files if p.startswith("/small/d1/")} | {"/order/p.q"}
    now = {p: fs_source.get(p) for p in digests(fs_source)}

    plain = replicate(fs_source, target)
    assert plain.extra == len(deleted) and plain.deleted == 0  # without delete, extras stay
    assert plain.changed == 2 and plain.missing == 1  # the same-size rewrite is invisible to "size"
    assert digests(target)["/order/pq"] == expected(files)["/order/pq"]

    report = replicate(fs_source, target, delete=True, compare="sha256")
    assert report.ok, report.failed
    assert report.deleted == report.extra == len(deleted)
    assert report.copied == report.changed == 1  # /order/pq, found by reading both sides
    assert digests(target) == expected(now)
    assert replicate(fs_source, target, delete=True, compare="sha256").copied == 0


def test_interrupted_run_resumes_with_the_rest(backend: Factory, fs_source: FilesystemDriver) -> None:
    target = backend("mirror")
    files = {f"/objects/{i:03d}": os.urandom(100 + i) for i in range(30)}
    fill(fs_source, files)

    def stop_after_five(event: ReplicationProgress) -> None:
        if event.objects >= 5:
            raise KeyboardInterrupt

    with pytest.raises(ReplicationInterrupted) as caught:
        replicate(fs_source, target, concurrency=2, progress=stop_after_five)
    first = caught.value.report
    assert first.aborted and first.abort_reason == "interrupted"
    present = digests(target)
    assert 5 <= len(present) < len(files)
    assert all(expected(files)[path] == digest for path, digest in present.items())  # only whole objects

    rest = replicate(fs_source, target)
    assert rest.ok
    assert rest.copied == len(files) - len(present)
    assert rest.skipped == len(present)
    assert digests(target) == expected(files)


def test_interruption_cancels_a_copy_in_flight_and_leaves_nothing(
    backend: Factory, request: pytest.FixtureRequest
) -> None:
    target = backend("mirror")
    source = GatedReads(chunksize=64 * KiB)
    GatedReads.gate = threading.Event()
    data = os.urandom(max(2 * target.chunk_size, 4 * MiB) + 1)
    source.put("/big", data)

    def interrupt_once_bytes_flow(event: ReplicationProgress) -> None:
        if event.bytes > 0:
            GatedReads.gate.set()
            raise KeyboardInterrupt

    with pytest.raises(ReplicationInterrupted) as caught:
        replicate(source, target, progress=interrupt_once_bytes_flow)
    assert caught.value.report.copied == 0
    assert digests(target) == {}
    if isinstance(target, FilesystemDriver):
        assert staging_leftovers(target) == []
    no_partial_uploads(target, request)

    assert replicate(source, target).copied == 1
    assert digests(target) == {"/big": hashlib.sha256(data).hexdigest()}


def test_failing_source_reads_leave_no_partial_object(backend: Factory, request: pytest.FixtureRequest) -> None:
    target = backend("mirror")
    source = FailingReads(chunksize=64 * KiB)
    FailingReads.break_after = target.chunk_size + 1000  # past the first part of a multipart upload
    good = {f"/good/{i}": os.urandom(300) for i in range(4)}
    bad = {f"/bad/{i}": os.urandom(2 * target.chunk_size + 5) for i in range(2)}
    fill(source, {**good, **bad})

    report = replicate(source, target, concurrency=2)
    assert not report.aborted  # 2 failures: below the threshold of 100
    assert sorted(f.path for f in report.failed) == sorted(bad)
    assert all(f.operation == "copy" and "ConnectionResetError" in f.reason for f in report.failed)
    assert report.copied == len(good)
    assert digests(target) == expected(good)
    no_partial_uploads(target, request)


# --------------------------------------------------------------------------- failure accounting


def test_failure_threshold_aborts_and_lists_the_failures(tmp_path: Path) -> None:
    source = InMemoryDriver()
    target = FailingWrites(rootdirectory=str(tmp_path / "target"), fsync="false")
    files = {f"/a-bad/{i:02d}": os.urandom(5000) for i in range(30)}  # walked first
    files.update({f"/z-good/{i:02d}": os.urandom(10) for i in range(10)})
    fill(source, files)

    report = replicate(source, target, concurrency=1, failure_threshold=5, failure_ratio=1.0)
    assert report.aborted
    assert "5 updates failed against 0 succeeded" in (report.abort_reason or "")
    assert [f.path for f in report.failed] == [f"/a-bad/{i:02d}" for i in range(5)]
    assert all("injected write failure" in f.reason for f in report.failed)
    assert report.copied == 0
    assert digests(target) == {}  # nothing partial: every failed put published nothing
    assert staging_leftovers(target) == []
    assert not report.ok


def test_failures_below_the_ratio_do_not_stop_the_run(tmp_path: Path) -> None:
    source = InMemoryDriver()
    files = {f"/f{i:02d}{'-bad' if i % 4 == 3 else ''}": os.urandom(100) for i in range(20)}
    fill(source, files)
    bad = sorted(p for p in files if "bad" in p)

    target = FailingWrites(rootdirectory=str(tmp_path / "t1"), fsync="false")
    report = replicate(source, target, concurrency=1, failure_threshold=3, failure_ratio=0.5)
    assert not report.aborted
    assert [f.path for f in report.failed] == bad
    assert report.copied == 15

    strict = FailingWrites(rootdirectory=str(tmp_path / "t2"), fsync="false")
    report = replicate(source, strict, concurrency=1, failure_threshold=3, failure_ratio=0.1)
    assert report.aborted  # 3 failures against 9 successes: 0.33 > 0.1
    assert [f.path for f in report.failed] == bad[:3]
    assert report.copied == 9


def test_deletions_wait_for_the_copies_and_are_skipped_when_aborted(tmp_path: Path) -> None:
    source = InMemoryDriver()
    fill(source, {f"/bad{i}": b"x" * 2000 for i in range(3)})
    target = FailingWrites(rootdirectory=str(tmp_path / "t"), fsync="false")
    target.put("/stale", b"old")  # not "bad": written normally
    report = replicate(source, target, delete=True, failure_threshold=1)
    assert report.aborted and report.deleted == 0
    assert target.get("/stale") == b"old"


def test_concurrency_bounds_parallel_updates() -> None:
    lock = threading.Lock()
    running, peak = 0, 0

    class Slow(InMemoryDriver):
        def _put(self, full: str, source: Source, conditions: Conditions) -> None:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.005)
            try:
                super()._put(full, source, conditions)
            finally:
                with lock:
                    running -= 1

    source = InMemoryDriver()
    fill(source, {f"/f{i}": b"x" for i in range(40)})
    assert replicate(source, Slow(), concurrency=3).copied == 40
    assert 1 <= peak <= 3


def test_large_copies_to_object_stores_share_the_concurrency_slots() -> None:
    """A copy of n target chunks takes min(n, concurrency) slots: memory stays near concurrency chunks."""
    lock = threading.Lock()
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}

    class Counting(InMemoryDriver):
        def _put(self, full: str, source: Source, conditions: Conditions) -> None:
            kind = "big" if "big" in full else "small"
            with lock:
                running[kind] = running.get(kind, 0) + 1
                peaks[kind] = max(peaks.get(kind, 0), sum(running.values()) if kind == "big" else running[kind])
            try:
                time.sleep(0.002)
                super()._put(full, source, conditions)
            finally:
                with lock:
                    running[kind] -= 1

    source = InMemoryDriver()
    fill(source, {f"/big{i}": os.urandom(4 * 4096) for i in range(4)})
    fill(source, {f"/small{i}": b"x" for i in range(12)})
    report = replicate(source, Counting(chunksize=4096), concurrency=4)
    assert report.copied == 16
    assert peaks["big"] == 1  # a 4-chunk copy took all 4 slots: it ran alone
    assert peaks["small"] <= 4


def test_a_file_grown_since_the_listing_is_copied_whole() -> None:
    class StaleListing(InMemoryDriver):
        def _walk(self, full: str) -> Iterator[FileInfo]:
            for info in super()._walk(full):
                yield info if info.is_dir else FileInfo(info.path, info.size - 1, info.modified, etag=info.etag)

    source = StaleListing()
    files = {"/small": b"0123456789", "/large": os.urandom(3 * 4096 + 1)}
    fill(source, files)
    target = InMemoryDriver(chunksize=4096)
    report = replicate(source, target)
    assert report.copied == 2 and report.copied_bytes == sum(map(len, files.values()))
    assert digests(target) == expected(files)


# --------------------------------------------------------------------------- deciding


def _info(size: int, etag: str | None, seconds: float = 0) -> FileInfo:
    return FileInfo("/f", size, datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds), etag=etag)


@pytest.mark.parametrize(
    ("source", "target", "differs"),
    [
        # Plain MD5 etags (S3, OSS) decide both ways, whatever the times say.
        (_info(3, '"' + "a" * 32 + '"', 100), _info(3, "a" * 32), False),
        (_info(3, "A" * 32), _info(3, "a" * 32), False),
        (_info(3, "a" * 32), _info(3, "b" * 32, 100), True),
        # Equal multipart etags prove equal content; different ones may be another part size.
        (_info(3, "a" * 32 + "-2", 100), _info(3, "a" * 32 + "-2"), False),
        (_info(3, "a" * 32 + "-2", 1), _info(3, "b" * 32 + "-3"), False),
        (_info(3, "a" * 32 + "-2", 100), _info(3, "b" * 32 + "-3"), True),
        # Opaque etags (filesystem, Azure, in-memory): the source newer than its copy by > 2 s.
        (_info(3, "0x8D1", 1.5), _info(3, "0x8D2"), False),
        (_info(3, "0x8D1", 2.5), _info(3, "0x8D2"), True),
        (_info(3, None, -100), _info(3, None), False),
    ],
)
def test_etag_comparison(source: FileInfo, target: FileInfo, differs: bool) -> None:
    assert differs_by_etag(source, target) is differs


@pytest.mark.parametrize("size", [71, 3 * 64 * KiB + 5])  # a tag link (read whole), a streamed file
def test_a_source_rewritten_during_its_copy_is_never_left_stale(backend: Factory, size: int) -> None:
    # Another store as the source, so the copy streams (same-store copies are server-side); its etags are no MD5s.
    source, target = InMemoryDriver(chunksize=64 * KiB), backend("target")
    size = size if size < 1000 else multipart_size(target)
    versions = (bytes([n]) * size for n in itertools.count(1))
    source.put("/tags/latest/link", next(versions))
    rewritten = rewrite_while_streaming(source, "/tags/latest/link", versions, times=1)
    report = replicate(source, target, compare="etag")
    assert rewritten.is_set() and report.ok
    # Whatever the first run left, a later one never calls a stale copy current.
    replicate(source, target, compare="etag")
    assert target.get("/tags/latest/link") == source.get("/tags/latest/link") == bytes([2]) * size
    assert replicate(source, target, compare="etag").copied == 0


def test_a_source_changing_during_every_copy_leaves_no_copy_that_looks_current() -> None:
    source, target = InMemoryDriver(), InMemoryDriver()
    versions = (bytes([n]) * 71 for n in itertools.count(1))
    source.put("/link", next(versions))
    rewrite_while_streaming(source, "/link", versions, times=100)
    report = replicate(source, target, compare="etag")
    assert not report.ok and report.failed[0].path == "/link" and "changed during" in report.failed[0].reason
    source.stream = InMemoryDriver.stream.__get__(source)  # type: ignore[method-assign]
    again = replicate(source, target, compare="etag")
    assert again.copied == 1 and target.get("/link") == source.get("/link")


def test_dry_run_plans_and_changes_nothing() -> None:
    source, target = InMemoryDriver(), InMemoryDriver()
    fill(source, {"/keep": b"same", "/grow": b"longer", "/new": b"n"})
    fill(target, {"/keep": b"same", "/grow": b"short", "/old": b"o"})
    before = digests(target)
    events: list[tuple[str | None, str | None]] = []

    report = replicate(source, target, delete=True, dry_run=True, progress=lambda e: events.append((e.action, e.path)))
    assert digests(target) == before
    assert report.dry_run and report.copied == 0 and report.deleted == 0
    assert (report.wanted, report.missing, report.changed, report.skipped, report.extra) == (2, 1, 1, 1, 1)
    planned = [event for event in events if event[0] is not None]
    assert planned == [("would-copy", "/grow"), ("would-copy", "/new"), ("would-delete", "/old")]


def test_progress_reports_objects_and_bytes() -> None:
    source, target = InMemoryDriver(), InMemoryDriver()
    fill(source, {f"/f{i}": os.urandom(1000 * i) for i in range(1, 6)})
    events: list[ReplicationProgress] = []
    report = replicate(source, target, progress=events.append)
    copied = [e for e in events if e.action == "copied"]
    assert sorted(e.path for e in copied if e.path) == [f"/f{i}" for i in range(1, 6)]
    assert [e.objects for e in copied] == [1, 2, 3, 4, 5]
    assert events[-1].listing_done and events[-1].bytes == report.copied_bytes == 15_000
    assert all(a.bytes <= b.bytes for a, b in itertools.pairwise(events))


def test_path_limits_both_sides() -> None:
    source, target = InMemoryDriver(), InMemoryDriver()
    fill(source, {"/a/x": b"1", "/b/y": b"2"})
    fill(target, {"/a/stale": b"3", "/b/other": b"4"})
    report = replicate(source, target, "/a", delete=True)
    assert (report.copied, report.deleted) == (1, 1)
    assert sorted(digests(target)) == ["/a/x", "/b/other"]


# --------------------------------------------------------------------------- safety


def test_overlapping_locations_are_refused(tmp_path: Path) -> None:
    store = InMemoryDriver()
    with pytest.raises(ValueError, match="overlap"):
        replicate(store, store)
    with pytest.raises(ValueError, match="overlap"):
        replicate(store.below("/a"), store.below("/a/b"))
    root = tmp_path / "fs"
    with pytest.raises(ValueError, match="overlap"):
        replicate(FilesystemDriver(rootdirectory=str(root)), FilesystemDriver(rootdirectory=str(root / "sub")))
    replicate(store.below("/a"), store.below("/ab"))  # siblings are fine


def test_empty_source_with_delete_deletes_nothing() -> None:
    target = InMemoryDriver()
    fill(target, {"/precious": b"data"})
    report = replicate(InMemoryDriver(), target, delete=True)
    assert report.aborted and "refusing to delete all 1 files" in (report.abort_reason or "")
    assert target.get("/precious") == b"data"


def test_missing_source_folder_is_a_listing_failure() -> None:
    source, target = InMemoryDriver(), InMemoryDriver()
    fill(target, {"/dir/file": b"x"})
    report = replicate(source, target, "/dir", delete=True)
    assert report.aborted and report.failed[0].operation == "list"
    assert target.get("/dir/file") == b"x"


def test_listing_out_of_order_stops_the_run() -> None:
    class Shuffled(InMemoryDriver):
        def _walk(self, full: str) -> Iterator[FileInfo]:
            return iter(sorted(super()._walk(full), key=lambda info: info.path, reverse=True))

    source = Shuffled()
    fill(source, {"/a": b"1", "/b": b"2"})
    target = InMemoryDriver()
    fill(target, {"/a": b"1", "/b": b"2", "/c": b"3"})
    report = replicate(source, target, delete=True)
    assert report.aborted and "walk order broken" in report.failed[0].reason
    assert target.get("/c") == b"3"


@pytest.mark.parametrize(
    "kwargs",
    [{"compare": "md5"}, {"concurrency": 0}, {"failure_threshold": 0}, {"failure_ratio": -1}, {"concurrency": True}],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replicate(InMemoryDriver(), InMemoryDriver(), **kwargs)


def test_invalid_path_is_refused() -> None:
    with pytest.raises(ValueError):
        replicate(InMemoryDriver(), InMemoryDriver(), "relative")


# --------------------------------------------------------------------------- server-side copies


def test_same_store_copies_server_side(backend: Factory) -> None:
    source, target = backend("registry"), backend("mirror")
    files = tree(multipart_size(target))
    fill(source, files)
    report = replicate(source, target)
    assert report.ok and report.copied == len(files)
    # A filesystem's cat copies through this process anyway: it always streams.
    assert report.server_side == (0 if isinstance(target, FilesystemDriver) else len(files))
    assert digests(target) == expected(files)
    assert replicate(source, target, compare="etag").copied == 0


@pytest.mark.servers
def test_s3_same_bucket_copies_server_side_and_etag_sees_rewrites(moto_server: Any, s3_bucket: str) -> None:
    make = _create_or_require("moto (S3)", "s3", {**s3_params(moto_server, s3_bucket), "chunksize": 5 * MiB})
    source, target = make("registry"), make("mirror")
    files = {"/tags/latest/link": b"sha256:" + b"a" * 64, "/blobs/data": os.urandom(6 * MiB)}
    fill(source, files)

    report = replicate(source, target)
    assert report.server_side == report.copied == 2
    assert digests(target) == expected(files)

    source.put("/tags/latest/link", b"sha256:" + b"b" * 64)  # a re-tag: same size
    assert replicate(source, target).copied == 0  # size alone cannot see it
    retag = replicate(source, target, compare="etag")  # MD5 etags on both sides can
    assert retag.copied == 1 and target.get("/tags/latest/link").endswith(b"b" * 64)


# --------------------------------------------------------------------------- the sync command


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blobdrivers")
    add_sync_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sync", *argv])


def _memory(name: str, files: dict[str, bytes]) -> str:
    fill(InMemoryDriver(name=name), files)
    return f"memory://{name}"


def test_sync_command_text_and_exit_status() -> None:
    tag = os.urandom(4).hex()
    src = _memory(f"src-{tag}", {"/a": b"1", "/b/c": b"22"})
    dst = _memory(f"dst-{tag}", {"/old": b"x"})
    out, err = io.StringIO(), io.StringIO()
    assert run_sync(_parse(src, dst, "--delete", "-q"), stdout=out, stderr=err) == 0
    text = out.getvalue()
    assert f"{src} -> {dst}" in text and "copied" in text and "deleted 1" in text
    assert sorted(digests(InMemoryDriver(name=f"dst-{tag}"))) == ["/a", "/b/c"]

    out = io.StringIO()
    assert run_sync(_parse(src, dst, "--json"), stdout=out, stderr=err) == 0
    data = json.loads(out.getvalue())
    assert data["ok"] and data["copied"] == 0 and data["skipped"] == 2 and data["failed"] == []


def test_sync_command_dry_run_lists_the_plan() -> None:
    tag = os.urandom(4).hex()
    src = _memory(f"src-{tag}", {"/a": b"1"})
    dst = _memory(f"dst-{tag}", {"/old": b"x"})
    out = io.StringIO()
    assert run_sync(_parse(src, dst, "--delete", "--dry-run"), stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue().splitlines()[:2] == ["would-copy /a", "would-delete /old"]
    out = io.StringIO()
    run_sync(_parse(src, dst, "--delete", "--dry-run", "--json"), stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["plan"] == [
        {"action": "would-copy", "path": "/a"},
        {"action": "would-delete", "path": "/old"},
    ]
    assert sorted(digests(InMemoryDriver(name=f"dst-{tag}"))) == ["/old"]


def test_sync_command_fails_when_the_run_aborts_and_on_bad_urls() -> None:
    tag = os.urandom(4).hex()
    empty = f"memory://empty-{tag}"
    dst = _memory(f"dst-{tag}", {"/keep": b"x"})
    out, err = io.StringIO(), io.StringIO()
    assert run_sync(_parse(empty, dst, "--delete", "-q"), stdout=out, stderr=err) == 1
    assert "ABORTED" in out.getvalue()
    assert run_sync(_parse("relative/dir", dst), stdout=out, stderr=err) == 2
    assert run_sync(_parse(f"{dst}#/x", empty), stdout=out, stderr=err) == 2
    assert run_sync(_parse("nope://x", dst), stdout=out, stderr=err) == 2
    assert "not a store URL" in err.getvalue()


def test_sync_command_draws_progress_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOBDRIVERS_PROGRESS", "1")
    tag = os.urandom(4).hex()
    src = _memory(f"src-{tag}", {f"/f{i}": os.urandom(2000) for i in range(5)})
    err = io.StringIO()
    assert run_sync(_parse(src, f"memory://dst-{tag}"), stdout=io.StringIO(), stderr=err) == 0
    assert "sync 5/5 files" in err.getvalue()


def test_report_to_dict_is_json() -> None:
    report = ReplicationReport(copied=2, copied_bytes=10, elapsed=2.0)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["throughput"] == 5.0 and data["objects_per_second"] == 1.0 and data["ok"]
