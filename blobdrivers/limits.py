"""The backend's key limits, checked on every path before any request."""

from __future__ import annotations

from .errors import InvalidPathError


def fitting(path: str, *, overhead: int, max_key: int | None, max_component: int | None, driver: str) -> str:
    """``path`` (valid) unchanged if the backend can store its key, else InvalidPathError naming the limit.

    ``overhead`` is the bytes a key has beyond the logical path (the root prefix).
    """
    if max_key is not None and len(path) + overhead > max_key:
        raise InvalidPathError(
            f"invalid path {_shown(path)}: its key would be {len(path) + overhead} bytes, "
            f"over the {driver} limit of {max_key} bytes (root prefix included)",
            driver=driver,
        )
    if max_component is not None and len(path) > max_component + 1:
        longest = max(len(part) for part in path.split("/"))
        if longest > max_component:
            raise InvalidPathError(
                f"invalid path {_shown(path)}: a component of {longest} bytes, "
                f"over the {driver} limit of {max_component} bytes",
                driver=driver,
            )
    return path


def _shown(path: str) -> str:
    """A path short enough for a one-line message."""
    return repr(path) if len(path) <= 60 else repr(path[:40] + "...") + f" ({len(path)} bytes)"
