"""Conformance: put, move and delete are linearizable; a move never deletes data it did not copy."""

from __future__ import annotations

from .helpers import SuiteBase


class RaceContract(SuiteBase):
    """put, move and delete are linearizable; a move never deletes data it did not copy."""
