r"""Digests, repository names and media types: the OCI grammars, validated; and :class:`Descriptor`.

* Digest (OCI image spec): ``algorithm ":" encoded`` where ``algorithm`` is
  ``[a-z0-9]+([+._-][a-z0-9]+)*`` and ``encoded`` is ``[a-zA-Z0-9=_-]+``. The
  registered algorithms fix the encoding further: ``sha256`` is 64 and ``sha512``
  128 lowercase hex digits. Only these two are supported; another well-formed
  algorithm raises :class:`UnsupportedDigestError`.
* Repository name (OCI distribution spec): path components of
  ``[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`` joined by ``/``, at most 255 characters.
  A component can never start with ``_``, so repository paths cannot collide with
  the store's own ``_layers`` and ``_uploads`` folders.
* Media type (RFC 6838 as used by OCI): ``type "/" subtype``, each 1-127 characters
  of ``[A-Za-z0-9!#$&^_.+-]`` starting with a letter or digit; no parameters.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import InvalidDigestError, InvalidMediaTypeError, InvalidRepositoryNameError, UnsupportedDigestError

#: The algorithms this store computes and verifies, with the hex length of their digests.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
#: The algorithm ``BlobStore.put`` uses unless told otherwise (the OCI canonical one).
CANONICAL = "sha256"
#: Media type reported for a blob stored without one.
DEFAULT_MEDIA_TYPE = "application/octet-stream"
#: Longest repository name (distribution's limit).
MAX_REPOSITORY_NAME = 255

_DIGEST = re.compile(r"(?P<alg>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<enc>[a-zA-Z0-9=_-]+)")
_HEX = re.compile(r"[a-f0-9]+")
_NAME = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True)
class Descriptor:
    """What the store knows of a blob: its ``digest``, ``size`` in bytes and ``media_type``."""

    digest: str
    size: int
    media_type: str = DEFAULT_MEDIA_TYPE

    @property
    def algorithm(self) -> str:
        """The digest's algorithm (``sha256`` or ``sha512``)."""
        return self.digest.partition(":")[0]

    @property
    def hex(self) -> str:
        """The digest's encoded part (lowercase hex)."""
        return self.digest.partition(":")[2]


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
    return text if len(text) <= 160 else text[:157] + "..."


def parse_digest(digest: str) -> tuple[str, str]:
    """Split a valid, supported digest into ``(algorithm, hex)``; else raise :class:`InvalidDigestError`.

    A well-formed digest of an algorithm other than sha256 or sha512 raises
    :class:`UnsupportedDigestError` (a subclass).
    """
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidDigestError(
            f"invalid digest {_shown(digest)}: expected 'algorithm:encoded', "
            "e.g. 'sha256:' followed by 64 lowercase hex digits"
        )
    algorithm, encoded = match.group("alg"), match.group("enc")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise UnsupportedDigestError(
            f"unsupported digest algorithm {algorithm!r} in {_shown(digest)}: supported are "
            + ", ".join(sorted(ALGORITHMS))
        )
    if len(encoded) != length or _HEX.fullmatch(encoded) is None:
        raise InvalidDigestError(
            f"invalid {algorithm} digest {_shown(digest)}: the encoded part must be {length} lowercase hex digits"
        )
    return algorithm, encoded


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is valid and supported (see :func:`parse_digest`), else raise."""
    parse_digest(digest)
    return digest


def validate_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if this store supports it, else raise :class:`UnsupportedDigestError`."""
    if algorithm not in ALGORITHMS:
        raise UnsupportedDigestError(
            f"unsupported digest algorithm {_shown(algorithm)}: supported are " + ", ".join(sorted(ALGORITHMS))
        )
    return algorithm


def validate_repository_name(name: str) -> str:
    """Return ``name`` if it is a valid OCI repository name, else raise :class:`InvalidRepositoryNameError`."""
    _require_match(
        name,
        _NAME,
        InvalidRepositoryNameError,
        "repository name",
        "components of lowercase letters and digits, separated inside by '.', '_', '__' or '-'s, joined by '/'",
    )
    if len(name) > MAX_REPOSITORY_NAME:
        raise InvalidRepositoryNameError(
            f"invalid repository name {_shown(name)}: longer than {MAX_REPOSITORY_NAME} characters"
        )
    return name


def validate_media_type(media_type: str) -> str:
    """Return ``media_type`` if it is ``type/subtype`` per RFC 6838, else raise :class:`InvalidMediaTypeError`."""
    return _require_match(
        media_type,
        _MEDIA_TYPE,
        InvalidMediaTypeError,
        "media type",
        "expected 'type/subtype' (RFC 6838), e.g. 'application/vnd.oci.image.layer.v1.tar+gzip'",
    )


def _require_match(value: str, pattern: re.Pattern[str], error: type[Exception], what: str, rule: str) -> str:
    """``value`` when it is a string ``pattern`` matches whole, else ``error("invalid WHAT VALUE: RULE")``."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise error(f"invalid {what} {_shown(value)}: {rule}")
    return value


def digest_of(data: bytes | bytearray | memoryview, algorithm: str = CANONICAL) -> str:
    """The digest (``algorithm:hex``) of ``data``."""
    validate_algorithm(algorithm)
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
