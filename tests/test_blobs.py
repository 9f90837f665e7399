"""The content-addressed blob store (blobdrivers.blobs) on the filesystem, in-memory and S3 (moto) drivers.

Grammar and hash-state tests need no driver; everything else runs once per driver
through the public StorageDriver API only. The S3 rows need the S3 driver
(``blobdrivers.drivers.s3``) and moto: without them they fail under ``CI=true``
and skip locally, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers.blobs import (
    BlobNotFoundError,
    BlobStore,
    Descriptor,
    DigestMismatchError,
    InvalidDigestError,
    InvalidMediaTypeError,
    InvalidRepositoryNameError,
    UnsupportedDigestError,
    UploadClosedError,
    UploadNotFoundError,
    digest_of,
    hashstate,
    parse_digest,
    validate_media_type,
    validate_repository_name,
)
from blobdrivers.conditions import Conditions
from blobdrivers.driver import CallEvent, StorageDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import DriverNotFoundError, PathNotFoundError, UnsupportedMethodError
from blobdrivers.testing.helpers import payload
from tests.network import s3_params
from tests.servers.local import in_ci, require

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
SMALL_CHUNK = 64 * 1024  # filesystem / in-memory writers: several chunks per blob stay cheap
S3_CHUNK = 5 * MiB  # moto enforces S3's 5 MiB minimum for every part but the last


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- drivers


@dataclass
class Backend:
    """A driver under test, and how to see the driver's own hidden upload staging."""

    kind: str
    driver: StorageDriver
    staging_leftovers: Callable[[], list[str]]


def s3_driver(moto_server: Any, bucket: str, **extra: Any) -> StorageDriver:
    params = {**s3_params(moto_server, bucket), "chunksize": S3_CHUNK, **extra}
    try:
        return blobdrivers.create("s3", params)
    except (DriverNotFoundError, ImportError) as exc:
        require("S3 driver", f"blobdrivers.create('s3') failed: {type(exc).__name__}: {exc}")


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "filesystem":
        root = tmp_path / "store"
        driver = blobdrivers.create("filesystem", {"rootdirectory": str(root), "chunksize": SMALL_CHUNK})

        def fs_leftovers() -> list[str]:
            staging = root / "~blobdrivers"
            return sorted(str(p.relative_to(staging)) for p in staging.glob("*/*") if p.parent.name != "locks")

        return Backend(kind, driver, fs_leftovers)
    if kind == "inmemory":
        driver = blobdrivers.create("inmemory", {"chunksize": SMALL_CHUNK})
        assert isinstance(driver, InMemoryDriver)

        def memory_leftovers() -> list[str]:
            return sorted(driver._store.uploads)

        return Backend(kind, driver, memory_leftovers)
    moto_server = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("s3_bucket")
    client = request.getfixturevalue("s3_client")
    driver = s3_driver(moto_server, bucket)

    def s3_leftovers() -> list[str]:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(upload["Key"] for upload in uploads)

    return Backend(kind, driver, s3_leftovers)


@pytest.fixture(params=["filesystem", "inmemory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture
def driver(backend: Backend) -> StorageDriver:
    return backend.driver


@pytest.fixture
def store(driver: StorageDriver) -> BlobStore:
    return BlobStore(driver)


def blob_size(driver: StorageDriver) -> int:
    """A blob of a bit more than two writer chunks, so multipart/multi-chunk paths run."""
    return 2 * driver.chunk_size + 1234 if driver.chunk_size < S3_CHUNK else driver.chunk_size + 1234


def files(driver: StorageDriver, below: str = "/") -> list[str]:
    try:
        return [info.path for info in driver.walk(below) if not info.is_dir]
    except PathNotFoundError:
        return []


class Calls:
    """Records the public driver calls (operation, path) through the driver's observers."""

    def __init__(self, driver: StorageDriver) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        driver.observers.append(self)

    def __call__(self, event: CallEvent) -> None:
        with self._lock:
            self.events.append((event.operation, event.path))

    def of(self, *operations: str) -> list[tuple[str, str]]:
        with self._lock:
            return [event for event in self.events if event[0] in operations]


# --------------------------------------------------------------------------- grammars (no driver)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "a" * 64,
        "sha256:" + hashlib.sha256(b"").hexdigest(),
        "sha512:" + "0123456789abcdef" * 8,
    ],
)
def test_valid_digests(digest: str) -> None:
    algorithm, encoded = parse_digest(digest)
    assert f"{algorithm}:{encoded}" == digest


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256",
        "sha256:",
        ":abc",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha512:" + "a" * 64,
        "sha256::" + "a" * 64,
        "sha256:" + "a" * 62 + "/x",
        None,
        42,
    ],
)
def test_invalid_digests(digest: Any) -> None:
    with pytest.raises(InvalidDigestError) as info:
        parse_digest(digest)
    assert isinstance(info.value, ValueError)
    assert "digest" in str(info.value)


@pytest.mark.parametrize(
    "digest", ["md5:" + "a" * 32, "blake3:" + "a" * 64, "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g"]
)
def test_unsupported_algorithms_are_named(digest: str) -> None:
    with pytest.raises(UnsupportedDigestError, match="unsupported digest algorithm"):
        parse_digest(digest)


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d-e--f/g0/h1", "x" * 255, "0/1/2"])
def test_valid_repository_names(name: str) -> None:
    assert validate_repository_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a/", "/a", "a//b", "a_", "_a", "a___b", "a..b", "a/_layers", "a b", "a:b", "x" * 256, "ü", None],
)
def test_invalid_repository_names(name: Any) -> None:
    with pytest.raises(InvalidRepositoryNameError):
        validate_repository_name(name)


@pytest.mark.parametrize(
    "media_type",
    ["application/octet-stream", "application/vnd.oci.image.layer.v1.tar+gzip", "text/plain", "a/b"],
)
def test_valid_media_types(media_type: str) -> None:
    assert validate_media_type(media_type) == media_type


@pytest.mark.parametrize(
    "media_type", ["", "text", "/plain", "text/", "text/plain; charset=utf-8", "te xt/plain", "a/b/c", "-a/b", 3]
)
def test_invalid_media_types(media_type: Any) -> None:
    with pytest.raises(InvalidMediaTypeError):
        validate_media_type(media_type)


# --------------------------------------------------------------------------- hash states (no driver)


# Under CI=true the tests run (and fail) without the native hash state: no silent skips in CI.
needs_native = pytest.mark.skipif(
    not hashstate.native_available() and not in_ci(),
    reason=f"no native hash state: {hashstate.native_unavailable_reason()}",
)


@needs_native
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_hash_state_export_restore_matches_hashlib(algorithm: str) -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 700))
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(3))
        hasher = hashstate.new(algorithm)
        start = 0
        for cut in [*cuts, len(data)]:
            hasher.update(memoryview(bytearray(data[start:cut])))
            start = cut
            state = json.loads(json.dumps(hasher.export()))  # through JSON, as stored
            restored = hashstate.restore(state)
            assert restored is not None
            hasher = restored
        assert hasher.size == len(data)
        assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()


@needs_native
def test_hash_state_accepts_every_buffer_kind_and_large_updates() -> None:
    data = payload(3 * MiB + 17)
    hasher = hashstate.new("sha256")
    hasher.update(data[:1000])  # bytes
    hasher.update(bytearray(data[1000:5000]))  # writable buffer
    hasher.update(memoryview(data)[5000 : 2 * MiB])  # read-only view of bytes
    hasher.update(memoryview(bytearray(data))[2 * MiB :])  # writable view
    assert hasher.digest() == sha256(data)
    assert hasher.hexdigest() == hasher.hexdigest()  # digest does not consume the state


@needs_native
def test_hash_state_refuses_malformed_states() -> None:
    hasher = hashstate.new("sha256")
    hasher.update(b"x" * 100)
    good = hasher.export()
    assert good is not None
    broken = [
        {**good, "format": "other"},
        {**good, "algorithm": "md5"},
        {**good, "size": -1},
        {**good, "size": 101},  # tail no longer matches
        {**good, "h": good["h"][:7]},
        {**good, "h": [2**40] * 8},
        {**good, "tail": "***"},
        {**good, "tail": base64.b64encode(b"y" * 64).decode()},
        None,
        "text",
    ]
    for state in broken:
        assert hashstate.restore(state) is None


def test_hashlib_fallback_is_not_exportable() -> None:
    code = (
        "from blobdrivers.blobs import hashstate; h = hashstate.new('sha512'); h.update(b'abc'); "
        "import hashlib; assert h.hexdigest() == hashlib.sha512(b'abc').hexdigest(); "
        "print(h.export(), hashstate.native_available(), hashstate.native_unavailable_reason())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), hashstate.BACKEND_ENV: "hashlib"},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out.strip() == f"None False disabled by {hashstate.BACKEND_ENV}=hashlib"


# --------------------------------------------------------------------------- basic blob operations


def test_put_stat_get_stream_delete(store: BlobStore, driver: StorageDriver) -> None:
    data = payload(1000, seed=1)
    digest = sha256(data)
    described = store.put(data, "application/vnd.test+json")
    assert described == Descriptor(digest, 1000, "application/vnd.test+json")
    assert store.stat(digest) == described
    assert store.exists(digest)
    assert store.get(digest, verify=True) == data
    with store.stream(digest, 100, 50) as reader:
        assert reader.read() == data[100:150]
    with store.stream(digest, 990) as reader:
        assert reader.read() == data[990:]
    _, encoded = parse_digest(digest)
    assert files(driver) == [
        f"/blobs/sha256/{encoded[:2]}/{encoded}/data",
        f"/blobs/sha256/{encoded[:2]}/{encoded}/mediatype",
    ]
    # Putting the same bytes again is a no-op that returns the same descriptor.
    assert store.put(data, "application/vnd.test+json") == described
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(BlobNotFoundError) as info:
        store.stat(digest)
    assert isinstance(info.value, FileNotFoundError) and info.value.digest == digest
    for call in (store.get, store.delete, store.stream):
        with pytest.raises(BlobNotFoundError):
            call(digest)
    assert files(driver) == []


def test_put_without_media_type_and_empty_blob(store: BlobStore) -> None:
    empty = store.put(b"")
    assert empty == Descriptor(sha256(b""), 0, "application/octet-stream")
    assert store.get(empty.digest) == b""
    sha512 = store.put(b"abc", algorithm="sha512")
    assert sha512.digest == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    assert store.stat(sha512.digest).size == 3


def test_put_streams_files_and_iterables(store: BlobStore, driver: StorageDriver, tmp_path: Path) -> None:
    data = payload(blob_size(driver), seed=2)
    source = tmp_path / "source"
    source.write_bytes(data)
    with source.open("rb") as file:
        from_file = store.put(file, "application/x-file")
    assert from_file == Descriptor(sha256(data), len(data), "application/x-file")
    pieces = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    assert store.put(iter(pieces)) == Descriptor(sha256(data), len(data), "application/x-file")
    assert store.get(from_file.digest) == data
    assert store.upload_ids() == []  # the streaming puts went through sessions, which are gone
    assert files(driver, "/") == files(driver, "/blobs")


def test_bad_arguments_raise_clear_errors(store: BlobStore) -> None:
    with pytest.raises(InvalidDigestError):
        store.stat("sha256:xyz")
    with pytest.raises(UnsupportedDigestError):
        store.get("md5:" + "0" * 32)
    with pytest.raises(InvalidMediaTypeError):
        store.put(b"x", "not a media type")
    with pytest.raises(UnsupportedDigestError):
        store.put(b"x", algorithm="md5")
    with pytest.raises(UnsupportedDigestError):
        store.start_upload(algorithms=("sha1",))
    with pytest.raises(InvalidRepositoryNameError):
        store.repository("Library/Ubuntu")
    with pytest.raises(UploadNotFoundError):
        store.resume_upload("../../etc")
    with pytest.raises(UploadNotFoundError):
        store.resume_upload("0" * 32)
    upload = store.start_upload()
    with pytest.raises(TypeError):
        upload.write("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidDigestError):
        upload.finish("sha256:nope")
    with pytest.raises(InvalidMediaTypeError):
        upload.finish(sha256(b""), media_type="bad")
    upload.cancel()


def test_store_root_prefix(driver: StorageDriver) -> None:
    store = BlobStore(driver, root="/docker/registry/v2")
    described = store.put(b"layer")
    store.repository("library/ubuntu").link(described.digest)
    encoded = described.digest.split(":")[1]
    assert files(driver) == [
        f"/docker/registry/v2/blobs/sha256/{encoded[:2]}/{encoded}/data",
        f"/docker/registry/v2/repositories/library/ubuntu/_layers/sha256/{encoded}/link",
    ]
    assert driver.get(f"/docker/registry/v2/repositories/library/ubuntu/_layers/sha256/{encoded}/link") == (
        described.digest.encode()
    )
    assert BlobStore(driver).exists(described.digest) is False  # another root, another store


# --------------------------------------------------------------------------- upload sessions


def test_upload_in_chunks_and_state_machine(store: BlobStore, backend: Backend) -> None:
    driver = backend.driver
    data = payload(blob_size(driver), seed=3)
    upload = store.start_upload()
    assert upload.size == 0 and len(upload.id) == 32
    for start in range(0, len(data), 70_001):
        assert upload.write(data[start : start + 70_001]) == len(data[start : start + 70_001])
    assert upload.write(b"") == 0
    assert upload.size == len(data)
    assert store.upload_ids() == [upload.id]
    assert not store.exists(sha256(data))  # nothing published before finish
    described = upload.finish(sha256(data), "application/x-layer")
    assert described == Descriptor(sha256(data), len(data), "application/x-layer")
    assert driver.stat(f"/blobs/sha256/{described.hex[:2]}/{described.hex}/data").size == len(data)
    assert store.get(described.digest) == data
    for action in (lambda: upload.write(b"x"), lambda: upload.finish(described.digest), upload.cancel):
        with pytest.raises(UploadClosedError):
            action()
    upload.close()  # idempotent, harmless
    assert store.upload_ids() == []
    assert files(driver, "/_uploads") == []
    assert backend.staging_leftovers() == []
    with pytest.raises(UploadNotFoundError):
        store.resume_upload(upload.id)


def test_closed_upload_refuses_writes_until_resumed(store: BlobStore) -> None:
    with store.start_upload() as upload:
        upload.write(b"abc")
    assert upload.closed
    with pytest.raises(UploadClosedError, match="resume"):
        upload.write(b"def")
    again = store.resume_upload(upload.id)
    assert again.size == 3
    again.write(b"def")
    assert again.finish(sha256(b"abcdef")).size == 6


def test_finish_when_the_blob_exists_only_drops_the_upload(store: BlobStore, backend: Backend) -> None:
    data = payload(5000, seed=4)
    store.put(data)
    calls = Calls(backend.driver)
    upload = store.start_upload()
    upload.write(data)
    assert upload.finish(sha256(data)).size == 5000
    assert not calls.of("move")  # the blob was already there: nothing was copied or moved
    assert store.upload_ids() == [] and backend.staging_leftovers() == []


def test_sha512_uploads_and_digest_computed_at_finish(store: BlobStore) -> None:
    data = payload(100_000, seed=5)
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    both = store.start_upload(algorithms=("sha256", "sha512"))
    both.write(data)
    assert both.algorithms == ("sha256", "sha512")
    assert both.finish(sha512).digest == sha512
    # Not computed while writing: read back once at finish.
    later = store.start_upload()
    later.write(data[::-1])
    reversed512 = "sha512:" + hashlib.sha512(data[::-1]).hexdigest()
    assert later.finish(reversed512).size == len(data)
    assert store.get(reversed512) == data[::-1]


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_digest_mismatch_publishes_nothing(store: BlobStore, backend: Backend, algorithm: str) -> None:
    driver = backend.driver
    data = payload(blob_size(driver), seed=6)
    wrong = f"{algorithm}:" + hashlib.new(algorithm, data + b"!").hexdigest()
    right = f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()
    upload = store.start_upload()
    upload.write(data)
    with pytest.raises(DigestMismatchError) as info:
        upload.finish(wrong)
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.expected, error.actual, error.size) == (wrong, right, len(data))
    assert wrong in str(error) and right in str(error) and "nothing was published" in str(error)
    assert files(driver, "/blobs") == []
    assert not store.exists(wrong) and not store.exists(right)
    assert not upload.closed  # the caller decides: cancel, or write more
    upload.cancel()
    assert files(driver) == [] and store.upload_ids() == [] and backend.staging_leftovers() == []


def test_cancel_leaves_nothing(store: BlobStore, backend: Backend) -> None:
    driver = backend.driver
    open_upload = store.start_upload()
    open_upload.write(payload(blob_size(driver), seed=7))
    closed_upload = store.start_upload()
    closed_upload.write(payload(blob_size(driver), seed=8))
    closed_upload.close()
    never_written = store.start_upload()
    assert len(store.upload_ids()) == 3
    open_upload.cancel()
    open_upload.cancel()  # idempotent
    store.resume_upload(closed_upload.id).cancel()
    never_written.cancel()
    assert store.upload_ids() == []
    assert files(driver) == []
    assert backend.staging_leftovers() == []
    with pytest.raises(UploadClosedError):
        open_upload.write(b"x")


def test_purge_removes_abandoned_uploads_only_when_old_enough(store: BlobStore, backend: Backend) -> None:
    driver = backend.driver
    abandoned = store.start_upload()
    abandoned.write(payload(blob_size(driver), seed=9))
    abandoned.close()
    crashed = store.start_upload()  # its process "died": written but never closed
    crashed.write(payload(1000, seed=10))
    started_only = store.start_upload()
    assert store.purge_uploads(timedelta(days=7)) == []
    assert sorted(store.upload_ids()) == sorted([abandoned.id, crashed.id, started_only.id])
    with pytest.raises(ValueError):
        store.purge_uploads(-1)
    # The process of `crashed` dies: what its driver keeps is its writer's parked progress.
    crashed._writer.close()  # type: ignore[union-attr]
    purged = store.purge_uploads(0)
    assert sorted(purged) == sorted([abandoned.id, crashed.id, started_only.id])
    assert store.upload_ids() == []
    assert files(driver) == []
    assert backend.staging_leftovers() == []
    with pytest.raises(UploadNotFoundError):
        store.resume_upload(abandoned.id)


# --------------------------------------------------------------------------- resume


def test_resume_in_new_driver_instance(store: BlobStore, driver: StorageDriver) -> None:
    data = payload(blob_size(driver), seed=11)
    upload = store.start_upload(algorithms=("sha256", "sha512"))
    cut = driver.chunk_size + 17
    upload.write(data[:cut])
    upload.close()
    other = BlobStore(pickle.loads(pickle.dumps(driver)))
    calls = Calls(other.driver)
    resumed = other.resume_upload(upload.id)
    assert resumed.size == cut and resumed.started == upload.started
    assert resumed.hash_restored is hashstate.native_available()
    if resumed.hash_restored:
        assert [path for _, path in calls.of("get", "stream") if path.endswith("/data")] == []
    resumed.write(data[cut:])
    assert resumed.finish("sha512:" + hashlib.sha512(data).hexdigest()).size == len(data)
    assert store.get("sha512:" + hashlib.sha512(data).hexdigest()) == data


CHILD = """
import json, pickle, sys
from blobdrivers.blobs import BlobStore
with open(sys.argv[1], "rb") as file:
    driver = pickle.load(file)
store = BlobStore(driver)
with open(sys.argv[3], "rb") as file:
    data = file.read()
reads = []
driver.observers.append(lambda event: reads.append(event.path) if event.operation in ("get", "stream") else None)
if sys.argv[2] == "start":
    upload = store.start_upload()
    restored = None
else:
    upload = store.resume_upload(sys.argv[4])
    restored = upload.hash_restored
before = upload.size
upload.write(data)
upload.close()
data_reads = [path for path in reads if path.endswith("/data")]
result = {"id": upload.id, "before": before, "size": upload.size, "restored": restored, "data_reads": data_reads}
print(json.dumps(result))
"""


def run_child(tmp_path: Path, driver: StorageDriver, mode: str, data: bytes, *args: str, **env: str) -> dict[str, Any]:
    driver_file = tmp_path / "driver.pickle"
    driver_file.write_bytes(pickle.dumps(driver))
    data_file = tmp_path / f"data-{mode}-{len(data)}"
    data_file.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(driver_file), mode, str(data_file), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(params=["filesystem", "s3"])
def cross_process_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Drivers whose store outlives a process (an in-memory store cannot: see the new-instance test)."""
    return make_backend(request.param, request, tmp_path)


@needs_native
def test_resume_in_new_processes_without_rereading(cross_process_backend: Backend, tmp_path: Path) -> None:
    driver = cross_process_backend.driver
    store = BlobStore(driver)
    data = payload(blob_size(driver) + driver.chunk_size, seed=12)
    first, second = driver.chunk_size + 5, 2 * driver.chunk_size + 11
    started = run_child(tmp_path, driver, "start", data[:first])
    assert started["size"] == first
    resumed = run_child(tmp_path, driver, "resume", data[first:second], started["id"])
    assert resumed == {"id": started["id"], "before": first, "size": second, "restored": True, "data_reads": []}
    calls = Calls(driver)
    upload = store.resume_upload(started["id"])
    assert upload.size == second and upload.hash_restored
    upload.write(data[second:])
    assert upload.finish(sha256(data)) == Descriptor(sha256(data), len(data), "application/octet-stream")
    assert [path for _, path in calls.of("get", "stream") if path.endswith("/data")] == []
    assert store.get(sha256(data)) == data
    assert store.upload_ids() == [] and cross_process_backend.staging_leftovers() == []


def test_resume_rereads_when_the_hash_state_cannot_be_restored(cross_process_backend: Backend, tmp_path: Path) -> None:
    driver = cross_process_backend.driver
    store = BlobStore(driver)
    data = payload(blob_size(driver), seed=13)
    cut = driver.chunk_size + 3
    started = run_child(tmp_path, driver, "start", data[:cut], **{hashstate.BACKEND_ENV: "hashlib"})
    upload = store.resume_upload(started["id"])
    assert upload.size == cut
    assert not upload.hash_restored  # the child could not export its hash: the bytes were read back
    upload.write(data[cut:])
    assert upload.finish(sha256(data)).size == len(data)
    assert store.get(sha256(data)) == data


def test_resume_rereads_when_the_saved_state_is_stale(
    store: BlobStore, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = backend.driver
    data = payload(blob_size(driver), seed=14)
    upload = store.start_upload()
    upload.write(data[:1000])
    upload.close()  # state saved at 1000 bytes
    again = store.resume_upload(upload.id)
    assert again.hash_restored is hashstate.native_available()
    again.write(data[1000 : driver.chunk_size + 9])
    # The process dies after its writer parked the bytes but before the state was saved.
    monkeypatch.setattr(type(again), "_save_state", lambda self: None)
    again.close()
    monkeypatch.undo()
    third = store.resume_upload(upload.id)
    assert third.size == driver.chunk_size + 9 and not third.hash_restored
    third.write(data[driver.chunk_size + 9 :])
    assert third.finish(sha256(data)).size == len(data)
    assert store.get(sha256(data)) == data
    assert store.upload_ids() == [] and backend.staging_leftovers() == []


# --------------------------------------------------------------------------- concurrency


def test_concurrent_uploads_of_one_blob(store: BlobStore, backend: Backend) -> None:
    """16 uploads of the same blob, finishing in staggered waves while a stat loop runs throughout.

    Every finish returns only when stat shows the full size; no stat ever shows a short
    size; once a finish has returned the blob never disappears; all 16 succeed.
    """
    driver = backend.driver
    data = payload(blob_size(driver), seed=15)
    digest = sha256(data)
    algorithm, encoded = parse_digest(digest)
    path = f"/blobs/{algorithm}/{encoded[:2]}/{encoded}/data"
    count = 16
    waves = [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11, 12, 13, 14, 15]]
    written = threading.Barrier(count + 1)
    go = [threading.Event() for _ in waves]
    returned = threading.Event()
    done = threading.Event()
    problems: list[str] = []
    results: dict[int, Descriptor] = {}
    observed = {"missing": 0, "full": 0}
    lock = threading.Lock()

    def uploader(index: int) -> None:
        try:
            upload = store.start_upload()
            step = 50_000 + index * 1000  # each upload chunks differently
            for start in range(0, len(data), step):
                upload.write(data[start : start + step])
        except BaseException as exc:
            problems.append(f"upload {index} failed while writing: {exc!r}")
            written.abort()
            return
        written.wait()
        wave = next(n for n, members in enumerate(waves) if index in members)
        go[wave].wait()
        try:
            described = upload.finish(digest)
        except BaseException as exc:
            problems.append(f"finish {index} failed: {exc!r}")
            return
        size = driver.stat(path).size
        if size != len(data) or store.stat(digest).size != len(data):
            problems.append(f"finish {index} returned but stat shows {size} bytes")
        with lock:
            results[index] = described
        returned.set()

    def stat_loop() -> None:
        while not done.is_set():
            published = returned.is_set()
            try:
                size = driver.stat(path).size
            except PathNotFoundError:
                observed["missing"] += 1
                if published:
                    problems.append("the blob vanished after a finish had returned")
                continue
            observed["full"] += 1
            if size != len(data):
                problems.append(f"stat saw a short size: {size}")

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(count)]
    watcher = threading.Thread(target=stat_loop)
    watcher.start()
    for thread in threads:
        thread.start()
    try:
        written.wait(timeout=120)
        for event in go:
            # Staggered: the next wave is let go once one more finish has returned (or failed).
            before = len(results) + len(problems)
            event.set()
            while len(results) + len(problems) <= before and any(t.is_alive() for t in threads):
                time.sleep(0.002)
        for thread in threads:
            thread.join(timeout=180)
    finally:
        for event in go:
            event.set()
        done.set()
        watcher.join(timeout=60)
    assert problems == []
    assert sorted(results) == list(range(count))
    assert set(results.values()) == {Descriptor(digest, len(data), "application/octet-stream")}
    assert observed["full"] > 0
    assert hashlib.sha256(store.get(digest)).hexdigest() == encoded
    assert store.upload_ids() == []
    assert files(driver) == [path]
    assert backend.staging_leftovers() == []


def test_concurrent_puts_of_one_blob(store: BlobStore, driver: StorageDriver) -> None:
    data = payload(20_000, seed=16)
    barrier = threading.Barrier(8)
    results: list[Descriptor] = []

    def put() -> None:
        barrier.wait()
        results.append(store.put(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [Descriptor(sha256(data), len(data))] * 8
    assert store.get(sha256(data)) == data


# --------------------------------------------------------------------------- publish edge cases


class NoConditionalMoveDriver(InMemoryDriver):
    """An in-memory driver whose backend has no put-if-absent for move or put (like some object stores)."""

    name = "noconditions"

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        if conditions:
            raise UnsupportedMethodError("no conditional move here")
        super()._move(src, dst, conditions)

    def _put(self, full: str, source: Any, conditions: Conditions) -> None:
        if conditions:
            raise UnsupportedMethodError("no conditional put here")
        super()._put(full, source, conditions)


def test_publish_without_native_conditions() -> None:
    store = BlobStore(NoConditionalMoveDriver(chunksize=1000))
    data = payload(5000, seed=17)
    assert store.put(data).size == 5000
    upload = store.start_upload()
    upload.write(data[::-1])
    assert upload.finish(sha256(data[::-1])).size == 5000
    assert store.get(sha256(data[::-1])) == data[::-1]


def test_damaged_blob_is_replaced_by_verified_bytes(store: BlobStore, driver: StorageDriver) -> None:
    data = payload(3000, seed=18)
    digest = sha256(data)
    encoded = digest.split(":")[1]
    driver.put(f"/blobs/sha256/{encoded[:2]}/{encoded}/data", data[:100])  # a damaged blob
    upload = store.start_upload()
    upload.write(data)
    assert upload.finish(digest).size == 3000
    assert store.get(digest, verify=True) == data


def test_get_verify_detects_corruption(store: BlobStore, driver: StorageDriver) -> None:
    described = store.put(b"good bytes")
    driver.put(f"/blobs/sha256/{described.hex[:2]}/{described.hex}/data", b"evil bytes")
    assert store.get(described.digest) == b"evil bytes"
    with pytest.raises(DigestMismatchError, match="corrupt"):
        store.get(described.digest, verify=True)


# --------------------------------------------------------------------------- repositories and GC


def test_repository_link_stat_unlink(store: BlobStore, driver: StorageDriver) -> None:
    layer = store.put(b"layer", "application/vnd.oci.image.layer.v1.tar")
    config = store.put(b"config")
    ubuntu = store.repository("library/ubuntu")
    debian = store.repository("library/debian")
    with pytest.raises(BlobNotFoundError, match="not linked"):
        ubuntu.stat(layer.digest)
    assert ubuntu.link(layer.digest) == layer
    assert ubuntu.link(config.digest, "application/vnd.oci.image.config.v1+json") == Descriptor(
        config.digest, 6, "application/vnd.oci.image.config.v1+json"
    )
    assert ubuntu.stat(layer.digest) == layer
    assert ubuntu.stat(config.digest).media_type == "application/vnd.oci.image.config.v1+json"
    assert store.stat(config.digest).media_type == "application/octet-stream"  # the override is per repository
    assert ubuntu.digests() == sorted([layer.digest, config.digest])
    assert debian.digests() == [] and not debian.exists(layer.digest)
    # Relinking without a media type drops the override.
    ubuntu.link(config.digest)
    assert ubuntu.stat(config.digest).media_type == "application/octet-stream"
    with pytest.raises(BlobNotFoundError):
        ubuntu.link("sha256:" + "0" * 64)
    ubuntu.unlink(layer.digest)
    assert not ubuntu.exists(layer.digest) and store.exists(layer.digest)
    with pytest.raises(BlobNotFoundError):
        ubuntu.unlink(layer.digest)
    # A linked blob deleted from the store is gone for the repository too.
    store.delete(config.digest)
    with pytest.raises(BlobNotFoundError):
        ubuntu.stat(config.digest)


def test_walk_and_garbage_collection(store: BlobStore) -> None:
    kept = store.put(b"kept", "text/plain")
    orphan = store.put(b"orphan")
    other = store.put(b"other", algorithm="sha512")
    store.repository("a/b").link(kept.digest)
    store.repository("a").link(other.digest, "x/y")
    assert sorted(store.walk(), key=lambda d: d.digest) == sorted([kept, orphan, other], key=lambda d: d.digest)
    assert store.repositories() == ["a", "a/b"]
    assert store.referenced() == {kept.digest, other.digest}
    assert list(store.unreferenced()) == [orphan]
    unfinished = store.start_upload()
    unfinished.write(b"in flight")
    assert len(list(store.walk())) == 3  # uploads are not blobs
    unfinished.cancel()
    for descriptor in list(store.unreferenced()):
        store.delete(descriptor.digest)
    assert sorted(d.digest for d in store.walk()) == sorted([kept.digest, other.digest])
    assert BlobStore(store.driver, root="/empty").repositories() == []
    assert list(BlobStore(store.driver, root="/empty").walk()) == []


def test_digest_of_helper() -> None:
    assert digest_of(b"abc") == sha256(b"abc")
    assert digest_of(b"abc", "sha512") == "sha512:" + hashlib.sha512(b"abc").hexdigest()


class FlakyWriterDriver(InMemoryDriver):
    """An in-memory driver whose writers fail their second write (a backend error mid-upload)."""

    name = "flaky"

    def _writer(self, full: str, append: bool) -> Any:
        backend = super()._writer(full, append)
        original = backend.write
        calls = {"n": 0}

        def write(data: memoryview) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("connection reset")
            original(data)

        backend.write = write  # type: ignore[method-assign]
        return backend


def test_a_failed_write_parks_the_upload_for_an_exact_resume() -> None:
    store = BlobStore(FlakyWriterDriver())
    data = payload(3000, seed=19)
    upload = store.start_upload()
    upload.write(data[:1000])
    with pytest.raises(Exception, match="connection reset"):
        upload.write(data[1000:2000])
    assert upload.closed
    with pytest.raises(UploadClosedError):
        upload.write(b"x")
    resumed = store.resume_upload(upload.id)
    assert resumed.size == 1000  # what is really stored; the client continues from there
    resumed.write(data[1000:])
    assert resumed.finish(sha256(data)).size == 3000
    assert store.get(sha256(data)) == data
