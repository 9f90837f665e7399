"""Classifying boto3's errors, and turning them into the contract's errors."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as URLLib3Error

from ...errors import BucketNotFoundError, PathNotFoundError, PreconditionFailedError, StorageError
from ..network import describe

NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
PRECONDITION = frozenset({"PreconditionFailed", "412"})
#: Errors worth re-opening a streamed read for (the connection broke mid-body).
STREAM_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    ConnectionClosedError,
    URLLib3Error,
    ConnectionError,
    TimeoutError,
)


def code(exc: ClientError) -> str:
    """The S3 error code of a failed request (``""`` when there is none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def status(exc: ClientError) -> int:
    """The HTTP status of a failed request (0 when unknown)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` says the object does not exist."""
    return isinstance(exc, ClientError) and (code(exc) in NOT_FOUND or status(exc) == 404)


def is_precondition(exc: BaseException) -> bool:
    """Whether ``exc`` says a condition (``If-Match``, ``If-None-Match``) was false."""
    return isinstance(exc, ClientError) and (code(exc) in PRECONDITION or status(exc) == 412)


def is_stream_error(exc: BaseException) -> bool:
    """Whether ``exc`` broke a response body mid-read (so the read may be reopened)."""
    return isinstance(exc, STREAM_ERRORS)


def bucket_missing(bucket: str) -> BucketNotFoundError:
    """The error for a bucket that does not exist."""
    return BucketNotFoundError(f"bucket {bucket!r} does not exist")


def translate(exc: Exception, path: str, bucket: str, endpoint: str | None = None) -> StorageError | None:
    """The contract error for a boto3 failure of an operation on ``path``, or ``None`` for the base's default.

    A request without an answer names the endpoint it went to (``endpoint`` when
    the exception does not say), as its origin only.
    """
    if isinstance(exc, ClientError):
        error_code, error_status = code(exc) or "unknown", status(exc)
        operation = getattr(exc, "operation_name", "request")
        if error_code in NOT_FOUND or (error_status == 404 and error_code not in ("NoSuchBucket", "NoSuchUpload")):
            return PathNotFoundError(f"no file at {path}")
        if error_code in PRECONDITION or error_status == 412:
            return PreconditionFailedError(f"the condition on {path} does not hold ({error_code})")
        if error_code == "ConditionalRequestConflict":
            return PreconditionFailedError(f"a concurrent conditional write to {path} won ({error_code})")
        if error_code == "NoSuchBucket":
            return bucket_missing(bucket)
        if error_code == "InvalidBucketName":
            # Construction takes what an S3-compatible store might: the server refused it, so say AWS's rule.
            return StorageError(
                f"the server refuses the bucket name {bucket!r} (InvalidBucketName): AWS bucket names are 3-63 "
                "characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
            )
        if error_code == "NoSuchUpload":
            return StorageError(f"the multipart upload of {path} no longer exists ({error_code})")
        return StorageError(f"{operation} on {path} failed: {error_code} (HTTP {error_status})")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            "no usable AWS credentials: set 'accesskey' and 'secretkey', or configure the default chain "
            f"({type(exc).__name__})"
        )
    if isinstance(exc, BotoCoreError | URLLib3Error | ConnectionError | TimeoutError):
        # botocore messages may quote URLs: the endpoint's origin and the chain's reason leak nothing.
        return StorageError(f"request for {path} failed: {describe(exc, endpoint) or type(exc).__name__}")
    return None
