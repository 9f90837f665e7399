"""Typed reading of driver parameters, with errors that name the parameter.

Parameters arrive from Python code, from a distribution ``config.yml`` or from a
URL query string, so every reader accepts both native values and their string
forms (``"true"``, ``"10MiB"``). Unknown parameters are refused, since a typo in
a storage configuration should fail loudly rather than be ignored. Values of
secret parameters never appear in messages.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError

T = TypeVar("T")

_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_TRUE = {"true", "1", "yes", "on", "t"}  # t and f: Go's strconv.ParseBool, which distribution uses
_FALSE = {"false", "0", "no", "off", "f"}

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

DEFAULT_ATTEMPTS = 5
MAX_ATTEMPTS = 20


class Params:
    """Reads the parameters of one driver; call :meth:`done` last to refuse unknown names."""

    def __init__(self, driver: str, params: Mapping[str, Any], *, secrets: Collection[str] = ()) -> None:
        self._driver = driver
        self._values = dict(params)
        self._secrets = set(secrets)
        self._known: set[str] = set()

    def _lookup(self, name: str, aliases: tuple[str, ...]) -> tuple[str, Any]:
        self._known.update((name, *aliases))
        for key in (name, *aliases):
            value = self._values.get(key)
            if value is not None and value != "":
                return key, value
        return name, None

    def _fail(self, key: str, value: Any, allowed: str) -> ConfigError:
        shown = "(hidden)" if key in self._secrets else shown_value(value)
        return ConfigError(f"invalid value {shown} for parameter {key!r}: {allowed}", driver=self._driver)

    def string(self, name: str, default: str | None = None, *, aliases: tuple[str, ...] = ()) -> str | None:
        """A string parameter, or ``default`` when absent or empty.

        A number or date is taken as its text, as distribution takes any scalar (fmt.Sprint):
        YAML reads an unquoted ``bucket: 2024``, ``useragent: 1.5`` or ``2024-01-01`` as a
        number or a date. Booleans stay refused: ``yes`` would silently become ``"True"``.
        """
        key, value = self._lookup(name, aliases)
        if value is None:
            return default
        if isinstance(value, int | float | date) and not isinstance(value, bool):
            return value.isoformat() if isinstance(value, date) else str(value)
        if not isinstance(value, str):
            raise self._fail(key, value, "expected a string")
        return value

    def required_string(self, name: str, *, aliases: tuple[str, ...] = ()) -> str:
        """A string parameter that must be given."""
        value = self.string(name, aliases=aliases)
        if value is None:
            raise ConfigError(f"parameter {name!r} is required", driver=self._driver)
        return value

    def boolean(self, name: str, default: bool, *, aliases: tuple[str, ...] = ()) -> bool:
        """A boolean: ``True``/``False`` or one of true/false, t/f, yes/no, on/off, 1/0 (any case)."""
        key, value = self._lookup(name, aliases)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self._fail(key, value, "expected true or false")

    def integer(
        self,
        name: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        aliases: tuple[str, ...] = (),
    ) -> int:
        """An integer within ``[minimum, maximum]``."""
        key, value = self._lookup(name, aliases)
        if value is None:
            return default
        number = _as_int(value)
        if number is None:
            raise self._fail(key, value, "expected an integer")
        return self._check_range(key, value, number, minimum, maximum, "")

    def size(
        self,
        name: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        multiple_of: int | None = None,
        aliases: tuple[str, ...] = (),
    ) -> int:
        """A byte size: an integer, or a string such as ``"16MiB"``, ``"5M"``, ``"1048576"``."""
        key, value = self._lookup(name, aliases)
        if value is None:
            return default
        number = _as_int(value)
        if number is None and isinstance(value, str) and (match := _SIZE.fullmatch(value)):
            unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
            digits = _digits(match.group(1))
            number = None if digits is None else digits * _UNITS[unit]
        if number is None:
            raise self._fail(key, value, "expected a byte size such as 10485760 or '10MiB'")
        number = self._check_range(key, value, number, minimum, maximum, " bytes")
        if multiple_of and number % multiple_of:
            raise self._fail(key, value, f"must be a multiple of {multiple_of} bytes")
        return number

    def attempts(self, default: int = DEFAULT_ATTEMPTS, *, name: str = "retries", aliases: tuple[str, ...] = ()) -> int:
        """``retries``: how many attempts one request gets, the first included (1 turns retrying off).

        Every network driver reads this one way, so the same setting gives the same
        number of requests against a failing server on every backend.
        """
        value = self.integer(name, default, minimum=1, maximum=MAX_ATTEMPTS, aliases=aliases)
        assert value is not None
        return value

    def endpoint(
        self,
        name: str,
        *,
        default_scheme: str,
        example: str,
        aliases: tuple[str, ...] = (),
        allow_path: bool = False,
    ) -> str | None:
        """An http(s) endpoint without query or fragment (nor path, unless ``allow_path``).

        A bare ``host[:port]`` gets ``default_scheme``. Returns ``None`` when the
        parameter is absent; the trailing slash is dropped.
        """
        key, value = self._lookup(name, aliases)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, value, f"an http(s) URL such as {example}")
        return endpoint_url(
            value.strip(),
            default_scheme=default_scheme,
            parameter=key,
            example=example,
            driver=self._driver,
            allow_path=allow_path,
        )

    def choice(self, name: str, default: T, choices: Mapping[str, T], *, aliases: tuple[str, ...] = ()) -> T:
        """One of a fixed set of string values (case-insensitive)."""
        key, value = self._lookup(name, aliases)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in choices:
            return choices[value.lower()]
        raise self._fail(key, value, "allowed values are " + ", ".join(sorted(choices)))

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        """A nested mapping parameter (for example a credentials block)."""
        key, value = self._lookup(name, ())
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._fail(key, value, "expected a mapping")
        return value

    def done(self) -> None:
        """Refuse parameters that no reader asked for."""
        unknown = sorted(set(self._values) - self._known)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(self._known))}",
                driver=self._driver,
            )

    def _check_range(
        self, key: str, value: Any, number: int, minimum: int | None, maximum: int | None, unit: str
    ) -> int:
        if minimum is not None and number < minimum:
            raise self._fail(key, value, f"must be at least {minimum}{unit}")
        if maximum is not None and number > maximum:
            raise self._fail(key, value, f"must be at most {maximum}{unit}")
        return number


#: The most characters of a value a message quotes.
SHOWN_CHARS = 80


def shown_value(value: Any) -> str:
    """``value`` as a message shows it, bounded: a scalar's repr cut to SHOWN_CHARS, a container by its type.

    A list or mapping from YAML may share its parts through aliases many times over, so
    its repr could be vast; its type is all a message needs.
    """
    if not isinstance(value, str | bytes | int | float | complex | bool) and value is not None:
        return f"(a {type(value).__name__})"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]}...{text[-1]} ({len(text):,} characters)"


def check_bucket_name(name: str, *, driver: str, service: str) -> None:
    """Refuse a bucket name no ``service`` store can take: with '/', blanks, control characters, over 255 bytes.

    An empty name is refused before, as a missing parameter.

    Anything else is left to the server, as distribution does: legacy and S3-compatible
    stores take names (``My_Legacy_Bucket``) the current AWS rule refuses.
    """
    problem = (
        "it holds a '/'"
        if "/" in name and not name.startswith("arn:")  # an access point's ARN holds one
        else "it holds a blank or control character"
        if any(c.isspace() or not c.isprintable() for c in name)
        else "it is over 255 bytes"
        if len(name.encode("utf-8", "surrogatepass")) > 255
        else None
    )
    if problem is not None:
        raise ConfigError(
            f"bucket name {shown_value(name)} is invalid: {problem}, which no {service} service takes", driver=driver
        )


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _digits(value.strip())
    return None


def _digits(text: str) -> int | None:
    """``int(text)``, or None past Python's limit on digits (thousands: no size or count is that long)."""
    try:
        return int(text)
    except ValueError:
        return None


def endpoint_url(
    value: str, *, default_scheme: str, parameter: str, example: str, driver: str, allow_path: bool = False
) -> str:
    """``value`` as an http(s) URL with a host (and no path unless ``allow_path``); see :meth:`Params.endpoint`."""
    candidate = value if "://" in value else f"{default_scheme}://{value}"
    if "@" in urlsplit(candidate).netloc:
        # An endpoint's user part would carry a password into every message and repr that shows it.
        raise ConfigError(
            f"invalid value for parameter {parameter!r}: credentials in the endpoint URL are not accepted; "
            f"give the endpoint as {_without_user(candidate)} and the credentials as the driver's parameters",
            driver=driver,
        )
    try:
        parts = urlsplit(candidate)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = urlsplit("invalid://")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or (parts.path not in ("", "/") and not allow_path)
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in candidate)
    ):
        raise ConfigError(
            f"invalid value {shown_value(value)} for parameter {parameter!r}: an http(s) URL with no "
            f"{'query' if allow_path else 'path'}, such as {example}",
            driver=driver,
        )
    return candidate.rstrip("/")


def _without_user(url: str) -> str:
    """``url`` without its user part (``user:password@``)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rsplit('@', 1)[-1]}{slash}{path}"
