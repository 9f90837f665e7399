"""CRC32C, the one checksum every GCS object has (composite objects have no MD5)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import google_crc32c

from ...errors import StorageError
from ...params import MiB


def extend(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Extend a CRC32C with ``data`` (the C implementation only takes ``bytes``: copy in 1 MiB slices)."""
    if isinstance(data, bytes):
        return int(google_crc32c.extend(crc, data))
    view = memoryview(data).cast("B")
    for start in range(0, len(view), MiB):
        crc = google_crc32c.extend(crc, bytes(view[start : start + MiB]))
    return crc


def to_b64(crc: int) -> str:
    """The form of the JSON API's ``crc32c`` field and of ``X-Goog-Hash``."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def from_b64(value: str | None) -> int | None:
    """The CRC32C of a ``crc32c`` field, or ``None`` when it is absent or malformed."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def check(resource: Mapping[str, Any], expected: str | None) -> None:
    """Raise when the CRC32C GCS computed for an object differs from the one its writer computed."""
    got = resource.get("crc32c")
    if expected and got and got != expected:
        raise StorageError(
            f"integrity check failed for /{resource.get('name', '?')}: CRC32C {got} where {expected} was sent"
        )


def from_hash_header(headers: Mapping[str, str]) -> int | None:
    """The CRC32C in an ``X-Goog-Hash: crc32c=...,md5=...`` header, if it describes the bytes received.

    For an object stored gzip-encoded (written by another tool), GCS may send it
    decompressed while the hash is of the stored bytes: no check then.
    """
    value = headers.get("X-Goog-Hash")
    if not value or headers.get("x-goog-stored-content-encoding", "identity") != "identity":
        return None
    for part in value.split(","):
        name, _, encoded = part.strip().partition("=")
        if name == "crc32c":
            return from_b64(encoded)
    return None
