"""Conformance: errors name the driver and the caller's path; a pickled copy or a forked child sees the same store."""

from __future__ import annotations

import os

import pytest

from ..driver import StorageDriver
from ..errors import PathNotFoundError, StorageError
from .helpers import SuiteBase, in_forked_child, reopen


class InstanceContract(SuiteBase):
    """Every instance of one store, in this process or a forked one, sees the same content."""

    # ------------------------------------------------------------------ errors and pickling

    def test_errors_name_the_driver(self, store: StorageDriver) -> None:
        with pytest.raises(StorageError) as caught:
            store.get("/nope")
        assert caught.value.driver == store.name
        assert caught.value.path == "/nope"
        assert store.name in str(caught.value)

    def test_pickled_instance_sees_the_same_store(self, store: StorageDriver) -> None:
        store.put("/shared", b"x")
        other = reopen(store)
        assert other is not store
        assert other.get("/shared") == b"x"
        other.delete("/shared")
        with pytest.raises(PathNotFoundError):
            store.stat("/shared")

    def test_works_after_fork(self, store: StorageDriver) -> None:
        if not hasattr(os, "fork"):
            pytest.skip("no fork on this platform")
        store.put("/before", b"parent")

        def use_the_inherited_instance() -> bool:
            store.put("/child", store.get("/before") + b"+child")
            if store.get("/child") != b"parent+child":
                return False
            store.delete("/child")
            return True

        assert in_forked_child(use_the_inherited_instance), "the inherited driver failed in the forked child"
        assert store.get("/before") == b"parent"
        store.delete("/before")
