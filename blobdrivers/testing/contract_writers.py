"""Conformance: concurrent writers of one path are isolated; a resumed writer holds only its own session's data."""

from __future__ import annotations

from .helpers import SuiteBase


class WriterIsolationContract(SuiteBase):
    """Concurrent writers of one path are isolated; a resumed writer holds exactly what its own session wrote."""
