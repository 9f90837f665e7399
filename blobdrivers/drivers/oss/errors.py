"""What an OSS failure is: the retry policy's two questions, and the StorageError the caller sees.

oss2 raises :class:`~oss2.exceptions.OssError` subclasses carrying the HTTP status
and the OSS error code; :class:`~oss2.exceptions.RequestError` when no answer came
(it wraps the requests error) and :class:`~oss2.exceptions.InconsistentError` when
a CRC-64 check failed. A response body cut while being read raises urllib3's or
requests' errors directly (see :data:`BODY_ERRORS`).
"""

from __future__ import annotations

import requests
import urllib3
from oss2.exceptions import ClientError as OssClientError
from oss2.exceptions import InconsistentError, OssError, RequestError

from ...errors import BucketNotFoundError, PathNotFoundError, PreconditionFailedError, StorageError
from ..network import describe

#: Errors of a response body broken in the middle (connection reset, timeout, short body).
BODY_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
    ConnectionError,
    TimeoutError,
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", ""})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "ServiceUnavailable", "InternalError", "SlowDown", "Throttling"})


def status(exc: BaseException) -> int:
    """The HTTP status of an oss2 error (0 when there was no answer)."""
    return int(getattr(exc, "status", 0) or 0)


def code(exc: BaseException) -> str:
    """The OSS error code (``NoSuchKey``, ...); empty when OSS sent none."""
    return str(getattr(exc, "code", "") or "")


def is_not_found(exc: BaseException) -> bool:
    """No such object (a missing bucket is not this: see :func:`translate`)."""
    return isinstance(exc, OssError) and status(exc) == 404 and code(exc) in _NOT_FOUND_CODES


def is_no_such_upload(exc: BaseException) -> bool:
    """The multipart upload was completed or aborted."""
    return isinstance(exc, OssError) and code(exc) == "NoSuchUpload"


def is_precondition(exc: BaseException) -> bool:
    """An ``If-Match`` (or copy-source condition) did not hold."""
    return isinstance(exc, OssError) and (status(exc) == 412 or code(exc) == "PreconditionFailed")


def is_file_exists(exc: BaseException) -> bool:
    """``x-oss-forbid-overwrite`` found an object there."""
    return isinstance(exc, OssError) and code(exc) == "FileAlreadyExists"


def is_invalid_range(exc: BaseException) -> bool:
    """A ranged read starting at or past the end of the object."""
    return isinstance(exc, OssError) and (status(exc) == 416 or code(exc) == "InvalidRange")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying an idempotent request (or reopening a read): no answer, a broken one, a server failure."""
    if isinstance(exc, RequestError | InconsistentError):
        return True
    if isinstance(exc, OssError):
        return status(exc) >= 500 or status(exc) == 429 or code(exc) in _TRANSIENT_CODES
    return isinstance(exc, BODY_ERRORS)


def never_sent(exc: BaseException) -> bool:
    """Worth retrying a request that must not run twice: it surely did not reach the server.

    A connection that could not be opened, or a 503 (OSS throttles before doing
    anything). A timeout or reset after sending is ambiguous, so it is not retried.
    """
    if isinstance(exc, OssError) and status(exc) == 503:
        return True
    if not isinstance(exc, RequestError):
        return False
    cause = getattr(exc, "exception", None)
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and cause.args:
        reason = getattr(cause.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def translate(exc: Exception, path: str, bucket: str, endpoint: str | None = None) -> StorageError | None:
    """The StorageError for an oss2 or HTTP failure about ``path`` (the caller's path); ``None`` for others.

    Messages are built from the path, the error type and the OSS code only: the
    driver has already masked the key id and signature OSS echoes in ``exc``, which
    stays the cause. A request without an answer names ``endpoint`` (its origin).
    """
    if isinstance(exc, RequestError):
        # The wrapped requests error may quote URLs: the endpoint's origin and the chain's reason leak nothing.
        cause = getattr(exc, "exception", None)
        return StorageError(f"request for {path} failed: {describe(exc, endpoint) or type(cause or exc).__name__}")
    if isinstance(exc, InconsistentError):
        return StorageError(f"CRC-64 mismatch between client and OSS for {path} (InconsistentError)")
    if isinstance(exc, OssClientError):
        return StorageError(f"oss2 refused the request for {path} (ClientError)")
    if isinstance(exc, OssError):
        return _service_error(exc, path, bucket)
    if isinstance(exc, BODY_ERRORS):
        return StorageError(f"request for {path} failed: {describe(exc, endpoint) or type(exc).__name__}")
    return None


def _service_error(exc: OssError, path: str, bucket: str) -> StorageError:
    error_code = code(exc) or "unknown"
    if is_not_found(exc):
        return PathNotFoundError(f"no file at {path}")
    if is_precondition(exc):
        return PreconditionFailedError(f"the condition on {path} does not hold ({error_code})")
    if is_file_exists(exc):
        return PreconditionFailedError(f"{path} already exists ({error_code})")
    if error_code == "NoSuchBucket":
        return BucketNotFoundError(f"bucket {bucket!r} does not exist")
    if error_code == "NoSuchUpload":
        return StorageError(f"the multipart upload of {path} no longer exists ({error_code})")
    if status(exc) == 403:
        return StorageError(f"access to {path} denied: {error_code} (HTTP 403); check the credentials")
    return StorageError(f"request for {path} failed: {error_code} (HTTP {status(exc)})")
