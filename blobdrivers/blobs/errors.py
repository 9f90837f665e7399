"""Errors of the content-addressed blob store.

They extend :mod:`blobdrivers.errors` so ``except StorageError`` catches them all,
and keep the builtin counterparts: a missing blob or upload is a
``FileNotFoundError``, a bad digest, name or media type a ``ValueError``.
"""

from __future__ import annotations

from ..errors import PathNotFoundError, StorageError


class InvalidDigestError(StorageError, ValueError):
    """A digest breaks the OCI grammar (``algorithm ":" encoded``) or its algorithm's format."""


class UnsupportedDigestError(InvalidDigestError):
    """A well-formed digest of an algorithm this store does not compute (only sha256 and sha512)."""


class InvalidRepositoryNameError(StorageError, ValueError):
    """A repository name breaks the OCI distribution grammar."""


class InvalidMediaTypeError(StorageError, ValueError):
    """A media type breaks the RFC 6838 grammar (``type "/" subtype``)."""


class BlobNotFoundError(PathNotFoundError):
    """No blob with that digest (or, for a repository view, none linked into that repository)."""

    def __init__(
        self, message: str, *, driver: str | None = None, path: str | None = None, digest: str | None = None
    ) -> None:
        super().__init__(message, driver=driver, path=path)
        #: The digest that was looked up.
        self.digest = digest


class UploadNotFoundError(PathNotFoundError):
    """No upload session with that id (never started, finished, cancelled or purged)."""


class UploadClosedError(StorageError, ValueError):
    """An upload was used after ``close()``, ``finish()`` or ``cancel()``."""


class DigestMismatchError(StorageError, ValueError):
    """The uploaded bytes do not have the digest the client announced; nothing was published."""

    def __init__(
        self,
        message: str,
        *,
        driver: str | None = None,
        path: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(message, driver=driver, path=path)
        #: The digest the caller announced.
        self.expected = expected
        #: The digest of the bytes actually uploaded.
        self.actual = actual
        #: How many bytes were uploaded.
        self.size = size


class BlobPublishError(StorageError):
    """A blob was published but ``stat`` did not report its full size in time (a backend fault)."""


__all__ = [
    "BlobNotFoundError",
    "BlobPublishError",
    "DigestMismatchError",
    "InvalidDigestError",
    "InvalidMediaTypeError",
    "InvalidRepositoryNameError",
    "UnsupportedDigestError",
    "UploadClosedError",
    "UploadNotFoundError",
]
