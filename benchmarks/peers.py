"""What the benchmarks of network stores share: their local servers, the small-object loop, the command line.

The servers are the tests' own (``tests/servers/``), imported as the package
``tests.servers`` (the benchmarks run as ``python -m benchmarks.bench_X`` from the
repository root). They are imported where a server starts, not at module import,
so a case's child process loads no server code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.harness import Case, Result, run


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """The endpoint URL of a moto server (its own process) for the length of the block."""
    from tests.servers.local import start_moto

    server = start_moto(in_process=False)
    try:
        yield server.endpoint_url
    finally:
        server.stop()


def small_names(impl: str, count: int) -> list[str]:
    """``count`` distinct object names below a prefix of their own, spread over 16 folders."""
    prefix = f"small-{impl}-{uuid.uuid4().hex[:8]}"
    return [f"{prefix}/d{i % 16}/obj{i}" for i in range(count)]


def time_small_ops(
    op: str,
    names: list[str],
    payload: bytes,
    put: Callable[[str, bytes], Any],
    get: Callable[[str], Any],
    fill: Callable[[str, bytes], Any] | None = None,
) -> dict[str, float]:
    """Time one ``put`` (op "put") or one ``get`` (op "get") of each name, one after another.

    A get row first stores ``payload`` under each name through ``fill`` (default
    ``put``), outside the timed region.
    """
    if op == "get":
        for name in names:
            (fill or put)(name, payload)
    call = (lambda name: put(name, payload)) if op == "put" else get
    started = time.perf_counter()
    for name in names:
        call(name)
    return {"seconds": time.perf_counter() - started, "ops": len(names)}


def setup_size(case: Case) -> int:
    """The size of the object a case's set-up must store: a large get reads one it did not write; else 0."""
    return int(case.kwargs["size"]) if case.target.endswith(":large") and case.kwargs["op"] == "get" else 0


def run_prepared(case: Case, where: dict[str, Any], prepare: str | None) -> Result:
    """Run the set-up target ``prepare`` (if any), then ``case``, each in its own child, both given ``where``.

    ``where`` names the server (endpoint, bucket, credentials); the set-up also
    gets ``size=setup_size(case)``. Set-up runs in a child too, so this process
    stays small: a child's peak RSS starts from its parent's at fork time.
    """
    if prepare is not None:
        setup = run(Case("setup", "setup", prepare, {"size": setup_size(case), **where}))
        if setup.error:
            raise RuntimeError(f"set-up failed: {setup.error}")
    return run(dataclasses.replace(case, kwargs={**case.kwargs, **where}))


def fresh_server_parser(doc: str | None, name: str, quick: str) -> argparse.ArgumentParser:
    """The options of a benchmark that starts a fresh server per run: --quick (``quick`` says what), --out, --repeat."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", default=f"benchmarks/results/{name}.json")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the best is reported (default 2)")
    return parser


def fresh_server_title(store: str, server: str, args: argparse.Namespace) -> str:
    """The table title of a fresh-server-per-run benchmark, e.g. "GCS (emulator, a fresh server per run, best of 2)"."""
    return f"{store} ({server}, a fresh server per run, best of {args.repeat})" + (" --quick" if args.quick else "")
