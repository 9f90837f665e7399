"""Conformance of writers: their life cycle, and the isolation of concurrent writers of one path.

:class:`WriterContract`: a writer publishes only at commit, resumes in new
instances, and follows its state machine. :class:`WriterIsolationContract`:
concurrent writers of one path are isolated; a resumed writer holds only its own
session's data.

A writer's *session* is everything one ``writer(path)`` stages. ``close()`` parks
it; ``writer(path, append=True)`` takes over a parked session (the most recently
parked one) and nothing else; ``writer(path)`` drops parked sessions only. Live
writers, in-flight multipart puts and their uploads are never adopted or dropped
by another writer, and two writers that both commit both succeed: the later
commit's whole content wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading

import pytest

from ..driver import RacePoint, StorageDriver
from ..errors import PathNotFoundError, StorageError, WriterClosedError
from ..writer import Writer
from .helpers import SuiteBase, payload, reopen

_NOT_REACHED = "the driver never reached the 'part.upload' race point (it sends no parts)"


class WriterIsolationContract(SuiteBase):
    """Concurrent writers of one path are isolated; a resumed writer holds exactly what its own session wrote."""

    def test_two_interleaved_writers_both_commit_and_the_later_commit_wins(self, store: StorageDriver) -> None:
        size = self.multi_chunk(store)
        step = store.chunk_size // 2 + 3
        first, second = payload(size, seed=1), payload(size, seed=2)
        one = store.writer("/w")
        one.write(first[: 3 * step])  # more than a chunk: its first part is on its way
        two = reopen(store).writer("/w")  # opening a second writer must not touch the first one's upload
        two.write(second[: 3 * step])
        for start in range(3 * step, size, step):
            one.write(first[start : start + step])
            two.write(second[start : start + step])
        assert one.size == two.size == size
        one.commit()
        assert store.get("/w") == first
        two.commit()
        assert store.get("/w") == second
        store.delete("/w")

    def test_a_writer_never_touches_a_multipart_put_in_flight(self, store: StorageDriver) -> None:
        old = payload(100, seed=3)
        store.put("/p", old)
        data = payload(self.multi_chunk(store), seed=4)
        other = reopen(store)
        opened: list[Writer] = []
        errors: list[BaseException] = []
        once = threading.Lock()

        def open_writers(point: RacePoint) -> None:
            if point.index != 2 or not once.acquire(blocking=False):
                return
            try:  # the put's upload is in progress now: neither writer may see, adopt or abort it
                opened.append(other.writer("/p"))
                opened.append(other.writer("/p", append=True))
            except BaseException as exc:
                errors.append(exc)

        store.race_hooks["part.upload"] = open_writers
        step = store.chunk_size // 2 + 1
        store.put("/p", (data[start : start + step] for start in range(0, len(data), step)))  # streamed in parts
        store.race_hooks.clear()
        if not once.locked():
            store.delete("/p")
            pytest.skip(_NOT_REACHED)
        assert not errors, f"opening a writer during a put failed: {errors[0]!r}"
        fresh, appender = opened
        assert fresh.size == 0
        assert appender.size == len(old)  # appends to what was committed when it opened, nothing of the put
        assert store.get("/p") == data
        fresh.cancel()
        appender.cancel()
        assert store.get("/p") == data
        store.delete("/p")

    def test_resume_after_a_failed_part_holds_only_what_its_own_session_wrote(self, store: StorageDriver) -> None:
        part = store.chunk_size
        seen: list[int] = []
        third_sent = threading.Event()

        def fail_first(point: RacePoint) -> None:
            seen.append(point.index)
            if point.index == 3:
                third_sent.set()
            if point.index == 1:
                # Fail part 1 itself (keyed on the index: parts go out in parallel, in any
                # order), once parts 2 and 3 are on their way where the driver sends parts
                # in parallel; a driver sending them one by one never gets that far.
                third_sent.wait(timeout=5)
                raise ConnectionResetError("injected failure of part 1")

        store.race_hooks["part.upload"] = fail_first
        written = payload(3 * part, seed=5)
        first = store.writer("/r")
        with contextlib.suppress(StorageError):
            first.write(written)  # may see part 1's failure already
        with contextlib.suppress(StorageError):
            first.close()  # parks what is durable, and may say that it is less than was written
        store.race_hooks.clear()
        if not seen:
            reopen(store).writer("/r").cancel()
            pytest.skip(_NOT_REACHED)

        second = reopen(store).writer("/r", append=True)
        kept = second.size
        # Nothing past the failed part 1 counts (parts 2 and 3 landed after a gap); a driver
        # whose progress is contiguous may have parked all of it instead (e.g. unsent bytes
        # kept in its parked tail).
        assert kept in (0, len(written))
        content = payload(part + 10, seed=6)
        second.write(content)
        second.close()

        third = reopen(store).writer("/r", append=True)
        assert third.size == kept + part + 10  # the second session's part and tail, no stale part of the first
        third.commit()
        assert store.get("/r") == written[:kept] + content
        store.delete("/r")


class WriterContract(SuiteBase):
    """A writer publishes only at commit, resumes in new instances, and follows its state machine."""

    def test_writer_publishes_only_on_commit(self, store: StorageDriver) -> None:
        writer = store.writer("/w")
        assert writer.write(b"hello ") == 6
        assert writer.write(memoryview(b"world")) == 5
        assert writer.size == 11
        with pytest.raises(PathNotFoundError):
            store.stat("/w")
        assert store.list("/") == []
        writer.commit()
        assert store.get("/w") == b"hello world"
        store.delete("/w")

    def test_writer_context_manager_commits(self, store: StorageDriver) -> None:
        with store.writer("/w") as writer:
            writer.write(b"data")
        assert store.get("/w") == b"data"
        store.delete("/w")

    def test_exception_in_writer_block_publishes_nothing_and_keeps_progress(self, store: StorageDriver) -> None:
        store.put("/w", b"old")
        with pytest.raises(RuntimeError), store.writer("/w") as writer:
            writer.write(b"partial")
            raise RuntimeError("client went away")
        assert store.get("/w") == b"old"
        resumed = reopen(store).writer("/w", append=True)
        assert resumed.size == len(b"partial")
        resumed.write(b" and the rest")
        resumed.commit()
        assert store.get("/w") == b"partial and the rest"
        store.delete("/w")

    def test_resume_small_appends_in_new_instances(self, store: StorageDriver) -> None:
        expected = b""
        writer = store.writer("/w")
        for round_ in range(4):
            piece = f"piece {round_};".encode()
            writer.write(piece)
            expected += piece
            writer.close()
            writer = reopen(store).writer("/w", append=True)
            assert writer.size == len(expected)
        writer.commit()
        assert store.get("/w") == expected
        store.delete("/w")

    def test_resume_multi_chunk_appends_in_new_instances(self, store: StorageDriver) -> None:
        chunk = store.chunk_size
        pieces = [payload(n, seed=n) for n in (chunk + 13, 2 * chunk - 1, chunk // 3, chunk)]
        writer = store.writer("/w")
        written = 0
        for piece in pieces:
            writer.write(piece)
            written += len(piece)
            writer.close()
            writer = reopen(store).writer("/w", append=True)
            assert writer.size == written
        writer.commit()
        got = store.get("/w")
        assert len(got) == written
        assert hashlib.sha256(got).digest() == hashlib.sha256(b"".join(pieces)).digest()
        store.delete("/w")

    def test_zero_length_writer_then_append(self, store: StorageDriver) -> None:
        store.writer("/z").commit()
        assert store.get("/z") == b""
        assert store.stat("/z").size == 0
        appender = store.writer("/z", append=True)
        assert appender.size == 0
        appender.write(b"appended")
        appender.commit()
        assert store.get("/z") == b"appended"
        store.delete("/z")

    def test_append_to_committed_content(self, store: StorageDriver) -> None:
        head = payload(store.chunk_size + 5, seed=9)
        store.put("/a", head)
        appender = reopen(store).writer("/a", append=True)
        assert appender.size == len(head)
        appender.write(b"tail")
        assert store.get("/a") == head
        appender.commit()
        assert store.get("/a") == head + b"tail"
        store.delete("/a")

    def test_append_with_nothing_there(self, store: StorageDriver) -> None:
        with pytest.raises(PathNotFoundError):
            store.writer("/nothing", append=True)

    def test_writer_state_machine(self, store: StorageDriver) -> None:
        writer = store.writer("/w")
        writer.write(b"x")
        writer.close()
        writer.close()  # idempotent
        for call in (lambda: writer.write(b"y"), writer.commit, writer.cancel):
            with pytest.raises(WriterClosedError):
                call()
        committed = store.writer("/w", append=True)
        committed.commit()
        for call in (lambda: committed.write(b"y"), committed.commit, committed.cancel):
            with pytest.raises(WriterClosedError):
                call()
        cancelled = store.writer("/w2")
        cancelled.write(b"x")
        cancelled.cancel()
        for call in (lambda: cancelled.write(b"y"), cancelled.commit, cancelled.cancel):
            with pytest.raises(WriterClosedError):
                call()
        store.delete("/w")

    def test_cancel_publishes_nothing_and_drops_progress(self, store: StorageDriver) -> None:
        store.put("/c", b"committed")
        writer = store.writer("/c")
        writer.write(payload(store.chunk_size + 1))
        writer.cancel()
        assert store.get("/c") == b"committed"
        resumed = store.writer("/c", append=True)
        assert resumed.size == len(b"committed")  # appends to committed content, nothing staged
        resumed.cancel()
        store.delete("/c")
        writer = store.writer("/new")
        writer.write(b"x")
        writer.cancel()
        with pytest.raises(PathNotFoundError):
            store.stat("/new")
        with pytest.raises(PathNotFoundError):
            store.writer("/new", append=True)

    def test_fresh_writer_discards_upload_in_progress(self, store: StorageDriver) -> None:
        writer = store.writer("/f")
        writer.write(b"abandoned")
        writer.close()
        fresh = store.writer("/f")
        assert fresh.size == 0
        fresh.write(b"new")
        fresh.commit()
        assert store.get("/f") == b"new"
        store.delete("/f")

    def test_writer_replaces_content_only_at_commit(self, store: StorageDriver) -> None:
        store.put("/r", b"old content")
        writer = store.writer("/r")
        writer.write(payload(store.chunk_size * 2 + 1))
        assert store.get("/r") == b"old content"
        writer.commit()
        assert store.stat("/r").size == store.chunk_size * 2 + 1
        store.delete("/r")
