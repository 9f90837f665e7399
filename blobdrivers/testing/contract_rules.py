"""Conformance: one rule on every driver, where drivers used to disagree (R1-R7 of ``docs/contract.md``).

Two fixture hooks let a network driver's test class run the rules that need more
than a store; without them those tests skip, saying which hook to override:

* ``faulty_driver``: a :data:`FaultyDriver`, ``make(retries)`` giving the driver
  under test, built with that ``retries`` parameter, pointed at a
  :class:`~blobdrivers.testing.faultproxy.FaultProxy` (faults off, the backend's
  error body) in front of the real server, and that proxy;
* ``missing_bucket_driver``: a :data:`MissingBucket`, a driver configured with a
  bucket or container that does not exist, and that name.

Each test takes a few seconds at most against a local server and sleeps nowhere
(the drivers' own backoff is all the waiting there is).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import BucketNotFoundError, PathNotFoundError, StorageError
from .contract_errors import secret_forms
from .helpers import SuiteBase, needs, payload

if TYPE_CHECKING:
    from .faultproxy import FaultProxy

T = TypeVar("T")

#: ``make(retries)``: the driver under test with that ``retries`` parameter, talking
#: through the returned proxy (faults off) to the test's store.
FaultyDriver = Callable[[int], tuple[StorageDriver, "FaultProxy"]]
#: A driver configured with a bucket (container) that does not exist, and its name.
MissingBucket = tuple[StorageDriver, str]

NO_NETWORK = "the driver makes no network requests; override the faulty_driver fixture to run this rule"
NO_BUCKET = "the driver has no bucket or container; override the missing_bucket_driver fixture to run this rule"

#: Query parameters of a signed URL whose value is the signature (S3/OSS, GCS, Azure SAS).
SIGNATURE_PARAMS = frozenset({"signature", "x-amz-signature", "x-goog-signature", "sig"})
#: Loggers switched to DEBUG for R7, besides the root: an SDK's own logger level must not hide a leak.
SDK_LOGGERS = ("blobdrivers", "urllib3", "requests", "botocore", "boto3", "s3transfer", "azure", "google", "oss2")
#: The root below which R5 runs: it must show in no error.
R5_ROOT = "rules-r5-root"


def _hook(value: T | None, reason: str) -> T:
    """The hook's value, or skip the test with ``reason`` when the driver's test class gives none."""
    if value is None:
        pytest.skip(reason)
    return value


@contextlib.contextmanager
def _removing(driver: StorageDriver, *paths: str) -> Iterator[None]:
    """Delete ``paths`` afterwards, whatever happened (faults must be off by then)."""
    try:
        yield
    finally:
        for path in paths:
            with contextlib.suppress(StorageError):
                driver.delete(path)


@contextlib.contextmanager
def _faults(proxy: FaultProxy, **settings: Any) -> Iterator[FaultProxy]:
    """The proxy with fresh counts and ``settings``, faults on for the block only."""
    for name, value in settings.items():
        setattr(proxy, name, value)
    proxy.reset_stats()
    proxy.enabled = True
    try:
        yield proxy
    finally:
        proxy.enabled = False


def _outcome(call: Callable[[], object]) -> Exception | None:
    try:
        call()
    except Exception as exc:
        return exc
    return None


def _unredacted(message: str, redacted: str, secrets: set[str]) -> str:
    """Where ``redact`` changes a log message (or the message, if it holds a secret), the secrets themselves hidden."""
    start = next((i for i, (a, b) in enumerate(zip(message, redacted, strict=False)) if a != b), len(redacted))
    window = slice(max(0, start - 60), start + 60) if message != redacted else slice(0, 300)
    shown, masked = message[window], redacted[window]
    for secret in sorted(secrets, key=len, reverse=True):
        shown = shown.replace(secret, "<a secret parameter's value>")
    return f"{shown!r}" if message == redacted else f"...{shown!r}... shown as ...{masked!r}..."


class UniformRulesContract(SuiteBase):
    """R1-R7: retries, reopened reads, missing buckets, the mask, caller paths, settings and logs, one way."""

    @pytest.fixture
    def faulty_driver(self) -> FaultyDriver | None:
        """Override for a network driver: see :data:`FaultyDriver` (``None``: the R1/R2 tests skip)."""
        return None

    @pytest.fixture
    def missing_bucket_driver(self) -> MissingBucket | None:
        """Override for a driver with buckets: see :data:`MissingBucket` (``None``: the R3 test skips)."""
        return None

    # ------------------------------------------------------------------ R1

    @pytest.mark.parametrize("retries", [1, 3])
    def test_rule_r1_retries_counts_every_attempt(self, faulty_driver: FaultyDriver | None, retries: int) -> None:
        driver, proxy = _hook(faulty_driver, NO_NETWORK)(retries)
        path = "/rules-r1"
        driver.put(path, b"r1 content")
        operations: dict[str, Callable[[], object]] = {
            "stat": lambda: driver.stat(path),
            "get": lambda: driver.get(path),
            "put": lambda: driver.put("/rules-r1-put", b"small"),
        }
        requests: dict[str, int] = {}
        wrong: dict[str, str] = {}
        with _removing(driver, path, "/rules-r1-put"):
            for name, call in operations.items():
                with _faults(proxy, rate=1.0, modes=("error",), select=None, limit=None):
                    error = _outcome(call)
                    requests[name] = proxy.stats["requests"]
                if not isinstance(error, StorageError) or isinstance(error, PathNotFoundError):
                    wrong[name] = repr(error)
        assert not wrong, f"against a server answering only 500/503, expected a StorageError: {wrong}"
        assert requests == dict.fromkeys(operations, retries), f"retries={retries}: requests per operation {requests}"

    # ------------------------------------------------------------------ R2

    @pytest.mark.parametrize("retries", [1, 3])
    def test_rule_r2_a_cut_body_is_reopened_within_the_attempts(
        self, faulty_driver: FaultyDriver | None, retries: int
    ) -> None:
        driver, proxy = _hook(faulty_driver, NO_NETWORK)(retries)
        chunk = driver.chunk_size
        name = "rules-r2-object"
        content = payload(3 * chunk + 1001, seed=2)
        gets: list[str] = []

        def body_gets(request_line: str) -> bool:
            is_get = request_line.startswith("GET ") and name in request_line
            if is_get:
                gets.append(request_line)
            return is_get

        def read(cuts: int) -> bytes:
            gets.clear()
            # Every cut lands mid-body: after the head, and before the end of any reopened rest.
            with (
                _faults(
                    proxy,
                    rate=1.0,
                    modes=("reset_response",),
                    select=body_gets,
                    limit=cuts,
                    cut_min=chunk // 2,
                    cut_max=chunk,
                ),
                driver.stream("/" + name) as reader,
            ):
                return reader.read()

        driver.put("/" + name, content)
        with _removing(driver, "/" + name):
            data = read(retries - 1)
            assert proxy.faults == retries - 1, "the proxy did not cut the bodies asked for"
            assert (len(data), hashlib.sha256(data).digest()) == (len(content), hashlib.sha256(content).digest())
            assert len(gets) == retries, f"{retries - 1} cut(s) with retries={retries}: expected {retries} GETs, {gets}"
            with pytest.raises(StorageError):
                read(retries)
            assert len(gets) == retries, f"{retries} cuts with retries={retries}: expected {retries} GETs, {gets}"

    # ------------------------------------------------------------------ R3

    def test_rule_r3_a_missing_bucket_is_bucket_not_found_everywhere(
        self, missing_bucket_driver: MissingBucket | None
    ) -> None:
        driver, bucket = _hook(missing_bucket_driver, NO_BUCKET)
        operations: dict[str, Callable[[], object]] = {
            "stat": lambda: driver.stat("/rules-r3"),
            "get": lambda: driver.get("/rules-r3"),
            "put": lambda: driver.put("/rules-r3", b"x"),
            "list": lambda: driver.list("/"),
        }
        wrong: dict[str, str] = {}
        for name, call in operations.items():
            error = _outcome(call)
            text = str(error)
            if not isinstance(error, BucketNotFoundError) or bucket not in text or "does not exist" not in text:
                wrong[name] = f"{type(error).__name__}: {text}"
        assert not wrong, f"expected BucketNotFoundError naming {bucket!r} ('... does not exist'): {wrong}"

    # ------------------------------------------------------------------ R4

    @needs(Capability.SIGNED_READ_URLS)
    def test_rule_r4_redact_masks_a_signed_url_with_the_one_mask(self, store: StorageDriver) -> None:
        store.put("/rules-r4", b"x")
        with _removing(store, "/rules-r4"):
            url = store.url_for("/rules-r4")
        shown = store.redact(url)
        signatures: set[str] = set()
        for pair in urllib.parse.urlsplit(url).query.split("&"):
            key, _, value = pair.partition("=")
            if urllib.parse.unquote(key).lower() in SIGNATURE_PARAMS and value:
                signatures |= {value, urllib.parse.unquote(value)}
        assert "***" in shown, f"nothing masked in {shown}"
        assert "REDACTED" not in shown, shown
        assert not [value for value in signatures if value in shown], f"a signature left in {shown}"

    # ------------------------------------------------------------------ R5

    def test_rule_r5_errors_name_the_callers_path(self, store: StorageDriver) -> None:
        rooted = store.below("/" + R5_ROOT)
        shown: dict[str, StorageError] = {}
        with _removing(store, "/" + R5_ROOT):
            rooted.put("/a", b"a")
            for name, call in {
                "cat": lambda: rooted.cat("/dst", ["/a", "/missing"]),
                "get": lambda: rooted.get("/missing"),
                "stat": lambda: rooted.stat("/missing"),
                "move": lambda: rooted.move("/missing", "/dst"),
            }.items():
                error = _outcome(call)
                assert isinstance(error, PathNotFoundError), f"{name} of a missing source: {error!r}"
                shown[name] = error
            assert rooted.list("/") == ["/a"], "the failed cat or move changed something"
        wrong = {
            name: f"path={error.path!r}: {error}"
            for name, error in shown.items()
            if error.path != "/missing" or "/missing" not in str(error) or R5_ROOT in str(error)
        }
        assert not wrong, f"errors must name the caller's path '/missing', never the root: {wrong}"

    # ------------------------------------------------------------------ R6

    def test_rule_r6_settings_are_stored_once_under_one_name(self, store: StorageDriver) -> None:
        chunk = store.chunk_size
        assert type(chunk) is int and chunk > 0, f"chunk_size {chunk!r}"
        assert not hasattr(store, "max_concurrency"), "the attribute is `concurrency` (parameter: maxconcurrency)"
        if hasattr(store, "concurrency"):
            concurrency = getattr(store, "concurrency")  # noqa: B009 (no attribute of the base class)
            assert type(concurrency) is int and concurrency >= 1, f"concurrency {concurrency!r}"
        content = payload(2 * chunk + chunk // 2 + 7, seed=6)
        store.put("/rules-r6", content)
        with _removing(store, "/rules-r6"):
            sizes = [len(piece) for piece in store.stream("/rules-r6")]
        assert sizes == [chunk, chunk, chunk // 2 + 7], f"stream chunks of {sizes}, chunk_size {chunk}"

    # ------------------------------------------------------------------ R7

    def test_rule_r7_no_secret_reaches_a_log_line(self, store: StorageDriver, caplog: pytest.LogCaptureFixture) -> None:
        for logger in ("", *SDK_LOGGERS):
            caplog.set_level(logging.DEBUG, logger=logger or None)
        with _removing(store, "/rules-r7"):
            writer = store.writer("/rules-r7/writer")
            writer.write(payload(store.chunk_size + 100, seed=7))
            writer.close()
            if Capability.RESUMABLE_WRITERS in store.capabilities:
                writer = store.writer("/rules-r7/writer", append=True)
                writer.write(b"tail")
                writer.commit()
            store.put("/rules-r7/put", b"small")
            store.get("/rules-r7/put")
            if Capability.SIGNED_READ_URLS in store.capabilities:
                store.url_for("/rules-r7/put")
        secrets = secret_forms(store)
        leaks = []
        for record in caplog.records:
            message = record.getMessage()
            redacted = store.redact(message)
            if redacted != message or any(secret in message for secret in secrets):
                leaks.append(f"{record.name} {record.levelname}: {_unredacted(message, redacted, secrets)}")
        assert caplog.records, "nothing was logged at DEBUG (the blobdrivers logger logs every call)"
        assert not leaks, f"{len(leaks)} log line(s) with a secret:\n" + "\n".join(leaks[:10])
