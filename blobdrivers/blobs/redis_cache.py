"""A blob descriptor cache in Redis (redis-py; ``pip install "blobdrivers[redis]"``).

Keys (``P`` is the prefix, default ``blobdrivers``):

* ``P:blob:{<digest>}``: a hash ``digest``, ``size``, ``mediatype`` per blob;
* ``P:gen:{<digest>}``: the blob's generation, a counter every ``clear`` increments
  (kept :data:`GENERATION_TTL` seconds after the last clear);
* ``P:repo:{<name>}:blobs``: a set of the digests linked into repository ``name``;
* ``P:repo:{<name>}:mediatypes``: a hash digest -> media type for that repository.

The ``{...}`` hash tags put both keys of one repository in one Redis Cluster slot,
so a repository-scoped change (``set``, ``clear``, ``clear_all``) is one
``MULTI``/``EXEC`` transaction on a single server and on a cluster alike. A global
key and a repository's keys may live in different slots, so they are never
combined in a transaction; a repository ``stat`` reads them in one
non-transactional pipeline (one round trip on a single server). A blob's hash and
generation share a slot: ``clear`` deletes the one and increments the other in one
transaction, and ``fill`` is a Lua script that writes the hash only while the
generation is still the one read before the store was (atomic on a cluster too).

Failures never reach the caller: every Redis error is logged (a warning when the
cache starts failing, then at debug level until it recovers) and counted in
``errors``, and a ``stat`` then misses, so the store answers. After a failure the
cache treats Redis as down for ``retry_after`` seconds and answers ``stat`` as a
miss without asking it (counted in ``bypassed``), so an unreachable Redis does not
add a socket timeout to every call. ``clear`` is always attempted, because a
skipped clear could leave a stale entry behind once Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NamedTuple

from .cache import DescriptorCache, RepositoryDescriptorCache
from .digest import Descriptor, validate_digest, validate_media_type

log = logging.getLogger("blobdrivers.blobs.cache")

DEFAULT_PREFIX = "blobdrivers"
#: Seconds a generation key lives after the last clear of its blob. A fill more than
#: half of it after its generation was read is refused, so an expired key can never
#: make a fill that raced a clear look current.
GENERATION_TTL = 24 * 3600

# KEYS: generation, blob hash. ARGV: generation read before the store ("" for none),
# digest, size, media type, ttl ("" for none). Writes the hash only if no clear ran since.
_FILL_SCRIPT = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'digest', ARGV[2], 'size', ARGV[3], 'mediatype', ARGV[4])
if ARGV[5] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
return 1
"""


def _redis_module() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ImportError('RedisDescriptorCache needs redis-py: pip install "blobdrivers[redis]"') from exc
    return redis


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RedisDescriptorCache(DescriptorCache):
    """Descriptors in Redis, shared by every process of a registry.

    ``target`` is a Redis URL (``redis://host:6379/0``, ``rediss://``,
    ``unix://``) or a ready client (``redis.Redis`` or ``redis.cluster.RedisCluster``,
    with or without ``decode_responses``). For a URL the client gets short socket
    timeouts (``socket_timeout`` seconds for connect and for each reply) and no
    retries: a slow cache must not slow the store down. ``ttl`` (seconds) makes
    entries expire, which bounds how long a stale entry can live if a ``clear``
    failed while Redis was unreachable.
    """

    def __init__(
        self,
        target: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.25,
        ttl: int | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without '{{' or '}}', not {prefix!r}")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise ValueError(f"ttl must be None or an integer number of seconds >= 1, not {ttl!r}")
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, not {retry_after!r}")
        #: Prefix of every key.
        self.prefix = prefix
        #: Expiry of entries in seconds, or None.
        self.ttl = ttl
        #: Seconds during which Redis is considered down after a failure.
        self.retry_after = retry_after
        if isinstance(target, str):
            redis = _redis_module()
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._client = redis.Redis.from_url(
                target,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            self._owns_client = True
        else:
            if not hasattr(target, "pipeline") or not hasattr(target, "hmget"):
                raise TypeError("RedisDescriptorCache needs a Redis URL or a redis-py client")
            self._client = target
            self._owns_client = False
        self._state_lock = threading.Lock()
        self._down_until = 0.0
        self._failing = False
        self._fill_script = self._client.register_script(_FILL_SCRIPT)

    # ------------------------------------------------------------------ keys

    def blob_key(self, digest: str) -> str:
        """The key of the global hash of ``digest``."""
        return f"{self.prefix}:blob:{{{digest}}}"

    def generation_key(self, digest: str) -> str:
        """The key of the generation counter of ``digest`` (same slot as its hash)."""
        return f"{self.prefix}:gen:{{{digest}}}"

    def members_key(self, repository: str) -> str:
        """The key of the set of digests linked into ``repository``."""
        return f"{self.prefix}:repo:{{{repository}}}:blobs"

    def media_types_key(self, repository: str) -> str:
        """The key of ``repository``'s hash digest -> media type."""
        return f"{self.prefix}:repo:{{{repository}}}:mediatypes"

    # ------------------------------------------------------------------ health

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, operation: str, exc: Exception) -> None:
        self._counters.error()
        with self._state_lock:
            self._down_until = time.monotonic() + self.retry_after
            first = not self._failing
            self._failing = True
        # Only the first failure of an outage is a warning: a dead Redis must not flood the log.
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "redis descriptor cache: %s failed (%s: %s); serving from the store", operation,
                type(exc).__name__, exc)  # fmt: skip

    def _succeeded(self) -> None:
        if self._failing:
            with self._state_lock:
                recovered, self._failing = self._failing, False
            if recovered:
                log.info("redis descriptor cache: redis answers again")

    # ------------------------------------------------------------------ global

    def stat(self, digest: str) -> Descriptor | None:
        """The cached descriptor of ``digest``, or ``None`` (miss, Redis failure or Redis considered down)."""
        validate_digest(digest)
        if not self._available():
            self._counters.lookup(False, bypassed=True)
            return None
        try:
            size, media_type = self._client.hmget(self.blob_key(digest), ["size", "mediatype"])
        except Exception as exc:
            self._failed("stat", exc)
            self._counters.lookup(False)
            return None
        self._succeeded()
        found = _descriptor(digest, size, media_type)
        self._counters.lookup(found is not None)
        return found

    def set(self, descriptor: Descriptor) -> None:
        """Cache ``descriptor`` globally (skipped while Redis is considered down)."""
        validate_digest(descriptor.digest)
        if not self._available():
            return
        key = self.blob_key(descriptor.digest)
        mapping = {"digest": descriptor.digest, "size": str(descriptor.size), "mediatype": descriptor.media_type}
        try:
            if self.ttl is None:
                self._client.hset(key, mapping=mapping)
            else:
                pipe = self._client.pipeline(transaction=True)
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, self.ttl)
                pipe.execute()
        except Exception as exc:
            self._failed("set", exc)
            return
        self._succeeded()

    def clear(self, digest: str) -> None:
        """Forget the global descriptor of ``digest`` and start its new generation (always attempted)."""
        validate_digest(digest)
        generation = self.generation_key(digest)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self.blob_key(digest))
            pipe.incr(generation)
            pipe.expire(generation, GENERATION_TTL)
            pipe.execute()
        except Exception as exc:
            self._failed("clear", exc)
            return
        self._succeeded()

    def generation(self, digest: str) -> object:
        """The generation of ``digest`` now and when it was read, or None (Redis failing or considered down)."""
        validate_digest(digest)
        if not self._available():
            return None
        try:
            value = self._client.get(self.generation_key(digest))
        except Exception as exc:
            self._failed("generation", exc)
            return None
        self._succeeded()
        return _Generation(_text(value) or "", time.monotonic())

    def fill(self, descriptor: Descriptor, generation: object) -> None:
        """Cache ``descriptor`` if its generation is still ``generation`` (one atomic script)."""
        validate_digest(descriptor.digest)
        if not isinstance(generation, _Generation) or not self._available():
            return
        if time.monotonic() - generation.read_at > GENERATION_TTL / 2:
            return  # the generation key may have expired since: it proves nothing
        digest = descriptor.digest
        args = [generation.value, digest, str(descriptor.size), descriptor.media_type, str(self.ttl or "")]
        try:
            self._fill_script(keys=[self.generation_key(digest), self.blob_key(digest)], args=args)
        except Exception as exc:
            self._failed("fill", exc)
            return
        self._succeeded()

    def repository(self, name: str) -> RepositoryDescriptorCache:
        """The view of repository ``name``."""
        return _RedisRepositoryCache(self, name)

    def close(self) -> None:
        """Close the client if this cache created it from a URL."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        # Never show the URL: it may carry a password.
        return f"RedisDescriptorCache(prefix={self.prefix!r}, ttl={self.ttl!r})"


class _RedisRepositoryCache(RepositoryDescriptorCache):
    def __init__(self, parent: RedisDescriptorCache, name: str) -> None:
        super().__init__(name)
        self._parent = parent
        self._members = parent.members_key(self.name)
        self._types = parent.media_types_key(self.name)

    def stat(self, digest: str) -> Descriptor | None:
        validate_digest(digest)
        parent = self._parent
        if not parent._available():
            parent._counters.lookup(False, bypassed=True)
            return None
        try:
            # Not a transaction: the global key may live in another cluster slot.
            pipe = parent._client.pipeline(transaction=False)
            pipe.sismember(self._members, digest)
            pipe.hmget(parent.blob_key(digest), ["size", "mediatype"])
            pipe.hget(self._types, digest)
            member, (size, global_type), own_type = pipe.execute()
        except Exception as exc:
            parent._failed("repository stat", exc)
            parent._counters.lookup(False)
            return None
        parent._succeeded()
        found = None
        if member:
            found = _descriptor(digest, size, own_type if own_type is not None else global_type)
        parent._counters.lookup(found is not None)
        return found

    def set(self, descriptor: Descriptor) -> None:
        validate_digest(descriptor.digest)
        parent = self._parent
        if not parent._available():
            return
        try:
            pipe = parent._client.pipeline(transaction=True)
            pipe.sadd(self._members, descriptor.digest)
            pipe.hset(self._types, descriptor.digest, descriptor.media_type)
            if parent.ttl is not None:
                pipe.expire(self._members, parent.ttl)
                pipe.expire(self._types, parent.ttl)
            pipe.execute()
        except Exception as exc:
            parent._failed("repository set", exc)
            return
        parent._succeeded()

    def clear(self, digest: str) -> None:
        validate_digest(digest)
        self._transaction("repository clear", lambda pipe: (pipe.srem(self._members, digest),
                                                             pipe.hdel(self._types, digest)))  # fmt: skip

    def clear_all(self) -> None:
        self._transaction("repository clear_all", lambda pipe: pipe.delete(self._members, self._types))

    def _transaction(self, operation: str, build: Any) -> None:
        parent = self._parent
        try:
            pipe = parent._client.pipeline(transaction=True)
            build(pipe)
            pipe.execute()
        except Exception as exc:
            parent._failed(operation, exc)
            return
        parent._succeeded()

    def __repr__(self) -> str:
        return f"<redis descriptor cache of repository {self.name}>"


class _Generation(NamedTuple):
    value: str  # the counter as Redis gave it ("" before the first clear)
    read_at: float  # time.monotonic() when it was read


def _descriptor(digest: str, size: Any, media_type: Any) -> Descriptor | None:
    """A Descriptor from stored fields, or None when they are missing or malformed (treated as a miss)."""
    size_text, type_text = _text(size), _text(media_type)
    if size_text is None or type_text is None or not size_text.isdigit():
        return None
    try:
        validate_media_type(type_text)
    except ValueError:
        return None
    return Descriptor(digest, int(size_text), type_text)


__all__ = ["RedisDescriptorCache"]
