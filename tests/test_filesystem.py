"""Filesystem and in-memory drivers: the conformance suite plus what only a local disk can show."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers import paths
from blobdrivers.conditions import Conditions
from blobdrivers.drivers.filesystem import STAGING, FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import ConfigError, PathNotFoundError, StorageError
from blobdrivers.testing import DriverConformance
from blobdrivers.testing.contract_namespace import WriteRaw


def _write_raw_file(root: str) -> WriteRaw:
    """Raw names under ``root`` as another program makes them; a key ending in ``/`` is an empty folder."""

    def write(key: str, data: bytes) -> bool:
        parts = key.rstrip("/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            return False  # a disk has no empty, "." or ".." name: such a key cannot exist here
        target = os.path.join(root, *parts)
        try:
            if key.endswith("/"):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                Path(target).write_bytes(data)
        except (FileExistsError, NotADirectoryError):
            return False  # a file stands where the key needs a folder
        return True

    return write


class TestFilesystemConformance(DriverConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(rootdirectory=str(tmp_path / "store"))

    @pytest.fixture
    def foreign_keys(self, driver: FilesystemDriver) -> WriteRaw:
        return _write_raw_file(driver.root)


class TestFilesystemNoFsyncConformance(DriverConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(rootdirectory=str(tmp_path / "store"), fsync="false", chunksize="64KiB")

    @pytest.fixture
    def foreign_keys(self, driver: FilesystemDriver) -> WriteRaw:
        return _write_raw_file(driver.root)


class TestInMemoryConformance(DriverConformance):
    @pytest.fixture
    def driver(self) -> InMemoryDriver:
        return InMemoryDriver(chunksize=4096)

    @pytest.fixture
    def foreign_keys(self, driver: InMemoryDriver) -> WriteRaw:
        def write(key: str, data: bytes) -> bool:
            driver._store.publish(paths.join(driver._root, "/" + key), data, Conditions())
            return True

        return write


@pytest.fixture
def fs(tmp_path: Path) -> FilesystemDriver:
    (tmp_path / "store").mkdir()  # the driver makes its root on the first write; tests plant links before
    return FilesystemDriver(rootdirectory=str(tmp_path / "store"))


# ---------------------------------------------------------------------- confinement


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_bytes(b"outside secret")
    return folder


def test_symlinked_directory_inside_root_is_never_followed(fs: FilesystemDriver, outside: Path) -> None:
    os.symlink(outside, os.path.join(fs.root, "link"))
    for call in (
        lambda: fs.get("/link/secret"),
        lambda: fs.stat("/link/secret"),
        lambda: fs.stream("/link/secret").read(),
        lambda: fs.put("/link/planted", b"x"),
        lambda: fs.list("/link"),
        lambda: fs.delete("/link/secret"),
        lambda: fs.move("/link/secret", "/stolen"),
        lambda: fs.cat("/stolen", ["/link/secret"]),
        lambda: fs.writer("/link/secret", append=True),
    ):
        with pytest.raises(StorageError):
            call()
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"outside secret"
    assert [info.path for info in fs.walk()] == []


def test_symlinked_file_inside_root_is_never_followed(fs: FilesystemDriver, outside: Path) -> None:
    os.symlink(outside / "secret", os.path.join(fs.root, "file"))
    with pytest.raises(StorageError):
        fs.get("/file")
    fs.put("/file", b"replaced")  # the rename replaces the link itself, not its target
    assert (outside / "secret").read_bytes() == b"outside secret"
    assert fs.get("/file") == b"replaced"


def test_staging_is_invisible_and_unaddressable(fs: FilesystemDriver) -> None:
    writer = fs.writer("/pending")
    writer.write(b"staged")
    writer.close()
    assert fs.list("/") == []
    assert list(fs.walk()) == []
    with pytest.raises(blobdrivers.errors.InvalidPathError):
        fs.stat("/" + STAGING)
    fs.writer("/pending", append=True).cancel()


def test_cleanup_removes_only_old_leftovers(fs: FilesystemDriver) -> None:
    writer = fs.writer("/old")
    writer.write(b"abandoned")
    writer.close()
    tmp = Path(fs.root, STAGING, "tmp", "crashed-put")
    tmp.parent.mkdir(exist_ok=True)  # staging folders are made on first use
    tmp.write_bytes(b"partial")
    assert fs.cleanup(older_than=3600) == 0
    past = time.time() - 7200
    for entry in Path(fs.root, STAGING).glob("*/*"):
        os.utime(entry, (past, past))
    assert fs.cleanup(older_than=3600) == 2
    with pytest.raises(PathNotFoundError):
        fs.writer("/old", append=True)


# ---------------------------------------------------------------------- parameters


def test_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert FilesystemDriver().root == str(tmp_path / "xdg" / "blobdrivers")
    assert FilesystemDriver(rootdirectory=str(tmp_path / "a"), fsync="no").fsync is False
    with pytest.raises(ConfigError, match="'fsync'"):
        FilesystemDriver(rootdirectory=str(tmp_path), fsync="maybe")
    with pytest.raises(ConfigError, match=r"unknown parameter.*'rootdir'"):
        FilesystemDriver(rootdir=str(tmp_path))
    with pytest.raises(ConfigError, match="'chunksize'"):
        FilesystemDriver(rootdirectory=str(tmp_path), chunksize="12")


# ---------------------------------------------------------------------- concurrency torture


def test_32_threads_put_and_cat_while_4_threads_stat_and_read(fs: FilesystemDriver) -> None:
    """Acceptance: no torn read, no error but the documented ones."""
    contents = [bytes([i]) * (10_000 + 997 * i) for i in range(8)]
    for i, content in enumerate(contents):
        fs.put(f"/src/{i}", content)
    catted = [contents[i] + contents[(i + 1) % 8] for i in range(8)]
    valid = set(contents) | set(catted)
    stop = threading.Event()
    problems: list[object] = []

    def writer(index: int) -> None:
        rng = random.Random(index)
        for _ in range(25):
            k = rng.randrange(8)
            try:
                if index % 2:
                    fs.put("/hot", contents[k])
                else:
                    fs.cat("/hot", [f"/src/{k}", f"/src/{(k + 1) % 8}"])
            except Exception as exc:
                problems.append(exc)

    def observer() -> None:
        sizes = {len(v) for v in valid}
        while not stop.is_set():
            try:
                if fs.stat("/hot").size not in sizes:
                    problems.append("torn size")
                data = fs.get("/hot")
                if data not in valid:
                    problems.append(f"torn read of {len(data)} bytes")
            except PathNotFoundError:
                continue
            except Exception as exc:
                problems.append(exc)

    observers = [threading.Thread(target=observer) for _ in range(4)]
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(32)]
    for thread in observers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in observers:
        thread.join()
    assert problems == []
    assert fs.get("/hot") in valid
    assert os.listdir(os.path.join(fs.root, STAGING, "tmp")) == []


# ---------------------------------------------------------------------- crash consistency

_KILLED_PUT = textwrap.dedent(
    """
    import sys
    from blobdrivers.drivers.filesystem import FilesystemDriver
    store = FilesystemDriver(rootdirectory=sys.argv[1])
    block = bytes([int(sys.argv[2])]) * (8 * 1024 * 1024)
    print("started", flush=True)
    store.put("/layer", (block for _ in range(64)))  # 512 MiB
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_during_512_mib_put_leaves_old_content_or_nothing(tmp_path: Path, trial: int) -> None:
    root = tmp_path / "store"
    store = FilesystemDriver(rootdirectory=str(root))
    old = b"old content" if trial else None
    if old:
        store.put("/layer", old)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PUT, str(root), str(trial + 1)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    tmp = root / STAGING / "tmp"
    deadline = time.monotonic() + 60
    target = random.Random(trial).randrange(16, 400) * 1024 * 1024
    # The staging folder appears with the child's first write (it is made on first use).
    while time.monotonic() < deadline and sum(f.stat().st_size for f in tmp.glob("*")) < target:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    try:
        after = store.get("/layer")
    except PathNotFoundError:
        after = None
    if after is not None and len(after) == 512 * 1024 * 1024:
        pytest.fail("the put finished before the kill; nothing was shown")
    assert after == old
    assert store.cleanup(older_than=0) >= 1  # the killed put's temp file
    assert os.listdir(tmp) == []
    store.put("/layer", b"usable")
    assert hashlib.sha256(store.get("/layer")).hexdigest() == hashlib.sha256(b"usable").hexdigest()


# ---------------------------------------------------------------------- in-memory specifics


def test_memory_store_sharing_by_name() -> None:
    first = blobdrivers.from_url("memory://shared-by-name")
    second = blobdrivers.create("inmemory", {"name": "shared-by-name"})
    first.put("/x", b"1")
    assert second.get("/x") == b"1"
    second.delete("/x")
    assert blobdrivers.from_url("memory://").list("/") == []


# ---------------------------------------------------------------------- found by the model-based test


@pytest.mark.parametrize("make", [lambda p: FilesystemDriver(rootdirectory=str(p)), lambda p: InMemoryDriver()])
def test_failed_move_or_conditional_put_leaves_no_empty_folder(tmp_path: Path, make: object) -> None:
    """Hypothesis found: cat('/a-b/f-1', []); move('/a-b/f', '/a/f') left an empty /a visible to list."""
    store = make(tmp_path)  # type: ignore[operator]
    store.cat("/a-b/f-1", [])
    with pytest.raises(PathNotFoundError):
        store.move("/a-b/f", "/a/f")
    with pytest.raises(blobdrivers.errors.PreconditionFailedError):
        store.put("/c/f", b"x", if_match="no-such-etag")
    assert store.list("/") == ["/a-b"]
    store.delete("/a-b")


# ---------------------------------------------------------------------- in-memory races


class _DeleteAfterFirstRelease:
    """Wraps a store lock: right after its first release, deletes a path through the driver (once)."""

    def __init__(self, lock: Any, driver: InMemoryDriver, path: str) -> None:
        self._lock, self._driver, self._path = lock, driver, path
        self.fired = False

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        if not self.fired:
            self.fired = True
            self._driver.delete(self._path)


def test_inmemory_stat_of_a_directory_whose_last_file_is_deleted_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete lands between the stat's steps (deterministically): a directory result or PathNotFoundError."""
    store = InMemoryDriver()
    store.put("/d/f", b"x")
    racer = _DeleteAfterFirstRelease(store._store.lock, store, "/d/f")
    monkeypatch.setattr(store._store, "lock", racer)
    try:
        info = store.stat("/d")
    except PathNotFoundError:
        pass
    else:
        assert info.is_dir and info.path == "/d"
    assert racer.fired
    with pytest.raises(PathNotFoundError):
        store.stat("/d")
