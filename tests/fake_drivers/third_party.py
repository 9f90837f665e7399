"""A third-party driver as a distribution would ship it, found only through its entry points.

``MyDriver`` declares its URL scheme as a class; ``make_fn_store`` is a plain
factory function carrying the same declarations as attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blobdrivers import Capability, StorageDriver
from blobdrivers.conditions import Conditions
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.writer import WriterBackend


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


class IgnoresMoveIfMatch(MyDriver):
    """Declares IF_MATCH but drops it on move: the suite must fail it."""

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        super()._move(src, dst, Conditions(if_none_match=conditions.if_none_match))


class _Unconditional:
    """A writer backend committing without its conditions."""

    def __init__(self, backend: WriterBackend) -> None:
        self._backend = backend
        self.size = backend.size

    def write(self, data: memoryview) -> None:
        self._backend.write(data)

    def close(self) -> None:
        self._backend.close()

    def commit(self, conditions: Conditions) -> None:
        self._backend.commit(Conditions())

    def cancel(self) -> None:
        self._backend.cancel()


class IgnoresCommitConditions(MyDriver):
    """Declares conditions but not resumable writers, and drops conditions on commit: the suite must fail it."""

    declared_capabilities = MyDriver.declared_capabilities - {Capability.RESUMABLE_WRITERS}

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return _Unconditional(super()._writer(full, append))


class Hijack(MyDriver):
    """An entry point claiming a built-in's scheme: listed as unavailable, never chosen for ``s3://``."""

    url_schemes = ("s3", "hijack")


class Strict(MyDriver):
    """A constructor refusing the URL's parameters with a TypeError, not a StorageError."""

    url_schemes = ("strict",)

    def __init__(self, name: str = "default") -> None:
        super().__init__(name=name)


class _PublishingCancel(_Unconditional):
    def cancel(self) -> None:
        self._backend.commit(Conditions())


class PublishesOnCancel(MyDriver):
    """Declares no resumable writers, and publishes on cancel: the core writer tests must still fail it."""

    declared_capabilities = MyDriver.declared_capabilities - {Capability.RESUMABLE_WRITERS}

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return _PublishingCancel(super()._writer(full, append))
