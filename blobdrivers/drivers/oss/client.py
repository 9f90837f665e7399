"""The oss2 Bucket a driver talks through: its endpoint, HTTP session and auth; and what oss2 may log.

oss2 makes no retries of its own on the calls the driver uses (its
``defaults.request_retries`` serves only its listing iterators, which the driver
does not use), and the session's HTTP adapter makes none either
(:func:`~blobdrivers.clients.http_session`): every retry is the driver's
:class:`~blobdrivers.retry.RetryPolicy`, so ``retries`` bounds the requests made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import oss2

from ...clients import http_session
from ...errors import ConfigError
from ...redaction import CREDENTIAL_PATTERNS, LogRedactor

M = TypeVar("M")

ENDPOINT_EXAMPLE = "oss-cn-hangzhou.aliyuncs.com"
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
#: oss2 hands this to requests: (connect, read) seconds.
_TIMEOUTS = (10, 120)


def region_endpoint(region: str | None, *, internal: bool, scheme: str, driver: str) -> str:
    """The endpoint of an OSS region (``cn-hangzhou`` or ``oss-cn-hangzhou``); ``internal``: its VPC endpoint."""
    if region is None:
        raise ConfigError("parameter 'region' or 'endpoint' is required", driver=driver)
    name = region.strip().lower()
    if not _REGION.fullmatch(name):
        raise ConfigError(
            f"invalid value {region!r} for parameter 'region': a region such as oss-cn-hangzhou", driver=driver
        )
    if not name.startswith("oss-"):
        name = "oss-" + name
    return f"{scheme}://{name}{'-internal' if internal else ''}.aliyuncs.com"


def make_bucket(
    credentials: tuple[str, str],
    endpoint: str,
    bucket: str,
    *,
    verify: bool | str,
    pool_size: int,
    enable_crc: bool,
) -> oss2.Bucket:
    """An oss2 Bucket over a session of ``pool_size`` connections, TLS checked as ``verify`` says."""
    session = oss2.Session(pool_size=pool_size)
    http_session(endpoint, verify=verify, pool_size=pool_size, session=session.session)
    return oss2.Bucket(
        oss2.Auth(*credentials),
        endpoint,
        bucket,
        session=session,
        connect_timeout=_TIMEOUTS,
        app_name="blobdrivers",
        enable_crc=enable_crc,
    )


def paginate(fetch: Callable[[M], Any], start: M, following: Callable[[Any], M | None]) -> Iterator[Any]:
    """Every page of an oss2 listing: ``fetch(start)``, then ``fetch`` of each page's ``following`` marker.

    ``following`` returns ``None`` on the last page.
    """
    marker: M | None = start
    while marker is not None:
        page = fetch(marker)
        yield page
        marker = following(page)


# --------------------------------------------------------------------------- log redaction

#: What oss2 prints beyond :data:`~blobdrivers.redaction.CREDENTIAL_PATTERNS`: the V4
#: credential of signed URLs, the key id and signature OSS echoes in a signature error
#: (as oss2 prints it: a dict or XML) and oss2's ``access_key_id:`` line. Group 1 is kept.
OSS_PATTERNS = (
    re.compile(r"(x-oss-credential=)[^&\s'\"]+"),
    re.compile(r"""((?:SignatureProvided|OSSAccessKeyId|AccessKeyId)['"]?\s*[:=]\s*['"]?)[^'",}<\n]+"""),
    re.compile(r"(<(?:SignatureProvided|OSSAccessKeyId|AccessKeyId)>)[^<]*"),
    re.compile(r"(access_key_id: )\S+"),
)

#: oss2 logs request headers (with the Authorization signature) at debug level and
#: server errors (with the signature OSS echoes back) at info level.
LOG_REDACTOR = LogRedactor((*CREDENTIAL_PATTERNS, *OSS_PATTERNS))
LOG_REDACTOR.install("oss2", "oss2.api", "oss2.http", "oss2.auth", "oss2.utils", "oss2.resumable", "oss2.models")
