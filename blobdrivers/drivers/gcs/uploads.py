"""Uploads: one multipart request, or a resumable session driven by hand.

The resumable protocol is driven here rather than by the SDK's helpers because
one session is resumed from many driver instances and processes (a parked
writer), which those helpers do not allow. A session URI is a bearer secret: it
never appears in an error or a ``repr``.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import urllib3.exceptions
from urllib3.response import BaseHTTPResponse

from ...conditions import Conditions
from ...errors import PreconditionFailedError, StorageError
from ...params import KiB, MiB
from . import crc
from .client import Api
from .errors import HTTPError, SessionGone, is_transient

#: Resumable uploads move data in multiples of this (a GCS rule).
ALIGN = 256 * KiB
OCTET_STREAM = "application/octet-stream"
_RANGE = re.compile(r"bytes=0-(\d+)")


def upload_small(
    api: Api, key: str, data: bytes | bytearray | memoryview, params: Mapping[str, str], *, what: str
) -> dict[str, Any]:
    """Publish ``data`` at ``key`` in one multipart request; the server checks its CRC32C."""
    checksum = crc.to_b64(crc.extend(0, data))
    metadata = json.dumps({"name": key, "contentType": OCTET_STREAM, "crc32c": checksum}).encode()
    boundary = "blobdrivers-" + uuid.uuid4().hex
    marker = b"--" + boundary.encode()
    body = b"".join(
        (
            marker,
            b"\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n",
            metadata,
            b"\r\n",
            marker,
            b"\r\nContent-Type: application/octet-stream\r\n\r\n",
            data,
            b"\r\n",
            marker,
            b"--\r\n",
        )
    )
    response = api.send(
        "POST",
        api.uploads,
        what=what,
        params={"uploadType": "multipart", **params},
        headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
        body=body,
    )
    resource: dict[str, Any] = json.loads(response.data)
    crc.check(resource, checksum)
    return resource


@dataclass
class Session:
    """A resumable upload session: its URI (a bearer secret), the key it creates, the persisted offset."""

    uri: str
    key: str
    offset: int = 0
    direct: bool = True  # True when it creates the target itself, False for a hidden temporary

    def __repr__(self) -> str:
        return f"Session(key={self.key!r}, offset={self.offset}, direct={self.direct})"


def start_session(api: Api, key: str, params: Mapping[str, str], *, direct: bool) -> Session:
    """Start a resumable session writing ``key`` under ``params`` (its preconditions, fixed from now on)."""
    response = api.send(
        "POST",
        api.uploads,
        what="start upload",
        params={"uploadType": "resumable", "name": key, **params},
        headers={"X-Upload-Content-Type": OCTET_STREAM},
        json_body={"name": key, "contentType": OCTET_STREAM},
        expect=(200, 201),
    )
    location = response.headers.get("Location")
    if not location:
        raise StorageError("the server started an upload session but returned no session URI")
    return Session(uri=location, key=key, direct=direct)


def _session_request(api: Api, session: Session, data: Any, content_range: str, extra: Mapping[str, str]) -> Any:
    """One PUT to a session URI. Transport errors are re-raised without the URI (a bearer secret)."""
    try:
        return api.http().urlopen("PUT", session.uri, body=data, headers={"Content-Range": content_range, **extra})
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ConnectionError(f"{type(exc).__name__} talking to the upload session") from None


def session_status(api: Api, session: Session) -> dict[str, Any] | None:
    """Ask the session what it persisted; returns the object resource if it is already finished."""
    response = _session_request(api, session, b"", "bytes */*", {})
    status = response.status
    if status in (200, 201):
        resource: dict[str, Any] = json.loads(response.data)
        return resource
    if status == 308:
        session.offset = _persisted(response)
        return None
    if status in (404, 410, 499):
        raise SessionGone(f"the upload session for /{session.key} no longer exists (HTTP {status})")
    raise HTTPError.from_response(response, "query upload")


def transmit(
    api: Api, session: Session, data: memoryview | FileBody, *, total: int | None, crc32c: int | None
) -> dict[str, Any] | None:
    """Send ``data`` at the session's offset; with ``total``, finish the upload and return the object.

    The server may persist less than was sent (it answers 308 with what it has):
    the rest is re-sent. After a transient failure the session is asked for its
    persisted offset and the upload continues from there, so no byte is sent twice
    into the object and none is skipped.
    """
    start = session.offset
    end = start + len(data)
    if total is not None and total != end:
        raise ValueError("total must be the offset after the final bytes")
    query_first = False

    def one_try() -> dict[str, Any] | None:
        nonlocal query_first
        if query_first:
            finished = session_status(api, session)
            if finished is not None:
                return finished
        query_first = True
        while True:
            offset = session.offset
            if not start <= offset <= end:
                raise StorageError(
                    f"the upload session for /{session.key} reports offset {offset}, outside {start}-{end}"
                )
            rest = data[offset - start :]
            extra: dict[str, str] = {}
            if total is None:
                if not rest:
                    query_first = False
                    return None
                content_range = f"bytes {offset}-{end - 1}/*"
            else:
                content_range = f"bytes {offset}-{end - 1}/{total}" if rest else f"bytes */{total}"
                if crc32c is not None:
                    extra["X-Goog-Hash"] = f"crc32c={crc.to_b64(crc32c)}"
            extra["Content-Length"] = str(len(rest))
            response = _session_request(api, session, rest if len(rest) else b"", content_range, extra)
            status = response.status
            if status in (200, 201):
                session.offset = end
                resource: dict[str, Any] = json.loads(response.data)
                return resource
            if status == 308:
                persisted = _persisted(response)
                if persisted <= offset and (rest or total is not None):
                    # Nothing new was kept (or a final request did not finish): do not loop
                    # forever; a retry asks the session where it stands first.
                    raise HTTPError(503, "noProgress", "upload chunk")
                session.offset = persisted
                continue
            if status in (404, 410):
                raise SessionGone(f"the upload session for /{session.key} no longer exists (HTTP {status})")
            raise HTTPError.from_response(response, "upload chunk")

    result = api.retry.call(one_try, is_transient=is_transient, what="upload chunk")
    if result is not None and crc32c is not None:
        crc.check(result, crc.to_b64(crc32c))
    return result


def abort_session(api: Api, session: Session) -> None:
    """Cancel a session (GCS answers 499); best effort, as an abandoned session expires in a week."""
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
        api.http().urlopen("DELETE", session.uri)


def _persisted(response: BaseHTTPResponse) -> int:
    """Bytes a session has persisted, from a 308 answer's ``Range: bytes=0-N`` (absent: none)."""
    header = response.headers.get("Range")
    if not header:
        return 0
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        raise StorageError(f"unexpected Range header {header!r} from an upload session")
    return int(match.group(1)) + 1


def seekable(file: Any) -> bool:
    """Whether a put can re-read ``file`` by seeking (to resume a broken request)."""
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


@dataclass
class _Checksummed:
    """How far into a file the CRC32C has got (a file position) and its value."""

    start: int
    end: int
    upto: int
    crc: int = 0


@dataclass
class FileBody:
    """Bytes ``[base, base + length)`` of a seekable file as a request body that can be sent again.

    Slicing gives the body from an offset on (a resumed request re-reads from there);
    iterating seeks and reads 1 MiB blocks. The CRC32C of the whole range is computed
    on the way, each byte counted once however often it is sent.
    """

    BLOCK: ClassVar[int] = MiB

    file: Any
    base: int
    length: int
    checksum: _Checksummed

    @classmethod
    def open(cls, file: Any, length: int) -> FileBody:
        """The next ``length`` bytes of ``file`` from its current position."""
        base = int(file.tell())
        return cls(file, base, length, _Checksummed(base, base + length, base))

    @property
    def crc(self) -> int | None:
        """The CRC32C of the whole range once every byte of it was read, else ``None``."""
        return self.checksum.crc if self.checksum.upto == self.checksum.end else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, cut: slice) -> FileBody:
        start = cut.start or 0
        return FileBody(self.file, self.base + start, self.length - start, self.checksum)

    def __iter__(self) -> Iterator[bytes]:
        position, end = self.base, self.base + self.length
        self.file.seek(position)
        checksum = self.checksum
        while position < end:
            block = self.file.read(min(self.BLOCK, end - position))
            if not block:
                raise StorageError("the file being uploaded got shorter during the upload")
            if position <= checksum.upto < position + len(block):
                checksum.crc = crc.extend(checksum.crc, block[checksum.upto - position :])
                checksum.upto = position + len(block)
            position += len(block)
            yield block


def generation_param(conditions: Conditions) -> dict[str, str]:
    """``ifGenerationMatch`` for conditions: ``0`` means "no live object"; etags are generations."""
    if conditions.if_none_match is not None:
        return {"ifGenerationMatch": "0"}
    if conditions.if_match is not None:
        etag = conditions.if_match
        if not etag.isdigit() or int(etag) == 0:
            # Not a generation of this store, so no object can match it.
            raise PreconditionFailedError(f"etag {etag!r} is not a GCS generation, so it cannot match")
        return {"ifGenerationMatch": etag}
    return {}
