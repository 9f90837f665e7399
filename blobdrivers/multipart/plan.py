"""Planning a ``cat``: which parts of the final upload are server-side copies and which travel as data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, end)`` of source number ``source``."""

    source: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """Length of the piece."""
        return self.end - self.start


@dataclass
class PlannedPart:
    """One part of the final upload of a ``cat``.

    * ``copy``: a server-side copy of one piece.
    * ``data``: pieces downloaded into one buffer and uploaded (small sources only,
      plus at most ``min_part_size`` bytes of one larger source when small sources
      come first and nothing precedes them that they could join).
    * ``fold``: a copy piece followed by small data pieces. It becomes an
      intermediate hidden object (an upload of the copy as part 1 and the data as
      the short last part 2), which is then copied as this part. It lets small
      sources follow a large one without any byte of the large one leaving the
      server.
    """

    kind: Literal["copy", "data", "fold"]
    pieces: list[Piece] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes this part contributes."""
        return sum(piece.size for piece in self.pieces)

    @property
    def data_pieces(self) -> list[Piece]:
        """Pieces whose bytes travel through the client."""
        return self.pieces if self.kind == "data" else self.pieces[1:] if self.kind == "fold" else []


def plan_cat(
    sizes: Sequence[int], *, min_part: int, max_copy: int, data_part: int, max_parts: int
) -> list[PlannedPart]:
    """Plan the parts of a ``cat`` of sources of ``sizes``.

    Every part but the last is at least ``min_part`` bytes. Sources of at least
    ``min_part`` bytes are copied server-side (in ranges of at most
    ``max_copy - min_part`` bytes, so a fold stays copyable). Smaller sources are
    merged into ``data`` parts of about ``data_part`` bytes (never more than
    ``data_part + 2 * min_part``); a run of small sources that is too short to stand
    alone joins the previous data part, or folds onto the previous copy, or, only
    when it opens the concatenation, is padded with the head of the next source
    (``min_part`` bytes at most, or all of that source when it is shorter than
    ``2 * min_part`` and not the last). No other byte of a source of ``min_part``
    bytes or more goes through the client. Raises ``ValueError`` when the plan
    needs more than ``max_parts`` parts.
    """
    if min_part <= 0 or data_part < min_part or max_copy <= 2 * min_part:
        raise ValueError("inconsistent part limits")
    parts: list[PlannedPart] = []
    pending: list[Piece] = []
    last = max((index for index, size in enumerate(sizes) if size > 0), default=-1)

    def pending_size() -> int:
        return sum(piece.size for piece in pending)

    def flush() -> None:
        parts.append(PlannedPart("data", list(pending)))
        pending.clear()

    for index, size in enumerate(sizes):
        if size <= 0:
            continue
        if size < min_part:
            if pending_size() >= min_part and pending_size() + size > data_part:
                flush()
            pending.append(Piece(index, 0, size))
            if pending_size() >= data_part:
                flush()
            continue
        start = 0
        if pending:
            previous = parts[-1] if parts else None
            if pending_size() >= min_part:
                flush()
            elif previous is not None and previous.kind == "data":
                previous.pieces.extend(pending)
                pending.clear()
            elif previous is not None and previous.kind == "copy":
                parts[-1] = PlannedPart("fold", [*previous.pieces, *pending])
                pending.clear()
            else:
                # Small sources open the concatenation: nothing before them to join, so
                # they borrow the head of this source to make a full first part. A rest
                # too short to be a part travels too, unless it is the very last part.
                start = min_part - pending_size()
                pending.append(Piece(index, 0, start))
                flush()
                if size - start < min_part and index != last:
                    pending.append(Piece(index, start, size))
                    continue
        parts.extend(PlannedPart("copy", [piece]) for piece in _split(index, start, size, max_copy - min_part))
    if pending:
        flush()
    if len(parts) > max_parts:
        raise ValueError(f"the concatenation needs {len(parts)} parts, more than the limit of {max_parts}")
    return parts


def _split(source: int, start: int, end: int, limit: int) -> list[Piece]:
    count = -(-(end - start) // limit)
    step = -(-(end - start) // count)
    return [Piece(source, offset, min(end, offset + step)) for offset in range(start, end, step)]
