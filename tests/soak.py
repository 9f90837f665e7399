"""Soak: many threads of mixed operations on one driver, watching errors, descriptors and memory.

``soak(driver, seconds)`` runs 32 threads of put / get / stream / stat / list /
writer / cat / move / delete on a small set of paths (so they collide), and
samples open file descriptors and RSS; it returns what it saw. The samples are
taken by a child process reading ``/proc`` (a sampler thread would wait for the
GIL behind 32 busy threads and see a handful of samples), every 0.1 s after a
warm-up of a quarter of the run (at most 1 s) in which connection pools fill. Only the
documented errors of racing operations are allowed: a path deleted or moved by
another thread (PathNotFoundError), and the plain StorageErrors a driver
documents for races, given as ``tolerate`` message patterns (for instance a
source rewritten during a ``cat`` whose sources are pinned by etag).
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from blobdrivers import StorageDriver
from blobdrivers.errors import PathNotFoundError, StorageError

THREADS = 32

#: Prints "seconds fds rss" for process argv[1] every 0.1 s for argv[2] seconds.
_SAMPLER = """
import sys, time, psutil
process = psutil.Process(int(sys.argv[1]))
start = time.monotonic()
while (now := time.monotonic()) - start < float(sys.argv[2]):
    print(f"{now - start:.3f} {process.num_fds()} {process.memory_info().rss}", flush=True)
    time.sleep(0.1)
"""


@dataclass
class SoakResult:
    operations: int = 0
    unexpected: list[str] = field(default_factory=list)
    tolerated: dict[str, int] = field(default_factory=dict)  # error type -> count (documented race outcomes)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time, fds, rss)

    def quarter(self, which: int) -> tuple[float, float]:
        """Median (fds, rss) over the first (0) or last (3) quarter of the samples.

        Medians, so a burst of connections or a garbage-collection lag in one sample
        does not read as growth.
        """
        n = max(1, len(self.samples) // 4)
        part = self.samples[:n] if which == 0 else self.samples[-n:]
        return statistics.median(s[1] for s in part), statistics.median(s[2] for s in part)


def soak(
    driver: StorageDriver, seconds: float, *, payload: int = 64 * 1024, tolerate: Sequence[str] = ()
) -> SoakResult:
    """Run the soak for ``seconds``; see the module docstring.

    ``tolerate``: regular expressions; a plain :class:`StorageError` (not a subclass)
    whose message matches one is a documented outcome of a race, counted in
    ``result.tolerated`` under its pattern instead of failing the soak.
    """
    result = SoakResult()
    stop = threading.Event()
    lock = threading.Lock()
    paths = [f"/soak/d{i % 3}/f{i}" for i in range(12)]

    def tolerated(kind: str) -> None:
        with lock:
            result.tolerated[kind] = result.tolerated.get(kind, 0) + 1

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        data = os.urandom(rng.randrange(1, payload))
        while not stop.is_set():
            path, other = rng.choice(paths), rng.choice(paths)
            op = rng.randrange(9)
            try:
                if op == 0:
                    driver.put(path, data)
                elif op == 1:
                    driver.get(path)
                elif op == 2:
                    with driver.stream(path, rng.randrange(0, payload)) as reader:
                        reader.read()
                elif op == 3:
                    driver.stat(path)
                elif op == 4:
                    driver.list("/soak")
                elif op == 5:
                    with driver.writer(path) as writer:
                        writer.write(data)
                        writer.write(data[: len(data) // 2])
                elif op == 6:
                    driver.cat(path, [other])
                elif op == 7:
                    driver.move(path, other)
                else:
                    driver.delete(path)
            except PathNotFoundError:
                tolerated("PathNotFoundError")
            except Exception as exc:
                pattern = next((p for p in tolerate if re.search(p, str(exc))), None)
                if type(exc) is StorageError and pattern is not None:
                    tolerated(pattern)
                else:
                    with lock:
                        result.unexpected.append(f"op {op} on {path}: {type(exc).__name__}: {exc}")
            with lock:
                result.operations += 1

    gc.collect()  # what earlier code left for the collector is not this run's growth
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    warmup = min(1.0, seconds / 4)
    time.sleep(warmup)
    sampler = subprocess.run(
        [sys.executable, "-c", _SAMPLER, str(os.getpid()), str(seconds - warmup)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in sampler.stdout.splitlines():
        at, fds, rss = line.split()
        result.samples.append((float(at), int(fds), int(rss)))
    stop.set()
    for thread in threads:
        thread.join()
    with contextlib.suppress(PathNotFoundError):
        driver.delete("/soak")
    return result


def check(result: SoakResult, *, rss_growth: float = 64 * 1024 * 1024, fd_growth: float = 16) -> None:
    """Assert no unexpected errors and stable descriptors and memory from the first to the last quarter."""
    assert not result.unexpected, result.unexpected[:5]
    assert result.operations > 0
    first_fds, first_rss = result.quarter(0)
    last_fds, last_rss = result.quarter(3)
    assert last_fds - first_fds <= fd_growth, (first_fds, last_fds)
    assert last_rss - first_rss <= rss_growth, (first_rss / 2**20, last_rss / 2**20)
