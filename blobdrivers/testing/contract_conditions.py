"""Conformance: conditional put, commit and move (if_none_match="*", if_match=etag), or a declared refusal."""

from __future__ import annotations

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import PathNotFoundError, PreconditionFailedError
from .helpers import SuiteBase, payload, race, require_declared


class ConditionContract(SuiteBase):
    """A condition holds or the operation fails with PreconditionFailedError; undeclared ones are skipped."""

    # ------------------------------------------------------------------ conditions

    def test_put_if_none_match(self, store: StorageDriver) -> None:
        require_declared(store, Capability.IF_NONE_MATCH)
        store.put("/c", b"first", if_none_match="*")
        with pytest.raises(PreconditionFailedError):
            store.put("/c", b"second", if_none_match="*")
        assert store.get("/c") == b"first"
        store.delete("/c")

    def test_put_if_match(self, store: StorageDriver) -> None:
        require_declared(store, Capability.IF_MATCH)
        store.put("/c", b"v1")
        etag = store.stat("/c").etag
        assert etag
        store.put("/c", b"v2", if_match=etag)
        assert store.get("/c") == b"v2"
        with pytest.raises(PreconditionFailedError):
            store.put("/c", b"v3", if_match=etag)
        assert store.get("/c") == b"v2"
        with pytest.raises(PreconditionFailedError):
            store.put("/absent", b"x", if_match=etag)
        with pytest.raises(PathNotFoundError):
            store.stat("/absent")
        store.delete("/c")

    def test_condition_arguments_are_checked(self, store: StorageDriver) -> None:
        for kwargs in ({"if_none_match": "etag"}, {"if_none_match": "*", "if_match": "x"}, {"if_match": ""}):
            with pytest.raises(ValueError):
                store.put("/c", b"x", **kwargs)
        with pytest.raises(PathNotFoundError):
            store.stat("/c")

    def test_writer_commit_and_move_conditions(self, store: StorageDriver) -> None:
        require_declared(store, Capability.IF_NONE_MATCH, Capability.RESUMABLE_WRITERS)
        store.put("/taken", b"taken")
        writer = store.writer("/taken")
        writer.write(b"new")
        with pytest.raises(PreconditionFailedError):
            writer.commit(if_none_match="*")
        assert store.get("/taken") == b"taken"
        assert writer.closed
        store.writer("/taken", append=True).cancel()
        store.put("/src", b"src")
        with pytest.raises(PreconditionFailedError):
            store.move("/src", "/taken", if_none_match="*")
        assert store.get("/taken") == b"taken"
        assert store.get("/src") == b"src"
        store.move("/src", "/free", if_none_match="*")
        assert store.get("/free") == b"src"
        for path in ("/taken", "/free"):
            store.delete(path)

    def test_streamed_writer_commits_under_conditions(self, store: StorageDriver) -> None:
        require_declared(
            store, Capability.IF_NONE_MATCH, Capability.CONDITIONAL_STREAMED_COMMIT, Capability.RESUMABLE_WRITERS
        )
        content = payload(self.multi_chunk(store))
        writer = store.writer("/s")
        writer.write(content)
        writer.commit(if_none_match="*")
        assert store.get("/s") == content
        writer = store.writer("/s")
        writer.write(content)
        with pytest.raises(PreconditionFailedError):
            writer.commit(if_none_match="*")
        store.writer("/s", append=True).cancel()
        store.delete("/s")

    def test_racing_put_if_none_match_has_one_winner(self, store: StorageDriver) -> None:
        require_declared(store, Capability.IF_NONE_MATCH)
        results = race(16, lambda i: store.put("/race", f"writer {i}".encode(), if_none_match="*"))
        winners = [i for i, result in enumerate(results) if result is None]
        losers = [result for result in results if result is not None]
        assert len(winners) == 1, results
        assert all(isinstance(result, PreconditionFailedError) for result in losers), losers
        assert store.get("/race") == f"writer {winners[0]}".encode()
        store.delete("/race")
