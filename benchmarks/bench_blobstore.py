"""BlobStore.stat latency on S3 (moto): uncached, with the memory cache, with the Redis cache.

    python -m benchmarks.bench_blobstore            # 10,000 stat calls per case
    python -m benchmarks.bench_blobstore --quick    # 1,000 per case

moto runs as its own process (not in this one, so it does not share our GIL) and
redis-server is started on a free port, both through tests/servers/local.py. A set
of small blobs is put once (with media types); each case then stats them round
robin. Cached cases are warmed with one unmeasured pass, so they show the hit
path; the uncached case is what every HEAD costs without a cache (a HEAD of the
data plus a GET of the media type). Raw rows give the floor of each path on the
same servers: one boto3 ``head_object`` and one redis-py ``HMGET``.

If the S3 driver cannot be created, the filesystem driver is used instead and the
table says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import run_meta, write_results

BLOBS = 100
OUT = Path(__file__).resolve().parent / "results" / "blobstore.json"


@dataclass
class Row:
    case: str
    calls: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    ops_per_s: float
    hit_ratio: float | None = None
    note: str = ""


def measure(case: str, calls: int, targets: list[str], fn: Callable[[str], Any], note: str = "") -> Row:
    latencies = []
    count = len(targets)
    started = time.perf_counter()
    for i in range(calls):
        target = targets[i % count]
        t0 = time.perf_counter_ns()
        fn(target)
        latencies.append(time.perf_counter_ns() - t0)
    total = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000

    return Row(case, calls, pct(0.50), pct(0.90), pct(0.99), statistics.fmean(latencies) / 1000, calls / total, None,
               note)  # fmt: skip


def table(rows: list[Row], title: str) -> str:
    base = next((r for r in rows if r.case.startswith("BlobStore.stat, uncached")), None)
    lines = [
        f"### {title}",
        "",
        "| case | calls | p50 | p90 | p99 | mean | ops/s | p50 speed-up vs uncached | hit ratio | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{base.p50_us / r.p50_us:.0f}x" if base else ""
        hits = f"{r.hit_ratio:.3f}" if r.hit_ratio is not None else ""
        lines.append(
            f"| {r.case} | {r.calls:,} | {_us(r.p50_us)} | {_us(r.p90_us)} | {_us(r.p99_us)} | {_us(r.mean_us)} "
            f"| {r.ops_per_s:,.0f} | {ratio} | {hits} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 calls per case instead of 10,000")
    parser.add_argument("--calls", type=int, default=None, help="calls per case (overrides --quick)")
    args = parser.parse_args()
    calls = args.calls or (1_000 if args.quick else 10_000)

    import blobdrivers
    from blobdrivers.blobs import BlobStore, MemoryDescriptorCache, RedisDescriptorCache
    from tests.servers.local import ServerUnavailable, start_moto, start_redis

    moto = start_moto(in_process=False)
    redis_server = start_redis()
    cleanup: list[Callable[[], None]] = [moto.stop, redis_server.stop]
    try:
        import boto3

        s3 = boto3.client("s3", **moto.client_kwargs())
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        backend = "S3 on moto (separate process)"
        try:
            driver = blobdrivers.create(
                "s3",
                {
                    "bucket": bucket,
                    "regionendpoint": moto.endpoint_url,
                    "accesskey": moto.credentials["aws_access_key_id"],
                    "secretkey": moto.credentials["aws_secret_access_key"],
                    "region": moto.region,
                },
            )
        except (ImportError, blobdrivers.errors.DriverNotFoundError) as exc:
            root = tempfile.mkdtemp(prefix="bd-bench-blobstore-")
            cleanup.append(lambda: shutil.rmtree(root, ignore_errors=True))
            driver = blobdrivers.create("filesystem", {"rootdirectory": root})
            backend = f"filesystem (S3 driver unavailable: {type(exc).__name__})"

        plain = BlobStore(driver)
        descriptors = [plain.put(os.urandom(1024), "application/vnd.oci.image.layer.v1.tar") for _ in range(BLOBS)]
        digests = [d.digest for d in descriptors]
        repo_name = "library/bench"
        for digest in digests:
            plain.repository(repo_name).link(digest)
        print(f"{BLOBS} blobs on {backend}; {calls:,} calls per case", flush=True)

        rows: list[Row] = []

        def run(case: str, fn: Callable[[str], Any], note: str = "", cache: Any = None) -> None:
            for digest in digests:  # warm-up pass, not measured
                fn(digest)
            if cache is not None:
                cache.reset_counters()
            row = measure(case, calls, digests, fn, note)
            if cache is not None:
                row.hit_ratio = cache.hits / max(1, cache.requests)
            rows.append(row)
            print(f"  {case:<48} p50 {_us(row.p50_us):>10}  p99 {_us(row.p99_us):>10}", flush=True)

        encoded = {d: d.split(":")[1] for d in digests}
        keys = {d: f"blobs/sha256/{encoded[d][:2]}/{encoded[d]}/data" for d in digests}
        if backend.startswith("S3"):
            run("raw boto3 head_object (baseline)", lambda d: s3.head_object(Bucket=bucket, Key=keys[d]),
                "one HEAD: the floor of an uncached stat")  # fmt: skip
        run("BlobStore.stat, uncached", plain.stat, "HEAD data + GET mediatype")
        memory = MemoryDescriptorCache()
        memory_store = BlobStore(driver, cache=memory)
        run("BlobStore.stat, MemoryDescriptorCache", memory_store.stat, "", memory)
        run("Repository.stat, MemoryDescriptorCache", memory_store.repository(repo_name).stat, "", memory)
        try:
            redis_cache = RedisDescriptorCache(redis_server.url, prefix=f"bench{uuid.uuid4().hex[:6]}")
        except ServerUnavailable as exc:  # pragma: no cover - start_redis above already raised
            raise SystemExit(str(exc)) from exc
        cleanup.insert(0, redis_cache.close)
        redis_store = BlobStore(driver, cache=redis_cache)
        import redis

        raw = redis.Redis.from_url(redis_server.url)
        cleanup.insert(0, raw.close)
        run("raw redis-py HMGET (baseline)", lambda d: raw.hmget(redis_cache.blob_key(d), ["size", "mediatype"]),
            "one round trip: the floor of a Redis hit")  # fmt: skip
        run("BlobStore.stat, RedisDescriptorCache", redis_store.stat, "", redis_cache)
        run("Repository.stat, RedisDescriptorCache", redis_store.repository(repo_name).stat,
            "SISMEMBER + HMGET + HGET, one pipeline", redis_cache)  # fmt: skip

        title = f"BlobStore.stat latency, {backend}, {BLOBS} blobs, {calls:,} calls per case"
        markdown = table(rows, title)
        write_results(OUT, {**run_meta(title), "backend": backend}, rows)
        print()
        print(markdown)
    finally:
        for step in cleanup:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                print(f"cleanup: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
