"""Conformance: No secret in any form an error can take: str, repr, args, its chain, a traceback, a pickle."""

from __future__ import annotations

from .helpers import SuiteBase


class ErrorContract(SuiteBase):
    """No secret in any form an error can take: str, repr, args, its chain, a traceback, a pickle."""
