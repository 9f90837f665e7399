"""What the parts of the conformance suite share: payloads, fresh instances, races, the base fixtures."""

from __future__ import annotations

import os
import pickle
import random
import threading
import urllib.request
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import PathNotFoundError

F = TypeVar("F", bound=Callable[..., Any])

#: Where the plugin keeps each test item's call-phase report, so teardown checks know the test failed.
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def payload(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes of ``size``, the same for a seed on every run, different for each seed."""
    rng = random.Random(seed)
    # randbytes draws one integer of 8 * n bits, so large payloads are made in pieces.
    piece = 1 << 20
    return b"".join(rng.randbytes(min(piece, size - start)) for start in range(0, size, piece))


def reopen(driver: StorageDriver) -> StorageDriver:
    """Another instance of the same store, sharing no state with ``driver``."""
    fresh: StorageDriver = pickle.loads(pickle.dumps(driver))
    return fresh


def fetch(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a plain HTTP request to ``url``."""
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def needs(*capabilities: Capability) -> Callable[[F], F]:
    """Mark a test as needing ``capabilities``: on a driver not declaring one it is skipped, saying which.

    An attribute of the test function, not a pytest mark: the suite works without its plugin loaded.
    """

    def mark(test: F) -> F:
        test.blobdrivers_needs = capabilities  # type: ignore[attr-defined]
        return test

    return mark


class _Reports:
    """The hook keeping each test's call-phase report on its item: teardown checks skip a test that already failed.

    Registered by the plugin, or by the ``store`` fixture when the plugin is not loaded.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report: pytest.TestReport = yield
        if report.when == "call":
            item.stash[CALL_REPORT] = report
        return report


REPORTS = _Reports()


def keep_reports(config: pytest.Config) -> None:
    """Register :data:`REPORTS` with ``config`` unless it already is."""
    if not config.pluginmanager.is_registered(REPORTS):
        config.pluginmanager.register(REPORTS, "blobdrivers-reports")


def require_declared(driver: StorageDriver, *capabilities: Capability) -> None:
    """Skip the test, by declaration, unless ``driver`` declares every one of ``capabilities``."""
    for capability in capabilities:
        if capability not in driver.capabilities:
            pytest.skip(f"driver does not declare {capability.value}")


def condition_capabilities(conditions: dict[str, str]) -> list[Capability]:
    """The capabilities a call with these keyword conditions needs."""
    needed = {"if_none_match": Capability.IF_NONE_MATCH, "if_match": Capability.IF_MATCH}
    return [needed[key] for key in conditions]


def race(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` for ``i`` in ``range(count)`` all at once; return results or exceptions."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        try:
            return fn(index)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def in_forked_child(check: Callable[[], bool]) -> bool:
    """Run ``check`` in a forked child, which inherits this process' objects; whether it returned True there.

    The child reports through a pipe and exits at once: an exception in it reads
    as False, and it never returns into the caller's test.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = b"0"
        try:
            if check():
                ok = b"1"
        finally:
            os.write(write_end, ok)
            os._exit(0)
    os.close(write_end)
    outcome = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(pid, 0)
    return outcome == b"1"


class StatLoop:
    """Stats a path in a loop on a thread, recording every size seen or error raised."""

    def __init__(self, driver: StorageDriver, path: str) -> None:
        self.sizes: set[int] = set()
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(driver, path), daemon=True)

    def _run(self, driver: StorageDriver, path: str) -> None:
        while not self._stop.is_set():
            try:
                self.sizes.add(driver.stat(path).size)
            except PathNotFoundError:
                pass
            except Exception as exc:
                self.errors.append(exc)

    def __enter__(self) -> StatLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class SuiteBase:
    """What every part of the suite shares: the ``driver`` and ``store`` fixtures and sizes."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        """Override: a driver on an empty store."""
        raise NotImplementedError("subclass DriverConformance and define the `driver` fixture")

    @pytest.fixture(autouse=True)
    def _declared(self, request: pytest.FixtureRequest) -> None:
        """Skip a test marked with :func:`needs` when the driver lacks a capability it needs."""
        needed = getattr(request.function, "blobdrivers_needs", ())
        if needed:
            require_declared(request.getfixturevalue("driver"), *needed)

    @pytest.fixture
    def store(self, driver: StorageDriver, request: pytest.FixtureRequest) -> Iterator[StorageDriver]:
        """The driver under test; after a passing test the store must be empty again.

        Files a failed test left are removed without a second report: the failure
        is the one report of that test.
        """
        keep_reports(request.config)  # before the call phase, whose report the check below reads
        yield driver
        left = [info.path for info in driver.walk("/") if not info.is_dir]
        for path in left:
            driver.delete(path)
        report = request.node.stash.get(CALL_REPORT, None)
        if report is None or report.passed:
            assert not left, f"the test left files behind: {left[:10]}"

    @staticmethod
    def multi_chunk(driver: StorageDriver) -> int:
        """A size spanning several chunks, not aligned to any."""
        return 2 * driver.chunk_size + driver.chunk_size // 2 + 7
