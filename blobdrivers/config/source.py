"""Reading a distribution configuration: a mapping, YAML text or a file, whole or its ``storage:`` section.

PyYAML is imported only to read YAML (text, files, environment values), so a
caller passing a mapping needs nothing installed; without it, reading YAML says
which extra to install.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..params import shown_value

#: Keys distribution keeps in ``storage:`` beside the driver (configuration.go's Storage.Type skips them).
SIBLINGS = frozenset({"cache", "delete", "redirect", "maintenance", "tag"})
#: Keys that mark a whole configuration rather than its ``storage:`` section.
_WHOLE = ("version", "storage")

Source = Mapping[str, Any] | str | os.PathLike[str]


def yaml_value(text: str, *, what: str) -> Any:
    """``text`` parsed as YAML (safe loader); a one-line ConfigError naming ``what`` if it is not YAML.

    The error says where and what kind of error it is, never the text itself: PyYAML's
    own message quotes tags, aliases and tokens, which may be a secret mistyped.
    Aliases may share one list or mapping many times over; a value that would expand
    past :data:`MAX_EXPANDED` values (an alias bomb), or refers to itself, is refused.
    """
    try:
        import yaml
    except ModuleNotFoundError:
        raise ConfigError(
            f'reading {what} needs PyYAML, which is not installed: pip install "blobdrivers[config]"'
        ) from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {_kind(exc)}{_where(exc)}") from None
    _check_expansion(value, what)
    return value


#: The most values (scalars, lists and mappings, each alias counted as what it stands for) a YAML text may give.
MAX_EXPANDED = 100_000


def _kind(exc: Exception) -> str:
    """What went wrong, without PyYAML's quotes: the words before the first quoted part of its problem."""
    problem = str(getattr(exc, "problem", None) or "")
    words = re.split(r"['\"`]", problem, maxsplit=1)[0].strip(" ,:")
    return words or type(exc).__name__


def _where(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _check_expansion(value: Any, what: str) -> None:
    """Refuse ``value`` if it expands (as a copy or ``str()`` would) past MAX_EXPANDED values, or is cyclic."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        if isinstance(node, Mapping):
            children: Any = (item for pair in node.items() for item in pair)
        elif isinstance(node, list | tuple | set):
            children = iter(node)
        else:
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(f"{what} holds a list or mapping that contains itself (through an alias)")
        open_.add(key)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED:
                raise ConfigError(
                    f"{what} expands to more than {MAX_EXPANDED:,} values through its aliases; "
                    "an alias bomb is not read"
                )
        open_.discard(key)
        sizes[key] = total
        return total

    size(value)


def read(source: Source) -> Mapping[str, Any]:
    """The configuration ``source`` gives, as a mapping (a whole config or a ``storage:`` section).

    A str naming an existing file is that file; else it is YAML text when it holds a
    line break or a colon followed by a blank or ending it (``"filesystem: {}"``); any
    other str (``my:config.yml``), and an ``os.PathLike``, is a file's path.
    """
    if isinstance(source, Mapping):
        return source
    if isinstance(source, os.PathLike):
        return _read_file(os.fspath(source))
    if not isinstance(source, str):
        raise ConfigError(f"the configuration must be a mapping, YAML text or a file path, not {type(source).__name__}")
    if "\n" in source or (re.search(r":(\s|$)", source) and not os.path.isfile(source)):
        return _mapping(yaml_value(source, what="the configuration text"), "the configuration text")
    return _read_file(source)


def storage_section(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``storage:`` section of a whole configuration (``None`` if it has none), or ``config`` itself."""
    if not any(key in config for key in _WHOLE):
        return dict(config)
    storage = config.get("storage")
    if storage is None:
        return None
    if isinstance(storage, str):  # distribution's Storage also unmarshals from a bare driver name
        return {storage: {}}
    return dict(_mapping(storage, "the 'storage' section"))


def pick_driver(storage: Mapping[str, Any], *, known: list[str]) -> tuple[str, dict[str, Any]]:
    """The one driver ``storage`` names and its parameters (distribution ignores the sibling keys)."""
    drivers = sorted((key for key in storage if key not in SIBLINGS), key=str)
    if not drivers:
        raise ConfigError(
            f"the storage configuration names no driver; it must name exactly one driver, such as {', '.join(known)}"
        )
    if len(drivers) > 1:
        raise ConfigError(
            f"the storage configuration names {len(drivers)} drivers ({', '.join(map(repr, drivers))}); "
            "it must name exactly one driver"
        )
    name = drivers[0]
    if not isinstance(name, str):
        raise ConfigError(f"the storage configuration names a driver {shown_value(name)}, not a name")
    params = storage[name]
    if params is None:
        return name, {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"the parameters of driver {name!r} must be a mapping", driver=name)
    odd = [key for key in params if not isinstance(key, str)]
    if odd:
        raise ConfigError(f"the parameters of driver {name!r} must have names, not {shown_value(odd[0])}", driver=name)
    return name, dict(params)


def _read_file(path: str) -> Mapping[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration file {path!r}: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"the configuration file {path!r} is not UTF-8 text") from None
    what = f"the configuration file {path!r}"
    return _mapping(yaml_value(text, what=what), what)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a mapping, not {type(value).__name__}")
    return value
