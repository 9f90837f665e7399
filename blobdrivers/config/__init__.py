"""Distribution registry configurations, read as distribution reads them.

:func:`driver_params` turns a whole ``config.yml`` (a mapping, YAML text or a
file) or just its ``storage:`` section, with distribution's environment
overrides, into one driver name and the parameters to create it with:
distribution's defaults filled in, and the parameters distribution documents
that mean nothing here dropped with one warning each (see :mod:`.tables`).
Parameters distribution does not document go to the driver unchanged, which
refuses the unknown ones, so a typo still fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from . import environ, source
from .source import Source
from .tables import NO_DEFAULT, PRECEDENCE, TABLES, Param

log = logging.getLogger("blobdrivers.config")

__all__ = ["Source", "driver_params"]


def driver_params(config: Source, *, env: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The driver a registry configuration names and its parameters, ready for :func:`blobdrivers.create`.

    ``env`` (default ``os.environ``) supplies the ``REGISTRY_STORAGE*`` overrides.
    Raises :class:`~blobdrivers.errors.ConfigError` (one line, no secret values) for
    a file that cannot be read, text that is not YAML, and a section naming no
    driver or more than one.
    """
    section = source.storage_section(source.read(config))
    storage = environ.apply(section or {}, os.environ if env is None else env)
    if section is None and not storage:  # the environment may give the whole section, as in distribution
        raise ConfigError("the configuration has no 'storage' section")
    name, params = source.pick_driver(storage, known=sorted(set(TABLES) - {"s3aws"}))
    table = TABLES.get(name)
    if table is None:  # a third-party driver: its parameters are its own
        return name, params
    return name, _as_here(name, params, table)


def _as_here(driver: str, params: dict[str, Any], table: tuple[Param, ...]) -> dict[str, Any]:
    for rule in PRECEDENCE.get(driver, ()):
        if _given(params.get(rule.winner)) and _given(params.get(rule.loser)):
            del params[rule.loser]
            log.warning(
                "storage driver %r: parameter %r is ignored: %r is given, and distribution then does not read it",
                driver,
                rule.loser,
                rule.winner,
            )
    for param in table:
        if param.ignored:
            if param.name in params:
                value = params.pop(param.name)
                if _given(value) and _text(value) not in param.quiet:
                    log.warning("storage driver %r: parameter %r is ignored: %s", driver, param.name, param.here)
        elif param.default is not NO_DEFAULT and not _given(params.get(param.name)):
            params[param.name] = param.default
    return params


def _text(value: Any) -> str | None:
    """A scalar as lower-case YAML text (``False`` is ``"false"``), to compare with ``quiet``; None otherwise.

    Only scalars: ``str()`` of a list or mapping sharing its parts through aliases could be vast.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value).strip().lower()
    return None


def _given(value: Any) -> bool:
    return value is not None and value != ""
