"""Creating drivers: by name, from a URL, from a distribution registry config.

Built-in drivers are known by import path only and imported on first use, so a
missing SDK costs nothing until that driver is asked for, and then says which
extra to install. Third-party drivers register in code (:func:`register`) or
through the ``blobdrivers.drivers`` entry-point group; an entry point names a
factory ``factory(params) -> StorageDriver`` or a ``StorageDriver`` subclass.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .config import Source, driver_params
from .driver import StorageDriver
from .errors import ConfigError, DriverNotFoundError

Factory = Callable[[Mapping[str, Any]], StorageDriver]

ENTRY_POINT_GROUP = "blobdrivers.drivers"

#: name -> (module:class, extra that installs its SDK)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "filesystem": ("blobdrivers.drivers.filesystem:FilesystemDriver", None),
    "inmemory": ("blobdrivers.drivers.inmemory:InMemoryDriver", None),
    "s3": ("blobdrivers.drivers.s3:S3Driver", "s3"),
    "azure": ("blobdrivers.drivers.azure:AzureDriver", "azure"),
    "gcs": ("blobdrivers.drivers.gcs:GCSDriver", "gcs"),
    "oss": ("blobdrivers.drivers.oss:OSSDriver", "oss"),
}
_ALIASES: dict[str, str] = {"s3aws": "s3"}
#: URL scheme -> (driver name, parameter that the URL's host names, or None)
_SCHEMES: dict[str, tuple[str, str | None]] = {
    "file": ("filesystem", None),
    "memory": ("inmemory", "name"),
    "s3": ("s3", "bucket"),
    "azure": ("azure", "container"),
    "gs": ("gcs", "bucket"),
    "oss": ("oss", "bucket"),
}

_registry: dict[str, Factory] = {}
_lock = threading.Lock()


def register(name: str, factory: Factory | type[StorageDriver]) -> None:
    """Register a driver under ``name``; it replaces any earlier driver of that name."""
    with _lock:
        _registry[name] = _as_factory(factory)


def available_drivers() -> list[str]:
    """Sorted names of every driver: built-in, registered and entry points."""
    names = set(_BUILTIN) | set(_ALIASES) | set(_registry)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


@dataclass(frozen=True)
class DriverStatus:
    """Whether a driver can be created here, and what to install if not.

    ``status`` is ``"ok"``, ``"missing SDK"`` (``extra`` names the extra that
    installs it) or ``"unavailable"`` (``problem`` says why).
    """

    name: str
    scheme: str | None
    status: str
    extra: str | None = None
    problem: str | None = None
    alias_of: str | None = None


def driver_status(name: str) -> DriverStatus:
    """Check that driver ``name`` imports, without creating it."""
    target = _ALIASES.get(name, name)
    scheme = next((s for s, (driver, _) in sorted(_SCHEMES.items()) if driver == target), None)
    alias_of = target if target != name else None
    try:
        _factory(name)
    except DriverNotFoundError as exc:
        extra = _BUILTIN.get(target, ("", None))[1]
        cause = exc.__cause__
        sdk_missing = isinstance(cause, ModuleNotFoundError) and not (cause.name or "").startswith("blobdrivers")
        if extra is None or not sdk_missing:
            return DriverStatus(name, scheme, "unavailable", problem=exc.message, alias_of=alias_of)
        return DriverStatus(name, scheme, "missing SDK", extra=extra, problem=exc.message, alias_of=alias_of)
    except Exception as exc:  # a broken third-party entry point must not break the listing
        return DriverStatus(name, scheme, "unavailable", problem=f"{type(exc).__name__}: {exc}", alias_of=alias_of)
    return DriverStatus(name, scheme, "ok", alias_of=alias_of)


def create(name: str, params: Mapping[str, Any] | None = None) -> StorageDriver:
    """A driver by name with its parameters (see each driver's docs for the names)."""
    return _factory(name)(dict(params or {}))


def from_url(url: str) -> StorageDriver:
    """A driver from a URL: ``file:///srv/store``, ``memory://``, ``s3://bucket/prefix?region=...``.

    The URL's host fills the driver's bucket or container parameter, its path the
    ``rootdirectory`` (the directory itself for ``file://``), and each query item
    one parameter.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {scheme!r} in store URL; known schemes: {', '.join(sorted(_SCHEMES))}"
        )
    driver, host_param = _SCHEMES[scheme]
    params: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in params:
            raise ConfigError(f"parameter {key!r} is given twice in the store URL", driver=driver)
        params[key] = value
    host = unquote(parts.netloc.rsplit("@", 1)[-1])
    if "@" in parts.netloc:
        raise ConfigError("credentials in the URL's user part are not accepted; pass them as parameters", driver=driver)
    if host_param is not None:
        if host:
            params[host_param] = host
    elif host not in ("", "localhost"):
        raise ConfigError(f"a {scheme}:// URL names no host, got {host!r}", driver=driver)
    path = unquote(parts.path)
    if path not in ("", "/"):
        params["rootdirectory"] = path
    return create(driver, params)


def from_config(config: Source, *, env: Mapping[str, str] | None = None) -> StorageDriver:
    """A driver from a distribution registry configuration, read as distribution reads it.

    ``config`` is a whole ``config.yml`` or just its ``storage:`` section: a mapping,
    YAML text, or a file's path (str or ``os.PathLike``). Exactly one key of the
    section names the driver; ``cache``, ``delete``, ``redirect``, ``maintenance`` and
    ``tag`` are skipped, as by distribution. ``REGISTRY_STORAGE*`` variables of ``env``
    (default ``os.environ``) override it as in distribution. Distribution's defaults
    apply, and the parameters it documents that have no meaning here are ignored with
    one warning each; see ``docs/configuration.md``.
    """
    name, params = driver_params(config, env=env)
    return create(name, params)


def _factory(name: str) -> Factory:
    with _lock:
        registered = _registry.get(name)
    if registered is not None:
        return registered
    target = _ALIASES.get(name, name)
    if target in _BUILTIN:
        return _as_factory(_import_builtin(target))
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return _as_factory(ep.load())
    raise DriverNotFoundError(f"no storage driver named {name!r}; available: {', '.join(available_drivers())}")


def _import_builtin(name: str) -> type[StorageDriver]:
    target, extra = _BUILTIN[name]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("blobdrivers") and extra:
            raise DriverNotFoundError(
                f'driver {name!r} needs {exc.name!r}, which is not installed: pip install "blobdrivers[{extra}]"',
                driver=name,
            ) from exc
        if exc.name == module_name:
            raise DriverNotFoundError(f"driver {name!r} is not part of this installation", driver=name) from exc
        raise
    driver_class: type[StorageDriver] = getattr(module, class_name)
    return driver_class


def _as_factory(factory: Factory | type[StorageDriver]) -> Factory:
    if isinstance(factory, type):
        driver_class: type[StorageDriver] = factory
        return lambda params: driver_class(**params)
    return factory
