"""What an Azure SDK error means: its status and error code, and the contract error it becomes.

Messages are built from status codes, error codes and paths only: an SDK message
can quote request URLs, and those may carry a SAS token (the base driver masks them
in the SDK exception itself, which stays the cause).
"""

from __future__ import annotations

import requests
import urllib3
from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

from ...errors import BucketNotFoundError, PathNotFoundError, PreconditionFailedError, StorageError
from ..network import describe

_NOT_IMPLEMENTED_CODES = frozenset({"APINotImplemented", "NotImplemented", "FeatureNotSupported"})


def error_code(exc: BaseException) -> str:
    """The storage error code of an SDK exception (``x-ms-error-code``), or ``""``."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        value = headers.get("x-ms-error-code")
        if value:
            return str(value)
    return ""


def status(exc: BaseException) -> int | None:
    """The HTTP status of an SDK exception, if it carries one."""
    code = getattr(exc, "status_code", None)
    return int(code) if isinstance(code, int) else None


def is_not_implemented(exc: BaseException) -> bool:
    """The service lacks the call (Azurite: Put Block From URL, Put Blob From URL)."""
    return isinstance(exc, HttpResponseError) and (status(exc) == 501 or error_code(exc) in _NOT_IMPLEMENTED_CODES)


def is_condition_failure(exc: BaseException) -> bool:
    """A 412 on the target, or the 409 Azure answers to If-None-Match: * on an existing blob."""
    if not isinstance(exc, HttpResponseError):
        return False
    code = error_code(exc)
    if status(exc) == 412:
        return code != "SourceConditionNotMet"
    return status(exc) == 409 and code == "BlobAlreadyExists"


def is_missing(exc: BaseException) -> bool:
    """A 404: the blob, or the whole container, is not there."""
    return isinstance(exc, HttpResponseError) and status(exc) == 404


def is_missing_blob(exc: BaseException) -> bool:
    """A 404 for the blob itself, in a container that exists."""
    return is_missing(exc) and error_code(exc) != "ContainerNotFound"


def translate(exc: Exception, path: str, container: str, endpoint: str | None = None) -> StorageError | None:
    """The contract error for an SDK or transport failure on ``path`` (the caller's); ``None``: not ours.

    A request without an answer names the endpoint (``endpoint``'s origin when the exception does not say).
    """
    if isinstance(exc, HttpResponseError):
        code = error_code(exc) or "no error code"
        http = status(exc)
        if http == 404 and code == "ContainerNotFound":
            return BucketNotFoundError(f"container {container!r} does not exist")
        if http == 404:
            return PathNotFoundError(f"no file at {path}")
        if is_condition_failure(exc):
            return PreconditionFailedError(f"the condition on {path} is false ({code})")
        if http == 412:
            return StorageError(f"a source of {path} changed during the operation ({code})")
        if http in (401, 403):
            return StorageError(f"access to {path} denied: HTTP {http} {code}; check the credentials")
        return StorageError(f"request for {path} failed: HTTP {http} {code}")
    if isinstance(
        exc,
        ServiceRequestError
        | ServiceResponseError
        | requests.RequestException
        | urllib3.exceptions.HTTPError
        | ConnectionError
        | TimeoutError,
    ):
        return StorageError(f"request for {path} failed: {describe(exc, endpoint) or type(exc).__name__}")
    if isinstance(exc, AzureError) or type(exc).__module__.startswith("azure."):
        return StorageError(f"{type(exc).__name__} for {path}")
    return None
