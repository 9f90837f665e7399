"""The one retry policy: exponential backoff with full jitter, bounded by attempts and a deadline.

Only idempotent requests are retried blindly. A driver retries a non-idempotent
request only where the protocol makes a repeat harmless (re-sending a part or a
block under the same number or id replaces it; it can never duplicate data).
Every retry is logged at debug level with the attempt number and the error type.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("blobdrivers.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    ``attempts`` counts the first try. The wait before retry ``n`` (1-based) is
    uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter"), and
    no retry starts once ``deadline`` seconds have passed since the first try.
    """

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 4.0
    deadline: float = 120.0

    def call(self, fn: Callable[[], T], *, is_transient: Callable[[BaseException], bool], what: str) -> T:
        """Run ``fn``, retrying while it raises an error ``is_transient`` accepts."""
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as exc:
                if attempt >= self.attempts or not is_transient(exc):
                    raise
                delay = self.backoff(attempt)
                if time.monotonic() - started + delay > self.deadline:
                    raise
                log.debug(
                    "retrying %s after %s (attempt %d of %d)", what, type(exc).__name__, attempt + 1, self.attempts
                )
                time.sleep(delay)
                attempt += 1

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based), with full jitter (see the class docstring).

        SDKs that retry on their own (Azure's pipeline) take their waits from here too.
        """
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))

    @classmethod
    def with_attempts(cls, attempts: int) -> RetryPolicy:
        """The default policy with another number of attempts (the ``retries`` driver parameter)."""
        return cls(attempts=max(1, attempts))
