"""The pytest plugin: ``pytest --blobdrivers-url URL`` runs the conformance suite against a store.

Registered through the ``pytest11`` entry point, so it is active wherever
blobdrivers is installed. Without ``--blobdrivers-url`` it only adds its options
(``--blobdrivers-large`` adds the suite's multi-GiB round trip). The suite itself
needs no plugin: a ``DriverConformance`` subclass works with plugin autoloading off.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import StorageError
from ..factory import from_url
from ..redaction import redact_url
from .helpers import keep_reports

#: The store ``--blobdrivers-url`` names, resolved once at configure time.
STORE = pytest.StashKey[StorageDriver]()

URL_SUITE = Path(__file__).with_name("url_suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the plugin's command-line options."""
    group = parser.getgroup("blobdrivers", "blobdrivers conformance suite")
    group.addoption(
        "--blobdrivers-url",
        default=None,
        help="run the conformance suite against the store at this URL (each test in its own sub-folder)",
    )
    group.addoption(
        "--blobdrivers-large", action="store_true", default=False, help="also run the multi-GiB streamed round trip"
    )
    group.addoption(
        "--blobdrivers-large-size",
        type=int,
        default=2 * 1024**3,
        help="size in bytes of the large round trip (default 2 GiB)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Keep test reports; with a URL, resolve it (a bad one is a UsageError) and add the URL-driven suite.

    An empty URL stands for the default store: a filesystem store in a temporary folder.
    """
    keep_reports(config)
    url = config.getoption("blobdrivers_url")
    if url is None:
        return
    if not url:  # given empty (``blobdrivers conformance`` without a URL): a temporary folder, removed at the end
        folder = tempfile.mkdtemp(prefix="blobdrivers-conformance-")
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        url = f"file://{folder}"
    try:
        config.stash[STORE] = from_url(url)
    except StorageError as exc:
        raise pytest.UsageError(f"--blobdrivers-url {redact_url(url)}: {exc}") from None
    problem = store_problem(config.stash[STORE])
    if problem is not None:
        raise pytest.UsageError(f"--blobdrivers-url {redact_url(url)}: {problem}")
    if str(URL_SUITE) not in config.args:
        config.args.append(str(URL_SUITE))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say which store the run tests, and which capabilities (the others are checked to be refused), even with -q."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in store_lines(session.config):
            reporter.write_line(line)


def store_lines(config: pytest.Config) -> list[str]:
    """The lines naming the store under test (secrets masked) and its declared and undeclared capabilities."""
    store = config.stash.get(STORE, None)
    if store is None:
        return []
    declared = sorted(capability.value for capability in store.capabilities)
    undeclared = sorted(capability.value for capability in Capability if capability not in store.capabilities)
    return [
        f"blobdrivers store: {store.identity()} ({store!r})",
        f"blobdrivers capabilities tested: {', '.join(declared) or 'none'}",
        f"blobdrivers capabilities not declared: {', '.join(undeclared) or 'none'}",
    ]


def store_problem(store: str | StorageDriver) -> str | None:
    """Why the store (or the store URL) cannot be tested, as one line, or ``None`` when it answers a listing."""
    try:
        driver = from_url(store) if isinstance(store, str) else store
        driver.list("/")
    except StorageError as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
