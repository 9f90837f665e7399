"""Conformance: put, get, stat, stream, the writer's life cycle, url_for and the large streamed round trip."""

from __future__ import annotations

import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import InvalidOffsetError, PathNotFoundError, WriterClosedError
from ..listing import FileInfo
from .helpers import SuiteBase, fetch, needs, payload, race, reopen


class ReadWriteContract(SuiteBase):
    """Content goes in whole and comes out whole, from any offset; a writer publishes only on commit."""

    # ------------------------------------------------------------------ put / get

    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b"x",
            "unicode \u2603 \U0001f40d text".encode(),
            b"\xff\xfe\x00\x80 not utf-8 \xc3\x28",
            bytes(range(256)) * 4,
        ],
        ids=["empty", "one-byte", "utf-8", "non-utf-8", "all-bytes"],
    )
    def test_put_get(self, store: StorageDriver, content: bytes) -> None:
        store.put("/blob", content)
        assert store.get("/blob") == content
        info = store.stat("/blob")
        assert (info.size, info.is_dir) == (len(content), False)
        store.delete("/blob")

    def test_put_multi_chunk_and_every_data_kind(self, store: StorageDriver) -> None:
        size = self.multi_chunk(store)
        content = payload(size)
        kinds: dict[str, Any] = {
            "bytes": content,
            "bytearray": bytearray(content),
            "memoryview": memoryview(content),
            "file": io.BytesIO(content),
            "iterable": (content[i : i + 99991] for i in range(0, size, 99991)),
        }
        for kind, data in kinds.items():
            store.put(f"/{kind}", data)
            assert hashlib.sha256(store.get(f"/{kind}")).digest() == hashlib.sha256(content).digest(), kind
            assert store.stat(f"/{kind}").size == size
            store.delete(f"/{kind}")

    def test_put_file_object_reads_from_current_position(self, store: StorageDriver) -> None:
        source = io.BytesIO(b"skipped|kept")
        source.seek(8)
        store.put("/f", source)
        assert store.get("/f") == b"kept"
        store.delete("/f")

    def test_put_rejects_text(self, store: StorageDriver) -> None:
        with pytest.raises(TypeError):
            store.put("/t", "text is not bytes")  # type: ignore[arg-type]
        with pytest.raises(PathNotFoundError):
            store.stat("/t")

    def test_overwrite_truncates(self, store: StorageDriver) -> None:
        store.put("/o", b"a much longer first content")
        store.put("/o", b"short")
        assert store.get("/o") == b"short"
        assert store.stat("/o").size == 5
        store.delete("/o")

    def test_get_missing_and_directory(self, store: StorageDriver) -> None:
        with pytest.raises(PathNotFoundError) as caught:
            store.get("/missing")
        assert isinstance(caught.value, FileNotFoundError)
        assert caught.value.driver == store.name
        store.put("/dir/file", b"x")
        with pytest.raises(PathNotFoundError):
            store.get("/dir")
        with pytest.raises(PathNotFoundError):
            store.stream("/dir").read()
        store.delete("/dir")

    # ------------------------------------------------------------------ stat

    def test_stat_file_and_directory(self, store: StorageDriver) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        store.put("/s/t/file", b"12345")
        info = store.stat("/s/t/file")
        assert isinstance(info, FileInfo)
        assert (info.path, info.size, info.is_dir) == ("/s/t/file", 5, False)
        assert info.modified.tzinfo is not None and info.modified.utcoffset() == timedelta(0)
        assert before <= info.modified <= datetime.now(UTC) + timedelta(minutes=5)
        assert info.etag
        for directory in ("/s", "/s/t"):
            dir_info = store.stat(directory)
            assert dir_info.is_dir and dir_info.path == directory
        with pytest.raises(PathNotFoundError):
            store.stat("/s/t/fil")
        with pytest.raises(PathNotFoundError):
            store.stat("/s/t/file/below")
        store.delete("/s")

    def test_etag_changes_with_content(self, store: StorageDriver) -> None:
        store.put("/e", b"one")
        first = store.stat("/e").etag
        store.put("/e", b"two")
        assert store.stat("/e").etag != first
        store.delete("/e")

    # ------------------------------------------------------------------ stream

    @pytest.mark.parametrize("where", ["zero", "one", "middle", "last", "size", "beyond"])
    @pytest.mark.parametrize("length", [None, 0, 1, 10_000])
    def test_stream_offsets(self, store: StorageDriver, where: str, length: int | None) -> None:
        content = payload(40_000)
        size = len(content)
        offset = {"zero": 0, "one": 1, "middle": size // 2, "last": size - 1, "size": size, "beyond": size + 1000}[
            where
        ]
        store.put("/r", content)
        with store.stream("/r", offset, length) as reader:
            data = reader.read()
        end = size if length is None else offset + length
        assert data == content[offset:end]
        store.delete("/r")

    def test_stream_rejects_negative_offset_and_length(self, store: StorageDriver) -> None:
        store.put("/r", b"data")
        for kwargs in ({"offset": -1}, {"offset": 0, "length": -1}):
            with pytest.raises(InvalidOffsetError) as caught:
                store.stream("/r", **kwargs)
            assert isinstance(caught.value, ValueError)
        store.delete("/r")

    def test_stream_missing(self, store: StorageDriver) -> None:
        with pytest.raises(PathNotFoundError):
            store.stream("/missing").read()

    def test_stream_file_protocol(self, store: StorageDriver) -> None:
        size = self.multi_chunk(store)
        content = payload(size, seed=3)
        store.put("/big", content)
        with store.stream("/big") as reader:
            assert reader.readable()
            assert reader.read(10) == content[:10]
            buffer = bytearray(1000)
            assert reader.readinto(buffer) > 0
        assert reader.closed
        chunks = list(store.stream("/big", 5))
        assert b"".join(chunks) == content[5:]
        assert all(len(chunk) <= store.chunk_size for chunk in chunks)
        store.delete("/big")

    def test_concurrent_readers(self, store: StorageDriver) -> None:
        content = payload(self.multi_chunk(store), seed=4)
        store.put("/shared", content)
        digest = hashlib.sha256(content).hexdigest()
        results = race(8, lambda i: hashlib.sha256(store.stream("/shared", 0).read()).hexdigest())
        assert results == [digest] * 8
        store.delete("/shared")

    # ------------------------------------------------------------------ writer

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
        if not _resumable(store):  # the progress kept is for resuming: without it, only "publishes nothing"
            store.writer("/w").cancel()
            store.delete("/w")
            return
        resumed = reopen(store).writer("/w", append=True)
        assert resumed.size == len(b"partial")
        resumed.write(b" and the rest")
        resumed.commit()
        assert store.get("/w") == b"partial and the rest"
        store.delete("/w")

    @needs(Capability.RESUMABLE_WRITERS)
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

    @needs(Capability.RESUMABLE_WRITERS)
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
        if not _resumable(store):
            store.delete("/z")
            return
        appender = store.writer("/z", append=True)
        assert appender.size == 0
        appender.write(b"appended")
        appender.commit()
        assert store.get("/z") == b"appended"
        store.delete("/z")

    @needs(Capability.RESUMABLE_WRITERS)
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

    @needs(Capability.RESUMABLE_WRITERS)
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
        committed = store.writer("/w")
        committed.write(b"x")
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
        if _resumable(store):
            resumed = store.writer("/c", append=True)
            assert resumed.size == len(b"committed")  # appends to committed content, nothing staged
            resumed.cancel()
        store.delete("/c")
        writer = store.writer("/new")
        writer.write(b"x")
        writer.cancel()
        with pytest.raises(PathNotFoundError):
            store.stat("/new")
        if _resumable(store):
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

    # ------------------------------------------------------------------ url_for

    @needs(Capability.SIGNED_READ_URLS)
    def test_url_for(self, store: StorageDriver) -> None:
        store.put("/u", b"fetch me")
        url = store.url_for("/u")
        status, _, body = fetch(url)
        assert (status, body) == (200, b"fetch me")
        head_url = store.url_for("/u", method="HEAD", expires_in=60)
        status, headers, _ = fetch(head_url, "HEAD")
        assert status == 200
        assert int({k.lower(): v for k, v in headers.items()}["content-length"]) == 8
        store.delete("/u")

    @needs(Capability.SIGNED_PUT_URLS)
    def test_put_url(self, store: StorageDriver) -> None:
        """A plain HTTP PUT of the bytes (with these two headers) to the URL publishes them."""
        url = store.url_for("/up", method="PUT", expires_in=300)
        headers = {"Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob"}
        status, _, _ = fetch(url, "PUT", b"uploaded", headers)
        assert 200 <= status < 300
        assert store.get("/up") == b"uploaded"
        store.delete("/up")

    def test_url_for_arguments_are_checked(self, store: StorageDriver) -> None:
        store.put("/u", b"x")
        for kwargs in ({"method": "DELETE"}, {"expires_in": 0}, {"expires_in": -5}):
            with pytest.raises(ValueError):
                store.url_for("/u", **kwargs)
        store.delete("/u")

    # ------------------------------------------------------------------ large

    def test_large_streamed_write_and_read(self, store: StorageDriver, request: pytest.FixtureRequest) -> None:
        if not request.config.getoption("blobdrivers_large", default=False):
            pytest.skip("multi-GiB test: run with --blobdrivers-large")
        size = int(request.config.getoption("blobdrivers_large_size", default=2 * 1024**3) or 2 * 1024**3)
        block = payload(8 * 1024 * 1024, seed=42)
        expected = hashlib.sha256()
        started = time.monotonic()
        with store.writer("/large") as writer:
            written = 0
            while written < size:
                piece = block[: min(len(block), size - written)]
                writer.write(piece)
                expected.update(piece)
                written += len(piece)
        got = hashlib.sha256()
        with store.stream("/large") as reader:
            for chunk in reader:
                got.update(chunk)
        assert got.hexdigest() == expected.hexdigest()
        assert store.stat("/large").size == size
        store.delete("/large")
        print(f"large round trip of {size} bytes in {time.monotonic() - started:.1f} s")


def _resumable(store: StorageDriver) -> bool:
    """Whether the parts of a core writer test resuming with ``append=True`` apply (they are skipped otherwise)."""
    return Capability.RESUMABLE_WRITERS in store.capabilities
