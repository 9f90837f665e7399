"""Reaching the service: the connection parameters, the boto3 client built from them, and its log redaction."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from ...clients import tls_verify
from ...errors import ConfigError
from ...params import DEFAULT_ATTEMPTS, MAX_ATTEMPTS, Params
from ...redaction import CREDENTIAL_PATTERNS, LogRedactor

log = logging.getLogger("blobdrivers.s3")

RETRY_MODES = ("legacy", "standard", "adaptive")

#: What S3's logs carry beyond the shared patterns (which mask whole Authorization headers
#: and signed-query values).
S3_PATTERNS = (
    # Session tokens as request headers (dict or canonical form).
    re.compile(r"""(?i)(x-amz-security-token['"]?\s*[:=]\s*b?['"]?)[^'"&\s,}]+"""),
    # Request signatures (Authorization header, X-Amz-Signature, botocore.auth's "Signature:" line).
    re.compile(r"""(?i)((?:x-amz-)?signature['"]?\s*[:=]\s*b?['"]?)[0-9a-f]{16,}"""),
    # The access key id S3 echoes in some error bodies.
    re.compile(r"(<AWSAccessKeyId>)[^<]*"),
)

# Every logger that prints requests gets the filter (filters do not apply to child loggers).
LogRedactor((*CREDENTIAL_PATTERNS, *S3_PATTERNS)).install(
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.awsrequest",
    "botocore.httpsession",
    "botocore.signers",
    "botocore.hooks",
    "botocore.utils",
    "botocore.retryhandler",
    "urllib3.connectionpool",
)


@dataclass(frozen=True)
class Connection:
    """How the driver reaches S3: region, endpoint, TLS and credentials."""

    region: str | None
    endpoint: str | None
    secure: bool
    #: ``verify`` for boto3: ``False`` under ``skipverify``, else ``True`` (boto3's own CA settings).
    verify: bool
    forcepathstyle: bool
    useragent: str | None
    #: AWS's transfer-acceleration, dual-stack (IPv6) and FIPS endpoints (``accelerate``, ``usedualstack``,
    #: ``usefipsendpoint``).
    accelerate: bool
    dualstack: bool
    fips: bool
    # Credentials never show in a repr (a debugger's, a log's, a traceback's locals).
    accesskey: str | None = field(repr=False)
    secretkey: str | None = field(repr=False)
    sessiontoken: str | None = field(repr=False)

    @classmethod
    def read(cls, reader: Params, *, driver: str) -> Connection:
        """Read and check the connection parameters (logs the ``skipverify`` warning)."""
        region = reader.string("region")
        secure = reader.boolean("secure", True)
        endpoint = reader.endpoint(
            "regionendpoint",
            default_scheme="https" if secure else "http",
            example="https://minio:9000",
            aliases=("endpoint_url",),
            allow_path=True,  # gateways serving S3 below a path prefix
        )
        accesskey = reader.string("accesskey")
        secretkey = reader.string("secretkey")
        sessiontoken = reader.string("sessiontoken")
        forcepathstyle = reader.boolean("forcepathstyle", False)
        skipverify = reader.boolean("skipverify", False)
        useragent = reader.string("useragent")
        accelerate = reader.boolean("accelerate", False)
        dualstack = reader.boolean("usedualstack", False)
        fips = reader.boolean("usefipsendpoint", False)
        if accelerate and endpoint is not None:
            # botocore would fail every request: acceleration is an AWS endpoint of its own.
            raise ConfigError("parameter 'accelerate' cannot be combined with 'regionendpoint'", driver=driver)
        if (accesskey is None) != (secretkey is None):
            # As distribution, which uses static credentials only when both are set: the default chain instead.
            lone = "accesskey" if secretkey is None else "secretkey"
            log.warning(
                "storage driver %r: parameter %r is ignored without %r: using the default credential chain",
                driver,
                lone,
                "secretkey" if lone == "accesskey" else "accesskey",
            )
            accesskey = secretkey = None
        if sessiontoken is not None and accesskey is None:
            raise ConfigError("parameter 'sessiontoken' needs 'accesskey' and 'secretkey'", driver=driver)
        # boto3 finds its CA bundle itself (AWS_CA_BUNDLE, its config): only the warning and the off switch here.
        verify = tls_verify(driver, endpoint or "AWS", skipverify=skipverify) is not False
        return cls(
            region,
            endpoint,
            secure,
            verify,
            forcepathstyle,
            useragent,
            accelerate,
            dualstack,
            fips,
            accesskey,
            secretkey,
            sessiontoken,
        )

    def client(self, *, pool_size: int, retry_mode: str, attempts: int) -> Any:
        """A new boto3 S3 client with ``pool_size`` connections, making ``attempts`` attempts per request.

        botocore's ``total_max_attempts`` counts the first attempt, as ``retries``
        does, and applies to every request (reads included).
        """
        session = boto3.session.Session(
            aws_access_key_id=self.accesskey,
            aws_secret_access_key=self.secretkey,
            aws_session_token=self.sessiontoken,
            region_name=self.region,
        )
        config = Config(
            region_name=self.region or session.region_name or "us-east-1",
            use_fips_endpoint=self.fips,
            signature_version="s3v4",
            retries={"mode": retry_mode, "total_max_attempts": attempts},
            max_pool_connections=pool_size,
            s3={
                "addressing_style": "path" if self.forcepathstyle else "auto",
                "use_accelerate_endpoint": self.accelerate,
                "use_dualstack_endpoint": self.dualstack,
            },
            user_agent_extra=self.useragent,
            # Checksums only where S3 demands them (as distribution): TLS protects transfers,
            # and a registry verifies content digests itself.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
        )
        return session.client("s3", endpoint_url=self.endpoint, use_ssl=self.secure, verify=self.verify, config=config)


def read_retries(reader: Params, params: Mapping[str, Any], *, driver: str) -> tuple[str, int]:
    """``retries``: attempts (``5``), a mode (``adaptive``), both (``adaptive:5``) or ``{mode, max_attempts}``.

    A bare number is read by :meth:`Params.attempts`, as on every network driver;
    the mode forms give the same meaning (and range) to their number.
    """
    default_mode = "standard"
    raw = params.get("retries")
    allowed = "a retry mode (legacy, standard, adaptive), a number of attempts, 'mode:attempts' or a mapping"
    if raw is None or raw == "" or (isinstance(raw, int) and not isinstance(raw, bool)):
        return default_mode, reader.attempts()
    if isinstance(raw, Mapping):
        mapping = reader.mapping("retries") or {}
        unknown = set(mapping) - {"mode", "max_attempts", "total_max_attempts"}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} in parameter 'retries': {allowed}", driver=driver)
        mode = str(mapping.get("mode", default_mode)).lower()
        attempts_raw = mapping.get("max_attempts", mapping.get("total_max_attempts", DEFAULT_ATTEMPTS))
    else:
        text = reader.string("retries") or ""
        mode_text, _, attempts_text = text.strip().partition(":")
        if mode_text.isdigit() and not attempts_text:
            return default_mode, reader.attempts()
        mode, attempts_raw = mode_text.lower(), attempts_text or DEFAULT_ATTEMPTS
    try:
        attempts = int(attempts_raw)
    except (TypeError, ValueError):
        attempts = -1
    if mode not in RETRY_MODES or not 1 <= attempts <= MAX_ATTEMPTS:
        raise ConfigError(
            f"invalid value {raw!r} for parameter 'retries': {allowed}; attempts 1 to {MAX_ATTEMPTS}", driver=driver
        )
    return mode, attempts
