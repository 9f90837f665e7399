"""Credentials out of log records (SDKs log request headers, signed URLs and error bodies) and of printed URLs.

A driver lists what its SDK may print (as regular expressions) and installs one
:class:`LogRedactor` on each logger that prints it. Logger filters do not apply to
records of child loggers, so every logger is named explicitly.
:func:`redact_url` masks the credentials of store URLs and signed URLs in text
about to be shown (the ``sync`` command's output, ``--debug`` tracebacks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence


class LogRedactor(logging.Filter):
    """Replaces what ``patterns`` match in a record's message: each pattern keeps its group 1, the rest is ``***``."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        super().__init__()
        self.patterns = tuple(patterns)

    def redact(self, text: str) -> str:
        """``text`` with every match of the patterns masked."""
        for pattern in self.patterns:
            text = pattern.sub(r"\1***", text)
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


# Credentials a URL can carry: query values whose names look secret (the drivers'
# secret parameters by their usual names, and the signatures and tokens of signed
# URLs), and the password of a user part.
_URL_SECRETS = (
    re.compile(
        r"(?i)\b((?:[a-z0-9_-]*(?:secret|password|passwd|token|credential|signature|accesskey|accountkey"
        r"|connectionstring)[a-z0-9_-]*|sig|key)=)[^&\s'\"#]+"
    ),
    re.compile(r"(://[^/@\s:]*:)[^/@\s]+(?=@)"),
)
_URL_REDACTOR = LogRedactor(_URL_SECRETS)


def redact_url(text: str, secret_names: Iterable[str] = ()) -> str:
    """``text`` with the credentials of the URLs in it masked (``name=***``, ``user:***@``).

    Masks query values of credential-like names and of ``secret_names`` (a driver's
    ``secret_params``, whatever they are called); the values are masked as written,
    percent-encoded or not, which a search for the decoded value would miss.
    """
    text = _URL_REDACTOR.redact(text)
    names = "|".join(re.escape(name) for name in secret_names)
    if names:
        text = re.sub(rf"(?i)(?<![a-z0-9_-])((?:{names})=)[^&\s'\"#]+", r"\1***", text)
    return text
