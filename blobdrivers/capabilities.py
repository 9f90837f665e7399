"""Capability: what a driver supports beyond the core contract, declared rather than guessed.

Every driver keeps the core contract (put, get, stream, writer, stat, list, walk,
move, delete, cat). The optional parts are the members of :class:`Capability`; a
driver states its own in :attr:`StorageDriver.capabilities
<blobdrivers.StorageDriver.capabilities>`, and the base class refuses a call that
needs an undeclared one with :class:`~blobdrivers.errors.UnsupportedMethodError`
naming the capability, before any request. The conformance suite tests each
declared capability and checks that each undeclared one is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .conditions import Conditions
from .errors import UnsupportedMethodError

__all__ = ["Capability", "needed_for", "require"]


class Capability(enum.Enum):
    """One optional part of the contract; the value is how messages and reports name it."""

    #: ``url_for(path, "GET")`` and ``"HEAD"`` give URLs a plain HTTP client can use.
    SIGNED_READ_URLS = "signed GET/HEAD URLs"
    #: ``url_for(path, "PUT")`` gives a URL a plain HTTP client can upload to.
    SIGNED_PUT_URLS = "signed PUT URLs"
    #: ``put``, ``move`` and ``Writer.commit`` take ``if_none_match="*"``.
    IF_NONE_MATCH = "if_none_match"
    #: ``put``, ``move`` and ``Writer.commit`` take ``if_match=etag``.
    IF_MATCH = "if_match"
    #: A writer opened with ``append=False`` that wrote ``chunk_size`` bytes or more,
    #: or whose upload already streams (its backend's ``streaming``: a resumed one's
    #: may), still commits under conditions (a service that fixes a streamed upload's
    #: conditions when the upload starts cannot).
    CONDITIONAL_STREAMED_COMMIT = "conditional commit of a streamed writer"
    #: ``writer(path, append=True)`` resumes a parked writer or appends to the committed content.
    RESUMABLE_WRITERS = "resumable writers (append=True)"
    #: ``cat`` copies inside the store (server-side, or in memory) rather than moving
    #: the bytes through this process. Informational: ``cat`` works either way.
    SERVER_SIDE_CAT = "server-side cat"


def require(
    capabilities: frozenset[Capability],
    needed: Capability,
    *,
    driver: str,
    path: str | None = None,
    notes: Mapping[Capability, str] | None = None,
) -> None:
    """Raise :class:`UnsupportedMethodError` naming ``needed`` unless it is in ``capabilities``.

    ``notes`` (the driver's ``capability_notes``) may say why it lacks one, and what to do.
    """
    if needed not in capabilities:
        note = (notes or {}).get(needed)
        raise UnsupportedMethodError(
            f"driver {driver!r} does not declare the capability {needed.value!r}" + (f": {note}" if note else ""),
            driver=driver,
            path=path,
        )


def needed_for(conditions: Conditions, *, streamed: bool = False) -> list[Capability]:
    """The capabilities a publish under ``conditions`` needs; ``streamed``: a streamed writer's commit."""
    if not conditions:
        return []
    needed = Capability.IF_NONE_MATCH if conditions.if_none_match is not None else Capability.IF_MATCH
    return [needed, Capability.CONDITIONAL_STREAMED_COMMIT] if streamed else [needed]
