"""Blob descriptor caches: digest -> (size, media type), global and per repository.

A cache makes ``BlobStore.stat`` (a registry's HEAD) nearly free, but it is never
the source of truth: a miss falls through to the store and fills the cache, a
cache failure is logged and counted and the read is served by the store, and
every delete through the store clears the entry.

Fills are guarded by generations, so a delete is never undone by a fill that read
the store before it: the store reads ``generation(digest)`` before it reads (or
writes) the blob, and ``fill(descriptor, generation)`` caches the descriptor only
if no ``clear`` of the digest ran since. Every ``clear`` starts a new generation.

Two levels, as in distribution:

* global: ``stat(digest)`` gives the blob's descriptor;
* repository view (``cache.repository(name)``): the set of blobs linked into the
  repository and, per blob, the media type the repository gives it (which may
  differ from the global one). A repository view answers only while the global
  descriptor is cached too, so clearing a blob globally also ends every
  repository's hit for it.

Counters (``requests``, ``hits``, ``misses``, ``errors``, ``bypassed``) count
``stat`` calls of the cache and all its repository views: every request is a hit
or a miss; ``errors`` counts failed backend calls of any kind (a failed ``stat``
is also a miss); ``bypassed`` counts requests answered as a miss without asking
the backend while it is considered down.
"""

from __future__ import annotations

import abc
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .digest import Descriptor, validate_digest, validate_repository_name


@dataclass(frozen=True)
class CacheCounters:
    """A snapshot of a cache's counters (see the module docstring for their meaning)."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypassed: int = 0


class _Counters:
    """Thread-safe counters behind :class:`CacheCounters`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = self.hits = self.misses = self.errors = self.bypassed = 0

    def lookup(self, hit: bool, *, bypassed: bool = False) -> None:
        with self._lock:
            self.requests += 1
            if hit:
                self.hits += 1
            else:
                self.misses += 1
            if bypassed:
                self.bypassed += 1

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def snapshot(self) -> CacheCounters:
        with self._lock:
            return CacheCounters(self.requests, self.hits, self.misses, self.errors, self.bypassed)

    def reset(self) -> None:
        with self._lock:
            self.requests = self.hits = self.misses = self.errors = self.bypassed = 0


class RepositoryDescriptorCache(abc.ABC):
    """A cache's view of one repository: membership and per-repository media types."""

    def __init__(self, name: str) -> None:
        #: The repository name (validated).
        self.name = validate_repository_name(name)

    @abc.abstractmethod
    def stat(self, digest: str) -> Descriptor | None:
        """The descriptor of ``digest`` as this repository sees it, or ``None`` (miss).

        A hit needs both the membership and the global descriptor in the cache;
        the media type is the repository's.
        """

    @abc.abstractmethod
    def set(self, descriptor: Descriptor) -> None:
        """Record that the blob is linked into this repository, with ``descriptor.media_type`` for it here."""

    @abc.abstractmethod
    def clear(self, digest: str) -> None:
        """Forget this repository's membership and media type of ``digest``."""

    @abc.abstractmethod
    def clear_all(self) -> None:
        """Forget every membership and media type of this repository."""


class DescriptorCache(abc.ABC):
    """Interface of a blob descriptor cache; implementations must be thread-safe.

    ``stat`` returns ``None`` on a miss and never raises for a backend failure
    (that is logged and counted in ``errors``); ``set`` and ``clear`` do not raise
    for one either. Invalid digests raise :class:`InvalidDigestError`.
    """

    def __init__(self) -> None:
        self._counters = _Counters()

    @abc.abstractmethod
    def stat(self, digest: str) -> Descriptor | None:
        """The cached descriptor of ``digest``, or ``None`` (miss)."""

    @abc.abstractmethod
    def set(self, descriptor: Descriptor) -> None:
        """Cache ``descriptor`` as the global descriptor of its digest."""

    @abc.abstractmethod
    def clear(self, digest: str) -> None:
        """Forget the global descriptor of ``digest`` (repository views then miss too); start a new generation."""

    def generation(self, digest: str) -> object:
        """An opaque token of the current generation of ``digest``, for :meth:`fill`.

        Read it before reading the store; ``None`` means "unknown" and makes
        ``fill`` a no-op. This default (for caches without generations) is ``None``.
        """
        validate_digest(digest)
        return None

    def fill(self, descriptor: Descriptor, generation: object) -> None:
        """Cache ``descriptor`` only if no ``clear`` of its digest ran since ``generation`` was read.

        What the store calls after reading the blob, so that a ``delete`` racing the
        read is never undone. This default, for caches written before generations,
        is a plain :meth:`set`, which such a race can leave stale: override both
        methods (the memory and Redis caches do).
        """
        self.set(descriptor)

    @abc.abstractmethod
    def repository(self, name: str) -> RepositoryDescriptorCache:
        """The view of repository ``name`` (a cheap object; the name is validated)."""

    @property
    def counters(self) -> CacheCounters:
        """A consistent snapshot of all counters."""
        return self._counters.snapshot()

    @property
    def requests(self) -> int:
        """``stat`` calls so far (global and repository views)."""
        return self._counters.requests

    @property
    def hits(self) -> int:
        """``stat`` calls answered from the cache."""
        return self._counters.hits

    @property
    def misses(self) -> int:
        """``stat`` calls not answered from the cache (the caller falls through to the store)."""
        return self._counters.misses

    @property
    def errors(self) -> int:
        """Failed backend calls (``stat``, ``set``, ``clear``), each logged."""
        return self._counters.errors

    @property
    def bypassed(self) -> int:
        """``stat`` calls answered as misses without asking a backend considered down."""
        return self._counters.bypassed

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        self._counters.reset()

    def close(self) -> None:  # noqa: B027 (optional hook: most caches hold nothing to release)
        """Release backend resources (connections); the default has none."""


_Key = str | tuple[str, str]


class MemoryDescriptorCache(DescriptorCache):
    """A bounded, thread-safe, in-process LRU cache of descriptors.

    At most ``max_entries`` entries are kept, counting global descriptors and
    repository memberships alike; the least recently used goes first. Generations
    are a counter of clears; the last ``max_entries`` clears are remembered by
    digest, and a fill older than a forgotten clear is refused (a harmless miss).
    """

    def __init__(self, max_entries: int = 10000) -> None:
        super().__init__()
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an integer >= 1, not {max_entries!r}")
        #: The bound on the number of entries.
        self.max_entries = max_entries
        self._lock = threading.Lock()
        # digest -> Descriptor (global); (repository, digest) -> media type (membership).
        self._entries: OrderedDict[_Key, Descriptor | str] = OrderedDict()
        self._clears = 0  # clears so far: the generation clock
        self._cleared: OrderedDict[str, int] = OrderedDict()  # digest -> clock of its last clear
        self._forgotten = 0  # clock of the latest clear dropped from _cleared

    def __len__(self) -> int:
        """Entries held now (global descriptors plus repository memberships)."""
        with self._lock:
            return len(self._entries)

    def stat(self, digest: str) -> Descriptor | None:
        """The cached descriptor of ``digest``, or ``None``."""
        validate_digest(digest)
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
        self._counters.lookup(found is not None)
        return found if isinstance(found, Descriptor) else None

    def set(self, descriptor: Descriptor) -> None:
        """Cache ``descriptor`` globally, evicting the least recently used entries beyond the bound."""
        validate_digest(descriptor.digest)
        self._store(descriptor.digest, descriptor)

    def clear(self, digest: str) -> None:
        """Forget the global descriptor of ``digest`` and start its new generation."""
        validate_digest(digest)
        with self._lock:
            self._entries.pop(digest, None)
            self._clears += 1
            self._cleared[digest] = self._clears
            self._cleared.move_to_end(digest)
            while len(self._cleared) > self.max_entries:
                self._forgotten = self._cleared.popitem(last=False)[1]

    def generation(self, digest: str) -> object:
        """The clock of clears now: a fill with it is refused if ``digest`` is cleared later."""
        validate_digest(digest)
        with self._lock:
            return self._clears

    def fill(self, descriptor: Descriptor, generation: object) -> None:
        """Cache ``descriptor`` unless its digest was cleared (or a clear was forgotten) since ``generation``."""
        validate_digest(descriptor.digest)
        if not isinstance(generation, int):
            return
        with self._lock:
            if self._forgotten > generation or self._cleared.get(descriptor.digest, 0) > generation:
                return
            self._store_locked(descriptor.digest, descriptor)

    def repository(self, name: str) -> RepositoryDescriptorCache:
        """The view of repository ``name``."""
        return _MemoryRepositoryCache(self, name)

    def _store(self, key: _Key, value: Descriptor | str) -> None:
        with self._lock:
            self._store_locked(key, value)

    def _store_locked(self, key: _Key, value: Descriptor | str) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __repr__(self) -> str:
        return f"MemoryDescriptorCache(max_entries={self.max_entries}, entries={len(self)})"


class _MemoryRepositoryCache(RepositoryDescriptorCache):
    def __init__(self, parent: MemoryDescriptorCache, name: str) -> None:
        super().__init__(name)
        self._parent = parent

    def stat(self, digest: str) -> Descriptor | None:
        validate_digest(digest)
        parent = self._parent
        key = (self.name, digest)
        found: Descriptor | None = None
        with parent._lock:
            media_type = parent._entries.get(key)
            blob = parent._entries.get(digest)
            if isinstance(media_type, str) and isinstance(blob, Descriptor):
                parent._entries.move_to_end(key)
                parent._entries.move_to_end(digest)
                found = Descriptor(digest, blob.size, media_type)
        parent._counters.lookup(found is not None)
        return found

    def set(self, descriptor: Descriptor) -> None:
        validate_digest(descriptor.digest)
        self._parent._store((self.name, descriptor.digest), descriptor.media_type)

    def clear(self, digest: str) -> None:
        validate_digest(digest)
        with self._parent._lock:
            self._parent._entries.pop((self.name, digest), None)

    def clear_all(self) -> None:
        with self._parent._lock:
            doomed = [key for key in self._parent._entries if isinstance(key, tuple) and key[0] == self.name]
            for key in doomed:
                del self._parent._entries[key]

    def __repr__(self) -> str:
        return f"<memory descriptor cache of repository {self.name}>"


__all__ = ["CacheCounters", "DescriptorCache", "MemoryDescriptorCache", "RepositoryDescriptorCache"]
