"""OSS driver against oss2's resumable transfers, ossfs and a raw urllib3 baseline, on our OSS-protocol server.

    python -m benchmarks.bench_oss            # 256 MiB put/get, 1,000 x 4 KiB put/get
    python -m benchmarks.bench_oss --quick    # 64 MiB put/get, 200 x 4 KiB put/get

No OSS emulator exists, so the server is the project's own (``tests/servers/oss.py``,
the one the tests use): a pure-Python ``ThreadingHTTPServer`` that keeps objects in
memory and checks V1 signatures, Content-MD5 and computes the CRC-64 of every body it
receives. It is started here, configured as ``tests/conftest.py`` configures it, but
in a process of its own (``python -m benchmarks.bench_oss --serve``), so it neither
shares a GIL with the client nor adds its memory to this process; every run of every
row gets a fresh server. Its limit is low (one Python thread per connection, all
behind one GIL), so compare rows with each other and with the raw row, not with OSS.

Large puts upload the same file of random data (written once, so it is in the page
cache; nobody holds it all in memory); one more row puts a stream of 8 MiB chunks of
unknown total size. Large gets read into a reused 8 MiB buffer, except oss2's
``resumable_download``, which can only write a file (a temporary one, deleted after).
The raw rows are one urllib3 request each, signed with OSS's V1 header signature: a
PUT streaming the file with a Content-Length, and a GET: the server's limit for one
connection.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks import peers
from benchmarks.harness import Case, MiB, Result, chunks, random_file, read_loop

BUFFER = 8 * MiB
#: The driver's defaults, given to oss2's resumable transfers too (equal settings).
PART = 10 * MiB
THREADS = 8
ACCESS_KEY_ID = "test-ak"
ACCESS_KEY_SECRET = "test-sk"
BUCKET = "bench-bucket"
_MODULE = "benchmarks.bench_oss"


def _oss2_bucket(endpoint: str) -> Any:
    import oss2

    # oss2's default pool holds 10 connections: enough for 8 threads.
    return oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), endpoint, BUCKET)


def _driver(endpoint: str) -> Any:
    from blobdrivers.drivers.oss import OSSDriver

    # Defaults: chunksize 10 MiB, maxconcurrency 8.
    return OSSDriver(bucket=BUCKET, endpoint=endpoint, accesskeyid=ACCESS_KEY_ID, accesskeysecret=ACCESS_KEY_SECRET)


def _ossfs(endpoint: str) -> Any:
    from ossfs import OSSFileSystem

    return OSSFileSystem(endpoint=endpoint, key=ACCESS_KEY_ID, secret=ACCESS_KEY_SECRET, skip_instance_cache=True)


# ---------------------------------------------------------------------- raw V1-signed requests


class _Raw:
    """Single urllib3 requests signed with OSS's V1 header signature (path-style URLs)."""

    def __init__(self, endpoint: str) -> None:
        import urllib3

        self.endpoint = endpoint
        # 1 MiB send blocks for file bodies (urllib3's default is 16 KiB).
        self.pool = urllib3.PoolManager(maxsize=4, blocksize=MiB, retries=False)

    def _headers(self, verb: str, key: str, content_type: str = "") -> dict[str, str]:
        date = email.utils.formatdate(usegmt=True)
        # VERB \n Content-MD5 \n Content-Type \n Date \n (no x-oss-* headers) /bucket/key
        text = f"{verb}\n\n{content_type}\n{date}\n/{BUCKET}/{key}"
        signature = base64.b64encode(hmac.new(ACCESS_KEY_SECRET.encode(), text.encode(), hashlib.sha1).digest())
        headers = {"Date": date, "Authorization": f"OSS {ACCESS_KEY_ID}:{signature.decode()}"}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, key: str) -> str:
        return f"{self.endpoint}/{BUCKET}/{quote(key, safe='')}"

    def put(self, key: str, body: Any, size: int) -> None:
        headers = self._headers("PUT", key, "application/octet-stream")
        headers["Content-Length"] = str(size)
        response = self.pool.request("PUT", self._url(key), body=body, headers=headers)
        assert response.status == 200, (response.status, response.data[:300])

    def open(self, key: str) -> Any:
        response = self.pool.request("GET", self._url(key), headers=self._headers("GET", key), preload_content=False)
        assert response.status == 200, response.status
        return response

    def get(self, key: str) -> bytes:
        response = self.pool.request("GET", self._url(key), headers=self._headers("GET", key))
        assert response.status == 200, response.status
        return bytes(response.data)


# ---------------------------------------------------------------------- large objects


def large(impl: str, op: str, size: int, endpoint: str, source: str = "") -> dict[str, float]:
    """One ``size``-byte put (of the file ``source``, or a stream) or get of the prepared object."""
    action = _LARGE[impl](endpoint)
    with tempfile.TemporaryDirectory(prefix="bd-bench-oss-get-") as scratch:
        started = time.perf_counter()
        if op == "put":
            action["put"]("put-blob", size, source, scratch)
        else:
            action["get"](f"get-{size}", size, scratch)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": size}


def _large_blobdrivers(endpoint: str) -> dict[str, Any]:
    store = _driver(endpoint)

    def put(name: str, size: int, source: str, scratch: str) -> None:
        with open(source, "rb") as file:
            store.put("/" + name, file)

    def get(name: str, size: int, scratch: str) -> None:
        with store.stream("/" + name) as reader:
            read_loop(reader.readinto, size)

    return {"put": put, "get": get}


def _large_blobdrivers_stream(endpoint: str) -> dict[str, Any]:
    store = _driver(endpoint)

    def put(name: str, size: int, source: str, scratch: str) -> None:
        store.put("/" + name, chunks(size, BUFFER))

    return {"put": put}


def _large_oss2(endpoint: str) -> dict[str, Any]:
    import oss2

    bucket = _oss2_bucket(endpoint)

    # Checkpoints of resumable transfers go to the scratch folder, not ~/.py-oss-*.
    def put(name: str, size: int, source: str, scratch: str) -> None:
        oss2.resumable_upload(
            bucket,
            name,
            source,
            store=oss2.ResumableStore(root=scratch),
            multipart_threshold=PART,
            part_size=PART,
            num_threads=THREADS,
        )

    def get(name: str, size: int, scratch: str) -> None:
        target = os.path.join(scratch, "download")
        oss2.resumable_download(
            bucket,
            name,
            target,
            store=oss2.ResumableDownloadStore(root=scratch),
            multiget_threshold=PART,
            part_size=PART,
            num_threads=THREADS,
        )
        assert os.path.getsize(target) == size

    return {"put": put, "get": get}


def _large_ossfs(endpoint: str) -> dict[str, Any]:
    fs = _ossfs(endpoint)

    def put(name: str, size: int, source: str, scratch: str) -> None:
        # At 100 MiB and above ossfs calls oss2.resumable_upload with oss2's defaults.
        fs.put_file(source, f"{BUCKET}/{name}")

    def get(name: str, size: int, scratch: str) -> None:
        with fs.open(f"{BUCKET}/{name}", "rb") as file:
            read_loop(file.readinto, size)

    return {"put": put, "get": get}


def _large_raw(endpoint: str) -> dict[str, Any]:
    raw = _Raw(endpoint)

    def put(name: str, size: int, source: str, scratch: str) -> None:
        with open(source, "rb") as file:
            raw.put(name, file, size)

    def get(name: str, size: int, scratch: str) -> None:
        response = raw.open(name)
        read_loop(response.readinto, size)
        response.release_conn()

    return {"put": put, "get": get}


_LARGE = {
    "blobdrivers": _large_blobdrivers,
    "blobdrivers-stream": _large_blobdrivers_stream,
    "oss2": _large_oss2,
    "ossfs": _large_ossfs,
    "raw": _large_raw,
}


# ---------------------------------------------------------------------- small objects


def small(impl: str, op: str, count: int, endpoint: str) -> dict[str, float]:
    """``count`` sequential puts or gets of 4 KiB objects under distinct names."""
    put, get = _small_impl(impl, endpoint)
    return peers.time_small_ops(op, peers.small_names(impl, count), os.urandom(4096), put, get)


def _small_impl(impl: str, endpoint: str) -> tuple[Any, Any]:
    if impl == "blobdrivers":
        store = _driver(endpoint)
        return (lambda n, d: store.put("/" + n, d)), (lambda n: store.get("/" + n))
    if impl == "oss2":
        bucket = _oss2_bucket(endpoint)
        return bucket.put_object, (lambda n: bucket.get_object(n).read())
    if impl == "ossfs":
        fs = _ossfs(endpoint)
        return (lambda n, d: fs.pipe_file(f"{BUCKET}/{n}", d)), (lambda n: fs.cat_file(f"{BUCKET}/{n}"))
    if impl == "raw":
        raw = _Raw(endpoint)
        return (lambda n, d: raw.put(n, d, len(d))), raw.get
    raise ValueError(impl)


def prepare(size: int, endpoint: str) -> dict[str, float]:
    """For a get row, upload the ``size``-byte object it reads (one raw PUT)."""
    started = time.perf_counter()
    if size:
        _Raw(endpoint).put(f"get-{size}", chunks(size, BUFFER), size)
    return {"seconds": max(time.perf_counter() - started, 1e-9), "bytes": size}


# ---------------------------------------------------------------------- the server process


def serve() -> None:
    """Run the OSS-protocol server (as ``tests/conftest.py`` configures it) until SIGTERM; print its endpoint."""
    from tests.servers.oss import OssServer

    # Blocked before the server's threads start (they inherit the mask), so sigwait gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = OssServer(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, buckets=(BUCKET,))
    server.start()
    print(server.endpoint, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


class _ServerProcess:
    def __init__(self) -> None:
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", _MODULE, "--serve"], cwd=root, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the OSS server did not start (said {line!r})")
        self.endpoint = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------- cases and main

_PEERS: list[peers.Peer] = [
    (
        "blobdrivers",
        "blobdrivers oss (10 MiB parts, 8 in flight)",
        "multipart, parts CRC-64 checked",
        "one streamed GET, CRC-64 checked",
    ),
    (
        "oss2",
        "oss2 resumable_upload/resumable_download",
        "multipart_threshold=part_size=10 MiB, num_threads=8",
        "8 threads of 10 MiB ranges into a file",
    ),
    ("ossfs", "ossfs put_file / open+readinto", "oss2 defaults: 10 MiB parts, 1 thread", "5 MiB readahead blocks"),
]
_STREAMED = [("blobdrivers-stream", "blobdrivers oss, a stream of unknown size", "10 MiB parts, 8 in flight")]
_SMALL_PEERS: list[peers.Peer] = [
    ("blobdrivers", "blobdrivers oss", "Content-MD5 sent", ""),
    ("oss2", "oss2 put_object/get_object", "", ""),
    ("ossfs", "ossfs pipe_file/cat_file", "", ""),
]


def cases(size: int, count: int, source: str) -> list[Case]:
    """The cases; the endpoint is filled in per run by :func:`_run_on_fresh_server` (each run gets a fresh server)."""
    raw_notes = ("one V1-signed PUT streaming the file", "one V1-signed GET")
    return [
        *peers.large_cases(_MODULE, size, raw_notes, _PEERS, source=source, streamed=_STREAMED),
        *peers.small_cases(_MODULE, count, ("", ""), _SMALL_PEERS),
    ]


def _run_on_fresh_server(case: Case) -> Result:
    server = _ServerProcess()
    try:
        prepare = f"{_MODULE}:prepare" if peers.setup_size(case) else None  # the server's bucket exists from the start
        return peers.run_prepared(case, {"endpoint": server.endpoint}, prepare)
    finally:
        server.stop()


def main() -> None:
    """Run every case against its own fresh OSS-protocol server and print the markdown table."""
    parser = peers.fresh_server_parser(__doc__, "oss", quick="64 MiB and 200 small objects")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    size, count = (64 * MiB, 200) if args.quick else (256 * MiB, 1000)
    title = peers.fresh_server_title("OSS", "tests/servers/oss.py, pure Python", args)
    with random_file(size) as source:
        print(peers.run_fresh_server_cases(cases(size, count, source), args, title, _run_on_fresh_server))


if __name__ == "__main__":
    main()
