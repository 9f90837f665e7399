"""Where parked writer sessions live on the store: their records, claims and folders.

A parked session of ``key`` is described by a *record* object,
``<hidden>uploads/<sha256 of key>/<upload token>/parked-<time>``, holding a JSON
line (the upload id, the part size and the tags of parts ``1..k``) followed by the
buffered rest (the *tail*). A create-only *claim* object beside it,
``claim-<time>``, gives the session to one writer. ``<hidden>`` is the backend's
``hidden_prefix``, so none of this ever shows in a listing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..conditions import Conditions
from ..errors import PreconditionFailedError
from .backend import MultipartBackend

log = logging.getLogger("blobdrivers.multipart")

#: Name prefixes, in an upload's folder, of a session record and of the claim on one.
RECORD = "parked-"
CLAIM = "claim-"
#: Version of the record format.
_VERSION = 1


@dataclass(frozen=True)
class ParkedSession:
    """A writer session parked by ``close()``: its upload and the record that describes it."""

    upload_id: str
    #: Key of the record object.
    record: str
    #: Parking time (nanoseconds since the epoch, on the parking client's clock).
    stamp: int

    @property
    def claim(self) -> str:
        """Key of the create-only object by which one writer takes this session over."""
        folder, _, name = self.record.rpartition("/")
        return f"{folder}/{CLAIM}{name.removeprefix(RECORD)}"


@dataclass(frozen=True)
class SavedSession:
    """What a record holds: the part size, the tags of parts ``1..k`` and the tail."""

    part_size: int
    tags: list[str]
    tail: bytearray


class Sessions:
    """The records and claims of parked writer sessions, on one backend."""

    def __init__(self, backend: MultipartBackend) -> None:
        self.backend = backend

    def folder(self, key: str) -> str:
        """Hidden folder of the writer sessions of ``key``."""
        return f"{self.backend.hidden_prefix}uploads/{hashlib.sha256(key.encode()).hexdigest()}/"

    def upload_folder(self, key: str, upload_id: str) -> str:
        """Hidden folder of one upload's bookkeeping (its records and claims), named after the upload id."""
        return f"{self.folder(key)}{upload_token(upload_id)}/"

    def record_key(self, key: str, upload_id: str) -> str:
        """A new record key for a session of ``upload_id``, sorting after the earlier ones (parking time)."""
        return f"{self.upload_folder(key, upload_id)}{RECORD}{time.time_ns():020d}"

    def parked(self, key: str) -> list[ParkedSession]:
        """The parked, unclaimed sessions of ``key``, most recently parked first (one listing)."""
        base = self.folder(key)
        records: dict[str, ParkedSession] = {}
        claimed: set[str] = set()
        for listed in self.backend.list_keys(base):
            token, _, name = listed[len(base) :].partition("/")
            stamp = name.removeprefix(RECORD).removeprefix(CLAIM)
            if not stamp.isdigit() or "/" in stamp:
                continue
            if name.startswith(CLAIM):
                claimed.add(f"{base}{token}/{RECORD}{stamp}")
            elif name.startswith(RECORD) and (upload_id := _upload_of(token)) is not None:
                records[listed] = ParkedSession(upload_id, listed, int(stamp))
        live = [session for record, session in records.items() if record not in claimed]
        return sorted(live, key=lambda session: session.stamp, reverse=True)

    def claim(self, session: ParkedSession) -> bool:
        """Take a parked session for one writer: a create-only claim object, so two claimers never share it."""
        try:
            self.backend.put_object(session.claim, memoryview(b""), Conditions(if_none_match="*"))
        except PreconditionFailedError:
            return False
        return True

    def load(self, key: str, session: ParkedSession) -> SavedSession | None:
        """What the record of a claimed session holds, or ``None`` when it is gone or unreadable."""
        backend = self.backend
        info = backend.head_object(session.record)
        if info is None:
            return None
        raw = bytearray(info.size)
        if info.size:
            backend.read_range(session.record, 0, memoryview(raw), etag=info.etag)
        header, _, tail = bytes(raw).partition(b"\n")
        try:
            state = json.loads(header)
            part_size = int(state["part_size"])
            tags = [str(tag) for tag in state["parts"]]
            if state.get("v") != _VERSION or state["upload"] != session.upload_id:
                raise ValueError("record of another version or upload")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable writer record under %s", self.upload_folder(key, session.upload_id))
            return None
        return SavedSession(part_size, tags, bytearray(tail))


def record_body(upload_id: str, part_size: int, tags: Sequence[str], tail: memoryview) -> bytes:
    """The content of a record: the JSON line :meth:`Sessions.load` reads, then the tail."""
    state = {"v": _VERSION, "upload": upload_id, "part_size": part_size, "parts": list(tags)}
    return json.dumps(state).encode() + b"\n" + tail


def upload_token(upload_id: str) -> str:
    """An upload id as one key component (upload ids may hold any character)."""
    return base64.urlsafe_b64encode(upload_id.encode()).decode("ascii").rstrip("=")


def session_tokens(key: str) -> list[str]:
    """The upload token of a session record or claim key (`.../~blobdrivers/uploads/<sha>/<token>/<name>`), or none."""
    parts = key.split("/")
    if (
        len(parts) >= 5
        and parts[-4] == "uploads"
        and parts[-5].startswith("~")
        and parts[-1].startswith((RECORD, CLAIM))
    ):
        return [parts[-2]]
    return []


def _upload_of(token: str) -> str | None:
    """The upload id a folder name encodes (see :func:`upload_token`), or ``None``."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
