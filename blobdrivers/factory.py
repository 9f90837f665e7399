"""Creating drivers: by name, from a URL, from a distribution registry config.

Every driver, built-in or not, is one registration: a name, a factory (a
``StorageDriver`` subclass, a callable ``factory(params) -> StorageDriver``, or a
``"module:attr"`` import path imported on first use) and the URL schemes that name
it. Built-in drivers are registered by import path, so a missing SDK costs nothing
until that driver is asked for, and then says which package to install. Third-party
drivers register in code (:func:`register`) or through the ``blobdrivers.drivers``
entry-point group: the entry point names the factory, and its ``url_schemes``
attribute (a class attribute of a ``StorageDriver``, or set on a factory function)
the schemes; entry points are loaded only when a scheme no registration declares is
asked for, or when the drivers are listed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from . import urls
from .config import Source, driver_params
from .driver import StorageDriver
from .errors import ConfigError, DriverNotFoundError

Factory = Callable[[Mapping[str, Any]], StorageDriver]
#: ``params_from_url(url) -> params``: the parameters a store URL stands for.
UrlParams = Callable[[str], dict[str, Any]]

ENTRY_POINT_GROUP = "blobdrivers.drivers"

_ALIASES: dict[str, str] = {"s3aws": "s3"}


@dataclass(frozen=True)
class _Registration:
    factory: Factory | type[StorageDriver] | str
    schemes: tuple[str, ...]
    params_from_url: UrlParams | None
    sdk: str | None
    extra: str | None


_registry: dict[str, _Registration] = {}
_lock = threading.Lock()


def register(
    name: str,
    factory: Factory | type[StorageDriver] | str,
    *,
    schemes: tuple[str, ...] | None = None,
    params_from_url: UrlParams | None = None,
    sdk: str | None = None,
    extra: str | None = None,
) -> None:
    """Register a driver under ``name``; it replaces any earlier driver of that name.

    ``factory`` is a ``StorageDriver`` subclass, a callable ``factory(params)``, or
    ``"module:attr"`` naming either, imported on first use. ``schemes`` are the URL
    schemes naming it (default: the factory's ``url_schemes``; give them for an
    import path, which is not imported to find them); ``params_from_url`` maps such a
    URL to parameters (default: the class's ``params_from_url``, for a function
    :func:`blobdrivers.urls.url_params` with no host parameter). ``sdk`` is the pip
    package the import path needs and ``extra`` the blobdrivers extra installing it:
    named when that import fails.
    """
    if schemes is None:
        schemes = () if isinstance(factory, str) else tuple(getattr(factory, "url_schemes", ()))
    registration = _Registration(factory, tuple(s.lower() for s in schemes), params_from_url, sdk, extra)
    with _lock:
        _registry[name] = registration


def available_drivers() -> list[str]:
    """Sorted names of every driver: built-in, registered and entry points."""
    with _lock:
        names = set(_ALIASES) | set(_registry)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


@dataclass(frozen=True)
class DriverStatus:
    """Whether a driver can be created here, and what to install if not.

    ``status`` is ``"ok"``, ``"missing SDK"`` (``sdk`` names the pip package,
    ``extra`` the blobdrivers extra that installs it) or ``"unavailable"``
    (``problem`` says why). ``schemes`` are its URL schemes, ``scheme`` the first.
    """

    name: str
    scheme: str | None
    status: str
    extra: str | None = None
    problem: str | None = None
    alias_of: str | None = None
    schemes: tuple[str, ...] = ()
    sdk: str | None = None


def driver_status(name: str) -> DriverStatus:
    """Check that driver ``name`` imports, without creating it."""
    target = _ALIASES.get(name, name)
    alias_of = target if target != name else None
    with _lock:
        registration = _registry.get(target)
    try:
        loaded = _load(target)
    except DriverNotFoundError as exc:
        schemes = registration.schemes if registration else ()
        cause = exc.__cause__
        sdk_missing = isinstance(cause, ModuleNotFoundError) and not (cause.name or "").startswith("blobdrivers")
        sdk, extra = (registration.sdk, registration.extra) if registration else (None, None)
        status = "missing SDK" if sdk_missing and (sdk or extra) else "unavailable"
        shown_extra = extra if status == "missing SDK" else None
        scheme = schemes[0] if schemes else None
        return DriverStatus(name, scheme, status, shown_extra, exc.message, alias_of, schemes, sdk)
    except Exception as exc:  # a broken third-party entry point must not break the listing
        return DriverStatus(name, None, "unavailable", problem=f"{type(exc).__name__}: {exc}", alias_of=alias_of)
    schemes = registration.schemes if registration else _declared_schemes(loaded)
    return DriverStatus(name, schemes[0] if schemes else None, "ok", alias_of=alias_of, schemes=schemes)


def create(name: str, params: Mapping[str, Any] | None = None) -> StorageDriver:
    """A driver by name with its parameters (see each driver's docs for the names)."""
    return _as_factory(_load(_ALIASES.get(name, name)))(dict(params or {}))


def from_url(url: str) -> StorageDriver:
    """A driver from a URL: ``file:///srv/store``, ``memory://``, ``s3://bucket/prefix?region=...``.

    The scheme chooses the driver (its ``url_schemes``), whose ``params_from_url``
    gives the parameters: by default the URL's host fills the driver's bucket or
    container parameter, its path the ``rootdirectory`` (the directory itself for
    ``file://``), and each query item one parameter.
    """
    name, params = resolve_url(url)
    return create(name, params)


def resolve_url(url: str) -> tuple[str, dict[str, Any]]:
    """The driver name and parameters a store URL stands for; :class:`ConfigError` for an unknown scheme."""
    scheme = urls.scheme_of(url)
    for name, registration in _registrations():
        if scheme in registration.schemes:
            to_params = registration.params_from_url or _params_from_url(_load(name), name)
            return name, to_params(url)
    for name, loaded in _loaded_entry_points(scheme):
        if scheme in _declared_schemes(loaded):
            return name, _params_from_url(loaded, name)(url)
    known = sorted({s for _, registration in _registrations() for s in registration.schemes})
    raise ConfigError(f"unsupported URL scheme {scheme!r} in store URL; known schemes: {', '.join(known)}")


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


def _registrations() -> list[tuple[str, _Registration]]:
    with _lock:
        return sorted(_registry.items())


def _loaded_entry_points(scheme: str) -> Iterator[tuple[str, object]]:
    """Every entry point's object, the one named ``scheme`` first; those that fail to load are passed over."""
    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name != scheme, ep.name))
    for ep in points:
        try:
            yield ep.name, ep.load()
        except Exception:  # a broken plugin must not hide the others; create() reports it
            continue


def _declared_schemes(loaded: object) -> tuple[str, ...]:
    return tuple(str(s).lower() for s in getattr(loaded, "url_schemes", ()))


def _params_from_url(loaded: object, name: str) -> UrlParams:
    declared = getattr(loaded, "params_from_url", None)
    if callable(declared):
        return declared  # type: ignore[no-any-return]
    return lambda url: urls.url_params(url, host_param=None, driver=name)


def _load(name: str) -> Factory | type[StorageDriver]:
    """The factory or class registered (or published as an entry point) under ``name``."""
    with _lock:
        registration = _registry.get(name)
    if registration is not None:
        if isinstance(registration.factory, str):
            return _import_target(name, registration)
        return registration.factory
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        loaded: Factory | type[StorageDriver] = ep.load()
        return loaded
    raise DriverNotFoundError(f"no storage driver named {name!r}; available: {', '.join(available_drivers())}")


def _import_target(name: str, registration: _Registration) -> Factory | type[StorageDriver]:
    """Import a registration's ``module:attr``; a missing SDK names its pip package and the install command."""
    assert isinstance(registration.factory, str)
    module_name, _, attr = registration.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and not missing.startswith("blobdrivers") and (registration.sdk or registration.extra):
            package = registration.sdk or missing
            install = f"blobdrivers[{registration.extra}]" if registration.extra else package
            raise DriverNotFoundError(
                f"driver {name!r} needs {package} and its dependencies (module {missing!r} is missing): "
                f'pip install "{install}"',
                driver=name,
            ) from exc
        if missing == module_name:
            raise DriverNotFoundError(f"driver {name!r} is not part of this installation", driver=name) from exc
        raise
    loaded: Factory | type[StorageDriver] = getattr(module, attr)
    return loaded


def _as_factory(factory: Factory | type[StorageDriver]) -> Factory:
    if isinstance(factory, type):
        driver_class: type[StorageDriver] = factory
        return lambda params: driver_class(**params)
    return factory


#: The built-in drivers: import path, URL schemes (each class declares the same in
#: ``url_schemes``), and the pip package and extra of their SDK.
for _name, _target, _schemes, _sdk in (
    ("filesystem", "blobdrivers.drivers.filesystem:FilesystemDriver", ("file",), None),
    ("inmemory", "blobdrivers.drivers.inmemory:InMemoryDriver", ("memory",), None),
    ("s3", "blobdrivers.drivers.s3:S3Driver", ("s3",), "boto3"),
    ("azure", "blobdrivers.drivers.azure:AzureDriver", ("azure",), "azure-storage-blob"),
    ("gcs", "blobdrivers.drivers.gcs:GCSDriver", ("gs",), "google-cloud-storage"),
    ("oss", "blobdrivers.drivers.oss:OSSDriver", ("oss",), "oss2"),
):
    register(_name, _target, schemes=_schemes, sdk=_sdk, extra=_name if _sdk else None)
