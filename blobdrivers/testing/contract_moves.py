"""Conformance: move and cat publish their destination whole and change nothing when a source is missing."""

from __future__ import annotations

import hashlib

import pytest

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from .helpers import SuiteBase, payload


class MoveContract(SuiteBase):
    """move replaces its destination with its source; cat joins its sources into its destination."""

    # ------------------------------------------------------------------ move

    def test_move(self, store: StorageDriver) -> None:
        content = payload(self.multi_chunk(store), seed=5)
        store.put("/src/file", content)
        store.put("/dst/deeper/file", b"old")
        store.move("/src/file", "/dst/deeper/file")
        assert hashlib.sha256(store.get("/dst/deeper/file")).digest() == hashlib.sha256(content).digest()
        with pytest.raises(PathNotFoundError):
            store.stat("/src/file")
        with pytest.raises(PathNotFoundError):
            store.list("/src")
        store.move("/dst/deeper/file", "/brand/new/place")
        assert store.stat("/brand/new/place").size == len(content)
        store.delete("/brand")

    def test_move_missing_source_leaves_destination(self, store: StorageDriver) -> None:
        store.put("/dst", b"keep")
        with pytest.raises(PathNotFoundError):
            store.move("/missing", "/dst")
        assert store.get("/dst") == b"keep"
        with pytest.raises(PathNotFoundError):
            store.move("/missing", "/dst")
        store.delete("/dst")

    def test_move_onto_itself(self, store: StorageDriver) -> None:
        store.put("/same", b"x")
        store.move("/same", "/same")
        assert store.get("/same") == b"x"
        store.delete("/same")

    # ------------------------------------------------------------------ cat

    def test_cat(self, store: StorageDriver) -> None:
        parts = [payload(self.multi_chunk(store), seed=6), b"", b"small", payload(store.chunk_size, seed=7)]
        names = [f"/parts/{i}" for i in range(len(parts))]
        for name, data in zip(names, parts, strict=True):
            store.put(name, data)
        store.cat("/joined", names)
        assert hashlib.sha256(store.get("/joined")).digest() == hashlib.sha256(b"".join(parts)).digest()
        for name, data in zip(names, parts, strict=True):
            assert store.get(name) == data
        store.cat("/joined", ["/joined", "/parts/2"])
        assert store.stat("/joined").size == sum(map(len, parts)) + 5
        store.cat("/empty", [])
        assert store.get("/empty") == b""
        for path in ("/parts", "/joined", "/empty"):
            store.delete(path)

    def test_cat_missing_source_changes_nothing(self, store: StorageDriver) -> None:
        store.put("/a", b"a")
        store.put("/dst", b"keep")
        with pytest.raises(PathNotFoundError):
            store.cat("/dst", ["/a", "/missing"])
        assert store.get("/dst") == b"keep"
        store.delete("/a")
        store.delete("/dst")
