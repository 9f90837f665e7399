"""The path rule, and the mapping between logical paths, root-prefixed paths and object keys.

A *logical path* is what callers pass: absolute, made of components matching
``[A-Za-z0-9._-]+``, no empty, ``.`` or ``..`` component, no trailing slash. ``/``
alone names the root and is accepted only by ``stat``, ``list`` and ``walk``.

Drivers see *full paths*: the logical path below the driver's ``rootdirectory``
(``/registry`` + ``/a/b`` -> ``/registry/a/b``). Object stores turn a full path into
a key by dropping the leading slash. Keys that do not map back to a valid logical
path (objects written by other tools, or a driver's own hidden bookkeeping, whose
names always contain a character outside the rule) are invisible to list and walk.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import ConfigError, InvalidPathError

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
_OTHERS = re.compile(r"[^A-Za-z0-9._-]+")
_RULE = "[A-Za-z0-9._-]"
ROOT = "/"


def is_valid(path: str, *, allow_root: bool = False) -> bool:
    """Tell whether ``path`` obeys the path rule (``/`` only when ``allow_root``)."""
    if not isinstance(path, str):
        return False
    if path == ROOT:
        return allow_root
    if not path.startswith("/"):
        return False
    return all(_is_valid_component(part) for part in path[1:].split("/"))


def _is_valid_component(part: str) -> bool:
    return part not in (".", "..") and _COMPONENT.fullmatch(part) is not None


def validate(path: str, *, allow_root: bool = False, driver: str | None = None) -> str:
    """Return ``path`` unchanged if it obeys the path rule, else raise :class:`InvalidPathError`.

    The one-line message names the path, what breaks the rule and where (the first
    offending character or component, by 0-based position), and, when one exists, a
    valid path to use instead.
    """
    if is_valid(path, allow_root=allow_root):
        return path
    if not isinstance(path, str):
        message = f"invalid path: a path is a str, not {type(path).__name__}"
    elif path == ROOT:
        message = "invalid path '/': the root '/' is not allowed here"
    else:
        message = f"invalid path {path!r}: {explain(path)}"
        suggestion = suggest(path)
        if suggestion is not None:
            message += f"; try {suggestion!r}"
    raise InvalidPathError(message, driver=driver, path=None)


def explain(path: str) -> str:
    """What makes the non-root string ``path`` break the path rule: the first defect and its 0-based position."""
    if not path.startswith("/"):
        return "a path must start with '/'"
    position = 1
    for part in path[1:].split("/"):
        if not part:
            where = "a trailing '/'" if position == len(path) else f"an empty component ('//') at position {position}"
            return f"{where} is not allowed"
        if part in (".", ".."):
            return f"a {part!r} component at position {position} is not allowed"
        bad = next((i for i, char in enumerate(part) if _COMPONENT.fullmatch(char) is None), None)
        if bad is not None:
            return f"{part[bad]!r} at position {position + bad} is not allowed (path components are {_RULE})"
        position += len(part) + 1
    return "it obeys the path rule"


def suggest(path: str) -> str | None:
    """A valid path close to ``path``, or ``None`` when nothing of it remains.

    Accents are dropped (``é`` -> ``e``), each other run of characters outside the
    rule becomes ``-``, empty and ``.`` components go and ``..`` removes the one
    before it, as a shell would read it; the result never names the root.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            del parts[-1:]
        elif part not in ("", "."):
            folded = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode()
            cleaned = _OTHERS.sub("-", folded)
            parts.append(cleaned if cleaned not in ("", ".", "..") else "-")
    suggestion = "/" + "/".join(parts)
    return suggestion if parts and is_valid(suggestion) else None


def normalize_root(rootdirectory: str, *, driver: str | None = None) -> str:
    """Turn a ``rootdirectory`` parameter into a full-path prefix (``""`` for none, else ``/a/b``).

    Leading and trailing slashes are optional (``registry``, ``/registry/`` and
    ``/registry`` are the same); every component must obey the path rule.
    """
    stripped = rootdirectory.strip("/")
    if not stripped:
        return ""
    prefix = "/" + stripped
    if not is_valid(prefix):
        shown = repr(rootdirectory) if rootdirectory == prefix else f"{rootdirectory!r} (read as {prefix!r})"
        message = f"invalid rootdirectory {shown}: {explain(prefix)}"
        suggestion = suggest(prefix)
        raise ConfigError(message + (f"; try {suggestion!r}" if suggestion else ""), driver=driver)
    return prefix


def join(prefix: str, path: str) -> str:
    """Put a logical path below a normalized root prefix."""
    if path == ROOT:
        return prefix or ROOT
    return prefix + path


def strip(prefix: str, full: str) -> str:
    """Inverse of :func:`join` for a full path known to lie below ``prefix``."""
    if not prefix:
        return full
    rest = full[len(prefix) :]
    return rest or ROOT


def to_key(full: str) -> str:
    """Object key of a full path (``/a/b`` -> ``a/b``; the root is ``""``)."""
    return full.lstrip("/")


def dir_key(full: str) -> str:
    """Key prefix under which the children of a full path live (``/a`` -> ``a/``; the root is ``""``)."""
    key = to_key(full)
    return key + "/" if key else ""


def from_key(key: str) -> str | None:
    """Full path of an object key, or ``None`` when the key is not a valid path."""
    full = "/" + key
    return full if is_valid(full) else None


def parent(path: str) -> str:
    """Parent of a non-root path (``/a/b`` -> ``/a``, ``/a`` -> ``/``)."""
    head = path.rsplit("/", 1)[0]
    return head or ROOT


def ancestors(path: str) -> list[str]:
    """Every proper ancestor directory of ``path`` below the root, outermost first."""
    parts = path.split("/")[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
