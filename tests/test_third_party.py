"""Third-party drivers are first-class: an installed distribution's driver gets its URL schemes everywhere.

The distribution is a real ``.dist-info`` folder with an ``entry_points.txt`` on
``sys.path`` (and ``PYTHONPATH`` for the subprocesses), publishing the drivers
of ``tests/fake_drivers/third_party.py``. Also here: the conformance command's
early URL resolution, its report, and the suite's one report per failing test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import blobdrivers
from blobdrivers import cli, factory
from blobdrivers.capabilities import Capability
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import ConfigError, DriverNotFoundError, UnsupportedMethodError
from tests.fake_drivers.third_party import MyDriver

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_SCHEMES = {"filesystem": ("file",), "inmemory": ("memory",), "s3": ("s3",), "azure": ("azure",)}
BUILTIN_SCHEMES |= {"gcs": ("gs",), "oss": ("oss",)}


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution ``mydriver-pkg`` publishing two drivers by entry point; the folder holding it."""
    site = tmp_path / "site"
    info = site / "mydriver_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mydriver-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[blobdrivers.drivers]\n"
        "mydriver = tests.fake_drivers.third_party:MyDriver\n"
        "fnstore = tests.fake_drivers.third_party:make_fn_store\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _run(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=_env(site) | env
    )


# ---------------------------------------------------------------------- URL schemes


def test_entry_point_drivers_are_listed_with_their_schemes(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drivers", "--json"]) == 0
    rows = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["mydriver"]["scheme"] == "mydriver://, mine://" and rows["mydriver"]["status"] == "ok"
    assert rows["fnstore"]["scheme"] == "fnstore://"
    assert factory.driver_status("mydriver").schemes == ("mydriver", "mine")
    assert cli.main(["drivers"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mydriver"))
    assert "mydriver://" in line and " ok" in line


def test_from_url_reaches_entry_point_drivers(installed: Path) -> None:
    store = blobdrivers.from_url("mydriver://tp-a/sub?chunksize=1048576")
    assert isinstance(store, MyDriver) and store.identity().endswith("/sub")
    store.put("/x", b"data")
    assert blobdrivers.from_url("mine://tp-a/sub").get("/x") == b"data"  # its second scheme, the same store
    assert factory.resolve_url("fnstore:///tp-b") == ("fnstore", {"name": "tp-b"})  # the function's own mapping
    assert isinstance(blobdrivers.from_url("fnstore:///tp-b"), MyDriver)
    with pytest.raises(ConfigError, match="unsupported URL scheme 'nosuch'"):
        blobdrivers.from_url("nosuch://x")


def test_register_declares_schemes_for_classes_and_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # registrations end with the test
    blobdrivers.register("regclass", MyDriver)  # the class's own url_schemes
    assert isinstance(blobdrivers.from_url("mine://reg-a"), MyDriver)
    blobdrivers.register("regfn", lambda params: MyDriver(**params), schemes=("regfn",))
    assert blobdrivers.from_url("regfn://?name=reg-b").store_identity() == "mydriver://reg-b"
    blobdrivers.register("lazy", "tests.fake_drivers.third_party:MyDriver", schemes=("lazy",))
    assert isinstance(blobdrivers.from_url("lazy://reg-c"), MyDriver)


def test_builtin_drivers_declare_their_schemes_on_the_class() -> None:
    for name, schemes in BUILTIN_SCHEMES.items():
        assert factory.driver_status(name).schemes == schemes
        try:
            driver_class = factory._load(name)
        except DriverNotFoundError:
            continue  # its SDK is not installed here
        assert isinstance(driver_class, type) and driver_class.url_schemes == schemes


#: What each built-in driver lacks; a new Capability member must be placed here for each of them.
LACKING = {
    "filesystem": {"SIGNED_READ_URLS", "SIGNED_PUT_URLS", "SERVER_SIDE_CAT"},
    "inmemory": {"SIGNED_READ_URLS", "SIGNED_PUT_URLS"},
    "s3": set(),
    "azure": set(),
    "gcs": {"SIGNED_PUT_URLS", "CONDITIONAL_STREAMED_COMMIT"},
    "oss": {"IF_MATCH"},
}


def test_builtin_drivers_declare_their_capabilities() -> None:
    assert len(Capability) == 7, "a new capability: decide for each built-in driver in LACKING"
    for name, lacking in LACKING.items():
        try:
            driver_class = factory._load(name)
        except DriverNotFoundError:
            continue  # its SDK is not installed here
        assert isinstance(driver_class, type) and issubclass(driver_class, blobdrivers.StorageDriver)
        assert {c.name for c in Capability} - {c.name for c in driver_class.declared_capabilities} == lacking


def test_scheme_lookup_imports_no_other_sdk() -> None:
    code = (
        "import sys, blobdrivers; blobdrivers.from_url('memory://x'); "
        "print(sorted(m for m in ('boto3', 'oss2', 'azure.storage.blob', 'google.cloud.storage') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_conformance_command_reaches_an_entry_point_driver(installed: Path, tmp_path: Path) -> None:
    done = _run(["-m", "blobdrivers", "conformance", "-v", "mydriver://tp-cli", "-k", "test_put_get"], installed, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "blobdrivers store: mydriver://tp-cli (MyDriver(name='tp-cli'))" in done.stdout
    assert "signed GET/HEAD URLs" in done.stdout  # among the capabilities not declared
    assert "test_put_get[empty] PASSED" in done.stdout  # -v names the tests


def test_pytest_plugin_reaches_an_entry_point_driver(installed: Path, tmp_path: Path) -> None:
    args = ["-m", "pytest", "-p", "no:cacheprovider", "-q", "--blobdrivers-url", "mydriver://tp-pytest"]
    done = _run([*args, "-k", "test_put_get or capabilit"], installed, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout and "failed" not in done.stdout


@pytest.fixture
def troubled(installed: Path) -> Path:
    """Beside ``installed``'s drivers: one claiming ``s3``, one failing to import, one refusing URL parameters."""
    (installed / "troubled-1.0.dist-info").mkdir()
    (installed / "troubled-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: troubled\nVersion: 1\n"
    )
    (installed / "troubled-1.0.dist-info" / "entry_points.txt").write_text(
        "[blobdrivers.drivers]\n"
        "aaa = tests.fake_drivers.third_party:Hijack\n"
        "broken = tests.fake_drivers.no_such_module:Driver\n"
        "strict = tests.fake_drivers.third_party:Strict\n"
    )
    factory._entry_point_cache.clear()
    return installed


def test_a_taken_scheme_is_refused_to_registrations_and_entry_points(
    troubled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # registrations end with the test
    with pytest.raises(ConfigError, match="cannot register driver 'aaa': scheme s3 is taken by s3"):
        blobdrivers.register("aaa", MyDriver, schemes=("s3", "memory"))
    with pytest.raises(ConfigError, match="scheme memory is taken by inmemory"):
        blobdrivers.register("zzz", MyDriver, schemes=("memory",))
    assert factory.resolve_url("s3://bucket-x/p")[0] == "s3"
    status = factory.driver_status("aaa")
    assert (status.status, status.problem, status.schemes) == ("unavailable", "scheme s3 is taken by s3", ())
    with pytest.raises(ConfigError, match="unsupported URL scheme 'hijack'"):
        factory.resolve_url("hijack://x")  # the refused entry point names no scheme at all
    blobdrivers.register("mine2", MyDriver, schemes=("mine2",))
    blobdrivers.register("mine2", MyDriver, schemes=("mine3",))  # the same name again replaces it
    assert factory.resolve_url("mine3://a")[0] == "mine2"
    with pytest.raises(ConfigError, match="unsupported URL scheme 'mine2'"):
        factory.resolve_url("mine2://a")


def test_a_broken_entry_point_is_named_with_its_error_and_every_scheme_is_listed(troubled: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        factory.resolve_url("broken://x")
    assert "entry point 'broken' is unavailable: failed to load: ModuleNotFoundError" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        factory.resolve_url("nosuch://x")
    message = str(caught.value)
    assert "known schemes: azure, file, fnstore, gs, memory, mine, mydriver, oss, s3, strict;" in message
    assert "unavailable entry points: aaa (scheme s3 is taken by s3); broken (failed to load: " in message
    assert factory.driver_status("broken").status == "unavailable"


def test_a_constructor_error_of_any_kind_is_one_line_and_exit_2(troubled: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create driver 'strict' from the URL: TypeError: "):
        blobdrivers.from_url("strict://a/root")
    done = _run(["-m", "blobdrivers", "conformance", "strict://a/root"], troubled, ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "cannot create driver 'strict' from the URL: TypeError: " in done.stderr


def test_a_constructor_error_never_repeats_a_parameter_value(monkeypatch: pytest.MonkeyPatch) -> None:
    class Quoting(InMemoryDriver):
        url_schemes = ("quoting",)

        def __init__(self, **params: Any) -> None:
            raise ValueError(f"login refused for password {params.get('password')}")

    monkeypatch.setattr(factory, "_registry", dict(factory._registry))
    factory.register("quoting", Quoting)
    with pytest.raises(ConfigError) as caught:
        blobdrivers.from_url("quoting://x?password=hunter2-secret")
    expected = "cannot create driver 'quoting' from the URL: ValueError: login refused for password ***"
    assert str(caught.value) == expected
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, "the chain would quote it again"


def test_a_registration_naming_a_missing_attribute_is_a_driver_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))
    blobdrivers.register("badattr", "tests.fake_drivers.third_party:NoSuchClass", schemes=("badattr",))
    with pytest.raises(DriverNotFoundError, match=r"module 'tests\.fake_drivers\.third_party' has no 'NoSuchClass'"):
        blobdrivers.create("badattr")
    with pytest.raises(DriverNotFoundError, match="has no 'NoSuchClass'"):
        blobdrivers.from_url("badattr://x")


@pytest.mark.parametrize("args", [[], ["--", "--blobdrivers-url", ""]], ids=["no URL", "empty URL"])
def test_the_default_store_is_named_in_the_header(args: list[str], tmp_path: Path) -> None:
    done = _run(["-m", "blobdrivers", "conformance", "-k", "test_put_get", *args], tmp_path, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^blobdrivers store: filesystem:///\S*blobdrivers-conformance-", done.stdout, re.MULTILINE)
    assert "blobdrivers capabilities tested: conditional commit of a streamed writer, if_match" in done.stdout


# ---------------------------------------------------------------------- early resolution


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://x", "unsupported URL scheme 'nosuch'"),
        ("memory://x?nosuch=1", "unknown parameter"),
        ("s3://AKIA:topsecret@bucket/x", "credentials in the URL"),
    ],
)
def test_a_bad_url_is_one_line_and_exit_2(url: str, message: str, tmp_path: Path) -> None:
    done = _run(["-m", "blobdrivers", "conformance", url], tmp_path, ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr
    assert "topsecret" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_the_pytest_plugin_refuses_a_bad_url_at_configure_time(tmp_path: Path) -> None:
    done = _run(["-m", "pytest", "-p", "no:cacheprovider", "--blobdrivers-url", "nosuch://x"], tmp_path, tmp_path)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unsupported URL scheme 'nosuch'" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------- one report per test

SUITE = """
import pytest
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.testing import DriverConformance


class TestLeaks(DriverConformance):
    @pytest.fixture
    def driver(self):
        return InMemoryDriver()

    def test_fails_and_leaves_a_file(self, store):
        store.put("/left", b"x")
        assert False, "the test's own failure"

    def test_passes_and_leaves_a_file(self, store):
        store.put("/left", b"x")
"""


@pytest.mark.parametrize("autoload", ["1", ""], ids=["plugin autoloaded", "plugin not loaded"])
def test_a_failing_test_is_reported_once_and_a_passing_one_still_for_leftovers(tmp_path: Path, autoload: str) -> None:
    (tmp_path / "test_leaks.py").write_text(textwrap.dedent(SUITE))
    args = ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error", "-k", "and_leaves_a_file", "test_leaks.py"]
    done = _run(args, tmp_path, tmp_path, PYTEST_DISABLE_PLUGIN_AUTOLOAD="" if autoload else "1")
    assert "1 failed, 1 passed, " in done.stdout and " 1 error in" in done.stdout, done.stdout
    assert "ERROR test_leaks.py::TestLeaks::test_passes_and_leaves_a_file" in done.stdout
    assert "ERROR test_leaks.py::TestLeaks::test_fails_and_leaves_a_file" not in done.stdout


RUN_MEMORY = (
    "from blobdrivers.testing import run_conformance as run; "
    "raise SystemExit(run('memory://x', extra_args=['-k', 'get']))"
)


def test_the_suite_needs_no_plugin_for_its_declarations(tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(textwrap.dedent(SUITE))
    args = [
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        "-W",
        "error",
        "-k",
        "append or large",
        "test_leaks.py",
    ]
    done = _run(args, tmp_path, tmp_path, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "multi-GiB test: run with --blobdrivers-large" in done.stdout and "passed" in done.stdout
    done = _run(["-c", RUN_MEMORY], tmp_path, tmp_path, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0 and "blobdrivers store: inmemory://x" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------------- capabilities

BROKEN_CONDITIONS = """
import uuid
import pytest
from blobdrivers.testing import DriverConformance
from tests.fake_drivers.third_party import IgnoresCommitConditions, IgnoresMoveIfMatch, PublishesOnCancel


class TestMove(DriverConformance):
    @pytest.fixture
    def driver(self):
        return IgnoresMoveIfMatch(name=uuid.uuid4().hex)


class TestCommit(DriverConformance):
    @pytest.fixture
    def driver(self):
        return IgnoresCommitConditions(name=uuid.uuid4().hex)


class TestCancel(DriverConformance):
    @pytest.fixture
    def driver(self):
        return PublishesOnCancel(name=uuid.uuid4().hex)
"""


def _failed_in_broken_suite(tmp_path: Path, selection: str) -> list[str]:
    """The tests of ``BROKEN_CONDITIONS`` matching ``selection`` that fail."""
    (tmp_path / "test_broken.py").write_text(textwrap.dedent(BROKEN_CONDITIONS))
    args = ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", "-k", selection, "test_broken.py"]
    done = _run(args, tmp_path, tmp_path)
    return sorted(re.findall(r"^FAILED test_broken.py::(\S+)", done.stdout, flags=re.MULTILINE))


def test_each_declared_condition_is_tested_on_put_move_and_commit_without_other_capabilities(tmp_path: Path) -> None:
    failed = _failed_in_broken_suite(tmp_path, "(TestMove or TestCommit) and condition")
    assert failed == [
        "TestCommit::test_false_condition_fails_and_changes_nothing[commit-if_match]",
        "TestCommit::test_false_condition_fails_and_changes_nothing[commit-if_none_match]",
        "TestCommit::test_false_condition_fails_and_changes_nothing[streamed_commit-if_match]",
        "TestCommit::test_false_condition_fails_and_changes_nothing[streamed_commit-if_none_match]",
        "TestMove::test_false_condition_fails_and_changes_nothing[move-if_match]",
    ]


def test_an_undeclared_capability_is_refused_naming_it_before_any_hook() -> None:
    class Bare(MyDriver):
        declared_capabilities = frozenset({Capability.IF_NONE_MATCH})

        def _put(self, full: str, source: object, conditions: object) -> None:
            raise AssertionError("refused calls never reach a hook")

        def _url_for(self, full: str, method: str, expires_in: int) -> str:
            raise AssertionError("refused calls never reach a hook")

    store = Bare()
    for call, capability in [
        (lambda: store.put("/a", b"x", if_match="etag"), "if_match"),
        (lambda: store.url_for("/a"), "signed GET/HEAD URLs"),
        (lambda: store.url_for("/a", method="PUT"), "signed PUT URLs"),
        (lambda: store.writer("/a", append=True), "resumable writers"),
    ]:
        with pytest.raises(UnsupportedMethodError, match=capability):
            call()


def test_configuration_narrows_capabilities() -> None:
    from blobdrivers.drivers.azure import AzureDriver  # the test install has the SDK: no skip

    store = AzureDriver(accountname="acct", container="cont", sastoken="sv=2020&sig=abc")
    assert Capability.SIGNED_READ_URLS not in store.capabilities
    assert Capability.SERVER_SIDE_CAT in store.capabilities
    with pytest.raises(UnsupportedMethodError, match="signed GET/HEAD URLs"):
        store.url_for("/a")


# ---------------------------------------------------------------------- the documented driver

RUN_SUITE = (
    "import blobdrivers, dictdriver; blobdrivers.register('dict', dictdriver.DictDriver); "
    "from blobdrivers.testing import run_conformance; raise SystemExit(run_conformance('dict://doc'))"
)


def test_the_driver_in_writing_a_driver_is_typed_and_passes_the_suite(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "writing-a-driver.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    code = next(block for block in blocks if block.startswith("# dictdriver.py"))
    (tmp_path / "dictdriver.py").write_text(code)
    env = {**_env(tmp_path), "MYPYPATH": str(ROOT)}
    typed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "dictdriver.py"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr
    done = _run(["-c", RUN_SUITE], tmp_path, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout
    assert "blobdrivers store: dict://doc" in done.stdout


def test_writing_a_driver_documents_every_type_a_driver_meets() -> None:
    text = (ROOT / "docs" / "writing-a-driver.md").read_text()
    for name in ("Source", "Conditions", "RangeReader", "WriterBackend", "FileInfo", "Capability", "Params"):
        assert f"- **`{name}`**" in text, name
    for capability in Capability:
        assert f"| `{capability.name}` |" in text, capability


# ---------------------------------------------------------------------- missing SDKs


@pytest.mark.parametrize(
    ("driver", "module", "package"),
    [("azure", "azure.core", "azure-storage-blob"), ("gcs", "google.auth", "google-cloud-storage")],
)
def test_a_missing_sdk_dependency_names_the_sdk_and_the_extra(driver: str, module: str, package: str) -> None:
    """A sub-dependency missing (``azure.core``, ``google.auth``) names the SDK's pip package, not the module."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import blobdrivers\n"
        f"try: blobdrivers.create({driver!r}, {{}})\n"
        "except blobdrivers.errors.DriverNotFoundError as exc: print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT
    )
    expected = f"driver {driver!r} needs {package} and its dependencies (module '{module}"  # or a submodule
    assert expected in done.stdout and f'pip install "blobdrivers[{driver}]"' in done.stdout, done.stdout


def test_a_missing_module_of_the_drivers_own_package_does_not_blame_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))
    blobdrivers.register("owntypo", "tests.fake_drivers.own_typo:Driver", sdk="fake-sdk", extra="fake")
    with pytest.raises(DriverNotFoundError, match="cannot be imported: ModuleNotFoundError: ") as caught:
        blobdrivers.create("owntypo")
    assert "fake-sdk" not in str(caught.value) and "pip install" not in str(caught.value)
    status = factory.driver_status("owntypo")
    assert status.status == "unavailable" and status.extra is None


def test_core_writer_tests_run_for_a_driver_without_resumable_writers(tmp_path: Path) -> None:
    failed = _failed_in_broken_suite(tmp_path, "TestCancel and (cancel_publishes or state_machine)")
    assert failed == ["TestCancel::test_cancel_publishes_nothing_and_drops_progress"]


def test_an_entry_point_scheme_is_found_without_scanning_entry_points_again(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory._entry_point_cache.clear()
    blobdrivers.from_url("mydriver://cached")
    scans: list[object] = []
    real = factory.entry_points
    monkeypatch.setattr(factory, "entry_points", lambda **kw: scans.append(kw) or real(**kw))
    for _ in range(3):
        assert isinstance(blobdrivers.from_url("mydriver://cached"), MyDriver)
    assert scans == []
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # the registration ends with the test
    blobdrivers.register("other", MyDriver, schemes=("other",))  # a registration may take a scheme: scanned again
    blobdrivers.from_url("mydriver://cached")
    assert len(scans) == 1
