"""The pytest plugin: ``pytest --blobdrivers-url URL`` runs the conformance suite against a store.

Registered through the ``pytest11`` entry point, so it is active wherever
blobdrivers is installed. Without ``--blobdrivers-url`` it only adds its options
and the ``large`` marker; tests marked ``large`` run only with ``--blobdrivers-large``.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from .helpers import CALL_REPORT

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
    """Declare the marker; with a URL, add the URL-driven suite to what is collected."""
    config.addinivalue_line("markers", "large: multi-GiB tests, run only with --blobdrivers-large")
    if config.getoption("blobdrivers_url") and str(URL_SUITE) not in config.args:
        config.args.append(str(URL_SUITE))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave large tests out unless asked for."""
    if config.getoption("blobdrivers_large"):
        return
    skip = pytest.mark.skip(reason="multi-GiB test: run with --blobdrivers-large")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call phase's report on the item: the suite's teardown checks skip a test that already failed."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report
