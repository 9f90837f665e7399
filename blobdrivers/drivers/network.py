"""A request that got no usable answer, in words: which endpoint, and what the network said.

Shared by the network drivers' error translation. The endpoint is shown as its
origin only (``scheme://host:port``): a request URL's path and query may hold an
upload session id or a signature, and user info a password. The reason comes from
the exception chain (``ConnectionRefusedError`` -> "connection refused"), never
from an SDK's message, which may quote the whole URL.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Iterator

#: Exception class names (SDKs' and urllib3's) meaning no connection was ever made.
_CONNECT_FAILURES = frozenset(
    {"EndpointConnectionError", "NewConnectionError", "ConnectTimeoutError", "ConnectTimeout", "NameResolutionError"}
)


_GENERIC = "connection failed"


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of ``url`` (no user info, path or query); ``None`` when it names no host."""
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not parts.scheme or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{port}" if port else "")


def describe(exc: BaseException, endpoint: str | None) -> str | None:
    """``cannot connect to endpoint URL (connection refused)`` or the like; ``None`` when ``exc`` is no network failure.

    ``endpoint`` is the driver's configured endpoint; a URL the exception chain
    carries (the request's) wins, as it names the host actually tried.
    """
    chain = list(_chain(exc))
    reasons = [found for error in chain if (found := _reason(error)) is not None]
    if not reasons:
        return None
    reason = next((found for found in reasons if found != _GENERIC), _GENERIC)  # the most telling one
    shown = next((found for error in chain if (found := _url_of(error)) is not None), None) or origin(endpoint)
    where = f"endpoint {shown}" if shown else "the endpoint"
    connected = not any(type(error).__name__ in _CONNECT_FAILURES for error in chain) and reason not in (
        "connection refused",
        "host not found",
    )
    if connected:
        return f"the connection to {where} failed ({reason})"
    return f"cannot connect to {where} ({reason})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the exceptions SDKs keep in attributes or args."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        stack.extend(getattr(error, name, None) for name in ("inner_exception", "exception", "reason", "error"))
        stack.extend(error.args)
        stack.extend([error.__context__, error.__cause__])


def _reason(error: BaseException) -> str | None:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror) or type(error).__name__ == "NameResolutionError":
        return "host not found"
    if isinstance(error, ssl.SSLError):
        return "TLS failed"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return "timed out"
    if isinstance(error, ConnectionError) or type(error).__name__ in _CONNECT_FAILURES:
        return _GENERIC
    return None


def _url_of(error: BaseException) -> str | None:
    """The origin of the URL an exception says it was about (botocore, requests, urllib3), if any."""
    kwargs = getattr(error, "kwargs", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("endpoint_url"), str):
        return origin(kwargs["endpoint_url"])
    request = getattr(error, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str):
        return origin(url)
    pool = getattr(error, "conn", None) or getattr(error, "pool", None)  # urllib3 2 deprecates a connection's pool
    host, scheme = getattr(pool, "host", None), getattr(pool, "scheme", None)
    if isinstance(host, str) and isinstance(scheme, str):
        port = getattr(pool, "port", None)
        return origin(f"{scheme}://{host}" + (f":{port}" if isinstance(port, int) else ""))
    return None
