"""Parked uploads: a writer's resumable session and unsent tail, kept in a hidden *sidecar* object.

One sidecar per path, ``<bookkeeping>/uploads/<sha256 of the key>``. A writer in any
process takes it over by reading it and deleting exactly that generation, so each
parked session goes to one writer, and a live writer's session is in no sidecar.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ...errors import StorageError
from .batch import Deleter
from .client import Api
from .errors import HTTPError, SessionGone, UnreadableSidecar
from .uploads import Session, abort_session, session_status, upload_small

SIDECAR_MAGIC = b"blobdrivers-gcs-upload/1\n"


@dataclass
class Piece:
    """An object that a writer's content starts with: committed content, or a finished temporary."""

    name: str
    generation: str | None
    size: int
    temp: bool

    def source(self) -> dict[str, str]:
        """The piece as a compose source (pinned to its generation when known)."""
        entry = {"name": self.name}
        if self.generation:
            entry["generation"] = self.generation
        return entry


@dataclass
class UploadState:
    """What a sidecar records about an upload in progress."""

    target: str
    session: Session | None = None
    pieces: list[Piece] = field(default_factory=list)
    crc: int | None = 0
    tail: bytes = b""

    def encode(self) -> bytes:
        """The sidecar's content: magic line, JSON header line, then the tail bytes."""
        header = {
            "target": self.target,
            "session": None
            if self.session is None
            else {
                "uri": self.session.uri,
                "key": self.session.key,
                "offset": self.session.offset,
                "direct": self.session.direct,
            },
            "pieces": [
                {"name": p.name, "generation": p.generation, "size": p.size, "temp": p.temp} for p in self.pieces
            ],
            "crc": self.crc,
            "tail": len(self.tail),
        }
        return SIDECAR_MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.tail

    @classmethod
    def decode(cls, blob: bytes) -> UploadState:
        """Parse a sidecar; ``UnreadableSidecar`` when it is not one or is damaged."""
        if not blob.startswith(SIDECAR_MAGIC):
            raise UnreadableSidecar("the upload's sidecar object is not in a format this driver knows")
        try:
            header_end = blob.index(b"\n", len(SIDECAR_MAGIC))
            header = json.loads(blob[len(SIDECAR_MAGIC) : header_end])
            tail = blob[header_end + 1 :]
            if len(tail) != header["tail"]:
                raise ValueError("truncated")
            raw = header.get("session")
            session = None
            if raw:
                offset, direct = int(raw["offset"]), bool(raw["direct"])
                session = Session(uri=raw["uri"], key=raw["key"], offset=offset, direct=direct)
            pieces = [
                Piece(p["name"], p.get("generation"), int(p["size"]), bool(p["temp"])) for p in header.get("pieces", [])
            ]
            crc = header.get("crc")
            return cls(header["target"], session, pieces, None if crc is None else int(crc), tail)
        except (ValueError, KeyError, TypeError) as exc:
            raise UnreadableSidecar(f"the upload's sidecar object is damaged ({type(exc).__name__})") from None


class Parking:
    """The sidecars of one bucket below the bookkeeping folder ``hidden``."""

    def __init__(self, api: Api, deleter: Deleter, hidden: str) -> None:
        self._api = api
        self._deleter = deleter
        self._hidden = hidden

    def sidecar_key(self, key: str) -> str:
        """The hidden key of the sidecar for uploads to ``key``."""
        return f"{self._hidden}/uploads/{hashlib.sha256(key.encode()).hexdigest()}"

    def take(self, key: str) -> UploadState | None:
        """Read the parked upload's sidecar and delete exactly that generation: the upload is the caller's.

        Of two writers taking one sidecar, one delete succeeds; the other reads again
        and finds none (or a newer one). So a parked upload goes to one writer, and
        a live writer's upload is never in a sidecar another writer can drop.
        """
        api = self._api
        sidecar = self.sidecar_key(key)
        for _ in range(5):
            item = api.metadata(sidecar)
            if item is None:
                return None
            generation = str(item["generation"])
            try:
                response = api.send(
                    "GET",
                    api.media_url(sidecar),
                    what="read upload state",
                    params={"alt": "media", "generation": generation},
                    headers={"Accept-Encoding": "identity"},
                )
            except HTTPError as exc:
                if exc.status == 404 and not exc.bucket_missing:
                    continue  # replaced or taken meanwhile
                raise
            if not api.delete_key(sidecar, generation=generation):
                continue
            state = UploadState.decode(response.data)
            return state if state.target == key else None
        raise StorageError(f"the upload state of /{key} keeps changing; try again")

    def park(self, state: UploadState) -> None:
        """Write ``state`` as the sidecar of its target (one request)."""
        upload_small(self._api, self.sidecar_key(state.target), state.encode(), {}, what="save upload state")

    def drop(self, state: UploadState, *, sidecar: bool) -> None:
        """Cancel the session, delete temporary pieces and (if asked) the sidecar."""
        if state.session is not None:
            abort_session(self._api, state.session)
            if not state.session.direct:
                self._api.delete_key(state.session.key)
        self._deleter.delete_many([piece.name for piece in state.pieces if piece.temp])
        if sidecar:
            self._api.delete_key(self.sidecar_key(state.target))

    def reconcile(self, state: UploadState) -> UploadState:
        """Match a sidecar against what its session really persisted (a writer may have died after it)."""
        session = state.session
        if session is None:
            return state
        recorded = session.offset
        try:
            finished = session_status(self._api, session)
        except SessionGone:
            self.drop(state, sidecar=False)
            raise StorageError(
                f"the upload in progress for /{state.target} cannot be resumed: its session expired or was "
                "cancelled; start a new writer"
            ) from None
        if finished is not None:
            # A commit died after finishing the session: its object is now the first piece.
            size = int(finished.get("size") or 0)
            generation = str(finished.get("generation") or "")
            state.pieces.append(Piece(str(finished["name"]), generation, size, temp=not session.direct))
            state.session = None
            covered = size - recorded
        else:
            covered = session.offset - recorded
        if covered < 0:
            raise StorageError(f"the upload session for /{state.target} lost data it had acknowledged")
        if covered <= len(state.tail):
            state.tail = state.tail[covered:]
        else:
            # A writer sent more after the sidecar was written, then died: resume at the server's offset.
            state.tail = b""
            state.crc = None
        return state
