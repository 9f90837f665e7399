"""Fault injection: every network driver through :class:`~blobdrivers.testing.faultproxy.FaultProxy`.

The proxy sits between a driver and its real local server (moto, Azurite,
gcp-storage-emulator, our OSS server) and, at a seeded 5% rate, answers 500/503
with the backend's own error body, resets the connection part-way through the
request or the response, or stalls. For each driver a 256 MiB streamed put, a
resumable writer (close, resume from a new instance, commit), a ``cat`` of
multi-part sources and a ``move`` of a multi-part object run through it, in two
variants:

* ``retrying``: the driver's default retries. The operation should complete.
* ``no-retry``: retries switched off (and a 48 MiB put), so operations do fail:
  this checks what a failure leaves behind.

Small operations run several rounds per case, so that they meet some faults.
Every round either completes, and the target read back through a DIRECT
(non-proxied) driver has the expected SHA-256, or raises a
:class:`~blobdrivers.errors.StorageError` and the target holds its old content
(or the complete new one, when only an answer was lost after the publish).
Nothing may be left behind: no multipart upload, no hidden object, no upload
marker (S3: ``ListMultipartUploads``; OSS: the server's upload table; Azure:
markers, and uncommitted blocks after a completed operation, see
:func:`_azure_residue`; GCS: hidden objects only, as resumable sessions cannot be
listed). A writer that failed is then resumed through the proxy with faults off
and finished, which must give exactly the expected bytes: a resume never starts
after bytes that were not durably written, nor repeats any.

A summary line per case gives the faults injected and requests seen (run with
``-s``). Which request meets which fault depends on thread scheduling when parts
run in parallel; the seed fixes the sequence of draws.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from blobdrivers.driver import StorageDriver
from blobdrivers.errors import PathNotFoundError, StorageError
from blobdrivers.params import KiB, MiB
from blobdrivers.paths import to_key as paths_key
from blobdrivers.testing.faultproxy import MODES, FaultProxy
from tests.proxied import BUILDERS, Harness
from tests.scale import SCALE

pytestmark = pytest.mark.servers

RATE = 0.05
#: The streamed put of the ``retrying`` variant.
BIG = 256 * MiB
#: The put of the ``no-retry`` variant: it nearly always fails early; this bounds a rare late failure.
SMALL_PUT = 48 * MiB
DRIVERS = ("s3", "azure", "gcs", "oss")
OPERATIONS = ("put", "writer", "cat", "move")
VARIANTS = ("retrying", "no-retry")
ROUNDS = {"put": 1, "writer": 3, "cat": 4, "move": 6}
#: moto handles 5 MiB parts, the others parts of 128-256 KiB: fewer S3 rounds keep the time in bounds.
S3_ROUNDS = {"put": 1, "writer": 2, "cat": 2, "move": 3}

#: One entry per case, for the closing summary.
SUMMARY: list[dict[str, Any]] = []


# --------------------------------------------------------------------------- harness (tests/proxied.py)


@pytest.fixture(scope="module")
def payload() -> bytes:
    """256 MiB of seeded random bytes (every part distinct, so a misplaced part changes the digest)."""
    rng = random.Random(20240601)
    return b"".join(rng.randbytes(MiB) for _ in range(BIG // MiB))


@pytest.fixture(scope="module", autouse=True)
def _print_summary() -> Iterator[None]:
    yield
    if SUMMARY:
        rounds = sum(case["rounds"] for case in SUMMARY)
        completed = sum(case["completed"] for case in SUMMARY)
        faults = sum(case["faults"] for case in SUMMARY)
        print(
            f"\n[faults] total: {len(SUMMARY)} cases, {rounds} rounds, {completed} completed, "
            f"{rounds - completed} raised, {faults} faults injected"
        )


def _sha(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunks(data: memoryview, size: int = MiB) -> Iterator[memoryview]:
    """``data`` as an iterable of unknown total size: the driver streams it part by part."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _content(driver: StorageDriver, path: str) -> bytes | None:
    try:
        return driver.get(path)
    except PathNotFoundError:
        return None


# --------------------------------------------------------------------------- operations


@dataclass
class Case:
    harness: Harness
    variant: str
    #: Talks to the server directly: set-up and every check of content.
    direct: StorageDriver
    proxy: FaultProxy
    data: memoryview
    #: Bytes of the streamed put.
    put_size: int = BIG

    def proxied(self, **extra: Any) -> StorageDriver:
        """A fresh driver instance that talks through the proxy."""
        if self.variant == "no-retry":
            extra = {**self.harness.no_retry, **extra}
        return self.harness.driver(self.proxy.endpoint, **extra)


@dataclass
class Result:
    outcome: str  # "completed" or "raised <ErrorType> at <step>"
    target: str
    expected: bytes
    old: bytes | None
    error: StorageError | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _faults(proxy: FaultProxy) -> Iterator[None]:
    proxy.enabled = True
    try:
        yield
    finally:
        proxy.enabled = False


def _run_put(case: Case, round_: int) -> Result:
    path = f"/faults/put/{round_}"
    size = case.put_size
    expected = bytes(case.data[:size])
    old = b"old content of the put target"
    case.direct.put(path, old)
    driver = case.proxied(chunksize=case.harness.put_chunk)
    with _faults(case.proxy):
        try:
            driver.put(path, _chunks(case.data[:size]))
        except StorageError as exc:
            return Result(f"raised {type(exc).__name__} at put", path, expected, old, exc)
    return Result("completed", path, expected, old)


def _run_writer(case: Case, round_: int) -> Result:
    """Write 5.5 chunks, close, resume from a new instance, write 3.25 chunks, commit."""
    path = f"/faults/writer/{round_}"
    chunk = case.harness.chunk
    first, second = 11 * chunk // 2, 13 * chunk // 4
    offset = round_ * chunk  # other bytes each round
    expected = bytes(case.data[offset : offset + first + second])
    piece = chunk // 3 + 7  # unaligned writes
    step = "open"
    writer = None
    with _faults(case.proxy):
        try:
            writer = case.proxied().writer(path)
            step = "write"
            for start in range(0, first, piece):
                writer.write(expected[start : min(first, start + piece)])
            step = "close"
            writer.close()
            step = "resume"
            writer = case.proxied().writer(path, append=True)
            assert writer.size == first, f"resumed at {writer.size} after a close at {first}"
            step = "write"
            for start in range(first, first + second, piece):
                writer.write(expected[start : min(first + second, start + piece)])
            step = "commit"
            writer.commit()
        except StorageError as exc:
            if writer is not None:
                with contextlib.suppress(StorageError):
                    writer.close()  # what a caller's `with` block does: keep progress for a resume
            return Result(f"raised {type(exc).__name__} at {step}", path, expected, None, exc)
    return Result("completed", path, expected, None)


def _run_cat(case: Case, round_: int) -> Result:
    """Cat three multi-part sources with one smaller than a part after the first (S3/OSS fold it in).

    GCS composes at most 32 sources per call, whatever their size: it gets 36, so
    that a hidden intermediate object is composed (and must be deleted) first.
    """
    chunk = case.harness.chunk
    sizes: tuple[int, ...] = (5 * chunk // 2, min(100 * KiB, chunk // 4) + 3, 2 * chunk + 1, 3 * chunk)
    if case.harness.name == "gcs":
        sizes = tuple(chunk // 4 + 17 * index for index in range(36))
    sources = []
    offset = round_ * chunk
    for index, size in enumerate(sizes):
        data = bytes(case.data[offset : offset + size])
        offset += size
        source = f"/faults/cat/{round_}/source-{index}"
        case.direct.put(source, data)
        sources.append((source, data))
    path = f"/faults/cat/{round_}/target"
    expected = b"".join(data for _, data in sources)
    old = b"old content of the cat target"
    case.direct.put(path, old)
    driver = case.proxied()
    with _faults(case.proxy):
        try:
            driver.cat(path, [source for source, _ in sources])
        except StorageError as exc:
            result = Result(f"raised {type(exc).__name__} at cat", path, expected, old, exc)
        else:
            result = Result("completed", path, expected, old)
    for source, data in sources:
        assert _content(case.direct, source) == data, f"cat changed its source {source}"
    return result


def _run_move(case: Case, round_: int) -> Result:
    """Move an object of 4.5 parts (a multipart copy) onto an existing one."""
    path = f"/faults/move/{round_}/target"
    source = f"/faults/move/{round_}/source"
    offset = round_ * case.harness.chunk
    expected = bytes(case.data[offset : offset + 9 * case.harness.chunk // 2])
    case.direct.put(source, expected)
    old = b"old content of the move target"
    case.direct.put(path, old)
    driver = case.proxied()
    with _faults(case.proxy):
        try:
            driver.move(source, path)
        except StorageError as exc:
            result = Result(f"raised {type(exc).__name__} at move", path, expected, old, exc)
        else:
            result = Result("completed", path, expected, old)
    left = _content(case.direct, source)
    if result.error is None:
        assert left is None, "a completed move left its source behind"
    elif left is None:
        # The source may go only once the target holds all of it.
        assert _content(case.direct, path) == expected, "a failed move lost the source"
        result.notes.append("source gone, target complete")
    else:
        assert left == expected, "a failed move changed its source"
    return result


RUNNERS: dict[str, Callable[[Case, int], Result]] = {
    "put": _run_put,
    "writer": _run_writer,
    "cat": _run_cat,
    "move": _run_move,
}


def _finish_writer(case: Case, result: Result) -> str:
    """After a failed writer: resume and finish it through the proxy (faults off); returns the resume offset.

    Through the proxy, not directly: a GCS writer's parked state names its session
    URI, which points at the proxy.
    """
    driver = case.harness.driver(case.proxy.endpoint)
    try:
        writer = driver.writer(result.target, append=True)
    except PathNotFoundError:
        writer = driver.writer(result.target)
    offset = writer.size
    assert offset <= len(result.expected), f"resumed at {offset}, beyond the {len(result.expected)} bytes written"
    writer.write(result.expected[offset:])
    writer.commit()
    assert _sha(case.direct.get(result.target)) == _sha(result.expected), "the resumed upload has other bytes"
    return f"resumed at {offset}"


def _is_cleanup(request_line: str) -> bool:
    """Whether a request cleans up: an abort, a delete, or a listing that finds what to delete."""
    method, _, target = request_line.partition(" ")
    return (
        method == "DELETE"
        or (method == "POST" and ("?delete" in target or "/batch/" in target))
        or (method == "GET" and ("list-type=2" in target or "comp=list" in target or "prefix=" in target))
    )


@dataclass
class Before:
    """What was there before a round: a round answers only for what it adds."""

    leftovers: list[str]
    residue: dict[str, int]
    events: int


def _before(case: Case) -> Before:
    return Before(case.harness.leftovers(), case.harness.residue(), len(case.proxy.events))


def _check(case: Case, operation: str, result: Result, before: Before) -> None:
    """The invariants of one round (faults are off again)."""
    name = case.harness.name
    content = _content(case.direct, result.target)
    if result.error is None:
        assert content is not None and _sha(content) == _sha(result.expected), "completed, but the content differs"
    else:
        assert result.error.driver == name, f"the error names driver {result.error.driver!r}"
        if content is not None and content != result.old:
            # Only the complete new content may be there: a publish whose answer was lost.
            assert _sha(content) == _sha(result.expected), f"{result.outcome}, and the target holds other bytes"
            result.notes.append("published before the error")
        if operation == "writer":
            result.notes.append(_finish_writer(case, result))
    leftovers = [item for item in case.harness.leftovers() if item not in before.leftovers]
    if leftovers:
        # Without retries, one failed abort or delete leaks what it was to remove: that,
        # and only that, is excused (the retrying variant must leave nothing at all).
        faulted = [line for _, line in list(case.proxy.events)[before.events :]]
        excused = case.variant == "no-retry" and any(_is_cleanup(line) for line in faulted)
        assert excused, f"left behind after {result.outcome}: {leftovers} (faulted requests: {faulted})"
        result.notes.append(f"a faulted clean-up left {len(leftovers)} hidden object(s) or upload(s)")
    residue = {blob: count for blob, count in case.harness.residue().items() if count > before.residue.get(blob, 0)}
    if result.error is None or operation == "writer":
        # A commit drops every uncommitted block of its blob; only a failure may leave some.
        assert paths_key(result.target) not in residue, f"uncommitted blocks after a completed {operation}: {residue}"
    elif residue:
        result.notes.append(f"uncommitted blocks left: {sum(residue.values())} (Azure cannot delete them)")


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", DRIVERS)
def test_operation_under_faults(
    request: pytest.FixtureRequest, name: str, operation: str, variant: str, payload: bytes
) -> None:
    harness = BUILDERS[name](request)
    seed = zlib.crc32(f"{name}/{operation}/{variant}".encode())
    results: list[Result] = []
    with FaultProxy(harness.upstream, rate=RATE, seed=seed, error_body=harness.error_body, enabled=False) as proxy:
        put_size = BIG if variant == "retrying" else SMALL_PUT
        case = Case(harness, variant, harness.driver(), proxy, memoryview(payload), put_size)
        try:
            for round_ in range((S3_ROUNDS if name == "s3" else ROUNDS)[operation] * SCALE):
                before = _before(case)
                result = RUNNERS[operation](case, round_)
                results.append(result)
                _check(case, operation, result, before)
        finally:
            stats = dict(proxy.stats)
            faults = proxy.faults
            kinds = ",".join(f"{mode}={count}" for mode, count in sorted(stats.items()) if mode in MODES)
            completed = sum(1 for result in results if result.error is None)
            SUMMARY.append(
                {"case": request.node.callspec.id, "rounds": len(results), "completed": completed, "faults": faults}
            )
            raised = [
                f"{result.outcome} ({result.error})" + (f" [{'; '.join(result.notes)}]" if result.notes else "")
                for result in results
                if result.error is not None
            ]
            print(
                f"\n[faults] {name:5} {operation:6} {variant:8} seed={seed:<10} "
                f"requests={stats.get('requests', 0):<4} faults={faults:<3} ({kinds or '-'}) "
                f"rounds={len(results)} completed={completed}" + "".join(f"\n    {line}" for line in raised)
            )


# --------------------------------------------------------------------------- lost answers

#: (driver, operation, request that loses its answer, what it is). The request is
#: done by the server, then the connection breaks before the client reads the answer:
#: a retry repeats a request that already took effect.
LOST_ANSWERS = [
    ("s3", "put", "POST ?uploads", "CreateMultipartUpload"),
    ("s3", "put", "POST ?uploadId=", "CompleteMultipartUpload"),
    ("s3", "writer", "POST ?uploadId=", "CompleteMultipartUpload of a resumed writer"),
    ("s3", "move", "POST ?uploadId=", "CompleteMultipartUpload of a multipart copy"),
    ("s3", "move", "DELETE /", "DeleteObject of the moved source"),
    ("oss", "put", "POST ?uploads", "InitiateMultipartUpload"),
    ("oss", "put", "POST ?uploadId=", "CompleteMultipartUpload"),
    ("oss", "writer", "POST ?uploadId=", "CompleteMultipartUpload of a resumed writer"),
    ("oss", "cat", "POST ?uploadId=", "CompleteMultipartUpload of a cat"),
    ("azure", "put", "PUT comp=blocklist", "Put Block List"),
    ("azure", "writer", "PUT comp=blocklist", "Put Block List of a resumed writer"),
    ("azure", "cat", "PUT comp=blocklist", "Put Block List of a cat"),
    ("azure", "move", "PUT /", "Copy Blob"),
    ("gcs", "put", "PUT upload_id=", "a chunk of a resumable session"),
    ("gcs", "writer", "PUT upload_id=", "a chunk of a resumable session"),
    ("gcs", "cat", "POST /compose", "compose"),
    ("gcs", "move", "POST /rewriteTo/", "rewrite"),
]


def _selector(pattern: str) -> Callable[[str], bool]:
    method, _, marker = pattern.partition(" ")
    return lambda line: line.startswith(method + " ") and marker in line.split(" ")[1]


@pytest.mark.parametrize(("name", "operation", "pattern", "what"), LOST_ANSWERS, ids=str)
def test_lost_answer(
    request: pytest.FixtureRequest, name: str, operation: str, pattern: str, what: str, payload: bytes
) -> None:
    harness = BUILDERS[name](request)
    with FaultProxy(
        harness.upstream,
        rate=1.0,
        modes=("reset_response",),
        cut_max=1,  # the answer is lost before its status line
        select=_selector(pattern),
        limit=1,
        error_body=harness.error_body,
        enabled=False,
    ) as proxy:
        case = Case(
            harness, "retrying", harness.driver(), proxy, memoryview(payload), put_size=7 * harness.put_chunk // 2
        )
        before = _before(case)
        result = RUNNERS[operation](case, 0)
        _check(case, operation, result, before)
        print(
            f"\n[lost answer] {name:5} {operation:6} {what}: {[line for _, line in proxy.events]} -> {result.outcome}"
            + (f" ({result.error})" if result.error else "")
            + (f" [{'; '.join(result.notes)}]" if result.notes else "")
        )
        assert proxy.faults == 1, f"no request matched {pattern!r}"


# --------------------------------------------------------------------------- retries are logged


#: A record of a retry: the library's ("retrying ... (attempt 2 of 5)", "azure: retrying a request")
#: and botocore's ("Retry needed, retrying request after delay of ...").
RETRY_RECORD = re.compile(r"\bretrying\b", re.IGNORECASE)


@pytest.mark.parametrize("mode", ["error", "reset_response"])
@pytest.mark.parametrize("name", DRIVERS)
def test_a_retry_is_logged_at_debug(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, name: str, mode: str
) -> None:
    """One faulted GET is retried, the read succeeds, and the retry left a DEBUG record that says so."""
    harness = BUILDERS[name](request)
    harness.driver().put("/faults/retry-probe", b"probe content")
    with FaultProxy(
        harness.upstream,
        rate=1.0,
        modes=(mode,),
        cut_max=1,
        select=lambda line: line.startswith("GET ") and "retry-probe" in line,
        limit=1,
        error_body=harness.error_body,
    ) as proxy:
        driver = harness.driver(proxy.endpoint)
        caplog.set_level(logging.DEBUG)
        assert driver.get("/faults/retry-probe") == b"probe content"
        assert proxy.faults == 1
    retries = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno == logging.DEBUG and RETRY_RECORD.search(record.getMessage())
    ]
    assert retries, f"no DEBUG record of the retry after an injected {mode}"
    print(f"\n[retry log] {name:5} {mode}: {retries[0][:120]}")
