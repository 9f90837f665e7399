"""The conformance suite, shipped so any driver can prove it keeps the contract.

* Subclass :class:`DriverConformance` in a test file and define a ``driver`` fixture.
* Or run ``pytest --blobdrivers-url URL`` / ``blobdrivers conformance URL``.

Needs pytest (``pip install "blobdrivers[testing]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .suite import DriverConformance

__all__ = ["DriverConformance", "run_conformance"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that pytest imports the suite itself and rewrites its asserts.
    if name == "DriverConformance":
        from .suite import DriverConformance

        return DriverConformance
    raise AttributeError(name)


def run_conformance(
    url: str | None, *, large: bool = False, verbose: bool = False, extra_args: Sequence[str] = ()
) -> int:
    """Run the suite against the store at ``url`` (default: filesystem in a temp folder); return pytest's exit code.

    The URL is resolved (and the store listed) once, first: a bad URL or an
    unreachable store is one line on stderr and exit code 2, before any test. The
    report's header names the store and the capabilities tested.
    ``verbose`` lists each test's name and outcome.
    """
    import pytest

    from . import plugin

    suite = Path(__file__).with_name("url_suite.py")
    args = [
        str(suite),
        "-c",
        str(suite.with_name("conformance.ini")),
        "--rootdir",
        str(suite.parent),
        "-v" if verbose else "-q",
        "-rfEs",
        "--blobdrivers-url",
        url or "",
        *(["--blobdrivers-large"] if large else []),
        *extra_args,
    ]
    # The plugin is passed in, so the run never depends on entry-point autoloading; "-p no:" keeps the
    # autoloaded copy (the same module, under its entry-point name) from registering twice.
    code = pytest.main([*args, "-p", "no:blobdrivers"], plugins=[plugin])
    # The plugin resolves the URL at configure time: a bad one is pytest's usage error, one line on stderr.
    return 2 if code == pytest.ExitCode.USAGE_ERROR else int(code)
