"""Credentials out of log records, errors and printed URLs.

Logs: SDKs log request headers, signed URLs and error bodies at DEBUG/INFO. A
driver lists what its SDK may print (as regular expressions) and installs one
:class:`LogRedactor` on each logger that prints it. Logger filters do not apply to
records of child loggers, so every logger is named explicitly.

Errors: :func:`scrub_exception` masks secrets in an exception and everything
chained to it; the base driver runs it on every failure it wraps (see
``StorageDriver._wrap``), with the driver's ``redact``, so every driver gets it.

URLs: :func:`redact_url` masks the credentials of store URLs and signed URLs in text
about to be shown (the ``sync`` command's output, ``--debug`` tracebacks).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any


class LogRedactor(logging.Filter):
    """Replaces what ``patterns`` match in a record's message: each pattern keeps its group 1, the rest is ``***``."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        super().__init__()
        self.patterns = tuple(patterns)

    def redact(self, text: str) -> str:
        """``text`` with every match of the patterns masked."""
        for pattern in self.patterns:
            text = pattern.sub(rf"\1{MASK}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's message in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

    def install(self, *loggers: str) -> None:
        """Add this filter to each named logger (once)."""
        for name in loggers:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)


# --------------------------------------------------------------------------- patterns

#: Credentials any text may carry (an error, a log line, a URL about to be printed),
#: whatever the driver. Group 1 is kept and the rest masked. In order: query values
#: whose names look secret (the drivers' secret parameters by their usual names; the
#: signatures, credentials and tokens of signed URLs: S3/GCS V4, Azure SAS, OSS; GCS
#: resumable-session ids), the password of a URL's user part, Authorization headers
#: (dict or wire form) and bearer tokens.
CREDENTIAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"(?i)\b((?:[a-z0-9_-]*(?:secret|password|passwd|token|credential|signature|accesskey|accountkey"
        r"|connectionstring)[a-z0-9_-]*|sig|key|upload_id)=)[^&\s'\"<>#]+"
    ),
    re.compile(r"(://[^/@\s:]*:)[^/@\s]+(?=@)"),
    re.compile(r"""(?i)(\b(?:proxy-)?authorization['"]?\s*[:=]\s*b?['"]?)[^'",}\r\n]+"""),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)

#: Mapping keys (headers, error details) whose values are credentials, compared lowercased.
CREDENTIAL_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-amz-security-token",
        "x-oss-security-token",
        "security-token",
        "signatureprovided",
        "ossaccesskeyid",
        "awsaccesskeyid",
        "accesskeyid",
    }
)

#: What every secret is replaced with, in messages, logs and reprs, on every driver.
MASK = "***"
#: How deep containers inside an exception are searched; SDK errors nest a few levels at most.
_MAX_DEPTH = 5
#: Bound on the exceptions visited in one chain (cycles are skipped anyway).
_MAX_CHAIN = 64


def secret_forms(value: str) -> list[str]:
    """``value`` as text may carry it: raw, URL-encoded and base64 (standard and URL-safe), longest first."""
    encoded = value.encode()
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        base64.b64encode(encoded).decode(),
        base64.b64encode(encoded).decode().rstrip("="),
        base64.urlsafe_b64encode(encoded).decode().rstrip("="),
    }
    return sorted(forms, key=len, reverse=True)


def mask_credentials(text: str) -> str:
    """``text`` with what :data:`CREDENTIAL_PATTERNS` match masked."""
    for pattern in CREDENTIAL_PATTERNS:
        text = pattern.sub(rf"\1{MASK}", text)
    return text


def redact_url(text: str, secret_names: Iterable[str] = ()) -> str:
    """``text`` with the credentials of the URLs in it masked (``name=***``, ``user:***@``).

    Masks query values of credential-like names and of ``secret_names`` (a driver's
    ``secret_params``, whatever they are called); the values are masked as written,
    percent-encoded or not, which a search for the decoded value would miss.
    """
    text = mask_credentials(text)
    names = "|".join(re.escape(name) for name in secret_names)
    if names:
        text = re.sub(rf"(?i)(?<![a-z0-9_-])((?:{names})=)[^&\s'\"#]+", rf"\1{MASK}", text)
    return text


def scrub_exception(exc: BaseException, redact: Callable[[str], str]) -> None:
    """Mask secrets, in place, in ``exc`` and every exception chained to it.

    Visits ``__cause__``, ``__context__`` and exceptions kept as attributes (an
    SDK's ``inner_exception``, urllib3's ``reason``). In each it passes through
    ``redact`` every string and bytes value of ``args``, of ``__notes__``, of its
    attributes and of the tuples, lists and mappings they hold; values under a
    :data:`CREDENTIAL_KEYS` key become ``***``. Changed containers are replaced by
    scrubbed copies, never edited: an SDK may share them with its client. Types,
    status codes and error codes stay as they were, so the error keeps telling what
    went wrong. Idempotent.
    """
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        linked = [current.__cause__, current.__context__, *vars(current).values()]
        pending.extend(link for link in linked if isinstance(link, BaseException))
        _scrub_one(current, redact)


def _scrub_one(exc: BaseException, redact: Callable[[str], str]) -> None:
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        args = _scrubbed(exc.args, redact, 0)
        if args is not exc.args:
            exc.args = args
    attributes = vars(exc)
    for name, value in list(attributes.items()):
        if not isinstance(value, BaseException):
            scrubbed = _scrubbed(value, redact, 0)
            if scrubbed is not value:
                attributes[name] = scrubbed  # not setattr: a property may compute it
    if isinstance(exc, OSError):
        # C-level members, outside vars(); str(OSError) is built from them.
        for name in ("strerror", "filename", "filename2"):
            value = getattr(exc, name, None)
            scrubbed = _scrubbed(value, redact, 0)
            if scrubbed is not value:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, name, scrubbed)


def _scrubbed(value: Any, redact: Callable[[str], str], depth: int) -> Any:
    """``value`` with secrets masked; the same object when there was nothing to mask."""
    if isinstance(value, str):
        masked = redact(value)
        return value if masked == value else masked
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "surrogateescape")
        masked = redact(text)
        return value if masked == text else type(value)(masked.encode("utf-8", "surrogateescape"))
    if depth >= _MAX_DEPTH:
        return value
    if type(value) in (tuple, list):
        items = [_scrubbed(item, redact, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, Mapping):
        changes = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in CREDENTIAL_KEYS and isinstance(item, str | bytes):
                new: Any = MASK if isinstance(item, str) else MASK.encode()
            else:
                new = _scrubbed(item, redact, depth + 1)
            if new is not item and new != item:
                changes[key] = new
        if not changes:
            return value
        with contextlib.suppress(TypeError, AttributeError, ValueError):
            copied = copy.copy(value)  # keeps the type (a case-insensitive header dict, say)
            if isinstance(copied, MutableMapping) and copied is not value:
                copied.update(changes)
                return copied
        return {**value, **changes}
    return value
