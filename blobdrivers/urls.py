"""Store URLs: how a URL maps to a driver's parameters (the default of ``StorageDriver.params_from_url``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ConfigError


def scheme_of(url: str) -> str:
    """The lower-cased scheme of a store URL (``""`` when it has none)."""
    return urlsplit(url).scheme.lower()


def url_params(url: str, *, host_param: str | None, driver: str) -> dict[str, Any]:
    """The parameters of ``SCHEME://HOST/PATH?QUERY``.

    The host fills ``host_param`` (with ``host_param=None`` the URL may name no host
    but ``localhost``), the path ``rootdirectory`` (``/`` or none: the whole store),
    each query item one parameter (given twice: :class:`ConfigError`). Credentials in
    the user part are refused, since they would show wherever the URL is printed.
    """
    parts = urlsplit(url)
    params: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in params:
            raise ConfigError(f"parameter {key!r} is given twice in the store URL", driver=driver)
        params[key] = value
    if "@" in parts.netloc:
        raise ConfigError("credentials in the URL's user part are not accepted; pass them as parameters", driver=driver)
    host = unquote(parts.netloc)
    if host_param is not None:
        if host:
            params[host_param] = host
    elif host not in ("", "localhost"):
        raise ConfigError(f"a {parts.scheme.lower()}:// URL names no host, got {host!r}", driver=driver)
    path = unquote(parts.path)
    if path not in ("", "/"):
        params["rootdirectory"] = path
    return params
