"""Distribution's environment overrides, applied to a ``storage:`` section.

As distribution's configuration parser does: variables named ``REGISTRY_`` and a
path of upper-case keys joined by ``_`` (``REGISTRY_STORAGE_S3_REGION``) are
applied in the lexical order of their names, so ``REGISTRY_STORAGE=s3`` (which
replaces the whole section by ``{s3: {}}``) comes before the parameters set
below it. A key matches an existing key case-insensitively, or is created in
lower case with the mappings above it; each value is read as YAML, so ``true``
is a boolean and ``5242880`` a number. Keys with an underscore
(``copy_status_poll_delay``) cannot be reached this way, as in distribution.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .source import yaml_value

log = logging.getLogger("blobdrivers.config")

PREFIX = "REGISTRY_STORAGE"


def apply(storage: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``storage`` with the ``REGISTRY_STORAGE*`` variables of ``env`` applied (``storage`` is not changed)."""
    names = sorted(name for name in env if name == PREFIX or name.startswith(PREFIX + "_"))
    for name in names:
        path = name.split("_")[2:]
        value = yaml_value(env[name], what=f"environment variable {name}")
        if not path:
            storage = _whole(name, value)
        elif len(path) == 1:
            storage = {**storage, path[0].lower(): _parameters(name, value)}
        else:
            storage = _set(storage, path, value, name)
    return storage


def _whole(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"environment variable {name} must name a storage driver or give a mapping")


def _parameters(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"environment variable {name} must give a mapping of driver parameters")
    return dict(value)


def _set(mapping: Mapping[str, Any], path: list[str], value: Any, name: str) -> dict[str, Any]:
    """A copy of ``mapping`` with ``value`` at ``path``; mappings on the way are copied or created."""
    result = dict(mapping)
    if len(path) == 1:
        result[path[0].lower()] = value
        return result
    key = _key(result, path[0])
    below = result.get(key)
    if below is None:
        below = {}
    elif not isinstance(below, Mapping):
        # distribution leaves a value that is not a mapping alone, with a warning.
        log.warning("ignoring environment variable %s: %r is not a mapping", name, key)
        return result
    result[key] = _set(below, path[1:], value, name)
    return result


def _key(mapping: Mapping[str, Any], upper: str) -> str:
    """The existing key spelling ``upper`` in any case, else ``upper`` in lower case."""
    return next((key for key in mapping if isinstance(key, str) and key.upper() == upper), upper.lower())
