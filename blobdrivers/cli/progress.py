"""A terminal progress bar for transfers, standard library only.

:class:`Progress` draws one status line on a text stream (stderr by default):
bytes done, the total and a bar when the total is known, the transfer rate and
an ETA. It redraws at most every ``interval`` seconds (0.1 by default), however
often it is updated, and ends with one summary line. :class:`ProgressReader`
wraps a binary file so that every byte read through it is counted.

Whether a bar is shown at all is decided by :func:`progress_wanted`: only when
the stream is a terminal, never when quiet, and forced on or off by the
environment variable ``BLOBDRIVERS_PROGRESS`` (``1``/``0``).
"""

from __future__ import annotations

import collections
import io
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TextIO

#: Environment variable forcing the bar on (``1``, ``true``, ``yes``, ``always``) or off (``0``, ...).
ENV_VAR = "BLOBDRIVERS_PROGRESS"
_ON = frozenset({"1", "true", "yes", "on", "always"})
_OFF = frozenset({"0", "false", "no", "off", "never"})
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_BAR_WIDTH = 20
_MIN_BAR = 5
_MIN_LABEL = 12
# The rate is measured over the last few seconds, so the ETA follows changes of speed
# without jumping on every redraw.
_RATE_WINDOW = 3.0


def progress_wanted(*, quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Tell whether to draw progress on ``stream`` (default stderr).

    Never when ``quiet``. Otherwise ``BLOBDRIVERS_PROGRESS`` decides when it is set
    to a yes/no word, and else whether ``stream`` is a terminal.
    """
    if quiet:
        return False
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in _ON:
        return True
    if forced in _OFF:
        return False
    target = sys.stderr if stream is None else stream
    try:
        return bool(target.isatty())
    except (AttributeError, ValueError):
        return False


def format_size(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``12.0 MiB``."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """A duration as ``m:ss`` or ``h:mm:ss``."""
    whole = max(0, int(seconds + 0.5))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """One progress line for one transfer.

    Call :meth:`update` with each number of bytes moved, then :meth:`finish` for the
    summary line; :meth:`abort` ends the line without a summary (on errors). As a
    context manager a normal exit finishes and an exception aborts. When
    ``enabled`` is false every method does nothing, so callers need no branches.
    Safe to update from several threads.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = enabled
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._width = width
        self._lock = threading.Lock()
        self._started = clock()
        self._last_draw: float | None = None
        self._drawn = 0  # length of the line on screen, to blank it when the next one is shorter
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(self._started, 0)])
        self._ended = False

    # ------------------------------------------------------------------ updates

    def update(self, n: int) -> None:
        """Count ``n`` more bytes; redraw if the last drawing is older than the interval."""
        if n <= 0:
            return
        with self._lock:
            self.done += n
            if not self.enabled or self._ended:
                return
            now = self._clock()
            if self._last_draw is None or now - self._last_draw >= self._interval:
                self._sample(now)
                self._draw(self._status_line(now), now)

    def finish(self) -> None:
        """Replace the bar by a summary line (size, time, average rate) and end the line."""
        with self._lock:
            if not self.enabled or self._ended:
                return
            self._ended = True
            elapsed = max(self._clock() - self._started, 0.0)
            rate = f"{format_size(self.done / elapsed)}/s" if elapsed > 0 else "-"
            rest = f"done  {format_size(self.done)} in {elapsed:.1f}s ({rate})"
            line = f"{self._fit_label(self._columns() - len(rest) - 3)}  {rest}"
            self._draw(line[: self._columns() - 1], None, end=True)

    def abort(self) -> None:
        """End the current line as it is, so that an error message starts on a fresh line."""
        with self._lock:
            if not self.enabled or self._ended:
                return
            self._ended = True
            if self._drawn:
                self._write("\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    # ------------------------------------------------------------------ rendering

    def rate(self, now: float | None = None) -> float | None:
        """Bytes per second over the last few seconds, or ``None`` before any time has passed."""
        now = self._clock() if now is None else now
        first_time, first_done = self._samples[0]
        if now - first_time <= 0:
            return None
        return (self.done - first_done) / (now - first_time)

    def _sample(self, now: float) -> None:
        self._samples.append((now, self.done))
        # Keep one sample at least a window old, so the rate always spans a full window once one has passed.
        while len(self._samples) > 2 and now - self._samples[1][0] >= _RATE_WINDOW:
            self._samples.popleft()

    def _status_line(self, now: float) -> str:
        rate = self.rate(now)
        rate_text = f"{format_size(rate)}/s" if rate else "-"
        fields = [f"{format_size(self.done):>9}", f"{rate_text:>11}"]
        fraction = 0.0
        if self.total is not None:
            fraction = min(1.0, self.done / self.total) if self.total else 1.0
            remaining = max(self.total - self.done, 0)
            eta = format_duration(remaining / rate) if rate else "-:--"
            fields = [
                f"{fraction * 100:3.0f}%",
                f"{format_size(self.done):>9} / {format_size(self.total)}",
                f"{rate_text:>11}",
                f"ETA {eta}",
            ]
        columns = self._columns() - 1  # writing the last column makes some terminals wrap
        # On a narrow terminal the least useful fields go first: the ETA, then the rate.
        while len(fields) > 1 and len("  ".join(fields)) + 2 + _MIN_LABEL > columns:
            fields.pop()
        rest = "  ".join(fields)
        room = columns - len(rest) - 2
        if self.total is None:
            return f"{self._fit_label(room)}  {rest}"[:columns]
        # What room is left goes to the label first (all of it, if it leaves a usable bar), then to the bar.
        label = self._fit_label(min(len(self.label), max(room - _MIN_BAR - 4, _MIN_LABEL)))
        inner = min(_BAR_WIDTH, room - len(label) - 4)
        if inner < _MIN_BAR:
            return f"{label}  {rest}"[:columns]
        filled = int(fraction * inner)
        bar = "[" + "#" * filled + "-" * (inner - filled) + "]"
        return f"{label}  {bar}  {rest}"[:columns]

    def _fit_label(self, room: int) -> str:
        room = max(room, 8)
        if len(self.label) <= room:
            return self.label
        return "..." + self.label[-(room - 3) :]

    def _columns(self) -> int:
        if self._width is not None:
            return self._width
        return shutil.get_terminal_size(fallback=(80, 24)).columns

    def _draw(self, line: str, now: float | None, *, end: bool = False) -> None:
        padding = " " * max(self._drawn - len(line), 0)
        self._write("\r" + line + padding + ("\n" if end else ""))
        self._drawn = 0 if end else len(line)
        self._last_draw = now

    def _write(self, text: str) -> None:
        stream = sys.stderr if self._stream is None else self._stream
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken terminal must not fail the transfer itself.
            self.enabled = False


class _BinarySource(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class ProgressReader:
    """A binary file wrapper counting every byte read through it into ``progress``.

    It offers ``read`` and ``readinto``, and passes ``fileno``, ``tell``, ``seek``
    and ``seekable`` through to the wrapped file, so that a consumer can still learn
    the size of a regular file.
    """

    def __init__(self, raw: _BinarySource, progress: Progress) -> None:
        self.raw = raw
        self.progress = progress

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all with a negative size)."""
        data = self.raw.read(size)
        self.progress.update(len(data))
        return data

    def readinto(self, buffer: Any, /) -> int:
        """Fill ``buffer`` with up to ``len(buffer)`` bytes; return the count (0 at the end)."""
        readinto = getattr(self.raw, "readinto", None)
        if readinto is None:
            data = self.raw.read(len(buffer))
            buffer[: len(data)] = data
            got = len(data)
        else:
            got = int(readinto(buffer) or 0)
        self.progress.update(got)
        return got

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Whether the wrapped file can seek."""
        seekable = getattr(self.raw, "seekable", None)
        return bool(seekable()) if seekable is not None else False

    def tell(self) -> int:
        """Position in the wrapped file."""
        return int(self._delegate("tell")())

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Seek the wrapped file (used by consumers only to measure its size)."""
        return int(self._delegate("seek")(offset, whence))

    def fileno(self) -> int:
        """Descriptor of the wrapped file, when it has one."""
        return int(self._delegate("fileno")())

    def _delegate(self, name: str) -> Callable[..., Any]:
        method = getattr(self.raw, name, None)
        if method is None:
            raise io.UnsupportedOperation(name)
        return method  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the wrapped file."""
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()


__all__ = ["ENV_VAR", "Progress", "ProgressReader", "format_duration", "format_size", "progress_wanted"]
