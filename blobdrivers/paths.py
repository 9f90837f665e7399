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

from .errors import ConfigError, InvalidPathError

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
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
    """Return ``path`` unchanged if it obeys the path rule, else raise :class:`InvalidPathError`."""
    if is_valid(path, allow_root=allow_root):
        return path
    shown = repr(path) if isinstance(path, str) else f"a {type(path).__name__}"
    if path == ROOT:
        reason = "the root '/' is not allowed here"
    else:
        reason = (
            "a path must be absolute, made of components of [A-Za-z0-9._-], "
            "with no empty, '.' or '..' component and no trailing slash"
        )
    raise InvalidPathError(f"invalid path {shown}: {reason}", driver=driver, path=None)


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
        raise ConfigError(
            f"invalid rootdirectory {rootdirectory!r}: components must match [A-Za-z0-9._-]+",
            driver=driver,
        )
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
