"""Blob descriptor caches: MemoryDescriptorCache and RedisDescriptorCache (real redis-server).

The store behind them is the in-memory driver (the caches are what is under test;
tests/test_blobs.py covers the store on every driver), plus the filesystem driver
where a real second store instance matters. Driver observers count the stat calls
that reach the store, which is how a hit is told from a miss.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers.blobs import (
    BlobNotFoundError,
    BlobStore,
    CacheCounters,
    Descriptor,
    DescriptorCache,
    InvalidDigestError,
    InvalidRepositoryNameError,
    MemoryDescriptorCache,
    RedisDescriptorCache,
)
from blobdrivers.driver import CallEvent, StorageDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.listing import FileInfo
from tests.servers.local import RedisServer, free_port

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha512:" + "3" * 128


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class StatCounter:
    """Counts the driver's stat calls on blob data (what a cache hit avoids)."""

    def __init__(self, driver: StorageDriver) -> None:
        self.count = 0
        self._lock = threading.Lock()
        driver.observers.append(self)

    def __call__(self, event: CallEvent) -> None:
        if event.operation == "stat" and event.path.endswith("/data"):
            with self._lock:
                self.count += 1


@pytest.fixture
def redis_cache_factory(redis_url: str) -> Iterator[Callable[..., RedisDescriptorCache]]:
    made: list[RedisDescriptorCache] = []

    def make(**kwargs: Any) -> RedisDescriptorCache:
        cache = RedisDescriptorCache(redis_url, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> DescriptorCache:
    if request.param == "memory":
        return MemoryDescriptorCache()
    factory = request.getfixturevalue("redis_cache_factory")
    made: DescriptorCache = factory()
    return made


@pytest.fixture
def driver() -> StorageDriver:
    return blobdrivers.create("inmemory")


# --------------------------------------------------------------------------- contract, both caches


def test_cache_interface_directly(cache: DescriptorCache) -> None:
    assert cache.stat(D1) is None
    cache.set(Descriptor(D1, 10, "text/plain"))
    assert cache.stat(D1) == Descriptor(D1, 10, "text/plain")
    cache.set(Descriptor(D1, 10, "application/json"))  # replaced, not merged
    assert cache.stat(D1) == Descriptor(D1, 10, "application/json")
    repo = cache.repository("library/ubuntu")
    assert repo.stat(D1) is None  # not a member
    repo.set(Descriptor(D1, 10, "x/override"))
    assert repo.stat(D1) == Descriptor(D1, 10, "x/override")
    assert cache.repository("library/debian").stat(D1) is None
    assert cache.stat(D1) == Descriptor(D1, 10, "application/json")  # global type untouched
    cache.clear(D1)
    assert cache.stat(D1) is None
    assert repo.stat(D1) is None  # a repository hit needs the global descriptor too
    cache.set(Descriptor(D1, 10, "application/json"))
    repo.clear(D1)
    assert repo.stat(D1) is None and cache.stat(D1) is not None
    repo.set(Descriptor(D1, 10, "x/override"))
    cache.set(Descriptor(D3, 3))
    repo.set(Descriptor(D3, 3))
    repo.clear_all()
    assert repo.stat(D1) is None and repo.stat(D3) is None and cache.stat(D3) == Descriptor(D3, 3)
    counters = cache.counters
    assert counters.requests == counters.hits + counters.misses
    assert counters.errors == 0
    with pytest.raises(InvalidDigestError):
        cache.stat("sha256:nope")
    with pytest.raises(InvalidDigestError):
        cache.set(Descriptor("md5:abc", 1))
    with pytest.raises(InvalidRepositoryNameError):
        cache.repository("UPPER")


def test_miss_fills_then_hits(cache: DescriptorCache, driver: StorageDriver) -> None:
    writer_store = BlobStore(driver)  # no cache: the blob arrives behind the cache's back
    described = writer_store.put(b"hello", "text/plain")
    store = BlobStore(driver, cache=cache)
    stats = StatCounter(driver)
    assert store.stat(described.digest) == described  # miss: from the store, then cached
    assert stats.count == 1
    assert cache.counters == CacheCounters(requests=1, hits=0, misses=1)
    for _ in range(5):
        assert store.stat(described.digest) == described
    assert stats.count == 1  # hits never touch the store
    assert cache.counters == CacheCounters(requests=6, hits=5, misses=1)
    assert (cache.requests, cache.hits, cache.misses, cache.errors) == (6, 5, 1, 0)
    with pytest.raises(BlobNotFoundError):
        store.stat(D2)  # misses are not cached: a later publish is seen
    writer_store.put(b"later")
    assert store.stat(sha256(b"later")).size == 5
    cache.reset_counters()
    assert cache.counters == CacheCounters()


def test_publishes_fill_the_cache(cache: DescriptorCache, driver: StorageDriver) -> None:
    store = BlobStore(driver, cache=cache)
    stats = StatCounter(driver)
    put = store.put(b"bytes", "application/x-a")
    upload = store.start_upload()
    upload.write(b"uploaded")
    finished = upload.finish(sha256(b"uploaded"), "application/x-b")
    before = stats.count
    assert store.stat(put.digest) == put
    assert store.stat(finished.digest) == finished
    assert stats.count == before
    assert cache.hits == 2 and cache.misses == 0


def test_repository_membership_and_media_type_override(cache: DescriptorCache, driver: StorageDriver) -> None:
    store = BlobStore(driver, cache=cache)
    layer = store.put(b"layer", "application/vnd.oci.image.layer.v1.tar")
    ubuntu = store.repository("library/ubuntu")
    linked = ubuntu.link(layer.digest, "application/vnd.docker.image.rootfs.diff.tar")
    assert linked.media_type == "application/vnd.docker.image.rootfs.diff.tar"
    stats = StatCounter(driver)
    hits = cache.hits
    assert ubuntu.stat(layer.digest) == linked  # from the cache's repository view
    assert store.stat(layer.digest).media_type == "application/vnd.oci.image.layer.v1.tar"
    assert stats.count == 0 and cache.hits == hits + 2
    assert cache.repository("library/ubuntu").stat(layer.digest) == linked
    # Not linked elsewhere: the cache misses and the store says no.
    with pytest.raises(BlobNotFoundError, match="not linked"):
        store.repository("library/debian").stat(layer.digest)
    # A repository miss is filled from the store (cache cleared behind the store's back).
    cache.repository("library/ubuntu").clear(layer.digest)
    assert ubuntu.stat(layer.digest) == linked
    assert cache.repository("library/ubuntu").stat(layer.digest) == linked
    ubuntu.unlink(layer.digest)
    assert cache.repository("library/ubuntu").stat(layer.digest) is None
    with pytest.raises(BlobNotFoundError):
        ubuntu.stat(layer.digest)


def test_delete_clears_the_cache(cache: DescriptorCache, driver: StorageDriver) -> None:
    store = BlobStore(driver, cache=cache)
    described = store.put(b"doomed")
    repo = store.repository("r")
    repo.link(described.digest)
    assert store.stat(described.digest) == described
    assert repo.stat(described.digest) == described
    store.delete(described.digest)
    assert cache.stat(described.digest) is None
    assert cache.repository("r").stat(described.digest) is None
    with pytest.raises(BlobNotFoundError):
        store.stat(described.digest)
    with pytest.raises(BlobNotFoundError):
        repo.stat(described.digest)


class _GatedStat(InMemoryDriver):
    """Holds one stat of blob data that found the blob (once armed) until the test releases it."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.armed = False
        self.reached = threading.Event()
        self.release = threading.Event()

    def stat(self, path: str) -> FileInfo:
        info = super().stat(path)
        if self.armed and path.endswith("/data"):
            self.armed = False
            self.reached.set()
            assert self.release.wait(10), "the test never released the stat"
        return info


@pytest.mark.parametrize("racing", ["stat", "put"])
def test_a_delete_racing_a_cache_fill_is_never_undone(cache: DescriptorCache, racing: str) -> None:
    # The stat (or the publish) has read the store and is about to fill the cache when the delete runs.
    driver = _GatedStat()
    store = BlobStore(driver, cache=cache)
    data = f"racing {racing}".encode()
    digest = sha256(data)
    if racing == "stat":
        BlobStore(driver).put(data)  # behind the cache: the stat misses and reads the store
    driver.armed = True
    racer = threading.Thread(
        target=store.stat if racing == "stat" else store.put, args=(digest if racing == "stat" else data,)
    )
    racer.start()
    try:
        assert driver.reached.wait(10), "the stat of the blob was never reached"
        store.delete(digest)
    finally:
        driver.release.set()
        racer.join(10)
    assert not racer.is_alive()
    assert cache.stat(digest) is None
    assert not store.exists(digest)
    with pytest.raises(BlobNotFoundError):
        store.stat(digest)
    with pytest.raises(BlobNotFoundError):
        store.repository("r").link(digest)
    store.put(data)  # a later publish is cached again
    assert cache.stat(digest) == Descriptor(digest, len(data))


def test_generations_guard_fills(cache: DescriptorCache) -> None:
    before = cache.generation(D1)
    cache.clear(D1)
    cache.fill(Descriptor(D1, 1), before)  # read before the clear: refused
    assert cache.stat(D1) is None
    cache.fill(Descriptor(D1, 1), cache.generation(D1))
    assert cache.stat(D1) == Descriptor(D1, 1)
    unrelated = cache.generation(D2)
    cache.clear(D1)  # another digest's clear does not refuse the fill
    cache.fill(Descriptor(D2, 2), unrelated)
    assert cache.stat(D2) == Descriptor(D2, 2)
    cache.fill(Descriptor(D3, 3), None)  # unknown generation: nothing cached
    assert cache.stat(D3) is None


def test_memory_cache_refuses_fills_older_than_a_forgotten_clear() -> None:
    cache = MemoryDescriptorCache(max_entries=1)
    before = cache.generation(D1)
    cache.clear(D1)
    cache.clear(D2)  # the clear of D1 is forgotten (bounded memory)
    cache.fill(Descriptor(D1, 1), before)
    assert cache.stat(D1) is None
    cache.fill(Descriptor(D1, 1), cache.generation(D1))
    assert cache.stat(D1) == Descriptor(D1, 1)


def test_cache_is_shared_between_store_instances(cache: DescriptorCache, tmp_path: Path) -> None:
    first = BlobStore(blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path)}), cache=cache)
    second_driver = blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path)})
    second = BlobStore(second_driver, cache=cache)
    described = first.put(b"shared")
    stats = StatCounter(second_driver)
    assert second.stat(described.digest) == described
    assert stats.count == 0


def test_a_failing_cache_never_fails_the_store(driver: StorageDriver, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryDescriptorCache):
        def stat(self, digest: str) -> Descriptor | None:
            raise RuntimeError("bug in a cache")

        def set(self, descriptor: Descriptor) -> None:
            raise RuntimeError("bug in a cache")

    store = BlobStore(driver, cache=Broken())
    with caplog.at_level(logging.WARNING, logger="blobdrivers.blobs"):
        described = store.put(b"x")
        assert store.stat(described.digest) == described
    assert "descriptor cache call" in caplog.text


# --------------------------------------------------------------------------- memory cache


def test_memory_cache_evicts_least_recently_used_at_its_bound() -> None:
    cache = MemoryDescriptorCache(max_entries=3)
    digests = [f"sha256:{i:064x}" for i in range(5)]
    for digest in digests[:3]:
        cache.set(Descriptor(digest, 1))
    assert cache.stat(digests[0]) is not None  # touch: now the most recently used
    cache.set(Descriptor(digests[3], 1))  # evicts digests[1]
    assert len(cache) == 3
    assert cache.stat(digests[1]) is None
    assert all(cache.stat(d) is not None for d in (digests[0], digests[2], digests[3]))
    cache.repository("r").set(Descriptor(digests[4], 1))  # memberships count towards the bound
    assert len(cache) == 3
    for _ in range(1000):
        cache.set(Descriptor(f"sha256:{_:064x}", 1))
    assert len(cache) == 3
    with pytest.raises(ValueError):
        MemoryDescriptorCache(max_entries=0)


def test_memory_cache_is_thread_safe() -> None:
    cache = MemoryDescriptorCache(max_entries=500)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        try:
            repo = cache.repository(f"r{seed % 3}")
            for i in range(3000):
                digest = f"sha256:{(seed * 7919 + i) % 2000:064x}"
                cache.set(Descriptor(digest, i))
                repo.set(Descriptor(digest, i))
                cache.stat(digest)
                repo.stat(digest)
                if i % 7 == 0:
                    cache.clear(digest)
                if i % 500 == 0:
                    repo.clear_all()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 500
    counters = cache.counters
    assert counters.requests == 8 * 3000 * 2 == counters.hits + counters.misses


# --------------------------------------------------------------------------- redis cache


def test_redis_key_layout_hash_tags_and_cluster_slots(
    redis_cache_factory: Callable[..., RedisDescriptorCache], redis_url: str
) -> None:
    import redis
    from redis.crc import key_slot

    cache = redis_cache_factory(prefix="reg")
    cache.set(Descriptor(D1, 42, "text/plain"))
    cache.repository("library/ubuntu").set(Descriptor(D1, 42, "x/y"))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert sorted(client.keys("*")) == sorted(
            [f"reg:blob:{{{D1}}}", "reg:repo:{library/ubuntu}:blobs", "reg:repo:{library/ubuntu}:mediatypes"]
        )
        assert client.hgetall(f"reg:blob:{{{D1}}}") == {"digest": D1, "size": "42", "mediatype": "text/plain"}
        assert client.smembers("reg:repo:{library/ubuntu}:blobs") == {D1}
        assert client.hgetall("reg:repo:{library/ubuntu}:mediatypes") == {D1: "x/y"}
    finally:
        client.close()
    repo_keys = [cache.members_key("library/ubuntu"), cache.media_types_key("library/ubuntu")]
    assert len({key_slot(key.encode()) for key in repo_keys}) == 1  # one slot: one MULTI on a cluster
    assert key_slot(cache.blob_key(D1).encode()) == key_slot(D1.encode())
    with pytest.raises(ValueError):
        RedisDescriptorCache(redis_url, prefix="bad{prefix}")


def test_redis_repository_changes_are_single_transactions(
    redis_cache_factory: Callable[..., RedisDescriptorCache], redis_url: str
) -> None:
    import redis

    cache = redis_cache_factory()
    repo = cache.repository("team/app")
    monitor_client = redis.Redis.from_url(redis_url, decode_responses=True)
    commands: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with monitor_client.monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                command = event["command"]
                if command.startswith("PING"):
                    return
                name = command.split()[0].strip('"').upper()
                if name not in {"CLIENT", "HELLO", "SELECT", "AUTH"}:  # connection set-up
                    commands.append(name)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(10)
    repo.set(Descriptor(D1, 1, "a/b"))
    repo.clear(D1)
    repo.clear_all()
    monitor_client.ping()  # ends the watch loop
    watcher.join(10)
    monitor_client.close()
    assert commands == ["MULTI", "SADD", "HSET", "EXEC", "MULTI", "SREM", "HDEL", "EXEC", "MULTI", "DEL", "EXEC"]


def test_redis_killed_mid_run_reads_keep_working(
    redis_server: RedisServer,
    redis_cache_factory: Callable[..., RedisDescriptorCache],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = redis_cache_factory(retry_after=0)
    driver = blobdrivers.create("filesystem", {"rootdirectory": str(tmp_path)})
    store = BlobStore(driver, cache=cache)
    blobs = [store.put(f"blob {i}".encode(), "text/plain") for i in range(20)]
    repo = store.repository("library/ubuntu")
    for blob in blobs[:10]:
        repo.link(blob.digest)
    problems: list[str] = []
    reads = {"count": 0}
    stop = threading.Event()
    killed = threading.Event()
    after_kill = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for blob in blobs:
                try:
                    if store.stat(blob.digest) != blob:
                        problems.append(f"wrong descriptor for {blob.digest}")
                    if blob in blobs[:10] and repo.stat(blob.digest) != blob:
                        problems.append(f"wrong repository descriptor for {blob.digest}")
                except Exception as exc:
                    problems.append(f"{type(exc).__name__}: {exc}")
                reads["count"] += 1
                if killed.is_set() and reads["count"] > 0:
                    after_kill.set()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="blobdrivers.blobs.cache"):
        for thread in threads:
            thread.start()
        try:
            while cache.hits < 100 and not problems:
                stop.wait(0.01)
            redis_server.kill()
            killed.set()
            while cache.errors < 20 and not problems:
                stop.wait(0.01)
            errors_before_restart = cache.errors
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        # Writes while Redis is down: the store works, the cache calls fail and are counted.
        extra = store.put(b"while redis is down")
        store.delete(blobs[-1].digest)
    assert problems == []
    assert after_kill.is_set()
    assert errors_before_restart >= 20
    assert cache.errors > errors_before_restart  # the put and the delete tried the cache too
    assert "serving from the store" in caplog.text
    assert caplog.text.count("serving from the store") < 5  # one warning per outage, not one per call
    assert store.stat(extra.digest) == extra
    with pytest.raises(BlobNotFoundError):
        store.stat(blobs[-1].digest)
    counters = cache.counters
    assert counters.requests == counters.hits + counters.misses
    # Redis comes back (empty): the cache fills and hits again.
    redis_server.restart()
    hits = cache.hits
    assert store.stat(blobs[0].digest) == blobs[0]
    assert store.stat(blobs[0].digest) == blobs[0]
    assert cache.hits == hits + 1


def test_redis_down_from_the_start_and_bypass(tmp_path: Path, driver: StorageDriver) -> None:
    port = free_port()  # nothing listens here
    cache = RedisDescriptorCache(f"redis://127.0.0.1:{port}/0", retry_after=3600)
    try:
        store = BlobStore(driver, cache=cache)
        described = store.put(b"no redis")
        assert cache.errors == 1  # the fill failed; Redis is now considered down
        for _ in range(10):
            assert store.stat(described.digest) == described
        counters = cache.counters
        assert counters.requests == 10 and counters.misses == 10
        assert counters.bypassed == 10  # not asked again while considered down
        store.delete(described.digest)  # clears (before and after) are always attempted
        assert cache.errors == 3
    finally:
        cache.close()


def test_redis_client_with_decoded_responses_ttl_and_malformed_entries(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        cache = RedisDescriptorCache(client, prefix="t", ttl=60)
        cache.set(Descriptor(D1, 5, "a/b"))
        cache.repository("r").set(Descriptor(D1, 5, "c/d"))
        assert cache.stat(D1) == Descriptor(D1, 5, "a/b")
        assert cache.repository("r").stat(D1) == Descriptor(D1, 5, "c/d")
        assert 0 < client.ttl(cache.blob_key(D1)) <= 60
        assert 0 < client.ttl(cache.members_key("r")) <= 60
        client.hset(cache.blob_key(D2), mapping={"size": "minus one", "mediatype": "a/b"})
        client.hset(cache.blob_key(D3), mapping={"size": "1", "mediatype": "not a media type"})
        assert cache.stat(D2) is None and cache.stat(D3) is None  # malformed entries are misses
        cache.close()  # a client passed in is the caller's: still usable
        assert client.ping()
        assert "t" in repr(cache) and "redis://" not in repr(cache)
    finally:
        client.close()
    with pytest.raises(TypeError):
        RedisDescriptorCache(object())
    with pytest.raises(ValueError):
        RedisDescriptorCache(redis_url, ttl=0)


def test_redis_url_password_never_shown(redis_url: str) -> None:
    secret_url = redis_url.replace("redis://", "redis://user:s3cr3t-pass@")
    cache = RedisDescriptorCache(secret_url)
    try:
        assert "s3cr3t" not in repr(cache)
    finally:
        cache.close()


def test_redis_that_never_answers_times_out_and_is_counted(driver: StorageDriver) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the kernel backlog; nothing ever replies
    port = silent.getsockname()[1]
    cache = RedisDescriptorCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.1, retry_after=0)
    try:
        store = BlobStore(driver, cache=cache)
        described = BlobStore(driver).put(b"slow redis")
        assert store.stat(described.digest) == described
        assert cache.errors >= 1 and cache.misses == 1
    finally:
        cache.close()
        silent.close()
