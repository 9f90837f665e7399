"""Secrets never leave a driver through its outputs.

Every driver is built with recognisable fake secrets (each contains ``SECRETMARKER``)
and driven through successes and failures: credentials the server refuses, an
endpoint nobody listens on, a missing path, a missing bucket, bad parameters
(``ConfigError`` for a bad value of a secret parameter), ``url_for`` with good and
bad arguments. Everything a caller or an operator can see is then scanned for
the secrets, in their raw, URL-encoded and base64 forms, and for the bare marker:

* ``repr`` and ``str`` of the driver, of a pickled copy and of ``below()``;
* ``str``, ``repr`` and ``args`` of every exception, of every exception chained
  to it (``__cause__`` / ``__context__``), the ``traceback.format_exception``
  text of the whole chain and the ``repr`` of a pickled copy; SDK errors that quote
  the secrets are planted in the S3 and GCS clients (the servers never echo them);
* every log record of every logger at DEBUG (the SDKs' loggers included: botocore,
  urllib3, azure, google, oss2, msal...), formatted with its exception text.

The URL ``url_for`` returns legitimately carries a signature and is not scanned;
the signature it carries is a bearer credential, so it must not reach a log either.

Where authentication is really checked: S3 on a moto started with IAM
authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``): unknown access keys and bad
signatures are refused; Azurite checks SharedKey and SAS signatures; the OSS test
server checks V1 signatures; the GCS emulator checks nothing, so the GCS auth
failure comes from a local stand-in of Google's token endpoint refusing the
service-account grant. Log records of the in-process servers themselves (moto's
``werkzeug``/``moto`` loggers) are not the driver's output and are left out.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import json
import logging
import pickle
import socket
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers import StorageDriver
from blobdrivers.drivers.azure import AzureDriver
from blobdrivers.drivers.filesystem import FilesystemDriver
from blobdrivers.drivers.gcs import GCSDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.drivers.oss import OSSDriver
from blobdrivers.drivers.s3 import S3Driver
from blobdrivers.errors import (
    ConfigError,
    PathNotFoundError,
    StorageError,
    UnsupportedMethodError,
)
from tests.network import network_driver
from tests.servers.google_auth import TokenEndpoint, service_account
from tests.servers.local import AzuriteServer, GcsServer, MotoServer, free_port, start_moto
from tests.servers.oss import OssServer

MARK = "SECRETMARKER"
#: Loggers of the SDKs forced to DEBUG (a library may set its own level above the root's).
SDK_LOGGERS = (
    "blobdrivers",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "requests",
    "azure",
    "msal",
    "google",
    "google.auth",
    "google.cloud",
    "google.resumable_media",
    "oss2",
)
#: In-process test servers: their logs are the server's, not the driver's output.
SERVER_LOGGERS = ("werkzeug", "moto", "tests.")


def _needles(secret: str) -> set[str]:
    """The forms in which ``secret`` could show up in text."""
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }
    return {form for form in forms if len(form) >= 6}


@dataclass
class Scan:
    """Collects everything a caller or operator could see, then looks for the secrets in it."""

    caplog: pytest.LogCaptureFixture
    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: int = 0

    def secret(self, *values: str) -> None:
        self.secrets.update(values)

    def driver(self, driver: StorageDriver) -> None:
        copy = pickle.loads(pickle.dumps(driver))
        for where, text in (
            ("repr", repr(driver)),
            ("str", str(driver)),
            ("repr of a pickled copy", repr(copy)),
            ("repr of below()", repr(driver.below("/sub"))),
        ):
            self.texts.append((f"{where} of {type(driver).__name__}", text))

    def error(self, exc: BaseException, what: str) -> None:
        """Record everything an exception shows, down its whole chain."""
        self.errors += 1
        self.texts.append((f"{what}: traceback", "".join(traceback.format_exception(exc))))
        copy = pickle.loads(pickle.dumps(exc))
        self.texts.append((f"{what}: repr of a pickled copy", repr(copy)))
        self.texts.append((f"{what}: str of a pickled copy", str(copy)))
        seen: set[int] = set()
        pending: list[BaseException] = [exc]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            name = type(current).__name__
            self.texts.append((f"{what}: str({name})", str(current)))
            self.texts.append((f"{what}: repr({name})", repr(current)))
            self.texts.append((f"{what}: {name}.args", repr(current.args)))
            for attribute in ("message", "reason", "details"):
                value = getattr(current, attribute, None)
                if isinstance(value, str):
                    self.texts.append((f"{what}: {name}.{attribute}", value))
            pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)

    def fails(self, expected: type[BaseException], what: str, call: Callable[[], Any]) -> BaseException:
        """Run ``call``, which must raise ``expected``; record the error."""
        with pytest.raises(expected) as caught:
            call()
        self.error(caught.value, what)
        return caught.value

    def check(self, sdk_logger: str) -> None:
        """Assert that no secret, in any form, is in any collected text or log record.

        ``sdk_logger`` is the logger prefix of the driver's SDK: its debug records must
        have been captured, or the scan of the logs would prove nothing.
        """
        needles = {MARK}
        for secret in self.secrets:
            needles |= _needles(secret)
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        records = [r for r in self.caplog.records if not r.name.startswith(SERVER_LOGGERS)]
        assert any(r.name.startswith(sdk_logger) for r in records), f"no {sdk_logger} records were captured"
        texts = list(self.texts) + [(f"log record of {r.name}", formatter.format(r)) for r in records]
        leaks: dict[str, str] = {}
        for where, text in texts:
            for needle in needles:
                if needle in text:
                    start = max(0, text.index(needle) - 300)
                    leaks.setdefault(where.split(":")[0], f"{needle!r} in {where}: ...{text[start : start + 600]}")
        assert not leaks, "secrets leaked:\n" + "\n\n".join(leaks.values())
        print(
            f"secrets scan: {len(self.secrets)} secrets in {len(needles)} forms; {self.errors} errors, "
            f"{len(self.texts)} texts and {len(records)} log records scanned"
        )


@pytest.fixture
def scan(caplog: pytest.LogCaptureFixture) -> Scan:
    caplog.set_level(logging.DEBUG)
    for name in SDK_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return Scan(caplog)


def _closed_endpoint() -> str:
    """An http endpoint on 127.0.0.1 where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def _common_failures(scan: Scan, driver: StorageDriver, what: str) -> None:
    """Calls that fail the same way on every driver whose credentials the server accepts."""
    scan.fails(PathNotFoundError, f"{what} get missing", lambda: driver.get("/missing/file"))
    scan.fails(PathNotFoundError, f"{what} stat missing", lambda: driver.stat("/missing/file"))
    scan.fails(PathNotFoundError, f"{what} list missing", lambda: driver.list("/missing"))
    scan.fails(PathNotFoundError, f"{what} move missing", lambda: driver.move("/missing/a", "/missing/b"))
    scan.fails(PathNotFoundError, f"{what} delete missing", lambda: driver.delete("/missing"))
    scan.fails(PathNotFoundError, f"{what} append missing", lambda: driver.writer("/missing/w", append=True))
    scan.fails(ValueError, f"{what} url_for expiry 0", lambda: driver.url_for("/x", expires_in=0))
    scan.fails(ValueError, f"{what} url_for method", lambda: driver.url_for("/x", method="DELETE"))


def _exercise(driver: StorageDriver) -> None:
    """Successful calls of every kind, so the SDKs log their requests."""
    driver.put("/ok/a", b"a" * 100)
    assert driver.get("/ok/a") == b"a" * 100
    with driver.stream("/ok/a", 10) as reader:
        reader.read()
    driver.stat("/ok/a")
    with driver.writer("/ok/w") as writer:
        writer.write(b"w" * 10)
    driver.cat("/ok/c", ["/ok/a", "/ok/w"])
    driver.move("/ok/c", "/ok/d")
    driver.list("/ok")
    list(driver.walk("/"))
    driver.delete("/ok")


def _signature_of(url: str, name: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[name][0]


# ---------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto (subprocess) with IAM authentication on, and the keys of the one user it knows.

    The first four requests go unauthenticated: create the user, give it a
    policy, create its access key and the bucket ``authbucket``.
    """
    import boto3

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "4")
        server = start_moto(in_process=False)
    try:
        iam = boto3.client("iam", **server.client_kwargs())
        iam.create_user(UserName="registry")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="registry", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="registry")["AccessKey"]
        keys = {"accesskey": key["AccessKeyId"], "secretkey": key["SecretAccessKey"]}
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name=server.region,
            aws_access_key_id=keys["accesskey"],
            aws_secret_access_key=keys["secretkey"],
        )
        s3.create_bucket(Bucket="authbucket")
        yield server, keys
    finally:
        server.stop()


S3_SECRETS = {
    "accesskey": "AKIDSECRETMARKER1XY",
    "secretkey": "SECRETMARKER2s3+secret/key=value",
    "sessiontoken": "SECRETMARKER3session/token+value==",
}


def test_s3_never_shows_its_secrets(
    scan: Scan,
    moto_server: MotoServer,
    s3_bucket: str,
    auth_moto: tuple[MotoServer, dict[str, str]],
) -> None:
    base = {"region": moto_server.region, "retries": 1, "chunksize": "5MiB"}
    scan.secret(*S3_SECRETS.values())
    # moto (in-process) accepts any key: the happy paths and the documented failures.
    good = S3Driver(bucket=s3_bucket, regionendpoint=moto_server.endpoint_url, **base, **S3_SECRETS)
    scan.driver(good)
    _exercise(good)
    _common_failures(scan, good, "s3")
    for method in ("GET", "PUT", "HEAD"):
        url = good.url_for("/ok/a", method=method)
        scan.secret(_signature_of(url, "X-Amz-Signature"))
    missing_bucket = S3Driver(bucket="no-such-bucket-x", regionendpoint=moto_server.endpoint_url, **base, **S3_SECRETS)
    scan.fails(StorageError, "s3 missing bucket", lambda: missing_bucket.put("/x", b"x"))

    # moto with IAM authentication: an unknown key, and a known key with a wrong secret.
    server, keys = auth_moto
    scan.secret(keys["secretkey"])
    unknown = S3Driver(bucket="authbucket", regionendpoint=server.endpoint_url, **base, **S3_SECRETS)
    error = scan.fails(StorageError, "s3 unknown key", lambda: unknown.put("/x", b"x"))
    assert "InvalidAccessKeyId" in str(error)
    scan.fails(StorageError, "s3 unknown key get", lambda: unknown.get("/x"))
    scan.fails(StorageError, "s3 unknown key list", lambda: unknown.list("/"))
    wrong = S3Driver(
        bucket="authbucket",
        regionendpoint=server.endpoint_url,
        **base,
        accesskey=keys["accesskey"],
        secretkey=S3_SECRETS["secretkey"],
    )
    error = scan.fails(StorageError, "s3 wrong secret", lambda: wrong.put("/x", b"x"))
    assert "SignatureDoesNotMatch" in str(error)
    right = S3Driver(bucket="authbucket", regionendpoint=server.endpoint_url, **base, **keys)
    scan.driver(right)
    right.put("/checked", b"signature checked")
    assert right.get("/checked") == b"signature checked"
    # (moto's signature check refuses botocore's signed ListObjectsV2, so no delete here.)

    # Nobody listening.
    down = S3Driver(bucket=s3_bucket, regionendpoint=_closed_endpoint(), **base, **S3_SECRETS)
    scan.fails(StorageError, "s3 unreachable", lambda: down.put("/x", b"x"))
    scan.fails(StorageError, "s3 unreachable stat", lambda: down.stat("/x"))

    # Bad parameters.
    endpoint = {"bucket": s3_bucket, "regionendpoint": moto_server.endpoint_url}
    scan.fails(ConfigError, "s3 non-string secret", lambda: S3Driver(**endpoint, **{**S3_SECRETS, "secretkey": [MARK]}))
    scan.fails(
        ConfigError, "s3 bytes secret", lambda: S3Driver(**endpoint, **{**S3_SECRETS, "sessiontoken": MARK.encode()})
    )
    half = {"accesskey": S3_SECRETS["accesskey"], "sessiontoken": S3_SECRETS["sessiontoken"]}
    scan.fails(ConfigError, "s3 half credentials", lambda: S3Driver(**endpoint, **half))
    scan.fails(ConfigError, "s3 bad chunksize", lambda: S3Driver(**endpoint, **S3_SECRETS, chunksize="huge"))
    scan.fails(ConfigError, "s3 unknown param", lambda: S3Driver(**endpoint, **S3_SECRETS, secret_key=MARK))
    query = urllib.parse.urlencode({**S3_SECRETS, "regionendpoint": moto_server.endpoint_url, "chunksize": "x"})
    scan.fails(ConfigError, "s3 from_url", lambda: blobdrivers.from_url(f"s3://{s3_bucket}/r?{query}"))
    scan.check("botocore")


# ---------------------------------------------------------------------- Azure

AZURE_KEY = base64.b64encode(f"{MARK}4 azure account key, 64 bytes long........".encode()).decode()
AZURE_SIG = f"{MARK}5sig+value/x="


def _fake_sas() -> str:
    query = {
        "sv": "2021-08-06",
        "ss": "b",
        "srt": "sco",
        "sp": "rwdlac",
        "se": "2099-01-01T00:00:00Z",
        "st": "2020-01-01T00:00:00Z",
        "spr": "http,https",
        "sig": AZURE_SIG,
    }
    return urllib.parse.urlencode(query)


def test_azure_never_shows_its_secrets(
    scan: Scan, azurite_server: AzuriteServer, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, endpoint = azurite_server.account_name, azurite_server.blob_endpoint
    common = {"container": azure_container, "retries": 1}
    sas = _fake_sas()
    connection = f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AZURE_KEY};BlobEndpoint={endpoint};"
    client_secret = f"{MARK}6client~secret"
    scan.secret(AZURE_KEY, sas, AZURE_SIG, connection, client_secret, azurite_server.account_key)
    scan.secret(azurite_server.connection_string)

    # The right key (Azurite's public development key, treated as a secret here).
    good = AzureDriver(accountname=account, accountkey=azurite_server.account_key, serviceurl=endpoint, **common)
    scan.driver(good)
    _exercise(good)
    _common_failures(scan, good, "azure")
    for method in ("GET", "PUT", "HEAD"):
        scan.secret(_signature_of(good.url_for("/ok/a", method=method), "sig"))
    via_string = AzureDriver(connectionstring=azurite_server.connection_string, **common)
    scan.driver(via_string)
    scan.fails(PathNotFoundError, "azure connection string missing", lambda: via_string.get("/missing"))

    # Azurite checks SharedKey and SAS signatures: each wrong secret is refused.
    wrong_key = AzureDriver(accountname=account, accountkey=AZURE_KEY, serviceurl=endpoint, **common)
    wrong_sas = AzureDriver(accountname=account, sastoken="?" + sas, serviceurl=endpoint, **common)
    wrong_string = AzureDriver(connectionstring=connection, **common)
    for name, driver in (("key", wrong_key), ("sas", wrong_sas), ("connection string", wrong_string)):
        scan.driver(driver)
        error = scan.fails(StorageError, f"azure wrong {name}", functools.partial(driver.put, "/x", b"x"))
        assert "403" in str(error), error
        scan.fails(StorageError, f"azure wrong {name} get", functools.partial(driver.get, "/x"))
        scan.fails(StorageError, f"azure wrong {name} list", functools.partial(driver.list, "/"))
    scan.fails(UnsupportedMethodError, "azure url_for with sas", lambda: wrong_sas.url_for("/x"))

    # Nobody listening (the data endpoint, and the Entra ID token endpoint).
    down = AzureDriver(accountname=account, accountkey=AZURE_KEY, serviceurl=_closed_endpoint(), **common)
    scan.fails(StorageError, "azure unreachable", lambda: down.put("/x", b"x"))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", _closed_endpoint().replace("http:", "https:"))
    entra = AzureDriver(
        accountname=account,
        credentials={"type": "client_secret", "clientid": "c", "tenantid": "t", "secret": client_secret},
        serviceurl=endpoint,
        **common,
    )
    scan.driver(entra)
    scan.fails(StorageError, "azure token endpoint unreachable", lambda: entra.stat("/x"))

    # Bad parameters.
    base = {"accountname": account, "serviceurl": endpoint, "container": azure_container}
    scan.fails(ConfigError, "azure key not base64", lambda: AzureDriver(**base, accountkey=f"{MARK}!not base64"))
    scan.fails(ConfigError, "azure sas without sig", lambda: AzureDriver(**base, sastoken=f"sv=1&x={MARK}"))
    scan.fails(ConfigError, "azure key not a string", lambda: AzureDriver(**base, accountkey=[MARK]))
    scan.fails(ConfigError, "azure two secrets", lambda: AzureDriver(**base, accountkey=AZURE_KEY, sastoken=sas))
    scan.fails(
        ConfigError,
        "azure bad connection string",
        lambda: AzureDriver(container=azure_container, connectionstring=f"AccountKey{MARK}"),
    )
    scan.fails(
        ConfigError,
        "azure bad credentials",
        lambda: AzureDriver(**base, credentials={"type": "client_secret", "secret": client_secret}),
    )
    scan.fails(ConfigError, "azure bad chunksize", lambda: AzureDriver(**base, accountkey=AZURE_KEY, chunksize="x"))
    query = urllib.parse.urlencode({"accountname": account, "accountkey": AZURE_KEY, "chunksize": "x"})
    scan.fails(ConfigError, "azure from_url", lambda: blobdrivers.from_url(f"azure://{azure_container}/r?{query}"))
    scan.check("azure.core")


# ---------------------------------------------------------------------- GCS

GCS_TOKEN = f"ya29.{MARK}7access-token"


@contextlib.contextmanager
def _token_endpoint(refuse: bool) -> Iterator[str]:
    """The URL of a stand-in token endpoint that grants ``GCS_TOKEN``, or refuses every grant."""
    with TokenEndpoint(GCS_TOKEN, refuse=refuse) as endpoint:
        yield endpoint.url


def _service_account(token_uri: str) -> tuple[dict[str, str], list[str]]:
    """A throwaway service-account key and the distinctive lines of its private key."""
    info, _ = service_account(token_uri)
    pem = info["private_key"]
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return info, [pem, *body]


def test_gcs_never_shows_its_secrets(scan: Scan, gcs_server: GcsServer, gcs_bucket: str, tmp_path: Path) -> None:
    common = {"bucket": gcs_bucket, "endpoint": gcs_server.endpoint, "retries": 1, "chunksize": "256KiB"}
    scan.secret(GCS_TOKEN)
    with _token_endpoint(refuse=False) as granting, _token_endpoint(refuse=True) as refusing:
        info, key_lines = _service_account(granting)
        scan.secret(*key_lines)
        for credentials in (info, json.dumps(info)):  # a mapping, and its JSON text
            good = GCSDriver(**common, credentials=credentials)
            scan.driver(good)
        _exercise(good)
        _common_failures(scan, good, "gcs")
        for method in ("GET", "HEAD"):
            scan.secret(_signature_of(good.url_for("/ok/a", method=method), "X-Goog-Signature"))
        scan.fails(UnsupportedMethodError, "gcs url_for PUT", lambda: good.url_for("/x", method="PUT"))
        keyfile = tmp_path / "key.json"
        keyfile.write_text(json.dumps(info))
        from_file = GCSDriver(**common, keyfile=str(keyfile))
        scan.driver(from_file)
        scan.fails(PathNotFoundError, "gcs keyfile missing path", lambda: from_file.get("/missing"))

        # The token endpoint refuses the grant (the emulator itself checks nothing).
        refused = GCSDriver(**common, credentials={**info, "token_uri": refusing})
        error = scan.fails(StorageError, "gcs refused grant", lambda: refused.put("/x", b"x"))
        assert "authentication failed" in str(error), error
        scan.fails(StorageError, "gcs refused grant get", lambda: refused.get("/x"))
        scan.fails(StorageError, "gcs refused grant list", lambda: refused.list("/"))

        # Nobody listening: the storage endpoint, and the token endpoint.
        down = GCSDriver(**{**common, "endpoint": _closed_endpoint()}, credentials=info)
        scan.fails(StorageError, "gcs unreachable", lambda: down.put("/x", b"x"))
        no_token = GCSDriver(**common, credentials={**info, "token_uri": _closed_endpoint() + "/token"})
        scan.fails(StorageError, "gcs token endpoint unreachable", lambda: no_token.stat("/x"))

        # Bad parameters: unreadable secrets, secrets of the wrong type.
        base = {"bucket": gcs_bucket, "endpoint": gcs_server.endpoint}
        scan.fails(ConfigError, "gcs credentials not json", lambda: GCSDriver(**base, credentials=f"{{{MARK}"))
        scan.fails(
            ConfigError,
            "gcs credentials bad key",
            lambda: GCSDriver(**base, credentials={**info, "private_key": f"-----BEGIN PRIVATE KEY-----\n{MARK}"}),
        )
        scan.fails(
            ConfigError, "gcs credentials wrong type", lambda: GCSDriver(**base, credentials={**info, "type": MARK})
        )
        scan.fails(ConfigError, "gcs credentials a list", lambda: GCSDriver(**base, credentials=[MARK]))
        scan.fails(ConfigError, "gcs credentials not an object", lambda: GCSDriver(**base, credentials=f'"{MARK}"'))
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps({**info, "private_key": MARK}))
        scan.fails(ConfigError, "gcs broken keyfile", lambda: GCSDriver(**base, keyfile=str(broken)))
        scan.fails(ConfigError, "gcs bad chunksize", lambda: GCSDriver(**base, credentials=info, chunksize="1000"))
        scan.fails(ConfigError, "gcs both", lambda: GCSDriver(**base, credentials=info, keyfile=str(keyfile)))
    scan.check("urllib3")


# ---------------------------------------------------------------------- OSS

OSS_SECRETS = {"accesskeyid": f"LTAI{MARK}8", "accesskeysecret": f"{MARK}9oss/secret+value"}


def test_oss_never_shows_its_secrets(scan: Scan) -> None:
    # A server of our own whose only account has the marker credentials.
    server = OssServer(
        access_key_id=OSS_SECRETS["accesskeyid"], access_key_secret=OSS_SECRETS["accesskeysecret"], buckets=("b-1",)
    ).start()
    try:
        common = {"bucket": "b-1", "endpoint": server.endpoint, "retries": 1, "chunksize": "100KiB"}
        scan.secret(*OSS_SECRETS.values())
        good = OSSDriver(**common, **OSS_SECRETS)
        scan.driver(good)
        _exercise(good)
        _common_failures(scan, good, "oss")
        for method in ("GET", "PUT", "HEAD"):
            scan.secret(_signature_of(good.url_for("/ok/a", method=method), "Signature"))
        missing_bucket = OSSDriver(**{**common, "bucket": "no-such-bucket"}, **OSS_SECRETS)
        scan.fails(StorageError, "oss missing bucket", lambda: missing_bucket.put("/x", b"x"))

        # The server checks V1 signatures: a wrong secret, and an unknown key id.
        other_secret, other_id = f"{MARK}10wrong-secret", f"LTAI{MARK}11"
        scan.secret(other_secret, other_id)
        wrong_secret = OSSDriver(**common, accesskeyid=OSS_SECRETS["accesskeyid"], accesskeysecret=other_secret)
        unknown_id = OSSDriver(**common, accesskeyid=other_id, accesskeysecret=OSS_SECRETS["accesskeysecret"])
        for name, driver, code in (
            ("secret", wrong_secret, "SignatureDoesNotMatch"),
            ("key id", unknown_id, "InvalidAccessKeyId"),
        ):
            scan.driver(driver)
            error = scan.fails(StorageError, f"oss wrong {name}", functools.partial(driver.put, "/x", b"x"))
            assert code in str(error), error
            scan.fails(StorageError, f"oss wrong {name} get", functools.partial(driver.get, "/x"))
            scan.fails(StorageError, f"oss wrong {name} list", functools.partial(driver.list, "/"))
            scan.fails(StorageError, f"oss wrong {name} big put", functools.partial(driver.put, "/big", b"x" * 300_000))

        down = OSSDriver(**{**common, "endpoint": _closed_endpoint()}, **OSS_SECRETS)
        scan.fails(StorageError, "oss unreachable", lambda: down.put("/x", b"x"))
        scan.fails(StorageError, "oss unreachable stat", lambda: down.stat("/x"))

        base = {"bucket": "b-1", "endpoint": server.endpoint}
        scan.fails(
            ConfigError, "oss secret not a string", lambda: OSSDriver(**base, accesskeyid="a", accesskeysecret=[MARK])
        )
        scan.fails(
            ConfigError,
            "oss id not a string",
            lambda: OSSDriver(**base, accesskeyid=MARK.encode(), accesskeysecret=OSS_SECRETS["accesskeysecret"]),
        )
        scan.fails(ConfigError, "oss missing secret", lambda: OSSDriver(**base, accesskeyid=OSS_SECRETS["accesskeyid"]))
        scan.fails(ConfigError, "oss bad chunksize", lambda: OSSDriver(**base, **OSS_SECRETS, chunksize="1"))
        query = urllib.parse.urlencode({**OSS_SECRETS, "endpoint": server.endpoint, "chunksize": "x"})
        scan.fails(ConfigError, "oss from_url", lambda: blobdrivers.from_url(f"oss://b-1/r?{query}"))
    finally:
        server.stop()
    scan.check("oss2")


# ---------------------------------------------------------------------- SDK errors quoting secrets


def _quoting(secrets: list[str]) -> str:
    """Text quoting each secret raw, URL-encoded and base64, as SDK errors quote URLs, headers and bodies."""
    forms = [form for secret in secrets for form in sorted(_needles(secret))]
    return " ".join(forms)


def test_s3_sdk_errors_quoting_secrets_are_scrubbed(
    scan: Scan, moto_server: MotoServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from urllib3.exceptions import ProtocolError

    driver = S3Driver(
        bucket=s3_bucket, regionendpoint=moto_server.endpoint_url, region=moto_server.region, **S3_SECRETS
    )
    driver.put("/x", b"x")  # real requests, so botocore logs
    signature = "9f" * 32
    scan.secret(*S3_SECRETS.values(), signature)
    token = urllib.parse.quote(S3_SECRETS["sessiontoken"], safe="")
    url = f"{moto_server.endpoint_url}/{s3_bucket}/x?X-Amz-Signature={signature}&X-Amz-Security-Token={token}"
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={S3_SECRETS['accesskey']}/20240101/us-east-1/s3, Signature={signature}"
    )
    response = {
        "Error": {"Code": "AccessDenied", "Message": f"denied for {url}: {_quoting(list(S3_SECRETS.values()))}"},
        "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {"authorization": authorization}},
    }

    def head_object(**kwargs: Any) -> Any:
        try:
            raise ProtocolError(f"first attempt at {url} broke", authorization)
        except ProtocolError:
            raise ClientError(response, "HeadObject")  # noqa: B904 -- the retry's context stays, as botocore's does

    monkeypatch.setattr(driver.client, "head_object", head_object)
    error = scan.fails(StorageError, "s3 sdk error quoting secrets", lambda: driver.stat("/x"))
    monkeypatch.undo()
    chain = [type(e).__name__ for e in (error.__cause__, error.__cause__ and error.__cause__.__context__)]
    assert chain == ["ClientError", "ProtocolError"], chain  # types kept: only the secrets went
    assert "AccessDenied" in str(error) and "AccessDenied" in str(error.__cause__)
    driver.delete("/x")
    scan.check("botocore")


def test_gcs_sdk_errors_quoting_secrets_are_scrubbed(
    scan: Scan, gcs_server: GcsServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib3.exceptions

    with _token_endpoint(refuse=False) as granting:
        info, key_lines = _service_account(granting)
        driver = GCSDriver(
            bucket=gcs_bucket, endpoint=gcs_server.endpoint, retries=1, chunksize="256KiB", credentials=info
        )
        driver.put("/x", b"x")  # real requests, so urllib3 logs
        session_id = f"ADPycdt{MARK}5session-id"
        signature = "7e" * 32
        scan.secret(GCS_TOKEN, session_id, signature, *key_lines)
        session = (
            f"{gcs_server.endpoint}/upload/storage/v1/b/{gcs_bucket}/o?uploadType=resumable&upload_id={session_id}"
        )
        signed = f"{gcs_server.endpoint}/{gcs_bucket}/x?X-Goog-Signature={signature}"
        headers = {"Authorization": f"Bearer {GCS_TOKEN}"}
        http = driver._api.http()

        class Failing:
            def urlopen(self, method: str, url: str, **kwargs: Any) -> Any:
                try:
                    raise OSError(f"reset while sending to {session} with {headers}")
                except OSError as exc:
                    message = f"{signed}: {_quoting([info['private_key']])} Authorization: Bearer {GCS_TOKEN}"
                    raise urllib3.exceptions.ProtocolError(message, exc) from exc

        monkeypatch.setattr(driver._api, "http", Failing)
        error = scan.fails(StorageError, "gcs sdk error quoting secrets", lambda: driver.stat("/x"))
        monkeypatch.undo()
        assert type(error.__cause__).__name__ == "ProtocolError", repr(error.__cause__)
        assert isinstance(error.__cause__.__cause__, OSError)
        assert http is driver._api.http()
        driver.delete("/x")
    scan.check("urllib3")


# ---------------------------------------------------------------------- local drivers


@pytest.mark.parametrize("kind", ["filesystem", "inmemory"])
def test_local_drivers_never_echo_secret_looking_values(scan: Scan, kind: str, tmp_path: Path) -> None:
    """They have no secrets; a mistaken secret parameter given to them is refused without its value."""
    secret = f"{MARK}12local"
    scan.secret(secret)

    def make(**extra: Any) -> StorageDriver:
        if kind == "filesystem":
            return FilesystemDriver(rootdirectory=str(tmp_path), **extra)
        return InMemoryDriver(**extra)

    driver = make()
    scan.driver(driver)
    _exercise(driver)
    _common_failures(scan, driver, kind)
    scan.fails(UnsupportedMethodError, f"{kind} url_for", lambda: driver.url_for("/x"))
    scan.fails(ConfigError, f"{kind} unknown secret param", lambda: make(secretkey=secret))
    scan.check("blobdrivers")


# ---------------------------------------------------------------------- signed URL expiry


@pytest.fixture
def signing_driver(request: pytest.FixtureRequest) -> StorageDriver:
    """A driver of the kind named by the test's parameter, able to sign URLs."""
    kind = request.param
    if kind == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        return S3Driver(bucket=request.getfixturevalue("s3_bucket"), regionendpoint=moto.endpoint_url, **S3_SECRETS)
    if kind == "gcs":
        info, _ = _service_account("http://127.0.0.1:9/token")  # signing needs no token
        return network_driver(kind, request, credentials=info)
    return network_driver(kind, request)


#: Where each service's signed URL says how long it lasts.
EXPIRY_FIELDS = {"s3": "X-Amz-Expires", "gcs": "X-Goog-Expires", "oss": "Expires", "azure": "se"}


@pytest.mark.parametrize("signing_driver", ["s3", "azure", "gcs", "oss"], indirect=True)
def test_url_expiry_is_checked_against_the_service_maximum(signing_driver: StorageDriver) -> None:
    """``expires_in`` must be 1 up to ``max_url_expiry`` (7 days for every service here); else ValueError."""
    driver = signing_driver
    assert driver.max_url_expiry == 7 * 24 * 3600
    for bad in (0, -1, 0.5, driver.max_url_expiry + 1, 10**9, True, "60", None):
        with pytest.raises(ValueError, match="expires_in") as caught:
            driver.url_for("/x", expires_in=bad)  # type: ignore[arg-type]
        # A plain argument error raised before any I/O, not a storage failure.
        assert not isinstance(caught.value, StorageError), bad
    now = int(time.time())
    field_name = EXPIRY_FIELDS[driver.name]
    for good in (1, 60, driver.max_url_expiry):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.url_for("/x", expires_in=good)).query)
        value = query[field_name][0]
        if driver.name == "oss":  # an absolute time
            assert now + good - 5 <= int(value) <= now + good + 60, (good, value)
        elif driver.name == "azure":  # an ISO time
            expiry = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            assert now + good - 5 <= expiry <= now + good + 60, (good, value)
        else:
            assert int(value) == good


# ---------------------------------------------------------------------- TLS verification


class TlsFront:
    """TLS in front of a plain-HTTP test server, with a self-signed certificate nobody trusts.

    Counts handshakes that completed and that the client refused, so a test can
    tell a certificate rejection from any other failure.
    """

    def __init__(self, backend: str) -> None:
        import ssl

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        parts = urllib.parse.urlsplit(backend)
        self._backend = (parts.hostname or "127.0.0.1", parts.port or 80)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256())
        )
        self._dir = tempfile.TemporaryDirectory(prefix="bd-tls-")
        cert_path, key_path = Path(self._dir.name, "cert.pem"), Path(self._dir.name, "key.pem")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_path, key_path)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self.handshakes = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        import ssl

        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with self._lock:
                self.refused += 1
            raw.close()
            return
        with self._lock:
            self.handshakes += 1
        backend = socket.create_connection(self._backend)

        def pump(source: socket.socket, target: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    target.sendall(data)
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

        upstream = threading.Thread(target=pump, args=(client, backend), daemon=True)
        upstream.start()
        pump(backend, client)
        upstream.join(timeout=30)
        client.close()
        backend.close()

    def wait_for_refusal(self, timeout: float = 10.0) -> None:
        """Wait until a client has refused the certificate (the server learns it a moment after the client)."""
        deadline = time.monotonic() + timeout
        while not self.refused:
            assert time.monotonic() < deadline, "no client refused the certificate"
            time.sleep(0.01)

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        self._dir.cleanup()


def _tls_driver(request: pytest.FixtureRequest, kind: str, front: Callable[[str], str], **extra: Any) -> StorageDriver:
    """A driver of ``kind`` whose endpoint is ``front(plain_endpoint)``, failing fast (few retries)."""
    if kind == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("s3_bucket")
        return S3Driver(bucket=bucket, regionendpoint=front(moto.endpoint_url), retries=1, **S3_SECRETS, **extra)
    if kind == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        parts = urllib.parse.urlsplit(azurite.blob_endpoint)
        return AzureDriver(
            accountname=azurite.account_name,
            accountkey=azurite.account_key,
            serviceurl=front(f"{parts.scheme}://{parts.netloc}") + parts.path,
            container=request.getfixturevalue("azure_container"),
            retries=1,
            **extra,
        )
    if kind == "gcs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        bucket = request.getfixturevalue("gcs_bucket")
        return GCSDriver(bucket=bucket, endpoint=front(gcs.endpoint), retries=1, **extra)
    oss: OssServer = request.getfixturevalue("oss_server")
    return OSSDriver(
        bucket=request.getfixturevalue("oss_bucket"),
        endpoint=front(oss.endpoint),
        accesskeyid="test-ak",
        accesskeysecret="test-sk",
        retries=1,
        **extra,
    )


def _verifies(driver: StorageDriver) -> object:
    """What the driver's HTTP client will do with server certificates (``False``: not checked)."""
    if isinstance(driver, S3Driver):
        return driver.client._endpoint.http_session._verify
    if isinstance(driver, AzureDriver):
        transport: Any = driver._clients.get().service._pipeline._transport
        return transport.connection_config.verify and transport.session.verify
    if isinstance(driver, GCSDriver):
        client = driver._clients.get()
        requirement = client.http.http.connection_pool_kw.get("cert_reqs")
        return requirement != "CERT_NONE" and client.storage._http.verify
    assert isinstance(driver, OSSDriver)
    session = driver.client.session.session
    return session.verify and (session.trust_env or session.verify is not False)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("kind", ["s3", "azure", "gcs", "oss"])
def test_tls_is_verified_unless_skipverify_says_otherwise(
    kind: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """A self-signed certificate is refused by default; ``skipverify: true`` accepts it and warns once."""
    caplog.set_level(logging.WARNING)
    fronts: list[TlsFront] = []

    def front(endpoint: str) -> str:
        fronts.append(TlsFront(endpoint))
        return fronts[-1].endpoint

    try:
        default = _tls_driver(request, kind, front)
        assert _verifies(default) not in (False, None)
        with pytest.raises(StorageError) as caught:
            default.put("/tls/x", b"x")
        fronts[0].wait_for_refusal()
        assert fronts[0].handshakes == 0
        assert "certificate" in "".join(traceback.format_exception(caught.value)).lower()
        assert not [r for r in caplog.records if "skipverify" in r.getMessage()]

        insecure = _tls_driver(request, kind, front, skipverify=True)
        assert _verifies(insecure) is False
        insecure.put("/tls/x", b"over tls")
        assert insecure.get("/tls/x") == b"over tls"
        insecure.stat("/tls/x")
        insecure.delete("/tls")
        assert fronts[1].handshakes >= 1 and fronts[1].refused == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "skipverify" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "NOT verified" in warnings[0].getMessage()
    finally:
        for each in fronts:
            each.close()


@pytest.mark.parametrize(
    "url",
    [
        "s3://bkt?region=us-east-1&regionendpoint=http://u:Passw0rd@127.0.0.1:abc",
        "s3://bkt?region=us-east-1&regionendpoint=u:Passw0rd@127.0.0.1:9",
        "gs://bkt?endpoint=http://u:Passw0rd@127.0.0.1:9",
        "oss://bkt?endpoint=u:Passw0rd@h:9&accesskeyid=a&accesskeysecret=b&region=oss-cn-hangzhou",
        "azure://ctr?accountname=acct&accountkey=eA==&serviceurl=http://u:Passw0rd@h:1",
    ],
)
def test_an_endpoint_with_a_password_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        blobdrivers.from_url(url)
    message = str(caught.value)
    assert "credentials in the endpoint URL are not accepted" in message
    assert "Passw0rd" not in message and "Passw0rd" not in "".join(traceback.format_exception(caught.value))
