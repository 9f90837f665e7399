"""What each of distribution's documented storage-driver parameters means here.

One table per built-in driver, listing every parameter distribution's
documentation gives for it (docs/content/storage-drivers/*.md and the storage
section of docs/content/about/configuration.md). A parameter is either honoured
(the driver reads it) or ignored (accepted from a registry config with one
warning saying why). ``default`` is distribution's default, applied when a
config read by :func:`blobdrivers.from_config` leaves the parameter out;
:func:`blobdrivers.create` and :func:`blobdrivers.from_url` keep the library's
own defaults. The same tables generate the tables of ``docs/configuration.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: A parameter's value when none is given: nothing is filled in.
NO_DEFAULT: Any = None


@dataclass(frozen=True)
class Param:
    """One documented parameter: what it does here, or why it is ignored.

    ``quiet`` lists values (as lower-case text) of an ignored parameter that ask for
    what this library does anyway (``v4auth: true``): they are dropped without a warning.
    """

    name: str
    here: str
    ignored: bool = False
    default: Any = NO_DEFAULT
    quiet: tuple[str, ...] = ()


@dataclass(frozen=True)
class Precedence:
    """When ``winner`` is given, distribution does not look at ``loser``: it is ignored here too."""

    winner: str
    loser: str


def _ignored(name: str, why: str, *, quiet: tuple[str, ...] = ()) -> Param:
    return Param(name, why, ignored=True, quiet=quiet)


FILESYSTEM = (
    Param("rootdirectory", "the folder holding the store", default="/var/lib/registry"),
    _ignored("maxthreads", "each call runs on its caller's thread; there is no thread pool to bound"),
)

INMEMORY: tuple[Param, ...] = ()

S3 = (
    Param(
        "accesskey",
        "the access key id; omitted (or without secretkey: a warning), boto3 finds credentials "
        "(environment, profile, IAM role)",
    ),
    Param("secretkey", "the secret access key, given with accesskey (alone it is ignored with a warning)"),
    Param("region", "the bucket's region (optional here: boto3's configured region, else us-east-1)"),
    Param("regionendpoint", "the endpoint URL of an S3-compatible service"),
    Param("forcepathstyle", "path-style addressing (bucket in the path, not the host name)", default=False),
    Param("bucket", "the bucket (must exist)"),
    Param("encrypt", "server-side encryption: SSE-KMS with keyid, else SSE-S3 (AES256)", default=False),
    Param("keyid", "the KMS key of SSE-KMS; needs encrypt: true"),
    Param("secure", "HTTPS (false: HTTP); a regionendpoint's own scheme wins", default=True),
    Param("skipverify", "no TLS certificate verification (logs a warning)", default=False),
    _ignored("v4auth", "every request is signed with Signature Version 4", quiet=("true",)),
    Param("chunksize", "the part size of multipart uploads", default=10 * 1024 * 1024),
    Param("multipartcopychunksize", "the part size of multipart copies", default=32 * 1024 * 1024),
    _ignored("multipartcopymaxconcurrency", "copies run maxconcurrency parts at a time (default 8)"),
    Param(
        "multipartcopythresholdsize",
        "objects above this size are copied in parts, smaller ones in one request",
        default=32 * 1024 * 1024,
    ),
    Param("rootdirectory", "the key prefix of the store in the bucket", default=""),
    Param("storageclass", "the storage class of every object written", default="STANDARD"),
    Param("useragent", "appended to the User-Agent header of every request"),
    Param("usedualstack", "AWS's dual-stack (IPv4 and IPv6) endpoints", default=False),
    Param("accelerate", "AWS's transfer-acceleration endpoint (not with regionendpoint)"),
    Param("usefipsendpoint", "AWS's FIPS endpoints", default=False),
    Param("objectacl", "the canned ACL of every object written", default="private"),
    _ignored(
        "loglevel",
        "the SDK logs through Python logging: configure the 'botocore' and 'blobdrivers.s3' loggers",
        quiet=("off", "false"),  # unquoted off is YAML's false, which distribution reads as LogOff too
    ),
)

AZURE = (
    Param("accountname", "the storage account"),
    Param("accountkey", "the account's shared key"),
    Param("container", "the container (must exist)"),
    Param("realm", "the endpoint's domain suffix", default="core.windows.net"),
    Param("rootdirectory", "the blob name prefix of the store", default=""),
    Param(
        "credentials",
        "Microsoft Entra ID credentials: type client_secret (clientid, tenantid, secret), else (any other "
        "type, or no key, connection string, SAS token or credentials at all) azure-identity's "
        "DefaultAzureCredential, as distribution; ignored, as by distribution, when accountkey is given",
    ),
    Param("connectionstring", "a storage connection string, instead of the account parameters"),
    Param("serviceurl", "the blob service URL (default https://ACCOUNT.blob.REALM)"),
    _ignored(
        "copy_status_poll_max_retry",
        "copies are synchronous (Copy Blob From URL, Put Block From URL); the asynchronous fallback is "
        "polled until it ends (at most an hour), not a number of times",
    ),
    _ignored("copy_status_poll_delay", "the asynchronous copy fallback polls with its own backoff (50 ms to 2 s)"),
    _ignored("max_retries", "requests get retries attempts here (default 5, the first included); set retries"),
    _ignored("retry_delay", "the backoff between attempts is the driver's own (exponential, with jitter)"),
    _ignored("max_retry_delay", "the backoff between attempts is the driver's own (exponential, with jitter)"),
    _ignored("retry_try_timeout", "each attempt has the SDK's connection and read timeouts"),
)

GCS = (
    Param("bucket", "the bucket (must exist)"),
    Param("keyfile", "the path of a service-account JSON key"),
    Param(
        "credentials",
        "a service-account key as a mapping (or its JSON text); ignored, as by distribution, when keyfile is given",
    ),
    Param("rootdirectory", "the object name prefix of the store", default=""),
    Param("chunksize", "the size of each resumable-upload request (a multiple of 256 KiB)", default=16 * 1024 * 1024),
    Param("maxconcurrency", "parts and requests one transfer runs at a time (above 256: 256, with a warning)"),
    _ignored("useragent", "requests carry the library's own User-Agent"),
    _ignored("disablekeepalives", "connections are pooled and kept alive by urllib3", quiet=("false",)),
)

OSS = (
    Param("accesskeyid", "the access key id"),
    Param("accesskeysecret", "the access key secret"),
    Param("region", "the region (oss-cn-beijing); gives the endpoint when none is set"),
    Param("endpoint", "the endpoint, instead of the one of region"),
    Param("internal", "the region's internal (VPC) endpoint", default=False),
    Param("bucket", "the bucket (must exist)"),
    Param("encrypt", "server-side encryption: KMS with encryptionkeyid, else AES256", default=False),
    Param("encryptionkeyid", "the KMS key of server-side encryption; needs encrypt: true"),
    Param("secure", "HTTPS (false: HTTP)", default=True),
    Param("chunksize", "the part size of multipart uploads", default=10 * 1024 * 1024),
    Param("rootdirectory", "the object name prefix of the store", default=""),
)

#: driver name (aliases included) -> its table
TABLES: dict[str, tuple[Param, ...]] = {
    "filesystem": FILESYSTEM,
    "inmemory": INMEMORY,
    "s3": S3,
    "s3aws": S3,
    "azure": AZURE,
    "gcs": GCS,
    "oss": OSS,
}

#: driver name -> the parameters distribution reads instead of others
PRECEDENCE: dict[str, tuple[Precedence, ...]] = {
    "azure": (Precedence("accountkey", "credentials"),),
    "gcs": (Precedence("keyfile", "credentials"),),
}
