"""How the driver reaches the account: the authentication parameters checked and resolved, and SAS signing.

At most one of an account key, a connection string (which names the endpoint too),
a SAS token or Microsoft Entra ID credentials; with none, azure-identity's
DefaultAzureCredential, as distribution's azure_auth.go falls back to
NewDefaultAzureCredential. Secrets stay inside :class:`Auth` and never show in its
``repr`` or in a message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.storage.blob import BlobClient, BlobSasPermissions, UserDelegationKey, generate_blob_sas

from ...errors import ConfigError

log = logging.getLogger("blobdrivers.azure")

_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_HOST = re.compile(r"[A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Auth:
    """How the driver reaches the account, resolved from the parameters (secrets inside; never shown)."""

    account_url: str
    account_name: str | None
    account_key: str | None = None
    sas_token: str | None = None
    credentials: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Auth(account_url={self.account_url!r}, account_name={self.account_name!r})"

    def secrets(self) -> list[str]:
        """The secret values resolved from the parameters (a key read out of a connection string, say)."""
        values = [self.account_key, self.sas_token]
        if self.credentials:
            values.extend(str(value) for value in self.credentials.values())
        return [value for value in values if isinstance(value, str) and len(value) >= 4]

    def sdk_credential(self) -> Any:
        """The credential object the SDK client signs requests with."""
        if self.account_key is not None:
            return AzureNamedKeyCredential(self.account_name or "", self.account_key)
        if self.sas_token is not None:
            return AzureSasCredential(self.sas_token)
        return token_credential(self.credentials or {})


class Signer:
    """Blob SAS URLs: signed with the account key, or with a user delegation key under credentials.

    ``delegation_key(start, expiry)`` asks the service for a user delegation key; it
    is cached and re-used while it covers the expiry asked for (the service allows
    up to 7 days).
    """

    def __init__(
        self, auth: Auth, container: str, delegation_key: Callable[[datetime, datetime], UserDelegationKey]
    ) -> None:
        self._auth = auth
        self._container = container
        self._fetch_delegation = delegation_key
        self._delegation: tuple[UserDelegationKey, datetime] | None = None
        self._lock = threading.Lock()

    def source_url(self, blob: BlobClient, expires_in: int) -> str | None:
        """``blob``'s URL with a read SAS, for the service to fetch it; None when the driver cannot sign."""
        if self._auth.sas_token is not None:
            return f"{blob.url}?{self._auth.sas_token}"
        try:
            return self.signed(blob, BlobSasPermissions(read=True), expires_in)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError):
            return None

    def signed(self, blob: BlobClient, permission: BlobSasPermissions, expires_in: int) -> str | None:
        """``blob``'s URL with a SAS granting ``permission`` for ``expires_in`` seconds; None without a key."""
        auth = self._auth
        expiry = datetime.now(UTC) + timedelta(seconds=expires_in)
        if auth.account_key is not None and auth.account_name:
            token = generate_blob_sas(
                auth.account_name,
                self._container,
                blob.blob_name,
                account_key=auth.account_key,
                permission=permission,
                expiry=expiry,
            )
        elif auth.credentials is not None and auth.account_name:
            token = generate_blob_sas(
                auth.account_name,
                self._container,
                blob.blob_name,
                user_delegation_key=self._delegation_key(expiry),
                permission=permission,
                expiry=expiry,
            )
        else:
            return None
        return f"{blob.url}?{token}"

    def _delegation_key(self, needed_until: datetime) -> UserDelegationKey:
        """A user delegation key valid until ``needed_until``, cached (the service allows up to 7 days)."""
        with self._lock:
            cached = self._delegation
            if cached is not None and cached[1] >= needed_until:
                return cached[0]
            start = datetime.now(UTC) - timedelta(minutes=5)
            expiry = start + timedelta(days=7)
            key = self._fetch_delegation(start, expiry)
            self._delegation = (key, expiry)
            return key


def resolve_auth(
    *,
    account_name: str | None,
    account_key: str | None,
    connection_string: str | None,
    sas_token: str | None,
    credentials: Mapping[str, Any] | None,
    realm: str,
    service_url: str | None,
) -> Auth:
    """Check the authentication parameters and reduce them to one :class:`Auth`."""
    if not _HOST.fullmatch(realm):
        raise ConfigError(f"invalid value {realm!r} for parameter 'realm': expected a DNS suffix", driver="azure")
    if account_name is not None and not _ACCOUNT_NAME.fullmatch(account_name):
        raise ConfigError(
            f"invalid value {account_name!r} for parameter 'accountname': 3-24 lowercase letters and digits",
            driver="azure",
        )
    given = [
        name
        for name, value in (
            ("accountkey", account_key),
            ("connectionstring", connection_string),
            ("sastoken", sas_token),
            ("credentials", credentials),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigError(
            "give at most one of the parameters 'accountkey', 'connectionstring', 'sastoken' or 'credentials' "
            f"(got {', '.join(given)})",
            driver="azure",
        )
    if not given:
        credentials = DEFAULT_CREDENTIALS
    if connection_string is not None:
        if account_name is not None or service_url is not None:
            raise ConfigError(
                "parameter 'connectionstring' names the account and endpoint; do not also give "
                "'accountname' or 'serviceurl'",
                driver="azure",
            )
        return _parse_connection_string(connection_string, realm)
    if account_name is None:
        raise ConfigError(
            "parameter 'accountname' is required (unless a connectionstring names the account)", driver="azure"
        )
    account_url = (service_url or f"https://{account_name}.blob.{realm}").rstrip("/")
    if account_key is not None:
        try:
            base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "invalid value (hidden) for parameter 'accountkey': expected the base64 account key", driver="azure"
            ) from None
        return Auth(account_url, account_name, account_key=account_key)
    if sas_token is not None:
        token = sas_token.lstrip("?")
        if "sig=" not in token:
            raise ConfigError(
                "invalid value (hidden) for parameter 'sastoken': expected a SAS query string with sig=",
                driver="azure",
            )
        return Auth(account_url, account_name, sas_token=token)
    assert credentials is not None
    return Auth(account_url, account_name, credentials=_checked_credentials(credentials))


def _parse_connection_string(connection_string: str, realm: str) -> Auth:
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(
                "invalid value (hidden) for parameter 'connectionstring': expected Key=Value pairs separated by ';'",
                driver="azure",
            )
        fields[key.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        from_azurite = "http://127.0.0.1:10000/devstoreaccount1"
        key = (
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # public dev key
        )
        return Auth(from_azurite, "devstoreaccount1", account_key=key)
    name = fields.get("accountname")
    endpoint = fields.get("blobendpoint")
    if endpoint is None and name is not None:
        protocol = fields.get("defaultendpointsprotocol", "https")
        endpoint = f"{protocol}://{name}.blob.{fields.get('endpointsuffix', realm)}"
    if endpoint is None:
        raise ConfigError(
            "invalid value (hidden) for parameter 'connectionstring': it names neither AccountName nor BlobEndpoint",
            driver="azure",
        )
    endpoint = endpoint.rstrip("/")
    if "accountkey" in fields:
        if name is None:
            raise ConfigError(
                "invalid value (hidden) for parameter 'connectionstring': AccountKey needs AccountName", driver="azure"
            )
        return Auth(endpoint, name, account_key=fields["accountkey"])
    if "sharedaccesssignature" in fields:
        return Auth(endpoint, name, sas_token=fields["sharedaccesssignature"].lstrip("?"))
    raise ConfigError(
        "invalid value (hidden) for parameter 'connectionstring': it holds neither AccountKey nor "
        "SharedAccessSignature",
        driver="azure",
    )


_CREDENTIAL_TYPES = {"client_secret": ("clientid", "tenantid", "secret"), "default_credentials": ()}
#: What no authentication parameter means: azure-identity's DefaultAzureCredential (environment, managed identity...).
DEFAULT_CREDENTIALS: Mapping[str, Any] = {"type": "default_credentials"}


def _checked_credentials(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """``credentials`` checked; a type other than client_secret means default credentials, as in distribution."""
    kind = str(credentials.get("type", "")).lower()
    if kind not in _CREDENTIAL_TYPES:
        # distribution's azure_auth.go: any type but client_secret gets NewDefaultAzureCredential.
        if kind not in ("", "default"):
            log.warning(
                "storage driver 'azure': credentials type %s is not client_secret: using default credentials",
                "(not shown)" if len(kind) > 40 else repr(kind),
            )
        credentials, kind = {**credentials, "type": "default_credentials"}, "default_credentials"
    fields = _CREDENTIAL_TYPES[kind]
    missing = [field for field in fields if not credentials.get(field) or not isinstance(credentials[field], str)]
    if missing:
        raise ConfigError(
            f"invalid value (hidden) for parameter 'credentials': type {kind} needs {', '.join(missing)} (strings)",
            driver="azure",
        )
    if find_spec("azure.identity") is None:
        what = "parameter 'credentials'" if credentials is not DEFAULT_CREDENTIALS else "default credentials"
        raise ConfigError(
            f"{what}: Microsoft Entra ID needs azure-identity, which is not installed: pip install azure-identity; "
            "or give 'accountkey', 'connectionstring' or 'sastoken'",
            driver="azure",
        )
    return dict(credentials)


def token_credential(credentials: Mapping[str, Any]) -> Any:
    """The azure-identity credential the ``credentials`` parameter describes (checked before)."""
    import azure.identity

    kind = str(credentials.get("type", "")).lower()
    if kind == "client_secret":
        return azure.identity.ClientSecretCredential(
            str(credentials["tenantid"]), str(credentials["clientid"]), str(credentials["secret"])
        )
    return azure.identity.DefaultAzureCredential()
