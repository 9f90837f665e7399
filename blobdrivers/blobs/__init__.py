"""Content-addressed blobs on any storage driver: upload sessions, repositories, descriptor caches.

>>> import blobdrivers
>>> from blobdrivers.blobs import BlobStore, MemoryDescriptorCache
>>> store = BlobStore(blobdrivers.from_url("memory://"), cache=MemoryDescriptorCache())
>>> blob = store.put(b"hello", "text/plain")
>>> blob.digest
'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
>>> store.stat(blob.digest).size
5

See ``docs/blobstore.md`` for the on-store layout, the upload guarantees and the caches.
"""

from __future__ import annotations

from .cache import CacheCounters, DescriptorCache, MemoryDescriptorCache, RepositoryDescriptorCache
from .digest import (
    ALGORITHMS,
    CANONICAL,
    DEFAULT_MEDIA_TYPE,
    Descriptor,
    digest_of,
    parse_digest,
    validate_digest,
    validate_media_type,
    validate_repository_name,
)
from .errors import (
    BlobNotFoundError,
    BlobPublishError,
    DigestMismatchError,
    InvalidDigestError,
    InvalidMediaTypeError,
    InvalidRepositoryNameError,
    UnsupportedDigestError,
    UploadClosedError,
    UploadNotFoundError,
)
from .layout import Layout
from .redis_cache import RedisDescriptorCache  # imports redis-py only when a cache is created
from .store import BlobStore, Repository
from .uploads import Upload

__all__ = [
    "ALGORITHMS",
    "CANONICAL",
    "DEFAULT_MEDIA_TYPE",
    "BlobNotFoundError",
    "BlobPublishError",
    "BlobStore",
    "CacheCounters",
    "Descriptor",
    "DescriptorCache",
    "DigestMismatchError",
    "InvalidDigestError",
    "InvalidMediaTypeError",
    "InvalidRepositoryNameError",
    "Layout",
    "MemoryDescriptorCache",
    "RedisDescriptorCache",
    "Repository",
    "RepositoryDescriptorCache",
    "UnsupportedDigestError",
    "Upload",
    "UploadClosedError",
    "UploadNotFoundError",
    "digest_of",
    "parse_digest",
    "validate_digest",
    "validate_media_type",
    "validate_repository_name",
]
