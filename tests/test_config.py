"""Distribution registry configurations: read unchanged, as distribution reads them (docs/configuration.md)."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers.config import tables
from blobdrivers.errors import ConfigError
from tests.servers.google_auth import service_account

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

# ---------------------------------------------------------------------- distribution's examples, verbatim

# Source: distribution/distribution docs/content/about/configuration.md, "List of configuration options"
# (the storage section's filesystem, azure, gcs, s3 and inmemory entries), pasted unchanged.
FILESYSTEM_EXAMPLE = """\
storage:
  filesystem:
    rootdirectory: /var/lib/registry
    maxthreads: 100
"""

AZURE_EXAMPLE = """\
storage:
  azure:
    accountname: accountname
    accountkey: base64encodedaccountkey
    container: containername
    rootdirectory: /az/object/name/prefix
    credentials:
      type: client_secret
      clientid: client_id_string
      tenantid: tenant_id_string
      secret: secret_string
    max_retries: 10
    retry_delay: 100ms
"""

GCS_EXAMPLE = """\
storage:
  gcs:
    bucket: bucketname
    keyfile: /path/to/keyfile
    credentials:
      type: service_account
      project_id: project_id_string
      private_key_id: private_key_id_string
      private_key: private_key_string
      client_email: client@example.com
      client_id: client_id_string
      auth_uri: http://example.com/auth_uri
      token_uri: http://example.com/token_uri
      auth_provider_x509_cert_url: http://example.com/provider_cert_url
      client_x509_cert_url: http://example.com/client_cert_url
    rootdirectory: /gcs/object/name/prefix
    chunksize: 5242880
"""

S3_EXAMPLE = """\
storage:
  s3:
    accesskey: awsaccesskey
    secretkey: awssecretkey
    region: us-west-1
    regionendpoint: http://myobjects.local
    forcepathstyle: true
    accelerate: false
    bucket: bucketname
    encrypt: true
    keyid: mykeyid
    secure: true
    v4auth: true
    chunksize: 5242880
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 100
    multipartcopythresholdsize: 33554432
    rootdirectory: /s3/object/name/prefix
    usedualstack: false
    loglevel: debug
"""

INMEMORY_EXAMPLE = """\
storage:
  inmemory:  # This driver takes no parameters
"""

# Source: distribution/distribution docs/configuration.md (before v3 dropped the OSS driver), the storage
# section's oss entry, pasted unchanged. Its values are descriptions, not values: distribution itself refuses
# "internal: optional internal endpoint" (not a boolean), so the test gives the real values from the environment.
OSS_EXAMPLE = """\
storage:
  oss:
    accesskeyid: accesskeyid
    accesskeysecret: accesskeysecret
    region: OSS region name
    endpoint: optional endpoints
    internal: optional internal endpoint
    bucket: OSS bucket
    encrypt: optional enable server-side encryption
    encryptionkeyid: optional KMS key id for encryption
    secure: optional ssl setting
    chunksize: optional size value
    rootdirectory: optional root directory
"""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a driver from a configuration must not open a connection."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a connection was opened while creating the driver: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "blobdrivers.config" and r.levelno == logging.WARNING]


def test_filesystem_example(no_network: None, caplog: pytest.LogCaptureFixture) -> None:
    driver = blobdrivers.from_config(FILESYSTEM_EXAMPLE, env={})
    assert driver.name == "filesystem"
    assert driver.root == "/var/lib/registry"  # type: ignore[attr-defined]
    assert _warnings(caplog) == [
        "storage driver 'filesystem': parameter 'maxthreads' is ignored: "
        "each call runs on its caller's thread; there is no thread pool to bound"
    ]


def test_inmemory_example(no_network: None) -> None:
    assert blobdrivers.from_config(INMEMORY_EXAMPLE, env={}).name == "inmemory"


def test_s3_example(no_network: None, caplog: pytest.LogCaptureFixture) -> None:
    driver: Any = blobdrivers.from_config(S3_EXAMPLE, env={})
    assert (driver.name, driver.bucket, driver.region, driver.endpoint) == (
        "s3",
        "bucketname",
        "us-west-1",
        "http://myobjects.local",
    )
    assert driver.connection.forcepathstyle and driver.chunk_size == 5242880
    assert driver.write_args["SSEKMSKeyId"] == "mykeyid"
    warned = _warnings(caplog)
    # v4auth: true asks for what the driver does anyway: no warning.
    assert [re.search(r"parameter '(\w+)'", m).group(1) for m in warned] == [  # type: ignore[union-attr]
        "multipartcopymaxconcurrency",
        "loglevel",
    ]
    assert not any("awssecretkey" in m for m in warned)


def test_s3_acceleration_and_dual_stack_are_honoured(no_network: None) -> None:
    params = {"bucket": "bucketname", "region": "us-west-1", "accesskey": "a", "secretkey": "b"}
    for flag, host in (("accelerate", "bucketname.s3-accelerate.amazonaws.com"), ("usedualstack", "dualstack")):
        driver: Any = blobdrivers.from_config({"s3": {**params, flag: "true"}}, env={})
        client = driver.connection.client(pool_size=1, retry_mode="standard", attempts=1)
        assert host in client.generate_presigned_url("get_object", Params={"Bucket": "bucketname", "Key": "k"})
    with pytest.raises(ConfigError, match="'accelerate' cannot be combined with 'regionendpoint'"):
        blobdrivers.create("s3", {**params, "accelerate": True, "regionendpoint": "http://myobjects.local"})


def test_azure_example(no_network: None, caplog: pytest.LogCaptureFixture) -> None:
    # The example's account key is a placeholder, not base64: distribution's shared-key credential refuses it too.
    with pytest.raises(ConfigError, match="parameter 'accountkey': expected the base64 account key"):
        blobdrivers.from_config(AZURE_EXAMPLE, env={})
    caplog.clear()
    driver: Any = blobdrivers.from_config(AZURE_EXAMPLE, env={"REGISTRY_STORAGE_AZURE_ACCOUNTKEY": "a2V5a2V5"})
    assert (driver.name, driver._root) == ("azure", "/az/object/name/prefix")
    warned = _warnings(caplog)
    # distribution signs with the account key when one is given, and never reads credentials then.
    assert any("'credentials' is ignored: 'accountkey' is given" in m for m in warned)
    assert any("'max_retries' is ignored" in m for m in warned)
    assert any("'retry_delay' is ignored" in m for m in warned)
    assert not any("secret_string" in m or "base64encodedaccountkey" in m for m in warned)


def _service_account_key(path: Path) -> Path:
    info, _ = service_account("https://oauth2.googleapis.com/token")
    path.write_text(json.dumps(info))
    return path


def test_gcs_example(no_network: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The example's keyfile is a placeholder path: distribution reads it at start-up, and so does this driver.
    with pytest.raises(ConfigError, match="'keyfile'"):
        blobdrivers.from_config(GCS_EXAMPLE, env={})
    keyfile = _service_account_key(tmp_path / "key.json")
    driver: Any = blobdrivers.from_config(GCS_EXAMPLE, env={"REGISTRY_STORAGE_GCS_KEYFILE": str(keyfile)})
    assert (driver.name, driver.bucket, driver._root, driver.chunk_size) == (
        "gcs",
        "bucketname",
        "/gcs/object/name/prefix",
        5242880,  # the example's own chunksize
    )
    assert any("'credentials' is ignored: 'keyfile' is given" in m for m in _warnings(caplog))


def test_oss_example(no_network: None) -> None:
    with pytest.raises(ConfigError, match="parameter 'secure': expected true or false"):
        blobdrivers.from_config(OSS_EXAMPLE, env={})
    env = {
        "REGISTRY_STORAGE_OSS_REGION": "oss-cn-beijing",
        "REGISTRY_STORAGE_OSS_ENDPOINT": "",
        "REGISTRY_STORAGE_OSS_INTERNAL": "false",
        "REGISTRY_STORAGE_OSS_BUCKET": "registry",
        "REGISTRY_STORAGE_OSS_ENCRYPT": "true",
        "REGISTRY_STORAGE_OSS_ENCRYPTIONKEYID": "",
        "REGISTRY_STORAGE_OSS_SECURE": "true",
        "REGISTRY_STORAGE_OSS_CHUNKSIZE": "10485760",
        "REGISTRY_STORAGE_OSS_ROOTDIRECTORY": "/registry",
    }
    driver: Any = blobdrivers.from_config(OSS_EXAMPLE, env=env)
    assert (driver.bucket, driver.endpoint, driver._root) == (
        "registry",
        "https://oss-cn-beijing.aliyuncs.com",
        "/registry",
    )
    assert driver.create_headers == {"x-oss-server-side-encryption": "AES256"}


# ---------------------------------------------------------------------- sources: whole configs, text, files

WHOLE = """\
version: 0.1
log:
  level: debug
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
  tag:
    concurrencylimit: 8
http:
  addr: :5000
  secret: asecretforlocaldevelopment
"""


def test_whole_config_as_text_file_path_and_mapping(tmp_path: Path) -> None:
    import yaml

    text = WHOLE.format(root=tmp_path / "store")
    config_file = tmp_path / "config.yml"
    config_file.write_text(text)
    mapping = yaml.safe_load(text)
    for source in (text, str(config_file), config_file, mapping, mapping["storage"]):
        driver: Any = blobdrivers.from_config(source, env={})
        assert driver.root == str(tmp_path / "store"), source
    assert mapping["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "store")}  # not changed
    assert blobdrivers.from_config("filesystem: {}", env={}).root == "/var/lib/registry"  # type: ignore[attr-defined]
    assert blobdrivers.from_config({"version": "0.1", "storage": "inmemory"}, env={}).name == "inmemory"
    assert blobdrivers.from_config("version: 0.1", env={"REGISTRY_STORAGE": "inmemory"}).name == "inmemory"


def test_env_overrides_as_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = {"s3": {"bucket": "bucketname", "region": "us-east-1"}}
    env = {"REGISTRY_STORAGE_S3_REGION": "eu-west-1", "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "false"}
    driver: Any = blobdrivers.from_config(s3, env=env)
    assert driver.region == "eu-west-1" and driver.connection.forcepathstyle is False  # YAML values: a boolean
    assert s3["s3"]["region"] == "us-east-1"
    # A value YAML reads as a number is still a string parameter's value, as in distribution.
    assert blobdrivers.from_config(s3, env={"REGISTRY_STORAGE_S3_BUCKET": "2024"}).bucket == "2024"  # type: ignore[attr-defined]
    # REGISTRY_STORAGE sorts first: it replaces the section, then the variables below it apply.
    env = {"REGISTRY_STORAGE": "filesystem", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path)}
    driver = blobdrivers.from_config(s3, env=env)
    assert (driver.name, driver.root) == ("filesystem", str(tmp_path))
    # Mappings on the way are created: a nested key.
    nested = blobdrivers.config.driver_params(
        {"azure": {"container": "c"}}, env={"REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE": "default_credentials"}
    )
    assert nested == (
        "azure",
        {
            "container": "c",
            "credentials": {"type": "default_credentials"},
            "realm": "core.windows.net",
            "rootdirectory": "",
        },
    )
    # Other sections' variables are not the storage's; os.environ is the default environment.
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", ":6000")
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", str(tmp_path / "env"))
    assert blobdrivers.from_config({"filesystem": None}).root == str(tmp_path / "env")  # type: ignore[attr-defined]
    # A variable that adds a second driver makes two, which distribution refuses too.
    with pytest.raises(ConfigError, match="names 2 drivers"):
        blobdrivers.from_config({"filesystem": None}, env={"REGISTRY_STORAGE_S3_BUCKET": "b"})
    with pytest.raises(ConfigError, match="REGISTRY_STORAGE_S3 must give a mapping"):
        blobdrivers.from_config(s3, env={"REGISTRY_STORAGE_S3": "[1]"})


def test_create_and_from_url_keep_the_library_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert blobdrivers.create("filesystem").root == str(tmp_path / "blobdrivers")  # type: ignore[attr-defined]
    gcs = {"bucket": "bucketname", "endpoint": "http://127.0.0.1:1"}
    assert blobdrivers.create("gcs", gcs).chunk_size == 16 * 1024 * 1024
    # distribution's gcs.go defaultChunkSize (16 MiB; its older docs said 5 MiB) is the library's too.
    assert blobdrivers.from_config({"gcs": gcs}, env={}).chunk_size == 16 * 1024 * 1024
    with pytest.raises(ConfigError, match=r"unknown parameter.*'maxthreads'"):
        blobdrivers.create("filesystem", {"maxthreads": 100})


def test_an_ignored_parameter_warns_once_and_a_typo_fails(caplog: pytest.LogCaptureFixture) -> None:
    blobdrivers.from_config({"s3": {"bucket": "bucketname", "loglevel": "debug", "v4auth": True}}, env={})
    assert len(_warnings(caplog)) == 1
    assert "'loglevel' is ignored" in _warnings(caplog)[0]
    with pytest.raises(ConfigError, match=r"unknown parameter.*'rootdirectoy'"):
        blobdrivers.from_config({"filesystem": {"rootdirectoy": "/x"}}, env={})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "s3:\n  secretkey: hunter2\n  bad: [",
            r"the configuration text is not valid YAML: .* at line \d+, column \d+",
        ),
        ("/nonexistent/config.yml", "cannot read the configuration file '/nonexistent/config.yml': No such file"),
        ({"version": "0.1", "http": {}}, "the configuration has no 'storage' section"),
        ({"cache": {}, "delete": {}}, "names no driver; it must name exactly one driver"),
        ({"s3": {"secretkey": "hunter2"}, "filesystem": {}}, r"names 2 drivers \('filesystem', 's3'\)"),
        ({"inmemory": "x"}, "must be a mapping"),
        ("storage: [s3]", "the 'storage' section must be a mapping"),
        (42, "must be a mapping, YAML text or a file path"),
    ],
)
def test_config_errors_are_one_line(source: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        blobdrivers.from_config(source, env={})
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match="environment variable REGISTRY_STORAGE_S3_SECRETKEY is not valid YAML"
    ) as caught:
        blobdrivers.from_config({"s3": {}}, env={"REGISTRY_STORAGE_S3_SECRETKEY": "[hunter2"})
    assert "hunter2" not in str(caught.value)


def test_yaml_is_needed_only_for_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert blobdrivers.from_config({"inmemory": None}, env={}).name == "inmemory"
    with pytest.raises(ConfigError, match=r'needs PyYAML, which is not installed: pip install "blobdrivers\[config\]"'):
        blobdrivers.from_config("inmemory: {}", env={})


# ---------------------------------------------------------------------- invalid bucket names say why


@pytest.mark.parametrize(
    ("driver", "params", "message"),
    [
        ("s3", {"bucket": "my/bucket"}, "bucket name 'my/bucket' is invalid: it holds a '/'"),
        ("s3", {"bucket": "my bucket"}, "bucket name 'my bucket' is invalid: it holds a blank or control character"),
        ("s3", {"bucket": "b\x00"}, "it holds a blank or control character, which no S3-compatible service takes"),
        ("s3", {"bucket": "b" * 256}, r"bucket name 'bbbb.*\(258 characters\) is invalid: it is over 255 bytes"),
        ("gcs", {"bucket": "My Bucket"}, "bucket name 'My Bucket' is invalid: it holds a blank or control character"),
        (
            "oss",
            {"bucket": "My_Bucket", "accesskeyid": "id", "accesskeysecret": "key", "region": "oss-cn-beijing"},
            "bucket name 'My_Bucket' is invalid: OSS bucket names are 3-63 characters",
        ),
        (
            "azure",
            {"container": "My_Container", "accountname": "account", "accountkey": "a2V5"},
            "container name 'My_Container' is invalid: Azure container names are 3-63 characters",
        ),
    ],
)
def test_invalid_bucket_names_say_why(driver: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        blobdrivers.create(driver, params)


@pytest.mark.parametrize(
    "bucket", ["My_Legacy_Bucket", "ab", "x" * 100, "arn:aws:s3:us-west-2:123456789012:accesspoint/ap"]
)
def test_bucket_names_distribution_takes_are_taken(bucket: str, no_network: None) -> None:
    assert blobdrivers.create("s3", {"bucket": bucket, "region": "us-east-1"}).bucket == bucket
    gcs = {"bucket": bucket.lower(), "endpoint": "http://127.0.0.1:1"}
    assert blobdrivers.from_config({"gcs": gcs}, env={}).name == "gcs"


def test_the_server_refusing_a_bucket_name_says_awss_rule() -> None:
    from botocore.exceptions import ClientError

    from blobdrivers.drivers.s3.errors import translate

    refusal = ClientError({"Error": {"Code": "InvalidBucketName"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Put")
    error = translate(refusal, "/a", "My_Legacy_Bucket")
    assert error is not None and "\n" not in str(error)
    assert "refuses the bucket name 'My_Legacy_Bucket' (InvalidBucketName): AWS bucket names are 3-63" in str(error)


# ---------------------------------------------------------------------- the documentation's tables


def _default(value: Any) -> str:
    if value is tables.NO_DEFAULT:
        return ""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f'`"{value}"`' if value == "" else f"`{value}`"


def render(driver: str) -> str:
    """The table docs/configuration.md gives for ``driver``, from the code's table."""
    lines = ["| Parameter | Here | Distribution's default (applied by `from_config`) |", "|---|---|---|"]
    for param in tables.TABLES[driver]:
        here = ("ignored: " if param.ignored else "honoured: ") + param.here
        if param.quiet:
            here += f" (no warning for {_default(param.quiet[0])})"
        lines.append(f"| `{param.name}` | {here} | {_default(param.default)} |")
    if not tables.TABLES[driver]:
        ours = "`name`, `rootdirectory` and `chunksize` are this library's"
        lines.append(f"| (none) | distribution documents no parameters; {ours} | |")
    return "\n".join(lines)


@pytest.mark.parametrize("driver", ["filesystem", "inmemory", "s3", "azure", "gcs", "oss"])
def test_the_documented_table_is_the_code_table(driver: str) -> None:
    text = DOC.read_text()
    begin, end = f"<!-- table {driver} -->\n", f"\n<!-- end {driver} -->"
    assert begin in text and end in text, f"docs/configuration.md has no table for {driver}"
    written = text.split(begin, 1)[1].split(end, 1)[0]
    assert written == render(driver), f"docs/configuration.md's {driver} table should read:\n{render(driver)}"


# ---------------------------------------------------------------------- adversarial input: no leak, no bomb

SECRET = "Sup3rS3cretVal"


@pytest.mark.parametrize(
    ("source", "env", "where"),
    [
        (
            {"s3": {"bucket": "bucketname"}},
            {"REGISTRY_STORAGE_S3_SECRETKEY": f"!{SECRET}"},
            "REGISTRY_STORAGE_S3_SECRETKEY",
        ),
        (
            {"s3": {"bucket": "bucketname"}},
            {"REGISTRY_STORAGE_S3_SECRETKEY": f"*{SECRET}"},
            "REGISTRY_STORAGE_S3_SECRETKEY",
        ),
        (f"storage:\n  s3:\n    bucket: b\n    secretkey: !{SECRET}\n", {}, "line 4, column 16"),
        (f"storage:\n  s3:\n    bucket: b\n    secretkey: *{SECRET}\n", {}, "line 4, column 16"),
        (f"storage:\n  s3:\n    secretkey: !!python/object:{SECRET} x\n", {}, "line 3"),
    ],
)
def test_yaml_errors_say_where_and_what_kind_never_the_text(source: Any, env: dict[str, str], where: str) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML") as caught:
        blobdrivers.from_config(source, env=env)
    message = str(caught.value)
    assert SECRET not in message and where in message and "\n" not in message
    assert re.search(r"(constructor for the tag|undefined alias) at line", message)


def _alias_bomb(depth: int, parameter: str) -> str:
    """A small YAML text whose ``parameter`` stands for 9**depth strings through nested aliases."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    body = "\n".join("  " + line for line in lines)
    return f"x:\n{body}\nstorage:\n  filesystem:\n    rootdirectory: /tmp/x\n    {parameter}: *a{depth - 1}\n"


@pytest.mark.parametrize("parameter", ["maxthreads", "fsync", "rootdirectory"])
def test_an_alias_bomb_is_refused_quickly_with_a_short_message(parameter: str) -> None:
    text = _alias_bomb(9, parameter)
    assert len(text) < 600
    with pytest.raises(ConfigError, match="expands to more than 100,000 values through its aliases") as caught:
        blobdrivers.from_config(text, env={})
    assert len(str(caught.value)) < 200


def test_aliases_within_bounds_and_self_reference() -> None:
    text = "base: &b {rootdirectory: /tmp/x}\nstorage:\n  filesystem: *b\n"
    assert blobdrivers.from_config(text, env={}).name == "filesystem"
    with pytest.raises(ConfigError, match="contains itself"):
        blobdrivers.from_config("storage:\n  filesystem:\n    fsync: &a [*a]\n", env={})


def test_values_in_messages_are_bounded() -> None:
    shared = ["x" * 100] * 100
    with pytest.raises(ConfigError) as caught:
        blobdrivers.create("filesystem", {"rootdirectory": "/tmp/x", "fsync": [shared] * 100})
    assert "(a list)" in str(caught.value) and len(str(caught.value)) < 200
    with pytest.raises(ConfigError) as caught:
        blobdrivers.create("s3", {"bucket": "bucketname", "chunksize": "9" * 10_000})
    assert "10,002 characters" in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize("value", ["off", "Off", "OFF", "false", "'off'"])
def test_loglevel_off_is_quiet_as_yaml_reads_it(value: str, caplog: pytest.LogCaptureFixture) -> None:
    blobdrivers.from_config(f"s3:\n  bucket: bucketname\n  region: us-east-1\n  loglevel: {value}\n", env={})
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("driver", "params", "key"),
    [
        ("s3", {"bucket": "bucketname", "region": "us-east-1"}, "keyid"),
        (
            "oss",
            {"bucket": "bucketname", "region": "oss-cn-beijing", "accesskeyid": "i", "accesskeysecret": "s"},
            "encryptionkeyid",
        ),
    ],
)
def test_a_kms_key_without_encrypt_is_ignored_with_one_warning(
    driver: str, params: dict[str, Any], key: str, caplog: pytest.LogCaptureFixture, no_network: None
) -> None:
    store: Any = blobdrivers.from_config({driver: {**params, "encrypt": False, key: "kms-key"}}, env={})
    written = getattr(store, "write_args", None) or getattr(store, "create_headers", {})
    assert "kms-key" not in str(written) and "AES256" not in str(written)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"storage driver {driver!r}: parameter {key!r} is ignored: 'encrypt' is not true"]


@pytest.mark.parametrize(
    "extra",
    [{}, {"credentials": {"type": "default_credentials"}}, {"credentials": {"type": "weird", "secret": SECRET}}],
)
def test_azure_without_a_key_uses_default_credentials(
    extra: dict[str, Any], no_network: None, caplog: pytest.LogCaptureFixture
) -> None:
    store: Any = blobdrivers.from_config({"azure": {"accountname": "acct", "container": "cont", **extra}}, env={})
    assert store._auth.credentials["type"] == "default_credentials"
    assert type(store._auth.sdk_credential()).__name__ == "DefaultAzureCredential"
    assert SECRET not in caplog.text and SECRET not in repr(store)
    assert ("not client_secret: using default credentials" in caplog.text) == ("weird" in str(extra))


def test_azure_default_credentials_without_azure_identity_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from blobdrivers.drivers.azure import auth

    monkeypatch.setattr(auth, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"default credentials: .*needs azure-identity.*pip install azure-identity"):
        blobdrivers.from_config({"azure": {"accountname": "acct", "container": "cont"}}, env={})


@pytest.mark.parametrize("given", ["accesskey", "secretkey"])
def test_a_lone_s3_key_is_ignored_for_the_default_chain(
    given: str, no_network: None, caplog: pytest.LogCaptureFixture
) -> None:
    store: Any = blobdrivers.from_config({"s3": {"bucket": "bucketname", "region": "us-east-1", given: SECRET}}, env={})
    assert store.connection.accesskey is None and store.connection.secretkey is None
    assert f"parameter {given!r} is ignored without" in caplog.text and SECRET not in caplog.text


def test_parameters_distributions_code_reads_are_taken(no_network: None, caplog: pytest.LogCaptureFixture) -> None:
    s3: Any = blobdrivers.from_config(
        {"s3": {"bucket": "b1", "region": "us-east-1", "accesskey": "a", "secretkey": "s", "usefipsendpoint": True}},
        env={},
    )
    assert s3.connection.fips is True
    assert s3.client.meta.config.use_fips_endpoint is True
    gcs = {"bucket": "b1", "endpoint": "http://127.0.0.1:1", "maxconcurrency": 500, "useragent": "reg/1"}
    store: Any = blobdrivers.from_config({"gcs": {**gcs, "disablekeepalives": False}}, env={})
    assert store.concurrency == 256
    assert "'maxconcurrency' 500 is more than 256: using 256" in caplog.text
    assert [m for m in _warnings(caplog)] == [
        "storage driver 'gcs': parameter 'useragent' is ignored: " + tables.GCS[-2].here
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("storage:\n  s3: {1: x}\n", "the parameters of driver 's3' must have names, not 1"),
        ("{1: {}}", "the storage configuration names a driver 1, not a name"),
        ("my:config.yml", "cannot read the configuration file 'my:config.yml': No such file"),
    ],
)
def test_odd_keys_and_colon_paths_fail_clearly(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        blobdrivers.from_config(source, env={})


def test_an_existing_file_wins_over_yaml_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("my:config.yml").write_text(f"storage:\n  filesystem:\n    rootdirectory: {tmp_path}/r\n")
    Path("x: y").write_text("inmemory: {}\n")
    assert blobdrivers.from_config("my:config.yml", env={}).name == "filesystem"
    assert blobdrivers.from_config("x: y", env={}).name == "inmemory"


def test_numbers_and_dates_are_taken_as_text_for_string_parameters(no_network: None) -> None:
    text = "s3:\n  bucket: 2024-01-01\n  region: us-east-1\n  useragent: 1.5\n"
    store: Any = blobdrivers.from_config(text, env={})
    assert (store.bucket, store.connection.useragent) == ("2024-01-01", "1.5")
    with pytest.raises(ConfigError, match="invalid value True for parameter 'useragent': expected a string"):
        blobdrivers.from_config(text.replace("1.5", "yes"), env={})


def test_azure_client_secret_fields_must_be_strings() -> None:
    credentials = {"type": "client_secret", "clientid": "c", "tenantid": "t", "secret": [SECRET]}
    with pytest.raises(ConfigError, match="type client_secret needs secret") as caught:
        blobdrivers.from_config(
            {"azure": {"accountname": "acct", "container": "cont", "credentials": credentials}}, env={}
        )
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("text", "secure"), [("t", True), ("T", True), ("f", False), ("F", False)])
def test_booleans_as_gos_parsebool_reads_them(text: str, secure: bool, no_network: None) -> None:
    store: Any = blobdrivers.from_config(
        {"s3": {"bucket": "bucketname", "region": "us-east-1", "secure": text}}, env={}
    )
    assert store.connection.secure is secure
