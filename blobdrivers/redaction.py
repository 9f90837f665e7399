"""Credentials out of log records: SDKs log request headers, signed URLs and error bodies at DEBUG/INFO.

A driver lists what its SDK may print (as regular expressions) and installs one
:class:`LogRedactor` on each logger that prints it. Logger filters do not apply to
records of child loggers, so every logger is named explicitly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence


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
