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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, MiB, Result, read_loop, run, run_all

#: moto's region and credentials, the same for every S3 peer.
S3_REGION = "us-east-1"
S3_KEY_ID = "testing"
S3_SECRET = "testing"

#: One implementation's rows in a case table: (implementation, row name, put note, get note).
Peer = tuple[str, str, str, str]


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """The endpoint URL of a moto server (its own process) for the length of the block."""
    from tests.servers.local import start_moto

    server = start_moto(in_process=False)
    try:
        yield server.endpoint_url
    finally:
        server.stop()


def s3fs_on(endpoint: str, **options: Any) -> Any:
    """An s3fs filesystem on moto at ``endpoint`` (``options``: its caching switches)."""
    import s3fs

    return s3fs.S3FileSystem(
        key=S3_KEY_ID, secret=S3_SECRET, endpoint_url=endpoint, client_kwargs={"region_name": S3_REGION}, **options
    )


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


def large_cases(
    module: str,
    size: int,
    raw_notes: tuple[str, str],
    peers: list[Peer],
    *,
    source: str | None = None,
    streamed: Sequence[tuple[str, str, str]] = (),
) -> list[Case]:
    """The put and the get rows of one ``size`` for ``module:large``: the raw urllib3 baseline, then each peer.

    ``raw_notes`` are the baseline's (put, get) notes; a put reads the file
    ``source`` if given. The ``streamed`` rows (implementation, row name, note)
    follow the put rows: they put a stream of unknown size.
    """
    label = f"{size // MiB} MiB" if size < 1024 * MiB else f"{size // (1024 * MiB)} GiB"
    target = f"{module}:large"
    out: list[Case] = []
    for op, raw_note in zip(("put", "get"), raw_notes, strict=True):
        args: dict[str, Any] = {"op": op, "size": size, **({"source": source} if op == "put" and source else {})}
        out.append(Case(f"{op} {label}", "raw urllib3", target, {"impl": "raw", **args}, True, raw_note))
        out += [
            Case(f"{op} {label}", name, target, {"impl": impl, **args}, False, put if op == "put" else get)
            for impl, name, put, get in peers
        ]
        if op == "put":
            out += [
                Case(f"{op} {label}", name, target, {"impl": impl, **args}, False, note)
                for impl, name, note in streamed
            ]
    return out


def small_cases(module: str, count: int, raw_notes: tuple[str, str], peers: list[Peer]) -> list[Case]:
    """The put and the get rows of ``count`` 4 KiB objects for ``module:small``: the raw baseline, then each peer."""
    out: list[Case] = []
    for op, raw_note in zip(("put", "get"), raw_notes, strict=True):
        args = {"op": op, "count": count}
        out.append(Case(f"{op} 4 KiB", "raw urllib3", f"{module}:small", {"impl": "raw", **args}, True, raw_note))
        out += [
            Case(f"{op} 4 KiB", name, f"{module}:small", {"impl": impl, **args}, note=put if op == "put" else get)
            for impl, name, put, get in peers
        ]
    return out


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


def stream_get(pool: Any, url: str, size: int) -> None:
    """One GET of ``url`` through a urllib3 pool, read to its end (``size`` bytes) into one reused buffer."""
    response = pool.request("GET", url, preload_content=False)
    assert response.status == 200, response.status
    read_loop(response.readinto, size)
    response.release_conn()


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


def run_fresh_server_cases(
    cases: list[Case], args: argparse.Namespace, title: str, runner: Callable[[Case], Result]
) -> str:
    """Run ``cases`` through ``runner`` (a fresh server per run), keep the best of ``args.repeat``; return the table."""
    return run_all(cases, title=title, out=Path(args.out), repeat=max(1, args.repeat), runner=runner, best=True)
