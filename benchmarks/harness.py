"""Side-by-side benchmark harness.

Each case runs in a fresh child process (``python -m benchmarks.harness --child``),
so its peak RSS (``ru_maxrss`` from ``wait4``) is its own, imports included. A case
is a function ``fn(**kwargs) -> dict`` that does its own set-up, times only the
measured region with ``time.perf_counter`` and returns ``{"seconds": s, "bytes": n}``
or ``{"seconds": s, "ops": n}``. Results go to a JSON file and a markdown table in
which each case is also given as a ratio to a baseline row of the same operation.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass
class Case:
    """One measurement: ``target`` is ``module:function``; ``baseline`` marks the reference row."""

    operation: str
    peer: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False
    note: str = ""


@dataclass
class Result:
    operation: str
    peer: str
    seconds: float
    mb_per_s: float | None
    ops_per_s: float | None
    peak_rss_mib: float
    ratio: float | None = None
    note: str = ""
    error: str | None = None


@contextlib.contextmanager
def random_file(size: int) -> Iterator[str]:
    """A temporary file of ``size`` random bytes (written once, so later reads come from the page cache)."""
    with tempfile.TemporaryDirectory(prefix="bd-bench-") as folder:
        path = os.path.join(folder, "source")
        with open(path, "wb") as file:
            for chunk in chunks(size):
                file.write(chunk)
        yield path


def read_loop(readinto: Callable[[memoryview], int], size: int, buffer_size: int = 8 * MiB) -> int:
    """Read to the end through ``readinto`` into one reused buffer; check that exactly ``size`` bytes came."""
    view = memoryview(bytearray(buffer_size))
    total = 0
    while got := readinto(view):
        total += got
    assert total == size, (total, size)
    return total


class Sink:
    """A write-only file that counts and drops what it gets (for APIs that download into a stream)."""

    def __init__(self) -> None:
        self.total = 0

    def write(self, data: bytes) -> int:
        """Count ``data`` and forget it."""
        self.total += len(data)
        return len(data)


def chunks(total: int, chunk: int = 8 * MiB) -> Iterator[bytes]:
    """``total`` bytes of incompressible data as a stream of one reused random chunk."""
    block = os.urandom(min(chunk, total) or 1)
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        sent += len(piece)
        yield piece


class ChunkFile:
    """A read-only file object over :func:`chunks` (for APIs that want ``read``)."""

    def __init__(self, total: int, chunk: int = 8 * MiB) -> None:
        self._iter = chunks(total, chunk)
        self._pending = b""
        self.total = total

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if not self._pending:
                self._pending = next(self._iter, b"")
                if not self._pending:
                    break
            take = len(self._pending) if n < 0 else n - len(out)
            out += self._pending[:take]
            self._pending = self._pending[take:]
        return bytes(out)

    def readable(self) -> bool:
        return True


def run(case: Case, repeat: int = 1) -> Result:
    """Run one case ``repeat`` times, each in a fresh child; report the median rate and the largest peak RSS."""
    return _pick([run_once(case) for _ in range(repeat)], best=False)


def run_once(case: Case) -> Result:
    """Run one case in a child process and measure it."""
    command = [sys.executable, "-m", "benchmarks.harness", "--child", case.target, json.dumps(case.kwargs)]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    if proc.returncode != 0:
        tail = (err.strip().splitlines() or ["?"])[-1]
        return Result(case.operation, case.peer, 0.0, None, None, peak, note=case.note, error=tail[:200])
    data = json.loads(out.strip().splitlines()[-1])
    # The child's own high-water mark: ru_maxrss from wait4 also counts this parent's
    # RSS (vfork/posix_spawn hand the parent's peak to the child at exec).
    peak = data.get("peak_rss_kib", usage.ru_maxrss) / 1024
    seconds = data["seconds"]
    mb = data["bytes"] / 1e6 / seconds if "bytes" in data else None
    ops = data["ops"] / seconds if "ops" in data else None
    return Result(case.operation, case.peer, seconds, mb, ops, peak, note=case.note)


def run_all(
    cases: list[Case],
    *,
    title: str,
    out: Path,
    repeat: int = 3,
    runner: Callable[[Case], Result] = run_once,
    best: bool = False,
) -> str:
    """Run ``cases`` one after another, ``repeat`` times each through ``runner``; write ``out`` (JSON), return a table.

    Each case reports its median run, or with ``best`` its fastest (for local servers
    whose speed varies between runs more than the implementations differ), and the
    highest peak RSS of its runs. ``runner`` defaults to a fresh child process per
    run; benchmarks that need a fresh server per run pass their own.
    """
    results: list[Result] = []
    for case in cases:
        print(f"  {case.operation:<14} {case.peer:<48}", end="", flush=True)
        attempts = [runner(case) for _ in range(repeat)]
        result = _pick(attempts, best=best)
        results.append(result)
        runs = " / ".join(_rate(r) for r in attempts if not r.error)
        print(
            f" {result.error or _rate(result)}  peak {result.peak_rss_mib:.0f} MiB  (runs: {runs or '-'})", flush=True
        )
    for case, result in zip(cases, results, strict=True):
        base = next(
            (r for c, r in zip(cases, results, strict=True) if c.baseline and c.operation == case.operation), None
        )
        if base and not base.error and not result.error:
            result.ratio = (_value(result) or 0) / (_value(base) or 1)
    write_results(out, {**run_meta(title), "repeat": repeat, "pick": "best" if best else "median"}, results)
    return table(results, title)


def run_meta(title: str) -> dict[str, Any]:
    """What a results file's ``meta`` starts with: the title, when, which Python and how many CPUs."""
    return {
        "title": title,
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def write_results(out: Path, meta: dict[str, Any], results: Sequence[Any]) -> None:
    """Write ``{"meta": meta, "results": [...]}`` (each result a dataclass) as indented JSON to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))


def _pick(attempts: list[Result], *, best: bool) -> Result:
    """The median (or best) of ``attempts``, carrying the highest peak RSS of them all."""
    ranked = sorted(attempts, key=lambda r: (r.error is None, _value(r) or 0))
    chosen = ranked[-1] if best else ranked[len(ranked) // 2]
    chosen.peak_rss_mib = max(r.peak_rss_mib for r in attempts)
    return chosen


def _value(result: Result) -> float | None:
    return result.mb_per_s if result.mb_per_s is not None else result.ops_per_s


def _rate(result: Result) -> str:
    if result.mb_per_s is not None:
        return f"{result.mb_per_s:,.0f} MB/s"
    return f"{result.ops_per_s:,.0f} ops/s"


def table(results: list[Result], title: str) -> str:
    """Markdown table of results."""
    lines = [
        f"### {title}",
        "",
        "| operation | implementation | throughput | vs baseline | peak RSS | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        rate = f"error: {r.error}" if r.error else _rate(r)
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(f"| {r.operation} | {r.peer} | {rate} | {ratio} | {r.peak_rss_mib:.0f} MiB | {r.note} |")
    return "\n".join(lines) + "\n"


def _child(target: str, kwargs_json: str) -> None:
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**json.loads(kwargs_json))
    hwm = _own_peak_kib()
    print(json.dumps({**result, **({"peak_rss_kib": hwm} if hwm is not None else {})}))


def _own_peak_kib() -> int | None:
    """This process's peak RSS since its exec (``VmHWM``, KiB), or None where /proc lacks it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("TARGET", "KWARGS"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
