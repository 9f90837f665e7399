"""S3 driver against boto3's TransferManager, s3fs, obstore and a raw urllib3 baseline, all on one moto server.

    python -m benchmarks.bench_s3            # 1 GiB and 1,000 x 4 KiB
    python -m benchmarks.bench_s3 --quick    # 256 MiB and 1,000 x 4 KiB
    python -m benchmarks.bench_s3 --size-mib 512 --count 500 --repeat 1

moto runs as its own process (``python -m moto.server``), so it shares neither the
GIL nor the peak RSS of the measured client; each case runs in a fresh child
process and starts by resetting moto, so no case pays for another's objects.

Large puts stream 8 MiB chunks of unknown total length (a generator or a
``read``-only file); large gets read into a reused 8 MiB buffer where the API
allows it. The baseline is one unsigned urllib3 PUT / GET of the whole object
(moto checks no signatures): the server's own limit for one stream.

moto reads the whole object for every ranged GET, so implementations that
download in parallel ranges (boto3's ``download_fileobj``, s3fs's block reads)
look far slower here than they are on S3; see test-servers.md.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, ChunkFile, MiB, Sink, chunks, read_loop, run_all
from benchmarks.peers import S3_KEY_ID, S3_REGION, S3_SECRET, moto_endpoint, s3fs_on, time_small_ops

BUFFER = 8 * MiB
REGION, KEY_ID, SECRET = S3_REGION, S3_KEY_ID, S3_SECRET
SMALL = 4096


# ---------------------------------------------------------------------- moto helpers (raw HTTP, no signing)


def _http() -> Any:
    import urllib3

    return urllib3.PoolManager(maxsize=4, retries=False)


def _fresh_bucket(endpoint: str) -> str:
    """Reset moto (drop every earlier case's objects) and create an empty bucket."""
    http = _http()
    http.request("POST", f"{endpoint}/moto-api/reset").release_conn()
    bucket = f"bench-{uuid.uuid4().hex[:16]}"
    response = http.request("PUT", f"{endpoint}/{bucket}")
    assert response.status == 200, response.status
    return bucket


def _raw_put(endpoint: str, bucket: str, key: str, body: Any, size: int) -> None:
    response = _http().request(
        "PUT",
        f"{endpoint}/{bucket}/{key}",
        body=body,
        # public-read: moto refuses unsigned GETs of private objects, and the raw GET baseline is unsigned.
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream", "x-amz-acl": "public-read"},
        preload_content=True,
    )
    assert response.status == 200, response.status


def _seed(endpoint: str, bucket: str, key: str, size: int) -> None:
    """Create the object to read with a streamed raw PUT (so set-up adds nothing to the client's RSS)."""
    _raw_put(endpoint, bucket, key, chunks(size, BUFFER), size)


def _timed(run: Any, size: int) -> dict[str, float]:
    started = time.perf_counter()
    run()
    return {"seconds": time.perf_counter() - started, "bytes": size}


# ---------------------------------------------------------------------- clients


def _blobdrivers(endpoint: str, bucket: str, **extra: Any) -> Any:
    from blobdrivers.drivers.s3 import S3Driver

    return S3Driver(bucket=bucket, regionendpoint=endpoint, region=REGION, accesskey=KEY_ID, secretkey=SECRET, **extra)


def _boto3(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    )


def _obstore(endpoint: str, bucket: str) -> Any:
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=endpoint,
        region=REGION,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


# ---------------------------------------------------------------------- large objects


def put_large(impl: str, endpoint: str, size: int) -> dict[str, float]:
    bucket = _fresh_bucket(endpoint)
    if impl == "raw":
        return _timed(lambda: _raw_put(endpoint, bucket, "blob", chunks(size, BUFFER), size), size)
    if impl == "blobdrivers":
        store = _blobdrivers(endpoint, bucket)
        store.client  # noqa: B018  (build the client before the clock starts, as for the peers)
        return _timed(lambda: store.put("/blob", chunks(size, BUFFER)), size)
    if impl == "boto3":
        client = _boto3(endpoint)
        return _timed(lambda: client.upload_fileobj(ChunkFile(size, BUFFER), bucket, "blob"), size)
    if impl == "s3fs":
        fs = s3fs_on(endpoint, use_listings_cache=False)

        def write() -> None:
            with fs.open(f"{bucket}/blob", "wb") as out:
                for chunk in chunks(size, BUFFER):
                    out.write(chunk)

        return _timed(write, size)
    if impl == "obstore":
        import obstore

        store = _obstore(endpoint, bucket)
        return _timed(lambda: obstore.put(store, "blob", chunks(size, BUFFER)), size)
    raise ValueError(impl)


def get_large(impl: str, endpoint: str, size: int) -> dict[str, float]:
    bucket = _fresh_bucket(endpoint)
    _seed(endpoint, bucket, "blob", size)
    if impl == "raw":
        http = _http()

        def read() -> None:
            response = http.request("GET", f"{endpoint}/{bucket}/blob", preload_content=False)
            read_loop(response.readinto, size)
            response.release_conn()

        return _timed(read, size)
    if impl == "blobdrivers":
        store = _blobdrivers(endpoint, bucket)
        store.client  # noqa: B018

        def stream() -> None:
            with store.stream("/blob") as reader:
                read_loop(reader.readinto, size)

        return _timed(stream, size)
    if impl == "boto3":
        client = _boto3(endpoint)
        sink = Sink()
        result = _timed(lambda: client.download_fileobj(bucket, "blob", sink), size)
        assert sink.total == size
        return result
    if impl == "s3fs":
        fs = s3fs_on(endpoint, use_listings_cache=False)

        def read_s3fs() -> None:
            with fs.open(f"{bucket}/blob", "rb", block_size=BUFFER) as source:
                read_loop(source.readinto, size)

        return _timed(read_s3fs, size)
    if impl == "obstore":
        import obstore

        store = _obstore(endpoint, bucket)

        def read_obstore() -> None:
            total = sum(len(chunk) for chunk in obstore.get(store, "blob").stream(min_chunk_size=BUFFER))
            assert total == size

        return _timed(read_obstore, size)
    raise ValueError(impl)


# ---------------------------------------------------------------------- small objects


def small_ops(impl: str, op: str, endpoint: str, count: int) -> dict[str, float]:
    """``count`` sequential puts or gets of 4 KiB objects under distinct names."""
    bucket = _fresh_bucket(endpoint)
    names = [f"d{i % 16}/obj{i}" for i in range(count)]  # a fresh bucket: no prefix needed
    put, get = _small_impl(impl, endpoint, bucket)

    def fill(name: str, data: bytes) -> None:
        _raw_put(endpoint, bucket, name, data, SMALL)

    return time_small_ops(op, names, os.urandom(SMALL), put, get, fill=fill)


def _small_impl(impl: str, endpoint: str, bucket: str) -> tuple[Any, Any]:
    if impl == "raw":
        http = _http()

        def raw_get(name: str) -> bytes:
            response = http.request("GET", f"{endpoint}/{bucket}/{name}")
            assert response.status == 200
            return bytes(response.data)

        def raw_put(name: str, data: bytes) -> None:
            response = http.request(
                "PUT", f"{endpoint}/{bucket}/{name}", body=data, headers={"Content-Type": "application/octet-stream"}
            )
            assert response.status == 200

        return raw_put, raw_get
    if impl == "blobdrivers":
        store = _blobdrivers(endpoint, bucket)
        store.client  # noqa: B018
        return (lambda n, d: store.put("/" + n, d)), (lambda n: store.get("/" + n))
    if impl == "boto3":
        client = _boto3(endpoint)
        return (
            (lambda n, d: client.put_object(Bucket=bucket, Key=n, Body=d)),
            (lambda n: client.get_object(Bucket=bucket, Key=n)["Body"].read()),
        )
    if impl == "s3fs":
        fs = s3fs_on(endpoint, use_listings_cache=False)
        return (lambda n, d: fs.pipe_file(f"{bucket}/{n}", d)), (lambda n: fs.cat_file(f"{bucket}/{n}"))
    if impl == "obstore":
        import obstore

        store_ = _obstore(endpoint, bucket)
        return (lambda n, d: obstore.put(store_, n, d)), (lambda n: obstore.get(store_, n).bytes())
    raise ValueError(impl)


# ---------------------------------------------------------------------- cases


PEERS = [
    ("blobdrivers", "blobdrivers s3", ""),
    ("boto3", "boto3 upload_fileobj/download_fileobj", "TransferManager defaults: 8 MiB parts, 10 threads"),
    ("s3fs", "s3fs", ""),
    ("obstore", "obstore S3Store", ""),
]


def cases(endpoint: str, size: int, count: int) -> list[Case]:
    label = f"{size // MiB} MiB"
    module = "benchmarks.bench_s3"
    out: list[Case] = []
    for op in ("put", "get"):
        out.append(
            Case(
                f"{op} {label}",
                f"raw urllib3 single {op.upper()}",
                f"{module}:{op}_large",
                {"impl": "raw", "endpoint": endpoint, "size": size},
                baseline=True,
                note="unsigned, one stream",
            )
        )
        for impl, name, put_note in PEERS:
            note = put_note
            if op == "get" and impl == "boto3":
                note = "parallel 8 MiB ranges: moto reads the whole object per range"
            if op == "get" and impl == "s3fs":
                note = "ranged block reads (8 MiB blocks)"
            out.append(
                Case(
                    f"{op} {label}",
                    name,
                    f"{module}:{op}_large",
                    {"impl": impl, "endpoint": endpoint, "size": size},
                    note=note if op == "put" or impl != "blobdrivers" else "stream(): one GET, body streamed",
                )
            )
    for op in ("put", "get"):
        out.append(
            Case(
                f"{op} 4 KiB",
                "raw urllib3",
                f"{module}:small_ops",
                {"impl": "raw", "op": op, "endpoint": endpoint, "count": count},
                baseline=True,
                note="unsigned",
            )
        )
        for impl, name, _ in PEERS:
            out.append(
                Case(
                    f"{op} 4 KiB",
                    "boto3 put_object/get_object" if impl == "boto3" else name,
                    f"{module}:small_ops",
                    {"impl": impl, "op": op, "endpoint": endpoint, "count": count},
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 MiB objects instead of 1 GiB")
    parser.add_argument("--size-mib", type=int, help="size of the large object, in MiB")
    parser.add_argument("--count", type=int, default=1000, help="number of 4 KiB objects")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median is reported)")
    parser.add_argument("--out", default="benchmarks/results/s3.json")
    args = parser.parse_args()
    size = (args.size_mib or (256 if args.quick else 1024)) * MiB
    with moto_endpoint() as endpoint:
        table = run_all(
            cases(endpoint, size, args.count),
            title=f"S3 on moto ({size // MiB} MiB, {args.count} x 4 KiB)",
            out=Path(args.out),
            repeat=args.repeat,
        )
        print(table)


if __name__ == "__main__":
    main()
