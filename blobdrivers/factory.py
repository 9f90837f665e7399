"""Creating drivers: by name, from a URL, from a distribution registry config.

Every driver, built-in or not, is one registration: a name, a factory (a
``StorageDriver`` subclass, a callable ``factory(params) -> StorageDriver``, or a
``"module:attr"`` import path imported on first use) and the URL schemes that name
it. Built-in drivers are registered by import path, so a missing SDK costs nothing
until that driver is asked for, and then says which package to install. Third-party
drivers register in code (:func:`register`) or through the ``blobdrivers.drivers``
entry-point group: the entry point names the factory, and its ``url_schemes``
attribute (a class attribute of a ``StorageDriver``, or set on a factory function)
the schemes. A scheme names one driver: built-ins and registrations keep theirs, and an
entry point claiming a taken scheme is listed as unavailable, saying so. Entry points are
loaded (once per process) only when a scheme no registration declares is
asked for, or when the drivers are listed.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from . import urls
from .config import Source, driver_params
from .driver import StorageDriver
from .errors import ConfigError, DriverNotFoundError, StorageError
from .redaction import MASK, mask_credentials

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

    A scheme names one driver: claiming one another registration (a built-in
    included) holds is a :class:`ConfigError`; registering ``name`` again
    replaces its registration, schemes and all.
    """
    if schemes is None:
        schemes = () if isinstance(factory, str) else tuple(getattr(factory, "url_schemes", ()))
    registration = _Registration(factory, tuple(s.lower() for s in schemes), params_from_url, sdk, extra)
    with _lock:
        for scheme in registration.schemes:
            owner = next((other for other, r in _registry.items() if other != name and scheme in r.schemes), None)
            if owner is not None:
                raise ConfigError(f"cannot register driver {name!r}: scheme {scheme} is taken by {owner}")
        _registry[name] = registration
        _entry_point_cache.clear()


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
    problem = None if registration else _entry_points().problems.get(target)
    if problem is not None:
        return DriverStatus(name, None, "unavailable", problem=problem, alias_of=alias_of)
    try:
        loaded = _load(target)
    except DriverNotFoundError as exc:
        schemes = registration.schemes if registration else ()
        cause = exc.__cause__
        own = registration.factory if registration and isinstance(registration.factory, str) else ""
        sdk_missing = isinstance(cause, ModuleNotFoundError) and _outside(cause.name or "", own)
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
    ``file://``), and each query item one parameter. Any failure to resolve the URL
    or to create its driver is a :class:`~blobdrivers.errors.StorageError`
    (a :class:`ConfigError` for an error that is not one), never a raw exception.
    """
    name, params = resolve_url(url)
    try:
        return create(name, params)
    except StorageError:
        raise
    except Exception as exc:  # a driver's constructor refusing the URL's parameters in its own way
        shown = _without_values(mask_credentials(str(exc)), params)
        raise ConfigError(f"cannot create driver {name!r} from the URL: {type(exc).__name__}: {shown}") from None


def _without_values(message: str, params: Mapping[str, Any]) -> str:
    """``message`` with every parameter value in it masked: a third-party constructor may quote a secret.

    The original exception is not chained for the same reason: its text and
    traceback would carry the value again.
    """
    for value in sorted((v for v in params.values() if isinstance(v, str) and len(v) >= 3), key=len, reverse=True):
        message = message.replace(value, MASK)
    return message


def resolve_url(url: str) -> tuple[str, dict[str, Any]]:
    """The driver name and parameters a store URL stands for; :class:`ConfigError` for an unknown scheme.

    Registrations come first; a scheme only an entry point declares names it. An
    entry point that fails to load, or claims a scheme already taken, is reported
    with the reason rather than passed over.
    """
    scheme = urls.scheme_of(url)
    for name, registration in _registrations():
        if scheme in registration.schemes:
            to_params = registration.params_from_url or _params_from_url(_guarded_load(name), name)
            return name, _guarded_params(name, to_params, url)
    found = _entry_points()
    if scheme in found.schemes:
        name = found.schemes[scheme]
        return name, _guarded_params(name, _params_from_url(found.loaded[name], name), url)
    if scheme in found.problems:  # an entry point named like the scheme, which is what was meant
        raise ConfigError(f"URL scheme {scheme!r}: entry point {scheme!r} is unavailable: {found.problems[scheme]}")
    known = sorted({s for _, registration in _registrations() for s in registration.schemes} | set(found.schemes))
    message = f"unsupported URL scheme {scheme!r} in store URL; known schemes: {', '.join(known)}"
    if found.problems:
        message += "; unavailable entry points: " + "; ".join(f"{n} ({p})" for n, p in sorted(found.problems.items()))
    raise ConfigError(message)


def _guarded_load(name: str) -> Factory | type[StorageDriver]:
    try:
        return _load(name)
    except StorageError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot load driver {name!r}: {type(exc).__name__}: {exc}") from exc


def _guarded_params(name: str, to_params: UrlParams, url: str) -> dict[str, Any]:
    try:
        return to_params(url)
    except StorageError:
        raise
    except Exception as exc:  # a third-party params_from_url failing in its own way
        raise ConfigError(f"cannot read the URL for driver {name!r}: {type(exc).__name__}: {exc}") from exc


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


@dataclass(frozen=True)
class _EntryPoints:
    """The loaded entry points: ``schemes`` maps a scheme to the one it names; ``problems`` says why others cannot."""

    loaded: dict[str, object]
    schemes: dict[str, str]
    problems: dict[str, str]


#: The loaded entry points, per ``sys.path`` (installing a distribution changes what is found); cleared by register().
_entry_point_cache: dict[tuple[str, ...], _EntryPoints] = {}


def _entry_points() -> _EntryPoints:
    """Every entry point, loaded once; one claiming a scheme a registration holds (or another claims) is refused."""
    key = tuple(sys.path)
    with _lock:
        cached = _entry_point_cache.get(key)
        taken = {scheme: name for name, r in _registry.items() for scheme in r.schemes}
    if cached is not None:
        return cached
    loaded: dict[str, object] = {}
    problems: dict[str, str] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        if ep.name in taken.values() or ep.name in loaded:
            continue  # a registration of that name (or an earlier distribution's entry point) is the driver
        try:
            loaded[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            problems[ep.name] = f"failed to load: {type(exc).__name__}: {exc}"
    claims: dict[str, list[str]] = {}
    for name, obj in loaded.items():
        for scheme in _declared_schemes(obj):
            if scheme in taken:
                problems[name] = f"scheme {scheme} is taken by {taken[scheme]}"
            else:
                claims.setdefault(scheme, []).append(name)
    for scheme, names in claims.items():
        if len(names) > 1:
            for name in names:
                problems[name] = f"scheme {scheme} is claimed by the entry points {' and '.join(names)}"
    schemes = {scheme: names[0] for scheme, names in claims.items() if names[0] not in problems}
    found = _EntryPoints({n: o for n, o in loaded.items() if n not in problems}, schemes, problems)
    with _lock:
        _entry_point_cache[key] = found
    return found


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
    cached = _entry_points().loaded.get(name)
    if cached is not None:  # loaded once per process: from_url of an entry-point scheme stays cheap
        return cached  # type: ignore[return-value]
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
        if _outside(missing, module_name) and (registration.sdk or registration.extra):
            package = registration.sdk or missing
            install = f"blobdrivers[{registration.extra}]" if registration.extra else package
            raise DriverNotFoundError(
                f"driver {name!r} needs {package} and its dependencies (module {missing!r} is missing): "
                f'pip install "{install}"',
                driver=name,
            ) from exc
        if missing == module_name:
            raise DriverNotFoundError(f"driver {name!r} is not part of this installation", driver=name) from exc
        raise DriverNotFoundError(f"driver {name!r} cannot be imported: {type(exc).__name__}: {exc}") from exc
    try:
        loaded: Factory | type[StorageDriver] = getattr(module, attr)
    except AttributeError as exc:
        raise DriverNotFoundError(f"driver {name!r}: module {module_name!r} has no {attr!r}", driver=name) from exc
    return loaded


def _outside(missing: str, module_name: str) -> bool:
    """Whether the missing module is outside the driver's own top-level package: an SDK, not a typo of the driver."""
    return bool(missing) and missing.partition(".")[0] != module_name.partition(".")[0]


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
