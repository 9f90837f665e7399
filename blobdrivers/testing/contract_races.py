"""Conformance: put, move and delete are linearizable; a move never deletes data it did not copy.

Concurrent writers, cats and puts of one path never show a reader a torn content.

The narrow interleavings are forced with race hooks (see ``RACE_POINTS`` in
:mod:`blobdrivers.driver`): a hook on the instance under test makes a second
instance act inside the window. A driver that serialises the two operations
makes that second call wait until the first ends; the hook gives it
:data:`WINDOW` seconds and then lets the first operation go on. Either way
the end state must be one that some serial order of the two operations gives.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ..capabilities import Capability
from ..driver import RacePoint, StorageDriver
from ..errors import PathNotFoundError, PreconditionFailedError, StorageError
from .helpers import StatLoop, SuiteBase, condition_capabilities, payload, race, reopen, require_declared

#: Seconds a race hook waits for the second client's call to finish inside the window. A correct
#: driver passes whatever the value; it only bounds how long a driver that lets the call in gets to
#: show it (a driver that excludes the call makes every such test wait this long once).
WINDOW = 0.25
#: Upper bound on any background call of these tests.
JOIN_TIMEOUT = 120.0

#: The moves of :meth:`RaceContract.test_move_keeps_a_put_to_its_source_after_the_copy` (a subclass
#: overriding it re-applies this mark): unconditional, and conditional (which on some drivers takes
#: another path: a multipart copy, a link then unlink).
MOVE_CONDITIONS = pytest.mark.parametrize("conditions", [{}, {"if_none_match": "*"}], ids=["plain", "if_none_match"])


class _Background:
    """One call run on a thread on demand, with its outcome; bounded waits only."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call
        self.started = False
        self.done = threading.Event()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._call()
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    def start_and_wait(self, point: RacePoint) -> None:
        """A race hook: start the call once, and give it :data:`WINDOW` seconds to finish."""
        if not self.started:
            self.started = True
            self._thread.start()
            self.done.wait(WINDOW)

    def outcome(self) -> Exception | None:
        """The exception the call raised, or None; fails the test if it did not end in time."""
        if self.started:
            self._thread.join(JOIN_TIMEOUT)
            assert self.done.is_set(), f"the background call did not end within {JOIN_TIMEOUT} s (a deadlock?)"
        return self.error


def _content(driver: StorageDriver, path: str) -> bytes | None:
    try:
        return driver.get(path)
    except PathNotFoundError:
        return None


def _empty(driver: StorageDriver) -> None:
    for info in list(driver.walk("/")):
        if not info.is_dir:
            with contextlib.suppress(PathNotFoundError):
                driver.delete(info.path)


def _skip_unreached(driver: StorageDriver, point: str) -> None:
    pytest.skip(f"{driver.name} never reaches race point {point!r}: the operation has no such window there")


class RaceContract(SuiteBase):
    """put, move and delete are linearizable; a move never deletes data it did not copy."""

    @MOVE_CONDITIONS
    def test_move_keeps_a_put_to_its_source_after_the_copy(
        self, store: StorageDriver, conditions: dict[str, str]
    ) -> None:
        """A put to the source landing after the move copied it survives there: "move, then put"."""
        require_declared(store, *condition_capabilities(conditions))
        old, new = payload(3000, seed=1), payload(2000, seed=2)
        store.put("/src", old)
        other = reopen(store)
        putter = _Background(lambda: other.put("/src", new))
        store.race_hooks["move.copied"] = putter.start_and_wait
        try:
            try:
                store.move("/src", "/dst", **conditions)
            finally:
                del store.race_hooks["move.copied"]
            assert putter.outcome() is None, f"the put to the source failed: {putter.error!r}"
            if not putter.started:
                _skip_unreached(store, "move.copied")
            assert _content(store, "/dst") == old, "the move must leave the content it copied at the destination"
            assert _content(store, "/src") == new, "the acknowledged put to the source was lost"
        finally:
            _empty(store)

    def test_conditional_put_and_move_are_linearizable(self, store: StorageDriver) -> None:
        """put(src, if_match=E) racing move(src, dst) ends as "put, move" or "move, put"."""
        require_declared(store, Capability.IF_MATCH)
        old, new = payload(3000, seed=3), payload(2000, seed=4)
        store.put("/src", old)
        etag = store.stat("/src").etag
        assert etag is not None
        other = reopen(store)
        mover = _Background(lambda: other.move("/src", "/dst"))
        store.race_hooks["put.checked"] = mover.start_and_wait
        put_error: Exception | None = None
        try:
            try:
                store.put("/src", new, if_match=etag)
            except PreconditionFailedError as exc:
                put_error = exc
            finally:
                del store.race_hooks["put.checked"]
            move_error = mover.outcome()
            if not mover.started:
                _skip_unreached(store, "put.checked")
            names = {old: "old", new: "new", None: "nothing"}
            outcome = (put_error is None, move_error is None, _content(store, "/src"), _content(store, "/dst"))
            serial = {
                "put, then move": (True, True, None, new),
                "move, then put (its etag no longer matches)": (False, True, None, old),
            }
            assert outcome in serial.values(), (
                f"no serial order gives: put ok={outcome[0]}, move ok={outcome[1]} ({move_error!r}), "
                f"src holds {names.get(outcome[2], 'other')}, dst holds {names.get(outcome[3], 'other')}"
            )
        finally:
            _empty(store)

    def test_racing_puts_moves_and_deletes_keep_each_content_at_most_once(self, store: StorageDriver) -> None:
        """Threads put unique contents to /a (plain and conditional), move /a to /b and delete both.

        Invariants any serial order keeps: a content is never in two places, and a
        content whose put failed is nowhere. Moves go one way only, so an etag
        (on some services a content hash) never comes back to /a.
        """
        threads, rounds = 4, 12
        acknowledged: set[bytes] = set()
        refused: set[bytes] = set()
        unexpected: list[Exception] = []
        lock = threading.Lock()
        conditional = {"put_if_match": Capability.IF_MATCH, "put_if_none_match": Capability.IF_NONE_MATCH}
        actions = [
            a for a in ("put", *conditional, "move", "delete") if conditional.get(a) in {None, *store.capabilities}
        ]

        def worker(index: int) -> None:
            rng = random.Random(index)
            for n in range(rounds):
                content = f"thread {index} round {n}".encode()
                action = rng.choice(actions)
                try:
                    if action == "put":
                        store.put("/a", content)
                    elif action == "put_if_match":
                        try:
                            etag = store.stat("/a").etag or "none"
                        except PathNotFoundError:
                            etag = "none"
                        store.put("/a", content, if_match=etag)
                    elif action == "put_if_none_match":
                        store.put("/a", content, if_none_match="*")
                    elif action == "move":
                        store.move("/a", "/b")
                    else:
                        store.delete(rng.choice(("/a", "/b")))
                except PreconditionFailedError:
                    if action.startswith("put"):
                        with lock:
                            refused.add(content)
                    continue
                except PathNotFoundError:
                    if action in ("move", "delete"):
                        continue
                    with lock:
                        unexpected.append(RuntimeError(f"{action} raised PathNotFoundError"))
                    continue
                except StorageError as exc:
                    # A copy-then-delete move may refuse, changing nothing, when its source changed under the copy.
                    if action == "move" and "changed" in str(exc):
                        continue
                    with lock:
                        unexpected.append(exc)
                    continue
                if action.startswith("put"):
                    with lock:
                        acknowledged.add(content)

        try:
            results = race(threads, worker)
            assert all(result is None for result in results), results
            assert not unexpected, unexpected[:3]
            final = {path: _content(store, path) for path in ("/a", "/b")}
            assert final["/a"] is None or final["/a"] != final["/b"], f"one content in two places: {final}"
            for path, content in final.items():
                if content is not None:
                    assert content in acknowledged, f"{path} holds {content!r}, whose put did not succeed"
                    assert content not in refused, f"{path} holds {content!r}, whose put was refused"
        finally:
            _empty(store)

    def test_stat_of_a_directory_while_its_last_file_is_deleted(self, store: StorageDriver) -> None:
        """A stat of an implicit directory racing the delete of its only file: a directory or PathNotFoundError."""
        with StatLoop(store, "/d") as loop:
            for _ in range(50):
                store.put("/d/f", b"x")
                store.delete("/d/f")
                if loop.errors:
                    break
        assert not loop.errors, loop.errors[:3]
        assert loop.sizes <= {0}, f"stat of a directory reported sizes {loop.sizes}"

    # ------------------------------------------------------------------ no torn content

    def test_concurrent_writers_and_cats_never_tear(self, store: StorageDriver) -> None:
        contents = [payload(3000 + 17 * i, seed=i) for i in range(16)]
        sizes = {len(content) for content in contents}
        with StatLoop(store, "/hot") as loop:
            results = race(16, lambda i: self._write_whole(store, "/hot", contents[i]))
        assert all(result is None for result in results), results
        assert not loop.errors, loop.errors[:3]
        assert loop.sizes <= sizes, loop.sizes - sizes
        assert store.get("/hot") in contents

        halves = [b"first half|", payload(5000, seed=99)]
        store.put("/h1", halves[0])
        store.put("/h2", halves[1])
        joined = b"".join(halves)
        with StatLoop(store, "/catted") as loop:
            results = race(16, lambda i: store.cat("/catted", ["/h1", "/h2"]))
        assert all(result is None for result in results), results
        assert not loop.errors, loop.errors[:3]
        assert loop.sizes <= {len(joined)}
        assert store.get("/catted") == joined
        for path in ("/hot", "/h1", "/h2", "/catted"):
            store.delete(path)

    @staticmethod
    def _write_whole(store: StorageDriver, path: str, content: bytes) -> None:
        with store.writer(path) as writer:
            for start in range(0, len(content), 1000):
                writer.write(content[start : start + 1000])

    def test_concurrent_puts_and_reads_never_tear(self, store: StorageDriver) -> None:
        contents = [payload(2000 + 31 * i, seed=100 + i) for i in range(8)]
        store.put("/p", contents[0])
        stop = threading.Event()
        torn: list[bytes] = []

        def reader() -> None:
            while not stop.is_set():
                try:
                    data = store.get("/p")
                except PathNotFoundError:
                    continue
                if data not in contents:
                    torn.append(data)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            race(8, lambda i: self._put_each(store, "/p", [contents[(i + k) % 8] for k in range(4)]))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not torn
        store.delete("/p")

    @staticmethod
    def _put_each(store: StorageDriver, path: str, contents: list[bytes]) -> None:
        for content in contents:
            store.put(path, content)
