"""The writer backend: a chunk buffer feeding a resumable session, parked in a sidecar on ``close()``.

Appending to committed content (or to a session that finished) composes the
committed pieces with the new bytes at commit. See ``docs/drivers/gcs.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...conditions import Conditions
from ...errors import PreconditionFailedError, StorageError, UnsupportedMethodError
from ...transfer import PartBuffer
from . import crc
from .errors import HTTPError, UnreadableSidecar
from .sidecar import Piece, UploadState
from .uploads import ALIGN, Session, generation_param, start_session, transmit, upload_small

if TYPE_CHECKING:
    from . import GCSDriver


class GCSWriter:
    """Writer backend: buffers a chunk, feeds a resumable session, parks its state in a sidecar.

    ``_backlog`` holds 256 KiB-aligned bytes whose send failed; they come before
    the buffer, so progress stays contiguous whatever failed.
    """

    def __init__(self, driver: GCSDriver, state: UploadState, *, has_sidecar: bool) -> None:
        self._driver = driver
        self._api = driver._api
        self._parking = driver._parking
        self._state = state
        self._has_sidecar = has_sidecar
        self._buffer = PartBuffer(driver.chunk_size)
        self._backlog = b""
        session_bytes = state.session.offset if state.session else 0
        self.size = sum(piece.size for piece in state.pieces) + session_bytes + len(state.tail)
        tail, state.tail = state.tail, b""
        self._send_parts(self._buffer.write(tail))

    @property
    def streaming(self) -> bool:
        """True once the bytes stream into a session on the target itself, whose conditions GCS fixed at its start."""
        session = self._state.session
        return session is not None and session.direct and not self._state.pieces

    def _ensure_session(self) -> Session:
        state = self._state
        if state.session is None:
            # With pieces to prepend, the new bytes go to a temporary that commit composes after them.
            direct = not state.pieces
            key = state.target if direct else self._driver._temp_key()
            state.session = start_session(self._api, key, {}, direct=direct)
        return state.session

    def _send_parts(self, parts: list[bytes]) -> None:
        for index, part in enumerate(parts):
            sent = 0
            try:
                session = self._ensure_session()
                start = session.offset
                try:
                    # Part numbers count chunks of the session (a resumed one goes on from its offset).
                    number = start // self._driver.chunk_size + 1
                    self._driver._race_point("part.upload", "/" + self._state.target, number)
                    transmit(self._api, session, memoryview(part), total=None, crc32c=None)
                finally:
                    sent = session.offset - start
            except BaseException:
                self._backlog = part[sent:] + b"".join(parts[index + 1 :])
                raise

    def _take(self) -> bytes:
        rest = self._backlog + self._buffer.take_rest()
        self._backlog = b""
        return rest

    def write(self, data: memoryview) -> None:
        """Buffer ``data``; send every full chunk into the session."""
        if self._state.crc is not None:
            self._state.crc = crc.extend(self._state.crc, data)
        parts = self._buffer.write(data)
        if self._backlog:
            parts.insert(0, self._backlog)
            self._backlog = b""
        self._send_parts(parts)

    def close(self) -> None:
        """Park the upload: what the session can take goes to it, the rest into the sidecar."""
        self._park(self._take(), may_start=True)

    def _park(self, rest: bytes, *, may_start: bool) -> None:
        """Send the 256 KiB-aligned part of ``rest`` if a session may take it; record the rest in the sidecar."""
        aligned = len(rest) // ALIGN * ALIGN
        if aligned and (may_start or self._state.session is not None):
            try:
                session = self._ensure_session()
                start = session.offset
                try:
                    transmit(self._api, session, memoryview(rest)[:aligned], total=None, crc32c=None)
                finally:
                    rest = rest[session.offset - start :]
            except Exception:
                pass  # the sidecar keeps the bytes; a resume reconciles with the session's offset
        self._state.tail = rest
        if not self._has_sidecar:
            # One parked upload per path: the one parked before this (another writer's) is dropped, not orphaned.
            with contextlib.suppress(UnreadableSidecar):
                replaced = self._parking.take(self._state.target)
                if replaced is not None:
                    self._parking.drop(replaced, sidecar=False)
        self._parking.park(self._state)
        self._has_sidecar = True

    def commit(self, conditions: Conditions) -> None:
        """Publish: finish the session, upload the buffer in one request, or compose onto committed content."""
        api, state = self._api, self._state
        rest = self._take()
        params = generation_param(conditions)
        session = state.session
        start = session.offset if session is not None else 0
        try:
            if not state.pieces and session is None:
                upload_small(api, state.target, rest, params, what="commit")
            elif not state.pieces:
                assert session is not None
                if params:  # the base refuses this first (``streaming``); never drop a condition silently
                    raise UnsupportedMethodError(
                        "this upload already streams into a resumable session, whose conditions GCS fixes when "
                        "it starts; commit it without conditions, or use put() or move() with the condition"
                    )
                transmit(api, session, memoryview(rest), total=start + len(rest), crc32c=state.crc)
                state.session = None
            elif self._unchanged(rest, params):
                pass  # appending nothing to committed content: leave its generation as it is
            else:
                self._finish_into_piece(rest)
                rest, session = b"", None
                try:
                    sources = [piece.source() for piece in state.pieces]
                    result = self._driver._composer.compose(sources, state.target, params)
                except HTTPError as exc:
                    if exc.status != 404 or exc.bucket_missing:
                        raise
                    raise PreconditionFailedError(
                        f"a piece of the upload for /{state.target} is gone: the committed content it appends "
                        "to was replaced or deleted, or another writer dropped this upload"
                    ) from exc
                if state.crc is not None:
                    crc.check(result, crc.to_b64(state.crc))
        except BaseException:
            # Keep progress parked for writer(path, append=True): only what the session lacks stays in the tail.
            if session is not None and state.session is session:
                rest = rest[max(0, session.offset - start) :]
            with contextlib.suppress(Exception):
                self._park(rest, may_start=False)
            raise
        # Published: what follows is housekeeping, and must not turn the commit into an error.
        cleanup = [piece.name for piece in state.pieces if piece.temp]
        if self._has_sidecar:
            cleanup.append(self._parking.sidecar_key(state.target))
        self._driver._deleter.discard(cleanup)

    def _unchanged(self, rest: bytes, params: Mapping[str, str]) -> bool:
        state = self._state
        only = state.pieces[0] if len(state.pieces) == 1 else None
        return (
            not rest
            and not params
            and state.session is None
            and only is not None
            and not only.temp
            and only.name == state.target
        )

    def _finish_into_piece(self, rest: bytes) -> None:
        """Turn the session (or the buffered bytes) into a finished temporary appended to the pieces."""
        api, state = self._api, self._state
        session = state.session
        if session is not None:
            if session.direct:  # cannot happen: sessions started with pieces present write temporaries
                raise StorageError(f"the upload for /{state.target} mixes committed pieces with a direct session")
            total = session.offset + len(rest)
            resource = transmit(api, session, memoryview(rest), total=total, crc32c=None)
            assert resource is not None
            state.session = None
            state.pieces.append(Piece(session.key, str(resource.get("generation") or ""), total, temp=True))
        elif rest:
            key = self._driver._temp_key()
            resource = upload_small(api, key, rest, {}, what="commit")
            state.pieces.append(Piece(key, str(resource.get("generation") or ""), len(rest), temp=True))

    def cancel(self) -> None:
        """Drop the upload: cancel the session, delete temporaries and the sidecar."""
        self._take()
        self._parking.drop(self._state, sidecar=self._has_sidecar)
