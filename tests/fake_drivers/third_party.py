"""A third-party driver as a distribution would ship it, found only through its entry points.

``MyDriver`` declares its URL scheme as a class; ``make_fn_store`` is a plain
factory function carrying the same declarations as attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blobdrivers import StorageDriver
from blobdrivers.drivers.inmemory import InMemoryDriver


class MyDriver(InMemoryDriver):
    """An in-memory store under its own name and scheme: ``mydriver://NAME/ROOT``."""

    name = "mydriver"
    url_schemes = ("mydriver", "mine")
    url_host_param = "name"


def make_fn_store(params: Mapping[str, Any]) -> StorageDriver:
    """A factory function: ``fnstore://?name=N`` (its URLs name no host)."""
    return MyDriver(**params)


def _fn_params(url: str) -> dict[str, Any]:
    # This factory maps the whole URL path to the store name.
    from urllib.parse import urlsplit

    return {"name": urlsplit(url).path.strip("/") or "default"}


make_fn_store.url_schemes = ("fnstore",)  # type: ignore[attr-defined]
make_fn_store.params_from_url = _fn_params  # type: ignore[attr-defined]
