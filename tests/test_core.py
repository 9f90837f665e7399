"""The shared core: paths, params, factory, errors, transfer, retry, reader, writer, instrumentation."""

from __future__ import annotations

import io
import logging
import pickle
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers import factory, paths
from blobdrivers.driver import CallEvent, StorageDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import (
    ConfigError,
    DriverNotFoundError,
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedMethodError,
    WriterClosedError,
)
from blobdrivers.listing import FileInfo, walk_flat, walk_key
from blobdrivers.params import GiB, MiB, Params
from blobdrivers.retry import RetryPolicy
from blobdrivers.transfer import (
    MAX_PARTS,
    BackgroundParts,
    PartBuffer,
    Source,
    growing_part_sizes,
    part_size_for,
    run_bounded,
    upload_parts,
)

# ---------------------------------------------------------------------- paths


def test_path_rule() -> None:
    assert paths.is_valid("/a/b-c/d.e_f")
    assert paths.is_valid("/", allow_root=True)
    assert not paths.is_valid("/")
    for bad in ("", "a", "/a/", "//a", "/a/../b", "/.", "/a b", "/é", "/~"):
        assert not paths.is_valid(bad), bad
    with pytest.raises(InvalidPathError, match="invalid path '/a/'"):
        paths.validate("/a/")
    with pytest.raises(InvalidPathError, match="root"):
        paths.validate("/")


def test_root_prefix_and_keys() -> None:
    assert paths.normalize_root("") == ""
    assert paths.normalize_root("/registry/") == paths.normalize_root("registry") == "/registry"
    with pytest.raises(ConfigError, match="rootdirectory"):
        paths.normalize_root("/a/../b")
    assert paths.join("/r", "/a") == "/r/a"
    assert paths.join("/r", "/") == "/r"
    assert paths.join("", "/") == "/"
    assert paths.strip("/r", "/r/a") == "/a"
    assert paths.to_key("/r/a") == "r/a"
    assert paths.dir_key("/r") == "r/"
    assert paths.dir_key("/") == ""
    assert paths.from_key("a/b") == "/a/b"
    assert paths.from_key("a/~hidden") is None
    assert paths.ancestors("/a/b/c") == ["/a", "/a/b"]


def test_walk_flat_infers_directories_in_walk_order() -> None:
    keys = sorted(["/a-b", "/a/x", "/a/y/z", "/a.c/q", "/b"])
    now = blobdrivers.FileInfo("/", 0, __import__("datetime").datetime.now(__import__("datetime").UTC)).modified
    entries = list(walk_flat((FileInfo(k, 1, now) for k in keys), "/"))
    assert [(e.path, e.is_dir) for e in entries] == [
        ("/a-b", False),
        ("/a.c", True),
        ("/a.c/q", False),
        ("/a", True),
        ("/a/x", False),
        ("/a/y", True),
        ("/a/y/z", False),
        ("/b", False),
    ]
    assert entries == sorted(entries, key=walk_key)
    assert [e.path for e in walk_flat((FileInfo(k, 1, now) for k in ["/a/x", "/a/y/z"]), "/a")] == [
        "/a/x",
        "/a/y",
        "/a/y/z",
    ]


# ---------------------------------------------------------------------- params


def test_params_types_and_errors() -> None:
    p = Params("t", {"a": "10MiB", "b": "5M", "c": 7, "flag": "YES", "n": "3", "mode": "Standard", "s": "x"})
    assert p.size("a", 0) == 10 * MiB
    assert p.size("b", 0) == 5 * MiB
    assert p.size("c", 0) == 7
    assert p.size("absent", 42) == 42
    assert p.boolean("flag", False) is True
    assert p.integer("n", 0, minimum=1) == 3
    assert p.choice("mode", "x", {"standard": "S", "adaptive": "A"}) == "S"
    assert p.string("s") == "x"
    p.done()
    with pytest.raises(ConfigError, match=r"invalid value '1KiB' for parameter 'chunk': must be at least 1025 bytes"):
        Params("t", {"chunk": "1KiB"}).size("chunk", 0, minimum=1024 + 1)
    with pytest.raises(ConfigError, match="multiple of 262144"):
        Params("t", {"chunk": 1000}).size("chunk", 0, multiple_of=256 * 1024)
    with pytest.raises(ConfigError, match="expected true or false"):
        Params("t", {"f": "perhaps"}).boolean("f", False)
    with pytest.raises(ConfigError, match="allowed values are adaptive, standard"):
        Params("t", {"m": "fast"}).choice("m", "x", {"standard": 1, "adaptive": 2})
    with pytest.raises(ConfigError, match="'bucket' is required"):
        Params("t", {}).required_string("bucket")
    with pytest.raises(ConfigError, match="unknown parameter"):
        Params("t", {"typo": 1}).done()


def test_params_aliases_and_secrets() -> None:
    p = Params("t", {"endpoint_url": "http://x", "secretkey": [12345]}, secrets={"secretkey"})
    assert p.string("regionendpoint", aliases=("endpoint_url",)) == "http://x"
    with pytest.raises(ConfigError) as caught:
        p.string("secretkey")
    assert "12345" not in str(caught.value)
    assert "(hidden)" in str(caught.value)


# ---------------------------------------------------------------------- errors


def test_error_hierarchy_and_pickling() -> None:
    assert issubclass(PathNotFoundError, FileNotFoundError)
    assert issubclass(InvalidPathError, ValueError)
    assert issubclass(InvalidOffsetError, ValueError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(DriverNotFoundError, LookupError)
    assert issubclass(UnsupportedMethodError, NotImplementedError)
    for cls in (StorageError, PathNotFoundError, PreconditionFailedError, ConfigError, WriterClosedError):
        error = cls("message", driver="s3", path="/p")
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.message, copy.driver, copy.path) == (cls, "message", "s3", "/p")
        assert str(copy) == "s3: message"


# ---------------------------------------------------------------------- factory


def test_create_from_url_from_config(tmp_path: Path) -> None:
    assert isinstance(blobdrivers.create("inmemory"), InMemoryDriver)
    fs = blobdrivers.from_url(f"file://{tmp_path}/store")
    assert fs.name == "filesystem"
    fs.put("/x", b"1")
    assert (tmp_path / "store" / "x").read_bytes() == b"1"
    cfg = blobdrivers.from_config(
        {
            "filesystem": {"rootdirectory": str(tmp_path / "store")},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
            "redirect": {"disable": True},
        }
    )
    assert cfg.get("/x") == b"1"
    assert blobdrivers.from_url("memory://n1?rootdirectory=/sub").below("/deeper") is not None
    assert blobdrivers.from_config({"inmemory": None}).name == "inmemory"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: blobdrivers.from_url("ftp://host/x"), "unsupported URL scheme 'ftp'"),
        (lambda: blobdrivers.from_url("file://otherhost/x"), "names no host"),
        (lambda: blobdrivers.from_url("memory://?name=a&name=b"), "given twice"),
        (lambda: blobdrivers.from_url("s3://AKIA:secret@bucket/x"), "credentials in the URL"),
        (lambda: blobdrivers.from_config({}), "exactly one driver"),
        (lambda: blobdrivers.from_config({"inmemory": {}, "filesystem": {}}), "exactly one driver"),
        (lambda: blobdrivers.from_config({"inmemory": "x"}), "must be a mapping"),
        (lambda: blobdrivers.create("inmemory", {"bogus": 1}), "unknown parameter"),
    ],
)
def test_factory_config_errors(call: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        call()
    assert "secret" not in str(caught.value)


def test_unknown_driver_lists_available() -> None:
    with pytest.raises(DriverNotFoundError) as caught:
        blobdrivers.create("nosuch")
    assert "filesystem" in str(caught.value) and "inmemory" in str(caught.value)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # the registration ends with the test
    blobdrivers.register("fake", "tests.fake_drivers.missing_sdk:Driver", sdk="fake-sdk", extra="fake")
    message = r"needs fake-sdk and its dependencies \(module 'definitely_not_an_installed_sdk' is missing\): "
    with pytest.raises(DriverNotFoundError, match=message + r'pip install "blobdrivers\[fake\]"'):
        blobdrivers.create("fake")


def test_register_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Mapping[str, Any]] = []

    def make(params: Mapping[str, Any]) -> StorageDriver:
        created.append(params)
        return InMemoryDriver()

    blobdrivers.register("mine", make)
    assert "mine" in blobdrivers.available_drivers()
    blobdrivers.create("mine", {"a": 1})
    assert created == [{"a": 1}]

    class FakeEntryPoint:
        name = "plugged"
        value = "x:y"

        def load(self) -> type[StorageDriver]:
            return InMemoryDriver

    monkeypatch.setattr(
        factory, "entry_points", lambda **kw: [FakeEntryPoint()] if kw.get("name") in (None, "plugged") else []
    )
    assert "plugged" in blobdrivers.available_drivers()
    assert isinstance(blobdrivers.create("plugged", {"name": "ep"}), InMemoryDriver)


# ---------------------------------------------------------------------- transfer


def test_part_sizes() -> None:
    assert part_size_for(None, 10 * MiB) == 10 * MiB
    assert part_size_for(50 * GiB, 10 * MiB) == 10 * MiB
    five_tib = 5 * 1024 * GiB
    size = part_size_for(five_tib, 10 * MiB)
    assert size * MAX_PARTS >= five_tib and size % MiB == 0
    with pytest.raises(ValueError, match="exceeds"):
        part_size_for(10**15, 10 * MiB, max_part_size=5 * GiB)
    sizes = list(growing_part_sizes(10 * MiB))
    assert len(sizes) == MAX_PARTS and sizes[0] == 10 * MiB and sum(sizes) > 5 * 1024 * GiB


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d,
        bytearray,
        io.BytesIO,
        lambda d: (d[i : i + 7] for i in range(0, len(d), 7)),
        lambda d: io.BufferedReader(io.BytesIO(d)),  # type: ignore[arg-type]
    ],
    ids=["bytes", "bytearray", "file", "iterable", "buffered"],
)
def test_source_kinds(make: Any) -> None:
    data = bytes(range(256)) * 40
    source = Source(make(data))
    assert source.size in (None, len(data))
    out = bytearray()
    while chunk := source.read(1000):
        out += chunk
    assert out == data


def test_source_rejects_text_and_text_chunks() -> None:
    with pytest.raises(TypeError):
        Source("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Source(iter(["text"])).read(10)  # type: ignore[list-item]


class _InFlight:
    """Counts the calls inside ``with meter:`` at once and remembers the most there were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._now -= 1


def test_upload_parts_is_parallel_bounded_and_ordered() -> None:
    meter = _InFlight()
    seen: dict[int, bytes] = {}

    def upload(number: int, data: memoryview) -> int:
        with meter:
            time.sleep(0.01)
            seen[number] = bytes(data)
        return number

    data = bytes(range(256)) * 4000
    results = upload_parts(Source(io.BytesIO(data)), iter(lambda: 10_000, None), upload, concurrency=4)
    assert results == list(range(1, len(results) + 1))
    assert b"".join(seen[n] for n in results) == data
    assert 1 < meter.peak <= 4
    assert upload_parts(Source(b""), iter(lambda: 10, None), upload, concurrency=2) == [1]


def test_run_bounded_stops_on_first_failure() -> None:
    started: list[int] = []

    def task(i: int) -> Any:
        def run() -> int:
            started.append(i)
            if i == 2:
                raise RuntimeError("boom")
            time.sleep(0.01)
            return i

        return run

    with pytest.raises(RuntimeError, match="boom"):
        run_bounded((task(i) for i in range(100)), 2)
    assert len(started) < 10


def test_background_parts_bound_copy_and_keep_the_prefix() -> None:
    meter = _InFlight()
    sent: dict[int, bytes] = {}

    def upload(index: int, data: memoryview) -> None:
        with meter:
            time.sleep(0.01)
        if index == 3:
            raise RuntimeError("boom")
        sent[index] = bytes(data)

    parts = BackgroundParts(2, upload)
    numbers = iter(range(1, 100))
    data = bytearray(b"a" * 6)
    for _ in range(6):
        parts.send(memoryview(data), lambda size: next(numbers))
        data[:] = b"b" * 6  # the caller's memory changes once send returned: the part was copied
        if parts.failure is not None:
            break
    parts.drain()
    parts.shutdown()
    assert isinstance(parts.failure, RuntimeError)
    assert parts.first_failed == 3
    assert {1, 2} <= set(sent) and 3 not in sent
    assert sent[1] == b"a" * 6
    assert meter.peak <= 2

    def refuse(size: int) -> int:
        raise ValueError("an earlier failure")

    refusing = BackgroundParts(1, upload)
    for _ in range(3):
        with pytest.raises(ValueError):
            refusing.send(b"x", refuse)
    refusing.send(b"x", lambda size: 1)  # a slot kept by a refused part would block here
    refusing.drain()
    refusing.shutdown()
    assert refusing.failure is None and sent[1] == b"x"


def test_part_buffer() -> None:
    buffer = PartBuffer(4)
    assert buffer.write(b"abc") == []
    assert buffer.write(b"defghij") == [b"abcd", b"efgh"]
    assert len(buffer) == 2
    assert buffer.take_rest() == b"ij"


# ---------------------------------------------------------------------- retry


def test_retry_policy() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError()
        return "ok"

    policy = RetryPolicy(attempts=5, base_delay=0.001)
    assert policy.call(flaky, is_transient=lambda e: isinstance(e, ConnectionError), what="t") == "ok"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        policy.call(
            lambda: (calls.append(1), (_ for _ in ()).throw(ValueError()))[1], is_transient=lambda e: False, what="t"
        )
    assert len(calls) == 1
    with pytest.raises(ConnectionResetError):
        RetryPolicy(attempts=2, base_delay=0.001).call(flaky_always, is_transient=lambda e: True, what="t")


def flaky_always() -> None:
    raise ConnectionResetError()


def test_same_store_includes_the_root(tmp_path: Path) -> None:
    fs_a = blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path / "a")})
    assert fs_a.same_store(blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path / "a") + "/"}))
    assert fs_a.same_store(blobdrivers.from_url((tmp_path / "a").as_uri()))
    assert not fs_a.same_store(blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path / "b")}))
    assert not fs_a.same_store(fs_a.below("/sub"))
    memory = InMemoryDriver(name="same-store")
    assert memory.same_store(InMemoryDriver(name="same-store", rootdirectory="/"))
    assert not memory.same_store(memory.below("/sub"))
    assert not memory.same_store(InMemoryDriver(name="other-store"))
    assert not memory.same_store(fs_a)


def test_filesystem_root_is_made_by_the_first_write_only(tmp_path: Path) -> None:
    root = tmp_path / "later"
    store = blobdrivers.create("filesystem", {"rootdirectory": str(root)})
    assert store.list("/") == [] and list(store.walk()) == []
    with pytest.raises(PathNotFoundError):
        store.stat("/")
    with pytest.raises(PathNotFoundError):
        store.get("/a")
    with pytest.raises(PathNotFoundError):
        store.delete("/a")
    with pytest.raises(PathNotFoundError):
        store.move("/a", "/b")
    store.below("/child").list("/")
    assert not root.exists()
    store.put("/a", b"x")
    assert store.get("/a") == b"x" and store.list("/") == ["/a"]
    other = blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path / "by-writer")})
    with other.writer("/w") as writer:
        writer.write(b"w")
        writer.commit()
    assert other.get("/w") == b"w"


# ---------------------------------------------------------------------- instrumentation and redaction


class _SecretDriver(InMemoryDriver):
    name = "secretive"
    secret_params = frozenset({"password"})

    def __init__(self, **params: Any) -> None:
        self.password = params.pop("password")
        super().__init__(**params)
        self._params["password"] = self.password

    def _stat(self, full: str) -> FileInfo:
        raise RuntimeError(f"backend said no for password={self.password}")


def test_secrets_are_redacted_from_repr_and_errors() -> None:
    driver = _SecretDriver(password="hunter2-very-secret")
    assert "hunter2" not in repr(driver)
    with pytest.raises(StorageError) as caught:
        driver.stat("/x")
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_redact_url_masks_credentials_as_written() -> None:
    from blobdrivers.redaction import redact_url

    url = "s3://b/p?region=eu&accesskey=AKID1&secretkey=a%2Fb%2Bc&sessiontoken=T0K#/x"
    assert redact_url(url) == "s3://b/p?region=eu&accesskey=***&secretkey=***&sessiontoken=***#/x"
    signed = "https://h/o?X-Amz-Credential=C1&X-Amz-Signature=S1&sig=S2&Expires=9"
    assert redact_url(signed) == "https://h/o?X-Amz-Credential=***&X-Amz-Signature=***&sig=***&Expires=9"
    assert redact_url("redis://user:pa55@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("x://c?pin=1234&name=n", {"pin"}) == "x://c?pin=***&name=n"
    assert redact_url("x://c?spin=1234") == "x://c?spin=1234"


def test_observers_and_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    driver = InMemoryDriver()
    events: list[CallEvent] = []
    driver.observers.append(events.append)
    with caplog.at_level(logging.DEBUG, logger="blobdrivers"):
        driver.put("/a", b"x")
        with pytest.raises(PathNotFoundError):
            driver.get("/missing")
    assert [(e.operation, e.path, e.error is None) for e in events] == [("put", "/a", True), ("get", "/missing", False)]
    assert all(e.duration >= 0 and e.driver == "inmemory" for e in events)
    assert any("inmemory put /a" in record.getMessage() for record in caplog.records)


def test_writer_failed_commit_keeps_progress() -> None:
    driver = InMemoryDriver()
    driver.put("/p", b"exists")
    writer = driver.writer("/p")
    writer.write(b"staged")
    with pytest.raises(PreconditionFailedError):
        writer.commit(if_none_match="*")
    assert writer.closed
    with pytest.raises(WriterClosedError, match="already closed"):
        writer.write(b"more")
    resumed = driver.writer("/p", append=True)
    assert resumed.size == 6
    resumed.commit()
    assert driver.get("/p") == b"staged"


def test_url_for_unsupported_names_driver() -> None:
    with pytest.raises(UnsupportedMethodError) as caught:
        InMemoryDriver().url_for("/x")
    assert caught.value.driver == "inmemory"


def test_reader_read_sizes() -> None:
    driver = InMemoryDriver(chunksize=3)
    driver.put("/r", b"0123456789")
    reader = driver.stream("/r", 2, 6)
    assert reader.read(4) == b"2345"
    assert reader.read(10) == b"67"
    assert reader.read(1) == b""
    assert list(driver.stream("/r")) == [b"012", b"345", b"678", b"9"]
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)


def test_reopening_reader_resumes_after_a_cut() -> None:
    data = bytes(range(256)) * 100
    opened: list[tuple[int, int | None]] = []

    class Cut(io.BytesIO):
        def __init__(self, payload: bytes, fail_after: int | None) -> None:
            super().__init__(payload)
            self.fail_after = fail_after

        def readinto(self, buffer: Any) -> int:
            if self.fail_after is not None and self.tell() >= self.fail_after:
                raise ConnectionResetError("cut")
            return super().readinto(buffer[:1000])

    def open_at(offset: int, length: int | None) -> Any:
        opened.append((offset, length))
        end = len(data) if length is None else offset + length
        return Cut(data[offset:end], 3000 if len(opened) < 3 else None)

    from blobdrivers.reader import ReopeningReader

    reader = ReopeningReader(
        open_at,
        100,
        20_000,
        retry=RetryPolicy(attempts=5, base_delay=0.001),
        is_transient=lambda e: isinstance(e, ConnectionError),
    )
    out = bytearray()
    buffer = bytearray(4096)
    while got := reader.readinto(memoryview(buffer)):
        out += buffer[:got]
    assert bytes(out) == data[100:20_100]
    assert opened == [(100, 20_000), (3100, 17_000), (6100, 14_000)]
