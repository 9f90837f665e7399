"""Azure driver against azure-storage-blob, adlfs, obstore's AzureStore and a raw urllib3 baseline, on Azurite.

    python -m benchmarks.bench_azure            # 256 MiB and 1 GiB put/get, 1,000 x 4 KiB put/get
    python -m benchmarks.bench_azure --quick    # 256 MiB put/get, 200 x 4 KiB put/get

Every row runs against its own fresh in-memory Azurite, started here. Large puts stream
8 MiB chunks of random data (never the whole object in memory); large gets read
into a reused 8 MiB buffer or iterate chunks, so peak RSS shows what each
implementation holds itself. The raw row is a single urllib3 PUT or GET of the
whole object with a SAS URL: the server's limit for one connection. Azurite is a
single-threaded Node.js process, so parallel block uploads gain little on it;
compare rows against each other and against the raw row, not against Azure.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import peers
from benchmarks.harness import Case, ChunkFile, MiB, Result, Sink, chunks, read_loop

BUFFER = 8 * MiB
CONCURRENCY = 8
_MODULE = "benchmarks.bench_azure"


def _server_kwargs(server: Any, container: str) -> dict[str, Any]:  # an AzuriteServer
    return {
        "endpoint": server.blob_endpoint,
        "account": server.account_name,
        "key": server.account_key,
        "container": container,
    }


def _connection_string(endpoint: str, account: str, key: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={endpoint};"


def _container_client(endpoint: str, account: str, key: str, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(_connection_string(endpoint, account, key))
    return service.get_container_client(container)


def _delete(endpoint: str, account: str, key: str, container: str, *names: str) -> None:
    client = _container_client(endpoint, account, key, container)
    for name in names:
        client.delete_blob(name)


def _sas_base(endpoint: str, account: str, key: str, container: str) -> tuple[str, str]:
    """The container URL and a container SAS allowing read, create and write."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        account,
        container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )
    return f"{endpoint}/{container}", token


# ---------------------------------------------------------------------- large objects


def large(impl: str, op: str, size: int, endpoint: str, account: str, key: str, container: str) -> dict[str, float]:
    """One put of ``size`` streamed bytes, or one get of the prepared blob of that size."""
    source_name = f"get-{size}"
    target = f"put-{impl}-{uuid.uuid4().hex[:8]}"
    do = _LARGE[impl](endpoint, account, key, container)
    if op == "put":
        started = time.perf_counter()
        do["put"](target, size)
        seconds = time.perf_counter() - started
        _delete(endpoint, account, key, container, target)
    else:
        started = time.perf_counter()
        do["get"](source_name, size)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": size}


def _large_blobdrivers(endpoint: str, account: str, key: str, container: str, **extra: Any) -> dict[str, Any]:
    from blobdrivers.drivers.azure import AzureDriver

    store = AzureDriver(
        accountname=account,
        accountkey=key,
        container=container,
        serviceurl=endpoint,
        maxconcurrency=CONCURRENCY,
        **extra,
    )

    def put(name: str, size: int) -> None:
        store.put("/" + name, chunks(size, BUFFER))

    def get(name: str, size: int) -> None:
        with store.stream("/" + name) as reader:
            read_loop(reader.readinto, size)

    return {"put": put, "get": get}


def _large_blobdrivers_16m(endpoint: str, account: str, key: str, container: str) -> dict[str, Any]:
    return _large_blobdrivers(endpoint, account, key, container, chunksize="16MiB")


def _large_sdk(endpoint: str, account: str, key: str, container: str) -> dict[str, Any]:
    client = _container_client(endpoint, account, key, container)

    def put(name: str, size: int) -> None:
        client.get_blob_client(name).upload_blob(
            ChunkFile(size, BUFFER), length=size, overwrite=True, max_concurrency=CONCURRENCY
        )

    def get(name: str, size: int) -> None:
        sink = Sink()
        client.get_blob_client(name).download_blob(max_concurrency=CONCURRENCY).readinto(sink)
        assert sink.total == size

    return {"put": put, "get": get}


def _large_adlfs(endpoint: str, account: str, key: str, container: str) -> dict[str, Any]:
    import adlfs

    fs = adlfs.AzureBlobFileSystem(connection_string=_connection_string(endpoint, account, key))

    def put(name: str, size: int) -> None:
        with fs.open(f"{container}/{name}", "wb") as out:
            for chunk in chunks(size, BUFFER):
                out.write(chunk)

    def get(name: str, size: int) -> None:
        total = 0
        with fs.open(f"{container}/{name}", "rb", block_size=BUFFER) as source:
            while data := source.read(BUFFER):
                total += len(data)
        assert total == size

    return {"put": put, "get": get}


def _large_obstore(endpoint: str, account: str, key: str, container: str) -> dict[str, Any]:
    import obstore
    from obstore.store import AzureStore

    store = AzureStore(
        container, account_name=account, access_key=key, endpoint=endpoint, client_options={"allow_http": True}
    )

    def put(name: str, size: int) -> None:
        obstore.put(store, name, chunks(size, BUFFER), max_concurrency=CONCURRENCY)

    def get(name: str, size: int) -> None:
        total = sum(len(chunk) for chunk in obstore.get(store, name).stream(min_chunk_size=BUFFER))
        assert total == size

    return {"put": put, "get": get}


def _large_raw(endpoint: str, account: str, key: str, container: str) -> dict[str, Any]:
    import urllib3

    base, token = _sas_base(endpoint, account, key, container)
    pool = urllib3.PoolManager()

    def put(name: str, size: int) -> None:
        response = pool.request(
            "PUT",
            f"{base}/{name}?{token}",
            body=chunks(size, BUFFER),
            headers={"Content-Length": str(size), "x-ms-blob-type": "BlockBlob"},
        )
        assert response.status == 201, response.status

    def get(name: str, size: int) -> None:
        peers.stream_get(pool, f"{base}/{name}?{token}", size)

    return {"put": put, "get": get}


_LARGE = {
    "blobdrivers": _large_blobdrivers,
    "blobdrivers16": _large_blobdrivers_16m,
    "sdk": _large_sdk,
    "adlfs": _large_adlfs,
    "obstore": _large_obstore,
    "raw": _large_raw,
}


# ---------------------------------------------------------------------- small objects


def small(impl: str, op: str, count: int, endpoint: str, account: str, key: str, container: str) -> dict[str, float]:
    """``count`` sequential puts or gets of 4 KiB objects under distinct names."""
    names = peers.small_names(impl, count)
    put, get = _small_impl(impl, endpoint, account, key, container)
    timed = peers.time_small_ops(op, names, os.urandom(4096), put, get)
    client = _container_client(endpoint, account, key, container)
    for start in range(0, count, 256):
        client.delete_blobs(*names[start : start + 256])
    return timed


def _small_impl(impl: str, endpoint: str, account: str, key: str, container: str) -> tuple[Any, Any]:
    if impl == "blobdrivers":
        from blobdrivers.drivers.azure import AzureDriver

        store = AzureDriver(accountname=account, accountkey=key, container=container, serviceurl=endpoint)
        return (lambda n, d: store.put("/" + n, d)), (lambda n: store.get("/" + n))
    if impl == "sdk":
        client = _container_client(endpoint, account, key, container)
        return (
            (lambda n, d: client.get_blob_client(n).upload_blob(d, overwrite=True)),
            (lambda n: client.get_blob_client(n).download_blob().readall()),
        )
    if impl == "adlfs":
        import adlfs

        fs = adlfs.AzureBlobFileSystem(connection_string=_connection_string(endpoint, account, key))
        return (lambda n, d: fs.pipe_file(f"{container}/{n}", d)), (lambda n: fs.cat_file(f"{container}/{n}"))
    if impl == "obstore":
        import obstore
        from obstore.store import AzureStore

        store_ = AzureStore(
            container, account_name=account, access_key=key, endpoint=endpoint, client_options={"allow_http": True}
        )
        return (lambda n, d: obstore.put(store_, n, d)), (lambda n: obstore.get(store_, n).bytes())
    if impl == "raw":
        import urllib3

        base, token = _sas_base(endpoint, account, key, container)
        pool = urllib3.PoolManager()

        def raw_put(name: str, data: bytes) -> None:
            response = pool.request("PUT", f"{base}/{name}?{token}", body=data, headers={"x-ms-blob-type": "BlockBlob"})
            assert response.status == 201, response.status

        def raw_get(name: str) -> bytes:
            response = pool.request("GET", f"{base}/{name}?{token}")
            assert response.status == 200, response.status
            return bytes(response.data)

        return raw_put, raw_get
    raise ValueError(impl)


def prepare(size: int, endpoint: str, account: str, key: str, container: str) -> dict[str, float]:
    """Create the container and, for a get row, the ``size``-byte blob it reads."""
    client = _container_client(endpoint, account, key, container)
    client.create_container()
    started = time.perf_counter()
    if size:
        client.get_blob_client(f"get-{size}").upload_blob(
            ChunkFile(size, BUFFER), length=size, overwrite=True, max_concurrency=CONCURRENCY
        )
    return {"seconds": max(time.perf_counter() - started, 1e-9), "bytes": size}


# ---------------------------------------------------------------------- cases and main

_PEERS = [
    ("blobdrivers", "blobdrivers azure (4 MiB blocks, 8 in flight)", ""),
    ("blobdrivers16", "blobdrivers azure chunksize=16MiB", "non-default block size"),
    ("sdk", "azure-storage-blob upload_blob/download_blob", "max_concurrency=8"),
    ("adlfs", "adlfs", ""),
    ("obstore", "obstore AzureStore", "endpoint=Azurite, allow_http"),
]


def cases(sizes: list[int], count: int) -> list[Case]:
    """The cases; :func:`_run_on_fresh_server` fills in the server parameters (a fresh Azurite per run)."""
    raw_notes = ("one streamed PUT (Put Blob), SAS URL", "one GET, SAS URL")
    large_peers: list[peers.Peer] = [(impl, name, note, note) for impl, name, note in _PEERS]
    small_peers: list[peers.Peer] = [(impl, name, "", "") for impl, name, _ in _PEERS if impl != "blobdrivers16"]
    large = [case for size in sizes for case in peers.large_cases(_MODULE, size, raw_notes, large_peers)]
    return [*large, *peers.small_cases(_MODULE, count, ("", ""), small_peers)]


def _run_on_fresh_server(case: Case, start_azurite: Any) -> Result:
    server = start_azurite()
    try:
        where = _server_kwargs(server, f"bench-{uuid.uuid4().hex[:12]}")
        return peers.run_prepared(case, where, f"{_MODULE}:prepare")  # the set-up creates the container
    finally:
        server.stop()


def main() -> None:
    """Run every case against its own fresh Azurite and print the markdown table."""
    args = peers.fresh_server_parser(__doc__, "azure", quick="256 MiB only and 200 small objects").parse_args()
    sizes, count = ([256 * MiB], 200) if args.quick else ([256 * MiB, 1024 * MiB], 1000)
    title = peers.fresh_server_title("Azure Blob", "Azurite, in memory", args)
    from tests.servers.local import start_azurite

    runner = functools.partial(_run_on_fresh_server, start_azurite=start_azurite)
    print(peers.run_fresh_server_cases(cases(sizes, count), args, title, runner))


if __name__ == "__main__":
    main()
