"""Replication filesystem -> S3 (moto): blobdrivers.replicate against s3fs, boto3 and raw urllib3.

    python -m benchmarks.bench_replicate            # 10,000 x 4 KiB and 20 x 64 MiB
    python -m benchmarks.bench_replicate --quick    # 1,000 x 4 KiB and 4 x 64 MiB

Two tables. *Copy*: a tree on local disk into an empty bucket, by

* ``blobdrivers.replicate`` (missing check, then 8 concurrent streamed copies),
* s3fs ``put(recursive=True)`` (fsspec's batched async uploads),
* boto3 ``upload_file`` per object in a pool of 8 threads (the TransferManager
  splits large files into 8 MiB parts on 10 threads of its own),
* baseline: one unsigned urllib3 PUT per object in a pool of 8 threads (moto
  checks no signatures; no listing, no multipart).

*Missing check*: the same small-object tree, already in the bucket: how long it
takes to find that nothing is wanted (blobdrivers ``replicate`` copying nothing;
a boto3 ``list_objects_v2`` + ``os.walk`` comparison as the baseline, which is
what ``aws s3 sync`` does; s3fs ``find`` + ``os.walk``).

moto runs as its own process, started here; each copy case starts by resetting it.
The source tree is written once before the cases, so each case measures the
transfer only (from the page cache). See docs/replication.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, MiB, run_all
from benchmarks.peers import S3_KEY_ID, S3_REGION, S3_SECRET, moto_endpoint, s3fs_on

REGION, KEY_ID, SECRET = S3_REGION, S3_KEY_ID, S3_SECRET
SMALL = 4096
THREADS = 8


# ---------------------------------------------------------------------- helpers


def _http() -> Any:
    import urllib3

    return urllib3.PoolManager(maxsize=THREADS, retries=False)


def _fresh_bucket(endpoint: str, *, reset: bool = True) -> str:
    http = _http()
    if reset:
        http.request("POST", f"{endpoint}/moto-api/reset").release_conn()
    bucket = f"bench-{uuid.uuid4().hex[:16]}"
    response = http.request("PUT", f"{endpoint}/{bucket}")
    assert response.status == 200, response.status
    return bucket


def _files(root: str) -> list[tuple[str, str, int]]:
    """(OS path, key relative to ``root``, size) of every file below ``root``, sorted by key."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            found.append((full, os.path.relpath(full, root), os.path.getsize(full)))
    return sorted(found, key=lambda item: item[1])


def _result(started: float, files: list[tuple[str, str, int]], unit: str) -> dict[str, float]:
    seconds = time.perf_counter() - started
    if unit == "bytes":
        return {"seconds": seconds, "bytes": sum(size for _, _, size in files)}
    return {"seconds": seconds, "ops": len(files)}


def _boto3(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(max_pool_connections=4 * THREADS),
    )


def _stores(endpoint: str, bucket: str, source: str) -> tuple[Any, Any]:
    from blobdrivers.drivers.filesystem import FilesystemDriver
    from blobdrivers.drivers.s3 import S3Driver

    target = S3Driver(bucket=bucket, regionendpoint=endpoint, region=REGION, accesskey=KEY_ID, secretkey=SECRET)
    target.client  # noqa: B018  (build the client before the clock starts, as for the peers)
    return FilesystemDriver(rootdirectory=source), target


def _listed(endpoint: str, bucket: str) -> dict[str, int]:
    client = _boto3(endpoint)
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


def _check_copied(endpoint: str, bucket: str, files: list[tuple[str, str, int]]) -> None:
    assert _listed(endpoint, bucket) == {key: size for _, key, size in files}, "the bucket does not hold the tree"


# ---------------------------------------------------------------------- copy cases


def copy_tree(impl: str, endpoint: str, source: str, unit: str) -> dict[str, float]:
    files = _files(source)
    bucket = _fresh_bucket(endpoint)
    if impl == "blobdrivers":
        from blobdrivers.replicate import replicate

        src, dst = _stores(endpoint, bucket, source)
        started = time.perf_counter()
        report = replicate(src, dst, concurrency=THREADS)
        result = _result(started, files, unit)
        assert report.ok and report.copied == len(files), report
    elif impl == "s3fs":
        fs = s3fs_on(endpoint, skip_instance_cache=True)
        started = time.perf_counter()
        fs.put(source.rstrip("/") + "/", f"{bucket}/", recursive=True)
        result = _result(started, files, unit)
    elif impl == "boto3":
        client = _boto3(endpoint)
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda item: client.upload_file(item[0], bucket, item[1]), files))
        result = _result(started, files, unit)
    elif impl == "raw":
        http = _http()

        def put(item: tuple[str, str, int]) -> None:
            path, key, size = item
            with open(path, "rb") as body:
                response = http.request(
                    "PUT",
                    f"{endpoint}/{bucket}/{key}",
                    body=body,
                    headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                )
            assert response.status == 200, response.status

        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(put, files))
        result = _result(started, files, unit)
    else:
        raise ValueError(impl)
    _check_copied(endpoint, bucket, files)
    return result


# ---------------------------------------------------------------------- missing check on a synced tree


def missing_check(impl: str, endpoint: str, source: str, bucket: str) -> dict[str, float]:
    files = _files(source)
    if impl == "blobdrivers":
        from blobdrivers.replicate import replicate

        src, dst = _stores(endpoint, bucket, source)
        started = time.perf_counter()
        report = replicate(src, dst)
        result = _result(started, files, "ops")
        assert report.ok and report.copied == 0 and report.skipped == len(files), report
        return result
    started = time.perf_counter()
    if impl == "raw":
        remote = _listed(endpoint, bucket)
    elif impl == "s3fs":
        fs = s3fs_on(endpoint, skip_instance_cache=True)
        prefix = f"{bucket}/"
        remote = {path[len(prefix) :]: int(info["size"]) for path, info in fs.find(bucket, detail=True).items()}
    else:
        raise ValueError(impl)
    local = {key: size for _, key, size in _files(source)}
    wanted = [key for key, size in local.items() if remote.get(key) != size]
    result = _result(started, files, "ops")
    assert not wanted, wanted[:3]
    return result


# ---------------------------------------------------------------------- set-up


def _write_tree(root: str, count: int, size: int, folders: int) -> None:
    payload = os.urandom(min(size, 8 * MiB))
    for i in range(count):
        folder = os.path.join(root, f"d{i % folders:03d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"obj{i:06d}"), "wb") as out:
            left = size
            out.write(str(i).encode().ljust(16, b"."))  # every object differs
            left -= 16
            while left > 0:
                piece = payload[: min(left, len(payload))]
                out.write(piece)
                left -= len(piece)


def _seed_bucket(endpoint: str, source: str) -> str:
    """Upload the small tree once (not measured) for the missing-check cases."""
    bucket = _fresh_bucket(endpoint, reset=True)
    client = _boto3(endpoint)
    files = _files(source)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda item: client.upload_file(item[0], bucket, item[1]), files))
    _check_copied(endpoint, bucket, files)
    return bucket


PEERS = [
    ("raw", "raw urllib3 PUT x 8 threads", True, "unsigned single PUTs, no listing"),
    ("blobdrivers", "blobdrivers replicate", False, "concurrency 8, streamed"),
    ("s3fs", "s3fs put(recursive=True)", False, "fsspec batched async"),
    ("boto3", "boto3 upload_file x 8 threads", False, "TransferManager: 8 MiB parts, 10 threads per file"),
]


def copy_cases(endpoint: str, small: str, large: str, count: int, large_count: int, parts: set[str]) -> list[Case]:
    out = []
    for part, label, root, unit in (
        ("small", f"copy {count:,} x 4 KiB", small, "ops"),
        ("large", f"copy {large_count} x 64 MiB", large, "bytes"),
    ):
        if part not in parts:
            continue
        for impl, name, baseline, note in PEERS:
            out.append(
                Case(
                    label,
                    name,
                    "benchmarks.bench_replicate:copy_tree",
                    {"impl": impl, "endpoint": endpoint, "source": root, "unit": unit},
                    baseline=baseline,
                    note=note,
                )
            )
    return out


def check_cases(endpoint: str, small: str, bucket: str, count: int) -> list[Case]:
    label = f"missing check, {count:,} synced"
    peers = [
        ("raw", "boto3 list_objects_v2 + os.walk", True, "what aws s3 sync does"),
        ("blobdrivers", "blobdrivers replicate", False, "walk both sides, merge join"),
        ("s3fs", "s3fs find + os.walk", False, ""),
    ]
    return [
        Case(
            label,
            name,
            "benchmarks.bench_replicate:missing_check",
            {"impl": impl, "endpoint": endpoint, "source": small, "bucket": bucket},
            baseline=baseline,
            note=note,
        )
        for impl, name, baseline, note in peers
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 small and 4 large objects")
    parser.add_argument("--count", type=int, help="number of 4 KiB objects (default 10,000)")
    parser.add_argument("--large-count", type=int, help="number of 64 MiB objects (default 20)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (the median is reported)")
    parser.add_argument("--out", default="benchmarks/results/replicate")
    parser.add_argument(
        "--only", default="small,large,check", help="comma-separated parts to run: small, large, check (default: all)"
    )
    args = parser.parse_args()
    count = args.count or (1000 if args.quick else 10_000)
    large_count = args.large_count or (4 if args.quick else 20)
    work = tempfile.mkdtemp(prefix="bd-bench-replicate-", dir=os.environ.get("BENCH_DIR"))
    try:
        small, large = os.path.join(work, "small"), os.path.join(work, "large")
        parts = set(args.only.split(","))
        if parts & {"small", "check"}:
            _write_tree(small, count, SMALL, folders=100)
        if "large" in parts:
            _write_tree(large, large_count, 64 * MiB, folders=1)
        with moto_endpoint() as endpoint:
            if parts & {"small", "large"}:
                print(
                    run_all(
                        copy_cases(endpoint, small, large, count, large_count, parts),
                        title=f"Replication filesystem -> S3 on moto: copy ({count:,} x 4 KiB, {large_count} x 64 MiB)",
                        out=Path(args.out + "-copy.json"),
                        repeat=args.repeat,
                    )
                )
            if "check" in parts:
                bucket = _seed_bucket(endpoint, small)
                print(
                    run_all(
                        check_cases(endpoint, small, bucket, count),
                        title=f"Replication filesystem -> S3 on moto: missing check of {count:,} synced objects",
                        out=Path(args.out + "-check.json"),
                        repeat=args.repeat,
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
