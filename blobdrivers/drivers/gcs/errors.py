"""GCS failures: what the JSON API answered, what is worth retrying, and the contract error each becomes.

Messages carry statuses, reasons and paths only: never URLs, which may hold an
upload session id (a bearer secret), and never tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from urllib3.response import BaseHTTPResponse

from ...errors import BucketNotFoundError, PathNotFoundError, PreconditionFailedError, StorageError
from ..network import describe

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: How GCS (and the emulator, when it says anything) words a 404 about the bucket rather than an object.
_BUCKET_MISSING = re.compile(r"(?i)specified bucket does not exist|bucket\b.*\b(?:not found|does not exist)")


class HTTPError(Exception):
    """A JSON-API answer with an unexpected status. Carries codes only, never URLs.

    ``bucket_missing`` reads a 404's error message: ``True`` when it says the bucket
    does not exist, ``False`` when it names something else, ``None`` when it says
    nothing (the emulator answers every 404 with an empty body).
    """

    def __init__(self, status: int, reason: str, what: str, *, bucket_missing: bool | None = None) -> None:
        super().__init__(f"{what}: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.what = what
        self.bucket_missing = bucket_missing

    @classmethod
    def from_response(cls, response: BaseHTTPResponse, what: str) -> HTTPError:
        """The error of a response, with the reason (a short code) and whether its 404 is the bucket's."""
        reason = ""
        message = ""
        try:
            error = json.loads(response.data or b"{}").get("error", {})
            errors = error.get("errors") or [{}]
            reason = str(errors[0].get("reason") or "")
            message = str(error.get("message") or errors[0].get("message") or "")
        except (ValueError, AttributeError, TypeError, IndexError):
            pass
        if not re.fullmatch(r"[A-Za-z0-9_]{0,64}", reason):
            reason = ""
        bucket_missing = None
        if response.status == 404 and message:
            bucket_missing = bool(_BUCKET_MISSING.search(message))
        return cls(response.status, reason or response.reason or "", what, bucket_missing=bucket_missing)


class UnreadableSidecar(StorageError):
    """The sidecar of an upload in progress cannot be parsed."""


class SessionGone(StorageError):
    """The resumable session expired (a week on GCS), was cancelled or is unknown."""


def bucket_not_found(bucket: str) -> BucketNotFoundError:
    """The one error for a configured bucket that does not exist."""
    return BucketNotFoundError(f"bucket '{bucket}' does not exist")


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: throttling, server errors, broken connections."""
    if isinstance(exc, HTTPError):
        return exc.status in TRANSIENT_STATUS
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | urllib3.exceptions.HTTPError
        | auth_exceptions.TransportError,
    ):
        return True
    return isinstance(
        exc,
        api_exceptions.TooManyRequests
        | api_exceptions.InternalServerError
        | api_exceptions.BadGateway
        | api_exceptions.ServiceUnavailable
        | api_exceptions.GatewayTimeout,
    )


def translate(
    exc: Exception,
    path: str,
    *,
    bucket: str,
    bucket_exists: Callable[[], bool],
    endpoint: str | None = None,
) -> StorageError | None:
    """Map HTTP statuses and SDK errors to contract errors, or ``None`` for the base to wrap.

    A request without an answer names ``endpoint`` (its origin, never a session URL).

    A 404 whose message does not say whether the bucket or the object is missing
    (only servers that explain nothing, such as the emulator) is settled by
    ``bucket_exists``, on this failure path only.
    """
    if isinstance(exc, HTTPError):
        detail = f"HTTP {exc.status} {exc.reason}".rstrip()
        if exc.status == 404:
            missing = exc.bucket_missing
            if missing or (missing is None and not bucket_exists()):
                return bucket_not_found(bucket)
            return PathNotFoundError(f"no file at {path}")
        if exc.status == 412:
            return PreconditionFailedError(f"the condition on {path} does not hold ({detail})")
        if exc.status in (401, 403):
            return StorageError(f"{exc.what} {path}: access denied ({detail})")
        return StorageError(f"{exc.what} {path} failed: {detail}")
    if isinstance(exc, api_exceptions.NotFound):
        if _BUCKET_MISSING.search(exc.message or ""):
            return bucket_not_found(bucket)
        return PathNotFoundError(f"no file at {path}")
    if isinstance(exc, api_exceptions.PreconditionFailed):
        return PreconditionFailedError(f"the condition on {path} does not hold (HTTP 412)")
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return StorageError(f"request on {path} failed: HTTP {exc.code} {type(exc).__name__}")
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return StorageError(
            "no Google credentials: give keyfile or credentials, or set up application default credentials"
        )
    if isinstance(exc, auth_exceptions.GoogleAuthError):
        return StorageError(f"authentication failed ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
        # Their text names the URL, which may carry an upload session id: the origin and the reason only.
        return StorageError(f"request for {path} failed: {describe(exc, endpoint) or type(exc).__name__}")
    return None
