"""Conformance: conditional put, move and commit (small and streamed): each declared condition holds or fails.

Each test needs only the capabilities its call needs (the condition, and for a
writer of ``chunk_size`` bytes or more CONDITIONAL_STREAMED_COMMIT); a false
condition fails with PreconditionFailedError and changes nothing.
"""

from __future__ import annotations

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import PathNotFoundError, PreconditionFailedError
from .helpers import SuiteBase, payload, race, require_declared

#: Every conditional publish: each operation under each condition.
CONDITIONED = pytest.mark.parametrize(
    ("operation", "kind"),
    [(op, kind) for op in ("put", "move", "commit", "streamed_commit") for kind in ("if_none_match", "if_match")],
)


def _needed(operation: str, kind: str) -> list[Capability]:
    """What ``operation`` under a ``kind`` condition needs: the condition, and for a streamed writer its commit."""
    needed = [Capability.IF_NONE_MATCH if kind == "if_none_match" else Capability.IF_MATCH]
    return [*needed, Capability.CONDITIONAL_STREAMED_COMMIT] if operation == "streamed_commit" else needed


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

    @CONDITIONED
    def test_false_condition_fails_and_changes_nothing(self, store: StorageDriver, operation: str, kind: str) -> None:
        require_declared(store, *_needed(operation, kind))
        store.put("/dst", b"before")
        stale = store.stat("/dst").etag
        store.put("/dst", b"old")
        assert stale and store.stat("/dst").etag != stale, "an overwrite must change the etag"
        condition = {"if_none_match": "*"} if kind == "if_none_match" else {"if_match": stale}
        content = self._content(store, operation)
        with pytest.raises(PreconditionFailedError):
            self._publish(store, operation, "/dst", content, condition)
        assert store.get("/dst") == b"old", f"{operation} under a false {kind} changed the target"
        if kind == "if_match":
            with pytest.raises(PreconditionFailedError):
                self._publish(store, operation, "/absent", content, condition)
            with pytest.raises(PathNotFoundError):
                store.stat("/absent")
        if operation == "move":
            assert store.get("/src") == content, "a move refused by its condition must keep its source"
            store.delete("/src")
        store.writer("/dst").cancel()  # a fresh writer drops what a refused commit parked
        store.writer("/absent").cancel()
        store.delete("/dst")

    @CONDITIONED
    def test_true_condition_publishes(self, store: StorageDriver, operation: str, kind: str) -> None:
        require_declared(store, *_needed(operation, kind))
        if kind == "if_none_match":
            condition, target = {"if_none_match": "*"}, "/free"
        else:
            store.put("/dst", b"old")
            condition, target = {"if_match": store.stat("/dst").etag or ""}, "/dst"
        content = self._content(store, operation)
        self._publish(store, operation, target, content, condition)
        assert store.get(target) == content
        if operation == "move":
            with pytest.raises(PathNotFoundError):
                store.stat("/src")
        store.delete(target)

    def _content(self, store: StorageDriver, operation: str) -> bytes:
        return payload(self.multi_chunk(store)) if operation == "streamed_commit" else b"new content"

    @staticmethod
    def _publish(store: StorageDriver, operation: str, path: str, content: bytes, condition: dict[str, str]) -> None:
        """Publish ``content`` at ``path`` by ``operation`` under ``condition``."""
        if operation == "put":
            store.put(path, content, **condition)
        elif operation == "move":
            store.put("/src", content)
            store.move("/src", path, **condition)
        else:
            writer = store.writer(path)
            writer.write(content)
            try:
                writer.commit(**condition)
            finally:
                assert writer.closed

    def test_racing_put_if_none_match_has_one_winner(self, store: StorageDriver) -> None:
        require_declared(store, Capability.IF_NONE_MATCH)
        results = race(16, lambda i: store.put("/race", f"writer {i}".encode(), if_none_match="*"))
        winners = [i for i, result in enumerate(results) if result is None]
        losers = [result for result in results if result is not None]
        assert len(winners) == 1, results
        assert all(isinstance(result, PreconditionFailedError) for result in losers), losers
        assert store.get("/race") == f"writer {winners[0]}".encode()
        store.delete("/race")
