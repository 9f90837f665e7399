"""The conformance suite every driver must pass.

Subclass :class:`DriverConformance` and give it one fixture, ``driver``, returning
a driver on an empty store (a fresh bucket, container or folder)::

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        def driver(self, tmp_path):
            return MyDriver(rootdirectory=str(tmp_path))

The suite makes "another instance of the same store" with ``pickle`` (drivers
pickle by their parameters), and takes its sizes from ``driver.chunk_size`` so
multipart and multi-block paths really run. Every test leaves the store empty;
the suite checks it after each test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ..driver import StorageDriver
from ..errors import (
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedMethodError,
)
from ..listing import FileInfo, walk_key
from .contract_errors import ErrorContract
from .contract_namespace import NamespaceContract
from .contract_races import RaceContract, TearingContract
from .contract_rules import UniformRulesContract
from .contract_writers import WriterContract, WriterIsolationContract
from .helpers import SuiteBase, fetch, payload, race, reopen

VALID_PATHS = [
    "/a",
    "/a/b/c",
    "/A-Z_a-z.0-9",
    "/...",
    "/a/.hidden",
    "/-",
    "/_",
    "/" + "/".join("d" for _ in range(12)),
    "/" + "n" * 200,
    "/docker/registry/v2/blobs/sha256/ab/ab12/data",
]

INVALID_PATHS: list[Any] = [
    "",
    "a",
    "a/b",
    "//",
    "/a/",
    "/a//b",
    "/.",
    "/..",
    "/a/..",
    "/a/./b",
    "/../etc/passwd",
    "/a b",
    "/a\\b",
    "/a\x00b",
    "/caf\u00e9",
    "/a?b",
    "/a*b",
    "/a:b",
    "/%2e%2e",
    "/a~b",
    "/a\nb",
    b"/bytes",
    None,
    42,
]


class DriverConformance(
    WriterContract,
    WriterIsolationContract,
    RaceContract,
    TearingContract,
    NamespaceContract,
    ErrorContract,
    UniformRulesContract,
    SuiteBase,
):
    """The contract of :class:`~blobdrivers.StorageDriver`, as tests. Provide the ``driver`` fixture."""

    # ------------------------------------------------------------------ paths

    @pytest.mark.parametrize("path", VALID_PATHS)
    def test_valid_paths_round_trip(self, store: StorageDriver, path: str) -> None:
        store.put(path, b"content of " + path.encode())
        assert store.get(path) == b"content of " + path.encode()
        assert store.stat(path).path == path
        store.delete(path)
        with pytest.raises(PathNotFoundError):
            store.stat(path)

    @pytest.mark.parametrize("path", INVALID_PATHS, ids=repr)
    def test_invalid_paths_are_refused_everywhere(self, store: StorageDriver, path: Any) -> None:
        store.put("/ok", b"x")
        calls: list[Callable[[], Any]] = [
            lambda: store.put(path, b"data"),
            lambda: store.get(path),
            lambda: store.stream(path),
            lambda: store.writer(path),
            lambda: store.stat(path),
            lambda: store.list(path),
            lambda: list(store.walk(path)),
            lambda: store.delete(path),
            lambda: store.move("/ok", path),
            lambda: store.move(path, "/ok"),
            lambda: store.cat(path, ["/ok"]),
            lambda: store.cat("/ok", [path]),
            lambda: store.url_for(path),
        ]
        for call in calls:
            with pytest.raises(InvalidPathError) as caught:
                call()
            assert isinstance(caught.value, ValueError)
        assert store.get("/ok") == b"x"
        store.delete("/ok")

    def test_root_is_allowed_only_for_stat_list_walk(self, store: StorageDriver) -> None:
        assert store.list("/") == []
        assert list(store.walk("/")) == []
        with contextlib.suppress(PathNotFoundError):
            assert store.stat("/").is_dir
        for call in (
            lambda: store.put("/", b""),
            lambda: store.get("/"),
            lambda: store.delete("/"),
            lambda: store.writer("/"),
            lambda: store.stream("/"),
        ):
            with pytest.raises(InvalidPathError):
                call()

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

    # ------------------------------------------------------------------ conditions

    def _conditional(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except UnsupportedMethodError as exc:
            pytest.skip(f"driver declares this condition unsupported: {exc}")

    def test_put_if_none_match(self, store: StorageDriver) -> None:
        self._conditional(lambda: store.put("/c", b"first", if_none_match="*"))
        with pytest.raises(PreconditionFailedError):
            store.put("/c", b"second", if_none_match="*")
        assert store.get("/c") == b"first"
        store.delete("/c")

    def test_put_if_match(self, store: StorageDriver) -> None:
        store.put("/c", b"v1")
        etag = store.stat("/c").etag
        assert etag
        self._conditional(lambda: store.put("/c", b"v2", if_match=etag))
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
        store.put("/taken", b"taken")
        writer = store.writer("/taken")
        writer.write(b"new")
        with pytest.raises((PreconditionFailedError, UnsupportedMethodError)):
            writer.commit(if_none_match="*")
        assert store.get("/taken") == b"taken"
        assert writer.closed
        store.writer("/taken", append=True).cancel()
        store.put("/src", b"src")
        with pytest.raises((PreconditionFailedError, UnsupportedMethodError)):
            store.move("/src", "/taken", if_none_match="*")
        assert store.get("/taken") == b"taken"
        assert store.get("/src") == b"src"
        self._conditional(lambda: store.move("/src", "/free", if_none_match="*"))
        assert store.get("/free") == b"src"
        for path in ("/taken", "/free"):
            store.delete(path)

    def test_racing_put_if_none_match_has_one_winner(self, store: StorageDriver) -> None:
        self._conditional(lambda: store.put("/probe", b"", if_none_match="*"))
        store.delete("/probe")
        results = race(16, lambda i: store.put("/race", f"writer {i}".encode(), if_none_match="*"))
        winners = [i for i, result in enumerate(results) if result is None]
        losers = [result for result in results if result is not None]
        assert len(winners) == 1, results
        assert all(isinstance(result, PreconditionFailedError) for result in losers), losers
        assert store.get("/race") == f"writer {winners[0]}".encode()
        store.delete("/race")

    # ------------------------------------------------------------------ url_for

    def test_url_for(self, store: StorageDriver) -> None:
        store.put("/u", b"fetch me")
        try:
            url = store.url_for("/u")
        except UnsupportedMethodError as exc:
            assert exc.driver == store.name
            store.delete("/u")
            return
        status, _, body = fetch(url)
        assert (status, body) == (200, b"fetch me")
        head_url = store.url_for("/u", method="HEAD", expires_in=60)
        status, headers, _ = fetch(head_url, "HEAD")
        assert status == 200
        assert int({k.lower(): v for k, v in headers.items()}["content-length"]) == 8
        store.delete("/u")

    def test_url_for_arguments_are_checked(self, store: StorageDriver) -> None:
        store.put("/u", b"x")
        for kwargs in ({"method": "DELETE"}, {"expires_in": 0}, {"expires_in": -5}):
            with pytest.raises(ValueError):
                store.url_for("/u", **kwargs)
        store.delete("/u")

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
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: use the inherited instance, report through the pipe
            ok = b"0"
            try:
                store.put("/child", store.get("/before") + b"+child")
                if store.get("/child") == b"parent+child":
                    store.delete("/child")
                    ok = b"1"
            finally:
                os.write(write_end, ok)
                os._exit(0)
        os.close(write_end)
        outcome = os.read(read_end, 1)
        os.close(read_end)
        os.waitpid(pid, 0)
        assert outcome == b"1", "the inherited driver failed in the forked child"
        assert store.get("/before") == b"parent"
        store.delete("/before")

    # ------------------------------------------------------------------ large

    @pytest.mark.large
    def test_large_streamed_write_and_read(self, store: StorageDriver, request: pytest.FixtureRequest) -> None:
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
