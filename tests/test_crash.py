"""Crash consistency of the filesystem driver: SIGKILL at random points, and a full disk.

Each trial forks a child that runs the operation in a loop and kills it after a
random delay; the path must then hold the old content, a whole new content, or
nothing, never a mix, and the store must stay usable. ``cleanup`` removes the
staging leftovers. Trials are seeded, so a failure names a reproducible trial.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from blobdrivers.drivers.filesystem import STAGING, FilesystemDriver
from blobdrivers.errors import PathNotFoundError, StorageError
from tests.scale import SCALE

TRIALS_PER_OPERATION = 25 * SCALE
MiB = 1024 * 1024


def _content(tag: int, size: int) -> bytes:
    return bytes([tag % 251 + 1]) * size


def _kill_during(action: Callable[[], None], delay: float) -> None:
    """Fork, run ``action`` forever in the child, SIGKILL it after ``delay`` seconds."""
    pid = os.fork()
    if pid == 0:
        try:
            while True:
                action()
        finally:
            os._exit(1)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _read(store: FilesystemDriver, path: str) -> bytes | None:
    try:
        return store.get(path)
    except PathNotFoundError:
        return None


def _after_crash(store: FilesystemDriver) -> None:
    store.cleanup(older_than=0)
    for folder in ("tmp", "uploads", "trash"):
        location = os.path.join(store.root, STAGING, folder)
        assert not os.path.exists(location) or os.listdir(location) == []  # made on first use
    store.put("/usable", b"yes")
    assert store.get("/usable") == b"yes"
    store.delete("/usable")


@pytest.fixture
def store(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(rootdirectory=str(tmp_path / "store"))


@pytest.mark.parametrize("trial", range(TRIALS_PER_OPERATION))
def test_killed_put(store: FilesystemDriver, trial: int) -> None:
    rng = random.Random(trial)
    old = _content(0, rng.randrange(1, 3 * MiB)) if trial % 5 else None
    if old is not None:
        store.put("/p", old)
    sizes = [rng.randrange(1, 4 * MiB) for _ in range(2)]
    news = [_content(i + 1, size) for i, size in enumerate(sizes)]
    counter = iter(range(10**9))
    _kill_during(lambda: store.put("/p", news[next(counter) % 2]), rng.uniform(0.001, 0.05))
    assert _read(store, "/p") in (old, *news)
    _after_crash(store)


@pytest.mark.parametrize("trial", range(TRIALS_PER_OPERATION))
def test_killed_writer_commit(store: FilesystemDriver, trial: int) -> None:
    rng = random.Random(1000 + trial)
    old = _content(0, 1000)
    store.put("/w", old)
    new = _content(7, rng.randrange(1, 3 * MiB))

    def write_and_commit() -> None:
        with store.writer("/w") as writer:
            for start in range(0, len(new), 256 * 1024):
                writer.write(new[start : start + 256 * 1024])

    _kill_during(write_and_commit, rng.uniform(0.001, 0.05))
    assert _read(store, "/w") in (old, new)
    _after_crash(store)


@pytest.mark.parametrize("trial", range(TRIALS_PER_OPERATION))
def test_killed_cat(store: FilesystemDriver, trial: int) -> None:
    rng = random.Random(2000 + trial)
    parts = [_content(i + 2, rng.randrange(1, 2 * MiB)) for i in range(3)]
    for i, part in enumerate(parts):
        store.put(f"/parts/{i}", part)
    old = b"old" if trial % 2 else None
    if old is not None:
        store.put("/c", old)
    _kill_during(lambda: store.cat("/c", ["/parts/0", "/parts/1", "/parts/2"]), rng.uniform(0.001, 0.03))
    assert _read(store, "/c") in (old, b"".join(parts))
    for i, part in enumerate(parts):
        assert store.get(f"/parts/{i}") == part
    _after_crash(store)


@pytest.mark.parametrize("trial", range(TRIALS_PER_OPERATION))
def test_killed_move(store: FilesystemDriver, trial: int) -> None:
    rng = random.Random(3000 + trial)
    src, dst = _content(3, rng.randrange(1, MiB)), _content(4, 100)
    store.put("/m/src", src)
    store.put("/n/dst", dst)

    def move_back_and_forth() -> None:
        store.move("/m/src", "/n/dst")
        store.put("/m/src", src)

    _kill_during(move_back_and_forth, rng.uniform(0.0005, 0.01))
    state = (_read(store, "/m/src"), _read(store, "/n/dst"))
    # Before the move, after it, or after it with the source already put again.
    assert state in ((src, dst), (None, src), (src, src)), (len(state[0] or b""), len(state[1] or b""))
    _after_crash(store)


def test_disk_full_gives_clear_error_and_keeps_old_content(store: FilesystemDriver) -> None:
    store.put("/full", b"old content")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        message = b"no error"
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))
            store.put("/full", _content(9, 4 * MiB))
        except StorageError as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
        except BaseException as exc:
            message = f"unexpected {type(exc).__name__}: {exc}".encode()
        finally:
            os.write(write_end, message)
            os._exit(0)
    os.close(write_end)
    message = os.read(read_end, 4096).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert message.startswith("StorageError: filesystem: put /full failed"), message
    assert "File too large" in message
    assert store.get("/full") == b"old content"
    assert os.listdir(os.path.join(store.root, STAGING, "tmp")) == []
