"""Conformance: other tools' keys and a driver's own bookkeeping never invent paths; over-long keys are invalid."""

from __future__ import annotations

from .helpers import SuiteBase


class NamespaceContract(SuiteBase):
    """Keys other tools wrote, and a driver's own bookkeeping, never invent paths; over-long keys are invalid paths."""
