"""Conformance: list and walk show a tree of paths in order; delete removes a file or a whole directory."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..listing import walk_key
from .helpers import SuiteBase


class ListingContract(SuiteBase):
    """Listing and deleting by path, never by key prefix: "/d" is not a prefix of "/d-e"."""

    # ------------------------------------------------------------------ list / walk

    def test_list_children(self, store: StorageDriver) -> None:
        for path in ("/d/f", "/d/fsuffix", "/d/f-x/y", "/d/sub/deep/file", "/d-e/z", "/top"):
            store.put(path, b"x")
        assert store.list("/") == ["/d", "/d-e", "/top"]
        assert store.list("/d") == ["/d/f", "/d/f-x", "/d/fsuffix", "/d/sub"]
        assert store.list("/d/sub") == ["/d/sub/deep"]
        with pytest.raises(PathNotFoundError):
            store.list("/missing")
        with pytest.raises(PathNotFoundError):
            store.list("/top")
        for path in ("/d", "/d-e", "/top"):
            store.delete(path)
        assert store.list("/") == []

    def test_list_over_a_thousand_children(self, store: StorageDriver) -> None:
        names = [f"/many/{i:05d}" for i in range(1005)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda p: store.put(p, b""), names))
        assert store.list("/many") == names
        walked = [info.path for info in store.walk("/many")]
        assert walked == names
        store.delete("/many")
        with pytest.raises(PathNotFoundError):
            store.list("/many")

    def test_walk_order_and_content(self, store: StorageDriver) -> None:
        files = ["/a/x", "/a-b", "/a.c/y", "/a/y/z", "/b", "/a/x-1", "/a/x.1"]
        for path in files:
            store.put(path, path.encode())
        entries = list(store.walk("/"))
        expected_dirs = {"/a", "/a.c", "/a/y"}
        assert {e.path for e in entries if e.is_dir} == expected_dirs
        assert {e.path for e in entries if not e.is_dir} == set(files)
        assert entries == sorted(entries, key=walk_key)
        for entry in entries:
            if not entry.is_dir:
                assert entry.size == len(entry.path)
        assert [e.path for e in store.walk("/a")] == ["/a/x", "/a/x-1", "/a/x.1", "/a/y", "/a/y/z"]
        with pytest.raises(PathNotFoundError):
            list(store.walk("/missing"))
        for path in ("/a", "/a-b", "/a.c", "/b"):
            store.delete(path)

    # ------------------------------------------------------------------ delete

    def test_delete_file_directory_and_prefix_trap(self, store: StorageDriver) -> None:
        for path in ("/d/f", "/d/fsuffix", "/d/f-x/y", "/d/sub/inner", "/d/sub-x", "/d-e"):
            store.put(path, b"x")
        store.delete("/d/f")
        assert store.list("/d") == ["/d/f-x", "/d/fsuffix", "/d/sub", "/d/sub-x"]
        store.delete("/d/sub")
        assert store.list("/d") == ["/d/f-x", "/d/fsuffix", "/d/sub-x"]
        store.delete("/d")
        assert store.list("/") == ["/d-e"]
        with pytest.raises(PathNotFoundError):
            store.delete("/d")
        with pytest.raises(PathNotFoundError):
            store.delete("/d-")
        store.delete("/d-e")
