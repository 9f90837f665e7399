"""Conformance: other tools' keys and a driver's own bookkeeping never invent paths; over-long keys are invalid."""

from __future__ import annotations

import builtins
from collections.abc import Callable

import pytest

from .. import paths
from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import InvalidPathError, PathNotFoundError
from .helpers import SuiteBase, needs, payload, reopen

#: Writes a raw key (relative to the driver's root, no leading slash) bypassing the
#: driver; returns False for a key the backend cannot hold (e.g. ``a//b`` on a disk).
WriteRaw = Callable[[str, bytes], bool]

#: name -> (raw keys another tool writes, valid paths the driver writes next to them)
FOREIGN_SCENARIOS: dict[str, tuple[list[str], list[str]]] = {
    "issue": (["a//b", "console/folder/"], []),
    "double-slash": (["a//b"], ["/a-file"]),
    "folder-marker": (["console/folder/"], ["/console-file"]),
    "trailing-slash": (["x/"], []),
    "bad-name-next-to-ok": (["dir/bad name"], ["/dir/ok"]),
    "valid-path-plus-slash": (["f/"], ["/f"]),
    "outside-ascii": (["caf\u00e9", "a b", "d\u00e9j\u00e0/x", "ok/caf\u00e9/x"], ["/ok/y"]),
    "dot-components": (["p/./q", "p/../q", "r/."], []),
}


def _probes(keys: builtins.list[str]) -> set[str]:
    """Every valid path a raw key could be mistaken to create (each leading run of its components)."""
    found: set[str] = set()
    for key in keys:
        parts = key.split("/")
        for end in range(1, len(parts) + 1):
            candidate = "/" + "/".join(parts[:end])
            if paths.is_valid(candidate):
                found.add(candidate)
    return found


def assert_namespace(store: StorageDriver, files: set[str], probes: set[str] | frozenset[str] = frozenset()) -> None:
    """``list``, ``walk`` and ``stat`` all show exactly ``files`` and their ancestors, nothing else."""
    dirs = {ancestor for path in files for ancestor in paths.ancestors(path)}
    walked = {info.path: info.is_dir for info in store.walk("/")}
    assert walked == {**dict.fromkeys(files, False), **dict.fromkeys(dirs, True)}
    children: dict[str, set[str]] = {paths.ROOT: set(), **{d: set() for d in dirs}}
    for path in files | dirs:
        children[paths.parent(path)].add(path)
    for directory, expected in children.items():
        assert store.list(directory) == sorted(expected), (directory, store.list(directory))
        if directory != paths.ROOT:
            assert store.stat(directory).is_dir, directory
            assert [info.path for info in store.walk(directory)] == sorted(
                (p for p in walked if p.startswith(directory + "/")), key=lambda p: p + "/" if walked[p] else p
            )
    for path in files:
        assert not store.stat(path).is_dir, path
        with pytest.raises(PathNotFoundError):
            store.list(path)
    for path in probes - files - dirs:
        with pytest.raises(PathNotFoundError):
            store.stat(path)
        with pytest.raises(PathNotFoundError):
            store.list(path)
        with pytest.raises(PathNotFoundError):
            list(store.walk(path))


def _path_of(length: int, component: int) -> str:
    """A valid path of exactly ``length`` bytes, made of components of at most ``component`` bytes."""
    parts: builtins.list[str] = []
    left = length
    while left > 0:
        size = min(component, left - 1)
        if left - 1 - size == 1:  # never leave room for just a "/" with an empty component
            size -= 1
        parts.append(chr(ord("a") + len(parts) % 26) * size)
        left -= size + 1
    path = "/" + "/".join(parts)
    assert len(path) == length and paths.is_valid(path)
    return path


class NamespaceContract(SuiteBase):
    """Keys other tools wrote, and a driver's own bookkeeping, never invent paths; over-long keys are invalid paths."""

    @pytest.fixture
    def foreign_keys(self, driver: StorageDriver) -> WriteRaw | None:
        """Override: a :data:`WriteRaw` writing raw keys into the store under test, or ``None`` when it cannot.

        Keys are relative to the driver's root and have no leading slash; a key
        ending in ``/`` is a folder marker (an empty folder, on a disk).
        """
        return None

    def _write_foreign(self, write_raw: WriteRaw | None, keys: builtins.list[str], driver: StorageDriver) -> None:
        if write_raw is None:
            pytest.skip(f"{driver.name}: the test class gives no foreign_keys fixture to write raw keys")
        for key in keys:
            if not write_raw(key, b"foreign"):
                pytest.skip(f"{driver.name} cannot hold the raw key {key!r}")

    @pytest.mark.parametrize("scenario", sorted(FOREIGN_SCENARIOS))
    def test_foreign_keys_never_invent_paths(
        self, store: StorageDriver, foreign_keys: WriteRaw | None, scenario: str
    ) -> None:
        """A directory exists exactly while a valid object lies below it; other keys are invisible."""
        raw, valid = FOREIGN_SCENARIOS[scenario]
        for path in valid:
            store.put(path, b"valid")
        try:
            self._write_foreign(foreign_keys, raw, store)
        except pytest.skip.Exception:
            for path in valid:
                store.delete(path)
            raise
        assert_namespace(store, set(valid), _probes(raw))
        for path in valid:
            store.delete(path)
        assert_namespace(store, set(), _probes(raw) | set(valid))

    def test_deleting_a_directory_next_to_foreign_keys(
        self, store: StorageDriver, foreign_keys: WriteRaw | None
    ) -> None:
        valid = ["/dir/ok", "/dir/sub/x", "/keep/y"]
        raw = ["dir/bad name", "dir/sub/bad name", "dir/sub/", "dir//z", "keep/a b", "only/x y"]
        if foreign_keys is None:
            pytest.skip(f"{store.name}: the test class gives no foreign_keys fixture to write raw keys")
        for path in valid:
            store.put(path, b"valid")
        held = [key for key in raw if foreign_keys(key, b"foreign")]
        assert "dir/bad name" in held
        store.delete("/dir")
        assert_namespace(store, {"/keep/y"}, _probes(raw))
        with pytest.raises(PathNotFoundError):
            store.delete("/only")  # holds no valid object, so it is no directory
        store.delete("/keep")
        assert_namespace(store, set(), _probes(raw))

    # ------------------------------------------------------------------ bookkeeping

    def test_below_changes_nothing_until_the_child_writes(self, store: StorageDriver) -> None:
        child = store.below("/tenant")
        with pytest.raises(PathNotFoundError):
            child.stat("/x")
        assert child.list("/") == []
        assert_namespace(store, set(), {"/tenant"})
        child.put("/f", b"1")
        assert_namespace(store, {"/tenant/f"})
        child.delete("/f")
        assert_namespace(store, set(), {"/tenant"})

    def test_parked_writers_are_no_paths(self, store: StorageDriver) -> None:
        child = store.below("/tenant")
        for driver, path in ((child, "/w"), (store, "/p/w")):
            writer = driver.writer(path)
            writer.write(payload(self.multi_chunk(driver)))
            writer.close()
        assert_namespace(store, set(), {"/tenant", "/tenant/w", "/p", "/p/w"})
        assert_namespace(child, set(), {"/w"})
        for driver, path in ((child, "/w"), (store, "/p/w")):
            driver.writer(path).cancel()  # drops the parked session
        assert_namespace(store, set(), {"/tenant", "/p"})

    def test_deleting_the_parents_path_leaves_the_child_working(self, store: StorageDriver) -> None:
        """Deleting ``/tenant`` deletes the child's data, parked writers included; the child keeps working."""
        child = _child_with_a_parked_writer_deleted_by_its_parent(store)
        assert_namespace(store, set(), {"/tenant"})
        assert child.list("/") == []
        child.put("/b", b"2")
        with child.writer("/c") as second:
            second.write(b"3")
            second.commit()
        assert child.stat("/").is_dir
        assert (child.get("/b"), child.get("/c")) == (b"2", b"3")
        assert_namespace(store, {"/tenant/b", "/tenant/c"})
        store.delete("/tenant")

    @needs(Capability.RESUMABLE_WRITERS)
    def test_deleting_the_parents_path_drops_the_childs_parked_writers(self, store: StorageDriver) -> None:
        """A child's parked writer is the child's data: it goes with the parent's directory."""
        child = _child_with_a_parked_writer_deleted_by_its_parent(store)
        with pytest.raises(PathNotFoundError):
            child.writer("/w", append=True)  # nothing parked, nothing committed
        assert_namespace(store, set(), {"/tenant"})

    @needs(Capability.RESUMABLE_WRITERS)
    def test_a_directory_delete_keeps_the_sessions_parked_for_its_own_paths(self, store: StorageDriver) -> None:
        """A parked session is bookkeeping, not a file: deleting its path's folder leaves it to be resumed."""
        staged = payload(self.multi_chunk(store), seed=7)
        store.put("/d/f", b"committed")
        writer = store.writer("/d/g")
        writer.write(staged)
        writer.close()
        store.delete("/d")
        assert_namespace(store, set(), {"/d"})
        resumed = reopen(store).writer("/d/g", append=True)
        assert resumed.size == len(staged)
        resumed.write(b"!")
        resumed.commit()
        assert store.get("/d/g") == staged + b"!"
        store.delete("/d")

    # ------------------------------------------------------------------ key length

    @needs(Capability.RESUMABLE_WRITERS)
    def test_over_long_paths_are_invalid_before_any_request(self, store: StorageDriver) -> None:
        room = store.max_path_bytes()
        component = store.max_component_bytes or 200
        if room is None:
            longest = _path_of(8192, min(component, 200))
            store.put(longest, b"long")
            assert store.get(longest) == b"long"
            store.delete(longest)
            pytest.skip(f"{store.name} states no key-length limit; a path of {len(longest)} bytes works")
        over = _path_of(room + 1, min(component, 200))
        calls: builtins.list[str] = []

        def refuse(*_: object, **__: object) -> None:
            calls.append("request")
            raise AssertionError("a backend hook ran for an over-long path")

        hooks = ("_put", "_get", "_open", "_stat", "_writer", "_list", "_walk", "_delete")
        for name in hooks:
            setattr(store, name, refuse)
        try:
            for action in (
                lambda: store.put(over, b"x"),
                lambda: store.get(over),
                lambda: store.stat(over),
                lambda: store.writer(over),
                lambda: store.list(over),
                lambda: store.delete(over),
            ):
                with pytest.raises(InvalidPathError) as caught:
                    action()
                assert str(store.max_key_bytes) in str(caught.value)
            if store.max_component_bytes is not None:
                with pytest.raises(InvalidPathError) as caught:
                    store.stat("/" + "c" * (store.max_component_bytes + 1))
                assert str(store.max_component_bytes) in str(caught.value)
        finally:
            for name in hooks:
                delattr(store, name)
        assert calls == []
        at_limit = _path_of(room, min(component, 200))
        store.put(at_limit, b"at the limit")
        assert store.stat(at_limit).size == 12
        writer = store.writer(at_limit)
        writer.write(payload(self.multi_chunk(store)))
        writer.close()  # parks its progress under a name derived from the path: that must fit too
        resumed = store.writer(at_limit, append=True)
        resumed.write(b"!")
        resumed.commit()
        assert store.get(at_limit) == payload(self.multi_chunk(store)) + b"!"
        store.delete(at_limit)


def _child_with_a_parked_writer_deleted_by_its_parent(store: StorageDriver) -> StorageDriver:
    """A child store at ``/tenant`` with a file and a parked writer ``/w``, after ``store.delete("/tenant")``."""
    child = store.below("/tenant")
    child.put("/a", b"1")
    writer = child.writer("/w")
    writer.write(b"parked")
    writer.close()
    store.delete("/tenant")
    return child
