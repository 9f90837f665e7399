"""GCS driver against google-cloud-storage, gcsfs and a raw urllib3 baseline, on gcp-storage-emulator.

    python -m benchmarks.bench_gcs            # 256 MiB put/get, 1,000 x 4 KiB put/get
    python -m benchmarks.bench_gcs --quick    # 64 MiB put/get, 200 x 4 KiB put/get

Every row runs in its own child process (peak RSS is its own) against its own
fresh in-memory emulator, started here: the emulator rewrites its whole state on
every request, so a server that has already stored other rows' objects would
slow later rows down. Large puts upload the same file of random data (written
once, so it is in the page cache; nobody holds it all in memory); one more row
puts a stream of 8 MiB chunks of unknown total size, which the driver must send
in resumable chunks. Large gets read into a reused 8 MiB buffer. The raw rows are
one urllib3 request each (a JSON-API ``uploadType=media`` POST streaming the file
with a Content-Length, an ``alt=media`` GET): the server's limit for one connection.

The emulator is a single-threaded Python ``http.server`` speaking HTTP/1.0 (a
new connection per request) that accumulates resumable uploads by bytes
concatenation; compare rows with each other and with the raw row, not with GCS.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import quote

from benchmarks import peers
from benchmarks.harness import Case, MiB, Result, Sink, chunks, random_file, read_loop

BUFFER = 8 * MiB
_MODULE = "benchmarks.bench_gcs"


def _sdk_bucket(endpoint: str, bucket: str) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=endpoint)
    )
    return client.bucket(bucket)


def _gcsfs(endpoint: str) -> Any:
    # gcsfs's default (extended) filesystem first asks for the bucket's type over gRPC
    # with TLS, which the emulator cannot answer (it hangs, then fails): use the JSON-API one.
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    import gcsfs

    return gcsfs.GCSFileSystem(token="anon", endpoint_url=endpoint, project="bench")


def _pool() -> Any:
    import urllib3

    # 1 MiB send blocks for file bodies (urllib3's default is 16 KiB).
    return urllib3.PoolManager(maxsize=4, blocksize=MiB)


def _raw_put(pool: Any, endpoint: str, bucket: str, name: str, body: Any, size: int) -> None:
    url = f"{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    response = pool.request("POST", url, body=body, headers=headers)
    assert response.status == 200, (response.status, response.data[:200])


def _raw_get_url(endpoint: str, bucket: str, name: str) -> str:
    return f"{endpoint}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"


# ---------------------------------------------------------------------- large objects


def large(impl: str, op: str, size: int, endpoint: str, bucket: str, source: str = "") -> dict[str, float]:
    """One ``size``-byte put (of the file ``source``, or a stream) or get (into a reused 8 MiB buffer)."""
    action = _LARGE[impl](endpoint, bucket)[op]
    name = "put-blob" if op == "put" else f"get-{size}"
    started = time.perf_counter()
    if op == "put":
        action(name, size, source)
    else:
        action(name, size)
    return {"seconds": time.perf_counter() - started, "bytes": size}


def _large_blobdrivers(endpoint: str, bucket: str, chunksize: str | None = None) -> dict[str, Any]:
    from blobdrivers.drivers.gcs import GCSDriver

    store = GCSDriver(bucket=bucket, endpoint=endpoint, **({"chunksize": chunksize} if chunksize else {}))

    def put(name: str, size: int, source: str) -> None:
        with open(source, "rb") as file:
            store.put("/" + name, file)

    def put_stream(name: str, size: int, source: str) -> None:
        store.put("/" + name, chunks(size, BUFFER))

    def get(name: str, size: int) -> None:
        with store.stream("/" + name) as reader:
            read_loop(reader.readinto, size)

    return {"put": put, "get": get, "put_stream": put_stream}


def _large_blobdrivers_stream(endpoint: str, bucket: str) -> dict[str, Any]:
    actions = _large_blobdrivers(endpoint, bucket)
    return {"put": actions["put_stream"]}


def _large_blobdrivers_stream_64m(endpoint: str, bucket: str) -> dict[str, Any]:
    actions = _large_blobdrivers(endpoint, bucket, "64MiB")
    return {"put": actions["put_stream"]}


def _large_sdk(endpoint: str, bucket: str) -> dict[str, Any]:
    handle = _sdk_bucket(endpoint, bucket)

    def put(name: str, size: int, source: str) -> None:
        # Above 8 MiB the SDK uses a resumable upload in 100 MiB chunks, checking CRC32C.
        with open(source, "rb") as file:
            handle.blob(name).upload_from_file(file, size=size)

    def get(name: str, size: int) -> None:
        sink = Sink()
        handle.blob(name).download_to_file(sink)
        assert sink.total == size

    return {"put": put, "get": get}


def _large_gcsfs(endpoint: str, bucket: str) -> dict[str, Any]:
    fs = _gcsfs(endpoint)

    def put(name: str, size: int, source: str) -> None:
        fs.put_file(source, f"{bucket}/{name}")

    def get(name: str, size: int) -> None:
        with fs.open(f"{bucket}/{name}", "rb") as source:
            read_loop(source.readinto, size)

    return {"put": put, "get": get}


def _large_raw(endpoint: str, bucket: str) -> dict[str, Any]:
    pool = _pool()

    def put(name: str, size: int, source: str) -> None:
        with open(source, "rb") as file:
            _raw_put(pool, endpoint, bucket, name, file, size)

    def get(name: str, size: int) -> None:
        peers.stream_get(pool, _raw_get_url(endpoint, bucket, name), size)

    return {"put": put, "get": get}


_LARGE = {
    "blobdrivers": _large_blobdrivers,
    "blobdrivers-stream": _large_blobdrivers_stream,
    "blobdrivers-stream64": _large_blobdrivers_stream_64m,
    "sdk": _large_sdk,
    "gcsfs": _large_gcsfs,
    "raw": _large_raw,
}


# ---------------------------------------------------------------------- small objects


def small(impl: str, op: str, count: int, endpoint: str, bucket: str) -> dict[str, float]:
    """``count`` sequential puts or gets of 4 KiB objects under distinct names."""
    put, get = _small_impl(impl, endpoint, bucket)
    return peers.time_small_ops(op, peers.small_names(impl, count), os.urandom(4096), put, get)


def _small_impl(impl: str, endpoint: str, bucket: str) -> tuple[Any, Any]:
    if impl == "blobdrivers":
        from blobdrivers.drivers.gcs import GCSDriver

        store = GCSDriver(bucket=bucket, endpoint=endpoint)
        return (lambda n, d: store.put("/" + n, d)), (lambda n: store.get("/" + n))
    if impl == "sdk":
        handle = _sdk_bucket(endpoint, bucket)
        return (
            (lambda n, d: handle.blob(n).upload_from_string(d)),
            (lambda n: handle.blob(n).download_as_bytes()),
        )
    if impl == "gcsfs":
        fs = _gcsfs(endpoint)
        return (lambda n, d: fs.pipe_file(f"{bucket}/{n}", d)), (lambda n: fs.cat_file(f"{bucket}/{n}"))
    if impl == "raw":
        pool = _pool()

        def raw_get(name: str) -> bytes:
            response = pool.request("GET", _raw_get_url(endpoint, bucket, name))
            assert response.status == 200, response.status
            return bytes(response.data)

        return (lambda n, d: _raw_put(pool, endpoint, bucket, n, d, len(d))), raw_get
    raise ValueError(impl)


def prepare(size: int, endpoint: str, bucket: str) -> dict[str, float]:
    """Create the bucket (soft delete off) and, for a get row, the ``size``-byte object it reads."""
    import urllib3

    pool = urllib3.PoolManager()
    created = pool.request("POST", f"{endpoint}/storage/v1/b?project=bench", json={"name": bucket})
    assert created.status == 200, created.status
    policy = {"softDeletePolicy": {"retentionDurationSeconds": "0"}}
    assert pool.request("PATCH", f"{endpoint}/storage/v1/b/{bucket}", json=policy).status == 200
    started = time.perf_counter()
    if size:
        _raw_put(pool, endpoint, bucket, f"get-{size}", chunks(size, BUFFER), size)
    return {"seconds": max(time.perf_counter() - started, 1e-9), "bytes": size}


# ---------------------------------------------------------------------- cases and main

_PEERS: list[peers.Peer] = [
    ("blobdrivers", "blobdrivers gcs", "one resumable request (known size)", "one streamed GET, CRC32C checked"),
    (
        "sdk",
        "google-cloud-storage upload_from_file/download_to_file",
        "100 MiB resumable chunks",
        "CRC32C checked",
    ),
    ("gcsfs", "gcsfs put_file / open+readinto", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false", "the same"),
]
_STREAMED = [
    ("blobdrivers-stream", "blobdrivers gcs, a stream of unknown size", "16 MiB resumable chunks (default)"),
    ("blobdrivers-stream64", "blobdrivers gcs, a stream, chunksize=64MiB", "64 MiB resumable chunks"),
]
_SMALL_PEERS: list[peers.Peer] = [
    ("blobdrivers", "blobdrivers gcs", "multipart with the CRC32C in its metadata", ""),
    ("sdk", "google-cloud-storage upload_from_string/download_as_bytes", "", ""),
    ("gcsfs", "gcsfs pipe_file/cat_file", "", ""),
]


def cases(size: int, count: int, source: str) -> list[Case]:
    """The cases; the server is filled in per case by :func:`_run_on_fresh_server` (each gets a fresh emulator)."""
    raw_notes = ("one POST uploadType=media streaming the file", "one GET alt=media")
    return [
        *peers.large_cases(_MODULE, size, raw_notes, _PEERS, source=source, streamed=_STREAMED),
        *peers.small_cases(_MODULE, count, ("uploadType=media, no checksum", ""), _SMALL_PEERS),
    ]


def _run_on_fresh_server(case: Case) -> Result:
    from tests.servers.local import start_gcs

    server = start_gcs()
    try:
        where = {"endpoint": server.endpoint, "bucket": f"bench-{uuid.uuid4().hex[:12]}"}
        return peers.run_prepared(case, where, f"{_MODULE}:prepare")  # the set-up creates the bucket
    finally:
        server.stop()


def main() -> None:
    """Run every case against its own fresh emulator and print the markdown table."""
    args = peers.fresh_server_parser(__doc__, "gcs", quick="64 MiB and 200 small objects").parse_args()
    size, count = (64 * MiB, 200) if args.quick else (256 * MiB, 1000)
    title = peers.fresh_server_title("GCS", "gcp-storage-emulator, in memory", args)
    with random_file(size) as source:
        print(peers.run_fresh_server_cases(cases(size, count, source), args, title, _run_on_fresh_server))


if __name__ == "__main__":
    main()
