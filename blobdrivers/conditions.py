"""Conditions on a publish: the value type every write path (put, writer commit, move) accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conditions:
    """Conditions on a publish: ``if_none_match="*"`` (nothing may exist yet) or ``if_match=etag``."""

    if_none_match: str | None = None
    if_match: str | None = None

    def __post_init__(self) -> None:
        if self.if_none_match is not None and self.if_none_match != "*":
            raise ValueError(f"if_none_match supports only '*', not {self.if_none_match!r}")
        if self.if_match is not None and (not isinstance(self.if_match, str) or not self.if_match):
            raise ValueError("if_match must be a non-empty etag string from stat()")
        if self.if_none_match is not None and self.if_match is not None:
            raise ValueError("give if_none_match or if_match, not both")

    def __bool__(self) -> bool:
        return self.if_none_match is not None or self.if_match is not None
