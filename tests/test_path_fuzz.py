"""Path fuzzing: any string gives only the documented errors, and the filesystem never leaves its root."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobdrivers import StorageDriver
from blobdrivers.drivers.filesystem import FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import InvalidPathError, PathNotFoundError, StorageError
from tests.scale import SCALE

TRICKS = [
    "/..",
    "/../outside",
    "/a/../../outside",
    "/%2e%2e/outside",
    "/a/%2e%2e",
    "/a\\..\\..\\outside",
    "/\x00",
    "/a\x00/b",
    "/link/escape",
    "/link",
    "/" + "x" * 300,
    "/" + "/".join(["d"] * 300),
    "/\u2025/\uff0e\uff0e",
    "/a/./b",
    "//outside",
    "/~blobdrivers/tmp",
    "~",
]

PATHS = st.one_of(
    st.sampled_from(TRICKS),
    st.text(max_size=40),
    st.text(alphabet="/.%2e\\ab-_\x00~", max_size=30),
    st.lists(st.sampled_from(["a", "..", ".", "%2e%2e", "link", "x" * 120, "b-c"]), max_size=6).map(
        lambda parts: "/" + "/".join(parts)
    ),
)

DOCUMENTED = (InvalidPathError, PathNotFoundError)


def _operations(store: StorageDriver, path: Any) -> list[Callable[[], Any]]:
    return [
        lambda: store.put(path, b"fuzz"),
        lambda: store.get(path),
        lambda: store.stream(path, 1).read(),
        lambda: store.writer(path).cancel(),
        lambda: store.writer(path, append=True).cancel(),
        lambda: store.stat(path),
        lambda: store.list(path),
        lambda: list(store.walk(path)),
        lambda: store.move("/seed", path),
        lambda: store.move(path, "/seed2"),
        lambda: store.cat(path, ["/seed"]),
        lambda: store.cat("/seed3", [path]),
        lambda: store.delete(path),
    ]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with tempfile.TemporaryDirectory() as base:
        outside = Path(base, "outside")
        outside.mkdir()
        (outside / "escape").write_bytes(b"must stay")
        root = Path(base, "root")
        root.mkdir()  # the driver makes it on the first write; the link is planted before
        store = FilesystemDriver(rootdirectory=str(root), fsync=False)
        os.symlink(outside, root / "link")  # a planted symlink pointing outside the root
        yield store, outside


def _exercise(store: StorageDriver, path: Any, also: tuple[type[Exception], ...] = ()) -> None:
    store.put("/seed", b"seed")
    for operation in _operations(store, path):
        try:
            operation()
        except DOCUMENTED:
            pass
        except StorageError as exc:
            assert isinstance(exc, also) or "symlink" in str(exc), f"{path!r}: {type(exc).__name__}: {exc}"
    for leftover in ("/seed", "/seed2", "/seed3"):
        with contextlib.suppress(PathNotFoundError):
            store.delete(leftover)


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=PATHS)
def test_filesystem_fuzzed_paths_stay_inside_root(sandbox: Any, path: Any) -> None:
    store, outside = sandbox
    before = _snapshot(outside)
    _exercise(store, path)
    assert _snapshot(outside) == before
    leftovers = [p for p in Path(store.root).iterdir() if p.name not in ("link", "~blobdrivers")]
    for p in leftovers:
        store.delete("/" + p.name)


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.one_of(PATHS, st.integers(), st.none(), st.binary(max_size=10)))
def test_inmemory_fuzzed_paths_give_documented_errors(path: Any) -> None:
    _exercise(InMemoryDriver(), path)
