"""The ``blobdrivers`` command line, run in-process through ``main()`` against memory:// and file:// stores."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest

import blobdrivers
from blobdrivers import cli, factory, paths
from blobdrivers.capabilities import Capability
from blobdrivers.cli.progress import Progress, ProgressReader, format_duration, format_size, progress_wanted
from blobdrivers.driver import StorageDriver
from blobdrivers.drivers.filesystem import STAGING, FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from blobdrivers.errors import ConfigError, InvalidPathError, StorageError
from blobdrivers.testing.helpers import payload

COMMANDS = ["drivers", "conformance", "ls", "stat", "get", "put", "cp", "mv", "rm", "url", "cleanup", "sync", "help"]
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No test may reach the user's real default store or inherit a forced progress setting.
    monkeypatch.delenv(cli.ENV_URL, raising=False)
    monkeypatch.delenv("BLOBDRIVERS_PROGRESS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def mem() -> Iterator[str]:
    """URL of a fresh named in-memory store, shared by every main() call of the test."""
    name = f"cli-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    InMemoryDriver._stores.pop(name, None)


@pytest.fixture
def fs(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def local(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ---------------------------------------------------------------------- parser, help, usage errors


def test_module_help_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blobdrivers", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: blobdrivers")
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: blobdrivers {command}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"blobdrivers {blobdrivers.__version__}")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["ls", "--bogus"],
        ["get"],
        ["put", "only-one"],
        ["url", "/a", "--method", "DELETE"],
        ["url", "/a", "--expires", "soon"],
        ["url", "/a", "--expires", "0"],
        ["put", "--if-absent", "--if-match", "x", "a", "/b"],
        ["put", "--", "-x", "/b"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------- locations


def test_location_syntax() -> None:
    assert cli.parse_location("/a/b") == cli.StoreLocation(None, "/a/b")
    assert cli.parse_location("memory://x#/a/b") == cli.StoreLocation("memory://x", "/a/b")
    assert cli.parse_location("memory://x#a") == cli.StoreLocation("memory://x", "/a")
    assert cli.parse_location("s3://b/p?region=r&x=1#/k") == cli.StoreLocation("s3://b/p?region=r&x=1", "/k")
    assert cli.parse_location("file:///srv/s") == cli.StoreLocation("file:///srv/s", "")
    assert cli.parse_endpoint("-") == cli.LocalFile("-")
    assert cli.parse_endpoint("./f") == cli.LocalFile("./f")
    assert cli.parse_endpoint("dir/f") == cli.LocalFile("dir/f")
    assert cli.parse_endpoint("/a") == cli.StoreLocation(None, "/a")
    assert cli.parse_endpoint("memory://x#/a") == cli.StoreLocation("memory://x", "/a")


def test_default_store_is_the_filesystem_default_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "put", local(tmp_path, "f", b"x"), "/d/f")[0] == 0
    assert (tmp_path / "xdg" / "blobdrivers" / "d" / "f").read_bytes() == b"x"
    assert run(capsys, "ls", "/d") == (0, "/d/f\n", "")


def test_store_option_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    src = local(tmp_path, "f", b"x")
    assert run(capsys, "--store", mem, "put", src, "/before")[0] == 0
    assert run(capsys, "put", "--store", mem, src, "/after")[0] == 0
    monkeypatch.setenv(cli.ENV_URL, mem)
    assert run(capsys, "ls") == (0, "/after\n/before\n", "")
    other = f"memory://cli-{uuid.uuid4().hex}"
    assert run(capsys, "ls", "--store", other) == (0, "", "")  # the option wins over the environment
    code, _, err = run(capsys, "--store", f"{mem}#/x", "ls")
    assert code == 2 and "without #PATH" in err


# ---------------------------------------------------------------------- drivers, conformance


def test_drivers_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "drivers")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "file://" in lines["filesystem"] and " ok" in lines["filesystem"]
    assert "memory://" in lines["inmemory"] and " ok" in lines["inmemory"]
    assert "alias of s3" in lines["s3aws"]


def test_drivers_names_the_extra_of_a_missing_sdk(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # the registration ends with the test
    blobdrivers.register("fakesdk", "tests.fake_drivers.missing_sdk:Driver", sdk="fake-sdk", extra="fakesdk")
    code, out, _ = run(capsys, "drivers")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("fakesdk"))
    assert "missing SDK" in line and 'pip install "blobdrivers[fakesdk]"' in line
    code, out, _ = run(capsys, "drivers", "--json")
    rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert rows["fakesdk"]["status"] == "missing SDK" and rows["fakesdk"]["extra"] == "fakesdk"
    assert rows["filesystem"] == {
        "name": "filesystem",
        "scheme": "file://",
        "status": "ok",
        "detail": None,
        "extra": None,
    }


def test_conformance_passes_its_arguments_and_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import blobdrivers.testing

    calls: list[tuple[Any, ...]] = []

    def fake(url: str | None, *, large: bool = False, verbose: bool = False, extra_args: Any = ()) -> int:
        calls.append((url, large, list(extra_args)))
        return 3

    monkeypatch.setattr(blobdrivers.testing, "run_conformance", fake)
    assert cli.main(["conformance"]) == 3
    assert cli.main(["conformance", "memory://", "--large", "-k", "writer", "-x", "--", "--maxfail", "2"]) == 3
    assert calls == [(None, False, []), ("memory://", True, ["-k", "writer", "-x", "--maxfail", "2"])]


def test_conformance_without_pytest_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.commands, "_pytest_available", lambda: False)
    code, _, err = run(capsys, "conformance", "memory://")
    assert code == 2
    assert 'pip install "blobdrivers[testing]"' in err


def test_conformance_runs_the_suite_in_a_subprocess(tmp_path: Path) -> None:
    def conformance(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "blobdrivers", "conformance", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
        )

    passed = conformance("memory://", "-k", "test_put_get")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "passed" in passed.stdout
    nothing = conformance("memory://", "-k", "no_such_test_anywhere")
    assert nothing.returncode == 5  # pytest's "no tests collected", passed through


# ---------------------------------------------------------------------- ls, stat


@pytest.fixture
def tree(capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str) -> str:
    for path, data in [("/a.txt", b"aaa"), ("/d/b.txt", b"bb"), ("/d/e/c.txt", b"c"), ("/dz", b"zz")]:
        assert cli.main(["put", local(tmp_path, "src", data), f"{mem}#{path}"]) == 0
    capsys.readouterr()
    return mem


def test_ls(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    assert run(capsys, "ls", tree) == (0, "/a.txt\n/d\n/dz\n", "")
    assert run(capsys, "ls", f"{tree}#/d") == (0, "/d/b.txt\n/d/e\n", "")
    assert run(capsys, "ls", f"{tree}#/d/") == (0, "/d/b.txt\n/d/e\n", "")
    assert run(capsys, "ls", f"{tree}#/a.txt") == (0, "/a.txt\n", "")  # ls of a file shows it


def test_ls_long_and_recursive(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    code, out, _ = run(capsys, "ls", "-l", f"{tree}#/d")
    assert code == 0
    first, second = out.splitlines()
    assert first.split()[0:2] == ["-", "2"] and first.endswith(" /d/b.txt")
    assert second.split()[0:2] == ["d", "-"] and second.endswith(" /d/e/")
    assert first.split()[2].endswith("Z")
    code, out, _ = run(capsys, "ls", "-r", tree)
    assert out.splitlines() == ["/a.txt", "/d", "/d/b.txt", "/d/e", "/d/e/c.txt", "/dz"]
    # ls and ls -r print a directory the same way, plain and long.
    assert set(run(capsys, "ls", tree)[1].splitlines()) <= set(out.splitlines())
    assert set(run(capsys, "ls", "-l", tree)[1].splitlines()) <= set(run(capsys, "ls", "-lr", tree)[1].splitlines())
    code, out, _ = run(capsys, "ls", "-lr", f"{tree}#/d")
    assert [line.split()[-1] for line in out.splitlines()] == ["/d/b.txt", "/d/e/", "/d/e/c.txt"]


def test_ls_json(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    code, out, _ = run(capsys, "ls", "--json", tree)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["path"], r["is_dir"], r["size"]) for r in rows] == [
        ("/a.txt", False, 3),
        ("/d", True, 0),
        ("/dz", False, 2),
    ]
    assert rows[0]["etag"] and rows[0]["modified"].endswith("+00:00")
    code, out, _ = run(capsys, "ls", "-r", "--json", f"{tree}#/d/e")
    assert [json.loads(line)["path"] for line in out.splitlines()] == ["/d/e/c.txt"]


def test_ls_errors_and_empty(capsys: pytest.CaptureFixture[str], mem: str) -> None:
    assert run(capsys, "ls", mem) == (0, "", "")
    assert run(capsys, "ls", "-r", mem) == (0, "", "")
    code, out, err = run(capsys, "ls", f"{mem}#/missing")
    assert (code, out) == (1, "")
    assert err.startswith("blobdrivers: error: inmemory:") and "/missing" in err
    code, _, err = run(capsys, "ls", f"{mem}#/bad..//path")
    assert code == 1 and "invalid path" in err
    code, _, err = run(capsys, "ls", "nosuchscheme://x")
    assert code == 1 and "unsupported URL scheme" in err


def test_stat(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    code, out, _ = run(capsys, "stat", f"{tree}#/d/b.txt")
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert code == 0
    assert fields["path"] == "/d/b.txt" and fields["type"] == "file" and fields["size"] == "2"
    assert fields["etag"] != "-"
    code, out, _ = run(capsys, "stat", "--json", f"{tree}#/d")
    info = json.loads(out)
    assert code == 0 and info["is_dir"] is True and info["path"] == "/d" and info["etag"] is None
    code, out, err = run(capsys, "stat", f"{tree}#/nope")
    assert code == 1 and out == "" and "blobdrivers: error:" in err and "Traceback" not in err


# ---------------------------------------------------------------------- get, put


def test_put_and_get_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, fs: str) -> None:
    data = payload(3 * MiB + 17)  # several chunks of the filesystem driver
    assert run(capsys, "put", local(tmp_path, "in.bin", data), f"{fs}#/x/in.bin") == (0, "", "")
    out_path = tmp_path / "out.bin"
    assert run(capsys, "get", f"{fs}#/x/in.bin", str(out_path)) == (0, "", "")
    assert out_path.read_bytes() == data
    assert (tmp_path / "store" / "x" / "in.bin").read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_get_into_directory_and_default_destination(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    assert run(capsys, "put", local(tmp_path, "src", b"content"), f"{mem}#/d/file.txt")[0] == 0
    target = tmp_path / "into"
    target.mkdir()
    assert run(capsys, "get", f"{mem}#/d/file.txt", str(target))[0] == 0
    assert (target / "file.txt").read_bytes() == b"content"
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run(capsys, "get", f"{mem}#/d/file.txt")[0] == 0
    assert (work / "file.txt").read_bytes() == b"content"
    umask = os.umask(0)
    os.umask(umask)
    assert (work / "file.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_get_to_stdout(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, mem: str) -> None:
    data = payload(2 * MiB + 5)
    assert cli.main(["put", local(tmp_path, "src", data), f"{mem}#/blob"]) == 0
    capsysbinary.readouterr()
    assert cli.main(["get", f"{mem}#/blob", "-"]) == 0
    assert capsysbinary.readouterr().out == data


def test_get_errors_leave_no_partial_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, tree: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    code, _, err = run(capsys, "get", f"{tree}#/missing", str(dest / "x"))
    assert code == 1 and "missing" in err
    code, _, err = run(capsys, "get", f"{tree}#/d", str(dest / "x"))
    assert code == 1 and "is a directory" in err
    assert list(dest.iterdir()) == []
    code, _, err = run(capsys, "get", tree, str(dest / "x"))
    assert code == 2 and "URL#/path" in err


def test_put_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mem: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert run(capsys, "put", "-", f"{mem}#/s.txt")[0] == 0
    assert blobdrivers.from_url(mem).get("/s.txt") == b"from stdin"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x")))
    code, _, err = run(capsys, "put", "-", f"{mem}#/dir/")
    assert code == 2 and "name the destination" in err


def test_put_into_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path, tree: str) -> None:
    src = local(tmp_path, "new.txt", b"n")
    assert run(capsys, "put", src, f"{tree}#/d/")[0] == 0  # trailing slash
    assert run(capsys, "put", src, f"{tree}#/d/e")[0] == 0  # existing directory
    assert run(capsys, "put", src, tree)[0] == 0  # the root of a bare URL
    store = blobdrivers.from_url(tree)
    assert [store.get(p) for p in ["/d/new.txt", "/d/e/new.txt", "/new.txt"]] == [b"n"] * 3


def test_put_conditions(capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str) -> None:
    one, two = local(tmp_path, "one", b"1"), local(tmp_path, "two", b"2")
    assert run(capsys, "put", "--if-absent", one, f"{mem}#/tag")[0] == 0
    code, _, err = run(capsys, "put", "--if-absent", two, f"{mem}#/tag")
    assert code == 1 and "blobdrivers: error:" in err
    etag = json.loads(run(capsys, "stat", "--json", f"{mem}#/tag")[1])["etag"]
    assert run(capsys, "put", "--if-match", "not-the-etag", two, f"{mem}#/tag")[0] == 1
    assert run(capsys, "put", "--if-match", etag, two, f"{mem}#/tag")[0] == 0
    assert blobdrivers.from_url(mem).get("/tag") == b"2"


def test_put_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str) -> None:
    code, _, err = run(capsys, "put", str(tmp_path / "absent"), f"{mem}#/x")
    assert code == 1 and "No such file or directory" in err and "Traceback" not in err
    code, _, err = run(capsys, "put", str(tmp_path), f"{mem}#/x")
    assert code == 1 and "local directory" in err
    code, _, err = run(capsys, "put", local(tmp_path, "f", b"x"), f"{mem}#/bad name")
    assert code == 1 and "invalid path" in err


# ---------------------------------------------------------------------- cp, mv


def test_cp_between_stores(capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str, fs: str) -> None:
    data = payload(3 * MiB + 1)
    assert run(capsys, "put", local(tmp_path, "src", data), f"{mem}#/big")[0] == 0
    assert run(capsys, "cp", f"{mem}#/big", f"{fs}#/copies/big") == (0, "", "")
    assert run(capsys, "cp", f"{fs}#/copies/big", f"{mem}#/again/")[0] == 0
    assert blobdrivers.from_url(fs).get("/copies/big") == data
    assert blobdrivers.from_url(mem).get("/again/big") == data


def test_cp_within_one_store_is_a_cat(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tree: str
) -> None:
    cats: list[tuple[str, list[str]]] = []
    real_cat = InMemoryDriver.cat

    def spy(self: InMemoryDriver, path: str, sources: list[str]) -> None:
        cats.append((path, sources))
        real_cat(self, path, sources)

    monkeypatch.setattr(InMemoryDriver, "cat", spy)
    assert run(capsys, "cp", f"{tree}#/a.txt", f"{tree}#/d/") == (0, "", "")
    assert run(capsys, "cp", "-r", f"{tree}#/d/e", f"{tree}#/e2")[0] == 0
    assert cats == [("/d/a.txt", ["/a.txt"]), ("/e2/c.txt", ["/d/e/c.txt"])]
    store = blobdrivers.from_url(tree)
    assert store.get("/d/a.txt") == b"aaa" and store.get("/e2/c.txt") == b"c"


def test_equivalent_urls_are_one_store(capsys: pytest.CaptureFixture[str], tmp_path: Path, fs: str) -> None:
    assert run(capsys, "put", local(tmp_path, "f", b"keep"), f"{fs}#/a")[0] == 0
    # Copy-then-delete between two spellings of one store would delete what it just wrote.
    assert run(capsys, "mv", f"{fs}#/a", f"{fs}/#/a")[0] == 2  # the same file: refused, kept
    assert run(capsys, "mv", f"{fs}#/a", f"{fs}/#/b")[0] == 0
    assert blobdrivers.from_url(fs).get("/b") == b"keep"


def test_cp_local_files_and_stdio(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plain.txt").write_bytes(b"plain")
    assert cli.main(["cp", "plain.txt", f"{mem}#/p"]) == 0
    assert cli.main(["cp", f"{mem}#/p", "./back.txt"]) == 0
    assert Path("back.txt").read_bytes() == b"plain"
    assert cli.main(["cp", "back.txt", "sub-copy.txt"]) == 0
    assert Path("sub-copy.txt").read_bytes() == b"plain"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped")))
    assert cli.main(["cp", "-", f"{mem}#/piped"]) == 0
    capsysbinary.readouterr()
    assert cli.main(["cp", f"{mem}#/piped", "-"]) == 0
    assert capsysbinary.readouterr().out == b"piped"


def test_cp_recursive(capsys: pytest.CaptureFixture[str], tree: str, fs: str) -> None:
    code, _, err = run(capsys, "cp", f"{tree}#/d", f"{fs}#/d")
    assert code == 1 and "cp -r" in err
    assert run(capsys, "cp", "-r", f"{tree}#/d", f"{fs}#/copy") == (0, "", "")
    assert run(capsys, "ls", "-r", f"{fs}#/copy")[1].splitlines() == ["/copy/b.txt", "/copy/e", "/copy/e/c.txt"]
    assert run(capsys, "cp", "-r", tree, fs)[0] == 0  # a whole store
    copied = [info.path for info in blobdrivers.from_url(fs).walk() if not info.is_dir]
    assert copied == ["/a.txt", "/copy/b.txt", "/copy/e/c.txt", "/d/b.txt", "/d/e/c.txt", "/dz"]
    code, _, err = run(capsys, "cp", "-r", f"{tree}#/d", f"{tree}#/d/inside")
    assert code == 2 and "into itself" in err
    code, _, err = run(capsys, "cp", "-r", f"{tree}#/d", "-")
    assert code == 1 and "cannot be written to stdout" in err


def test_cp_usage_errors(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    assert run(capsys, "cp", "-", "-")[0] == 2
    assert run(capsys, "cp", "--if-absent", f"{tree}#/a.txt", "./x")[0] == 2


def test_mv_within_a_store(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    assert run(capsys, "mv", f"{tree}#/a.txt", f"{tree}#/moved.txt") == (0, "", "")
    assert run(capsys, "mv", f"{tree}#/d", f"{tree}#/renamed")[0] == 0
    assert run(capsys, "ls", "-r", tree)[1].splitlines() == [
        "/dz",
        "/moved.txt",
        "/renamed",
        "/renamed/b.txt",
        "/renamed/e",
        "/renamed/e/c.txt",
    ]
    assert run(capsys, "mv", f"{tree}#/dz", f"{tree}#/renamed/e")[0] == 0  # into a directory
    assert blobdrivers.from_url(tree).get("/renamed/e/dz") == b"zz"
    code, _, err = run(capsys, "mv", f"{tree}#/nope", f"{tree}#/x")
    assert code == 1 and "nope" in err
    assert run(capsys, "mv", "--if-absent", f"{tree}#/moved.txt", f"{tree}#/renamed/b.txt")[0] == 1
    assert blobdrivers.from_url(tree).get("/moved.txt") == b"aaa"


def test_mv_across_stores_and_local(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str, fs: str
) -> None:
    assert run(capsys, "mv", f"{tree}#/d", f"{fs}#/d")[0] == 0
    assert [i.path for i in blobdrivers.from_url(fs).walk() if not i.is_dir] == ["/d/b.txt", "/d/e/c.txt"]
    assert run(capsys, "ls", tree)[1].splitlines() == ["/a.txt", "/dz"]
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "mv", f"{tree}#/a.txt", "a-local.txt")[0] == 0
    assert Path("a-local.txt").read_bytes() == b"aaa"
    assert run(capsys, "mv", "a-local.txt", f"{fs}#/from-local")[0] == 0
    assert not Path("a-local.txt").exists()
    assert blobdrivers.from_url(fs).get("/from-local") == b"aaa"
    assert run(capsys, "mv", "-", f"{fs}#/x")[0] == 2


def test_cp_and_mv_between_two_filesystem_roots(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = (tmp_path / "A").as_uri(), (tmp_path / "B").as_uri()
    assert run(capsys, "put", local(tmp_path, "f", b"xx"), f"{a}#/x")[0] == 0
    assert run(capsys, "put", local(tmp_path, "g", b"zz"), f"{a}#/d/z")[0] == 0
    assert run(capsys, "cp", f"{a}#/x", f"{b}#/y") == (0, "", "")
    assert run(capsys, "mv", f"{a}#/x", f"{b}#/moved") == (0, "", "")
    assert run(capsys, "cp", "-r", a, b) == (0, "", "")
    store_a, store_b = blobdrivers.from_url(a), blobdrivers.from_url(b)
    assert [i.path for i in store_a.walk() if not i.is_dir] == ["/d/z"]
    assert {i.path: store_b.get(i.path) for i in store_b.walk() if not i.is_dir} == {
        "/d/z": b"zz",
        "/moved": b"xx",
        "/y": b"xx",
    }
    c = (tmp_path / "C").as_uri()
    assert run(capsys, "sync", "-q", b, c)[0] == 0
    assert sorted(i.path for i in blobdrivers.from_url(c).walk() if not i.is_dir) == ["/d/z", "/moved", "/y"]
    assert [i.path for i in store_a.walk() if not i.is_dir] == ["/d/z"]


def test_reads_and_dry_runs_create_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing, target, source = tmp_path / "missing", tmp_path / "target", tmp_path / "source"
    code, _, err = run(capsys, "stat", missing.as_uri())
    assert code == 1 and err.startswith("blobdrivers: error:")
    assert run(capsys, "ls", "-r", missing.as_uri()) == (0, "", "")
    assert run(capsys, "get", f"{missing.as_uri()}#/x", str(tmp_path / "out"))[0] == 1
    assert run(capsys, "cp", "-r", missing.as_uri(), target.as_uri())[0] == 1
    assert not missing.exists() and not target.exists()
    assert run(capsys, "put", local(tmp_path, "f", b"data"), f"{source.as_uri()}#/a/f")[0] == 0
    assert run(capsys, "sync", "--dry-run", source.as_uri(), target.as_uri())[0] == 0
    assert not target.exists()
    # A mistyped source is an error naming it, not an empty store.
    code, out, err = run(capsys, "sync", "-q", missing.as_uri(), target.as_uri())
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and os.path.realpath(missing) in err and "does not exist" in err
    assert not missing.exists() and not target.exists()
    assert run(capsys, "sync", "-q", source.as_uri(), target.as_uri())[0] == 0  # the first write creates it
    assert blobdrivers.from_url(target.as_uri()).get("/a/f") == b"data"


# ---------------------------------------------------------------------- rm, url


def test_rm(capsys: pytest.CaptureFixture[str], tree: str) -> None:
    assert run(capsys, "rm", f"{tree}#/a.txt") == (0, "", "")
    assert run(capsys, "rm", "-r", f"{tree}#/d") == (0, "", "")  # recursive either way
    assert run(capsys, "ls", "-r", tree)[1] == "/dz\n"
    code, _, err = run(capsys, "rm", f"{tree}#/a.txt", f"{tree}#/dz")
    assert code == 1 and "a.txt" in err  # reported, and the other one still deleted
    assert run(capsys, "ls", tree)[1] == ""
    assert run(capsys, "rm", "-f", f"{tree}#/gone") == (0, "", "")
    code, _, err = run(capsys, "rm", tree)
    assert code == 1 and "root" in err


class _UrlDriver(InMemoryDriver):
    """An in-memory store with fake URLs and a secret, to test url and redaction."""

    name = "urltest"
    url_schemes = ("urltest",)
    url_host_param = "name"
    declared_capabilities = InMemoryDriver.declared_capabilities | {
        Capability.SIGNED_READ_URLS,
        Capability.SIGNED_PUT_URLS,
    }
    secret_params = frozenset({"token"})
    max_url_expiry = 3600

    def __init__(self, **params: Any) -> None:
        self.token = params.pop("token", None)
        super().__init__(**params)
        self._params["token"] = self.token

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        return f"https://blobs.example{full}?method={method}&expires={expires_in}"

    def _delete(self, full: str) -> None:
        cause = RuntimeError(f"DELETE https://blobs.example{full}?sig=SIGNATURE123 token={self.token} failed")
        raise StorageError("delete refused by the service (code 403)") from cause


@pytest.fixture
def urltest(monkeypatch: pytest.MonkeyPatch) -> str:
    blobdrivers.register("urltest", _UrlDriver)
    yield f"urltest://cli-{uuid.uuid4().hex}?token=TOPSECRET42"
    factory._registry.pop("urltest", None)


def test_url(capsys: pytest.CaptureFixture[str], urltest: str, mem: str) -> None:
    assert run(capsys, "url", f"{urltest}#/a/b") == (0, "https://blobs.example/a/b?method=GET&expires=1200\n", "")
    code, out, _ = run(capsys, "url", "--method", "put", "--expires", "1h", f"{urltest}#/a/b")
    assert (code, out) == (0, "https://blobs.example/a/b?method=PUT&expires=3600\n")
    code, _, err = run(capsys, "url", "--expires", "2h", f"{urltest}#/a/b")
    assert code == 1 and "3600" in err
    code, _, err = run(capsys, "url", f"{mem}#/a")
    assert code == 1 and "signed GET/HEAD URLs" in err
    assert run(capsys, "url", urltest)[0] == 2


def test_errors_never_show_secrets(capsys: pytest.CaptureFixture[str], urltest: str) -> None:
    code, out, err = run(capsys, "rm", f"{urltest}#/x")
    assert code == 1 and "code 403" in err and "Traceback" not in err
    code, out, err = run(capsys, "--debug", "rm", f"{urltest}#/x")
    assert code == 1 and "Traceback" in err and "RuntimeError" in err  # --debug shows the SDK cause...
    assert "TOPSECRET42" not in out + err and "SIGNATURE123" not in out + err  # ...masked


def test_sync_never_shows_secrets(capsys: pytest.CaptureFixture[str], tmp_path: Path, urltest: str) -> None:
    source = f"{urltest}&chunksize=65536"  # a secret before another parameter
    target = urltest.replace("cli-", "dst-").replace("TOPSECRET42", "SECRETKEY%2F99")  # quoted in the URL
    blobdrivers.from_url(source).put("/a", b"1")
    blobdrivers.from_url(target).put("/extra", b"2")  # its delete fails, quoting the token in the cause
    outputs = [
        run(capsys, "sync", "-q", source, target),
        run(capsys, "sync", "-q", "--json", "--delete", source, target),
        run(capsys, "sync", "--dry-run", "--json", source, target),
        run(capsys, "sync", f"{source}#/x", target),  # usage errors quote the URL
        run(capsys, "sync", "s3://bucket?accesskey=AKIDSECRET77&secretkey=S3CRETKEY55#/x", target),
    ]
    assert [code for code, _, _ in outputs] == [0, 1, 0, 2, 2]
    text = "".join(out + err for _, out, err in outputs)
    for secret in ("TOPSECRET42", "SECRETKEY", "AKIDSECRET77", "S3CRETKEY55"):
        assert secret not in text
    assert "token=***&chunksize=65536" in text and "secretkey=***" in text
    assert json.loads(outputs[1][1])["target"].endswith("?token=***")


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mem: str) -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(InMemoryDriver, "_stat", interrupted)
    code, _, err = run(capsys, "stat", f"{mem}#/a")
    assert code == 130 and "interrupted" in err and "Traceback" not in err


def test_broken_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str) -> None:
    assert cli.main(["put", local(tmp_path, "f", b"x" * 100), f"{mem}#/f"]) == 0

    class Closed(io.BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(Closed()))
    assert cli.main(["get", f"{mem}#/f", "-"]) == 141


# ---------------------------------------------------------------------- progress


def test_progress_bar_on_transfers_when_forced(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    src = local(tmp_path, "big", payload(3 * MiB))
    assert run(capsys, "put", src, f"{mem}#/big") == (0, "", "")  # not a terminal: no bar
    monkeypatch.setenv("BLOBDRIVERS_PROGRESS", "1")
    code, out, err = run(capsys, "put", src, f"{mem}#/big")
    assert (code, out) == (0, "")
    assert "\r" in err and "/ 3.0 MiB" in err and "%" in err and err.endswith("\n")
    final = err.split("\r")[-1].rstrip()
    assert "big  done  3.0 MiB in " in final and final.endswith("/s)")
    code, _, err = run(capsys, "get", f"{mem}#/big", str(tmp_path / "back"))
    assert code == 0 and "/big" in err and "done" in err
    assert run(capsys, "--quiet", "put", src, f"{mem}#/big") == (0, "", "")
    assert run(capsys, "cp", "-q", f"{mem}#/big", f"{mem}#/c") == (0, "", "")
    monkeypatch.setenv("BLOBDRIVERS_PROGRESS", "0")
    assert run(capsys, "cp", f"{mem}#/big", f"{mem}#/c") == (0, "", "")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_rendering_and_throttling() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = Progress("/blobs/layer.tar", 10 * MiB, stream=stream, clock=clock, width=100)
    clock.now += 1
    progress.update(MiB)  # first update draws
    clock.now += 0.01
    progress.update(MiB)  # too soon: counted, not drawn
    clock.now += 0.2
    progress.update(MiB)
    progress.finish()
    progress.update(MiB)  # after finish: nothing drawn
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[0].startswith("/blobs/layer.tar  [") and "10%" in frames[0] and "1.0 MiB / 10.0 MiB" in frames[0]
    assert "1.0 MiB/s" in frames[0] and "ETA 0:09" in frames[0]
    assert "30%" in frames[1] and "ETA" in frames[1]
    assert all(len(frame.rstrip("\n")) < 100 for frame in frames)
    assert frames[2].startswith("/blobs/layer.tar  done  3.0 MiB in 1.2s") and frames[2].endswith("\n")
    assert progress.done == 4 * MiB


def test_progress_unknown_total_abort_and_disabled() -> None:
    clock, stream = _Clock(), io.StringIO()
    progress = Progress("stdin", None, stream=stream, clock=clock, width=60)
    clock.now += 2
    progress.update(4096)
    assert "4.0 KiB" in stream.getvalue() and "2.0 KiB/s" in stream.getvalue() and "%" not in stream.getvalue()
    progress.abort()
    assert stream.getvalue().endswith("\n") and "done" not in stream.getvalue()
    quiet = io.StringIO()
    with Progress("x", 10, enabled=False, stream=quiet) as off:
        off.update(10)
    assert quiet.getvalue() == "" and off.done == 10
    narrow = io.StringIO()
    with Progress("/a/very/long/path/" * 5 + "name.bin", 100, stream=narrow, clock=clock, width=50) as bar:
        bar.update(50)
    first = narrow.getvalue().split("\r")[1]
    assert first.startswith("...") and len(first) < 50


def test_progress_reader_counts_and_keeps_the_size_visible(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    progress = Progress("f", 1000, enabled=False)
    with open(path, "rb") as file:
        reader = ProgressReader(file, progress)
        file.read(100)
        assert reader.seekable() and reader.tell() == 100 and os.fstat(reader.fileno()).st_size == 1000
        buffer = bytearray(300)
        assert reader.readinto(buffer) == 300 and reader.read(1000) == b"x" * 600
    assert progress.done == 900
    assert blobdrivers.transfer.Source(ProgressReader(io.BytesIO(b"abc"), progress)).size == 3


def test_progress_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_wanted(stream=Tty()) is True
    assert progress_wanted(stream=io.StringIO()) is False
    assert progress_wanted(quiet=True, stream=Tty()) is False
    monkeypatch.setenv("BLOBDRIVERS_PROGRESS", "1")
    assert progress_wanted(stream=io.StringIO()) is True
    assert progress_wanted(quiet=True, stream=io.StringIO()) is False
    monkeypatch.setenv("BLOBDRIVERS_PROGRESS", "never")
    assert progress_wanted(stream=Tty()) is False


def test_size_and_duration_formats() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 * MiB, 3 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 TiB",
    ]
    assert [format_duration(s) for s in (0, 9.6, 75, 3 * 3600 + 62)] == ["0:00", "0:10", "1:15", "3:01:02"]


def test_cleanup_removes_old_staging_leftovers_only(capsys: pytest.CaptureFixture[str], fs: str) -> None:
    store = blobdrivers.from_url(fs)
    store.put("/kept", b"data")
    assert isinstance(store, FilesystemDriver)
    staging = Path(store.root) / STAGING / "tmp"
    (staging / "old").write_bytes(b"x")
    os.utime(staging / "old", (0, 0))
    (staging / "new").write_bytes(b"y")
    code, out, _ = run(capsys, "cleanup", fs, "--older-than", "1h")
    assert code == 0 and "removed 1 staging entry" in out
    assert sorted(os.listdir(staging)) == ["new"]
    assert store.get("/kept") == b"data"


def test_cleanup_refuses_stores_without_staging(capsys: pytest.CaptureFixture[str], mem: str) -> None:
    code, _, err = run(capsys, "cleanup", mem)
    assert code == 1 and "file://" in err


# ---------------------------------------------------------------------- traps (issue 15)


def test_a_path_error_points_at_the_character_and_suggests_a_valid_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str
) -> None:
    code, _, err = run(capsys, "put", local(tmp_path, "my file.txt", b"x"), f"{mem}#/docs/")
    assert code == 1
    assert err == (
        "blobdrivers: error: inmemory: invalid path '/docs/my file.txt': ' ' at position 8 is not allowed "
        "(path components are [A-Za-z0-9._-]); try '/docs/my-file.txt'\n"
    )
    for bad, defect in [
        ("docs/a", "must start with '/'"),
        ("/a/", "a trailing '/'"),
        ("/a//b", "an empty component ('//') at position 3"),
        ("/a/../b", "a '..' component at position 3"),
        ("/café", "'é' at position 4"),
    ]:
        with pytest.raises(InvalidPathError, match=r"^invalid path ") as caught:
            paths.validate(bad)
        assert defect in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InvalidPathError, match=r"; try '/b'$"):
        paths.validate("/a/../b")  # '..' is read as a shell would
    with pytest.raises(InvalidPathError, match=r"; try '/cafe'$"):
        paths.validate("/café")
    with pytest.raises(ConfigError, match=r"' ' at position 2 .*; try '/a-b'"):
        paths.normalize_root("a b")


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.text(alphabet=st.sampled_from("ab./-_ ~é\n\t%中\x00:"), max_size=12))
def test_every_suggested_path_is_valid(text: str) -> None:
    if paths.is_valid(text, allow_root=True):
        return
    with pytest.raises(InvalidPathError) as caught:
        paths.validate(text)
    message = str(caught.value)
    assert "\n" not in message
    suggestion = paths.suggest(text)
    if suggestion is not None:
        assert paths.validate(suggestion) == suggestion
        assert message.endswith(f"; try {suggestion!r}")
    else:
        assert "; try" not in message
    names: list[str] = []
    for part in text.split("/"):  # '..' read as a shell would: it cancels the name before it
        if part == "..":
            del names[-1:]
        elif part not in ("", "."):
            names.append(part)
    assert (suggestion is None) == (not names)  # anything with a name left gets a suggestion


def test_cp_r_and_get_r_download_a_directory_to_a_local_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str
) -> None:
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    expected = {"b.txt": b"bb", "e/c.txt": b"c"}
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "cp", "-r", f"{tree}#/d", "./copied") == (0, "", "")
    assert files(tmp_path / "copied") == expected
    assert run(capsys, "get", "-r", f"{tree}#/d", str(tmp_path / "got")) == (0, "", "")
    assert files(tmp_path / "got") == expected
    assert run(capsys, "get", "-r", f"{tree}#/d") == (0, "", "")  # into ./d
    assert files(tmp_path / "d") == expected
    assert run(capsys, "mv", f"{tree}#/d", "moved") == (0, "", "")
    assert files(tmp_path / "moved") == expected and run(capsys, "ls", tree)[1].splitlines() == ["/a.txt", "/dz"]
    assert run(capsys, "get", "-r", f"{tree}#/nope")[0] == 1


def test_an_absolute_local_folder_is_never_read_as_the_default_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tree: str
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    code, _, err = run(capsys, "cp", "-r", f"{tree}#/d", str(target))
    assert code == 2 and err.count("\n") == 1
    top = "/" + str(target).lstrip("/").split("/")[0]
    assert f"'{target}' is ambiguous: {top} exists on this machine" in err
    assert f"URL#{target}" in err
    assert list(target.iterdir()) == []
    default_root = tmp_path / "xdg" / "blobdrivers"
    assert not default_root.exists()  # nothing written into the default store
    assert cli.parse_endpoint("~/x") == cli.LocalFile(os.path.expanduser("~/x"))
    assert cli.parse_endpoint("/no-such-top-dir-anywhere/x") == cli.StoreLocation(None, "/no-such-top-dir-anywhere/x")


def test_local_errors_name_the_target_not_a_temporary_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str, fs: str
) -> None:
    missing = tmp_path / "no-such-dir" / "x.bin"
    code, _, err = run(capsys, "get", f"{tree}#/a.txt", str(missing))
    assert (code, err) == (1, f"blobdrivers: error: No such file or directory: {missing}\n")
    assert run(capsys, "put", local(tmp_path, "f", b"data"), f"{fs}#/docs/f")[0] == 0

    def full_disk(self: FilesystemDriver, fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(FilesystemDriver, "_sync_file", full_disk)  # a fault: the disk fills up
    code, _, err = run(capsys, "put", local(tmp_path, "g", b"more"), f"{fs}#/docs/g")
    assert (code, err) == (
        1,
        "blobdrivers: error: filesystem: put /docs/g failed: OSError: [Errno 28] No space left on device\n",
    )


def _closed_port_drivers(url: str) -> list[StorageDriver]:
    from blobdrivers.drivers.azure import AzureDriver
    from blobdrivers.drivers.gcs import GCSDriver
    from blobdrivers.drivers.oss import OSSDriver
    from blobdrivers.drivers.s3 import S3Driver

    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    return [
        S3Driver(bucket="bkt", regionendpoint=url, region="us-east-1", accesskey="AKIDX", secretkey=SECRET, retries=1),
        AzureDriver(accountname="acct", accountkey=key, container="cont", serviceurl=f"{url}/acct", retries=1),
        GCSDriver(bucket="bkt", endpoint=url, project="p", retries=1),
        OSSDriver(bucket="bkt", endpoint=url, accesskeyid="AKIDX", accesskeysecret=SECRET, retries=1),
    ]


SECRET = "s3cr3t-value-never-shown"
NETWORK_CALLS: list[Callable[[StorageDriver], object]] = [
    lambda driver: driver.stat("/a"),
    lambda driver: driver.put("/a", b"x"),
    lambda driver: driver.list("/"),
]


def test_network_errors_name_the_endpoint() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        for driver in _closed_port_drivers(url):
            for call in NETWORK_CALLS:
                with pytest.raises(StorageError) as caught:
                    call(driver)
                message = str(caught.value)
                assert f"cannot connect to endpoint {url} (connection refused)" in message, message
                assert message.startswith(f"{driver.name}: request for /") and "\n" not in message
                assert SECRET not in message and "AKIDX" not in message


def test_help_prints_the_documentation_shipped_in_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "help")
    assert code == 0 and "blobdrivers help TOPIC" in out
    repository_docs = Path(__file__).parent.parent / "docs"
    pages = sorted(p.stem for p in [*repository_docs.glob("*.md"), *repository_docs.glob("drivers/*.md")])
    assert sorted(line.split()[0] for line in out.splitlines()[1:]) == pages  # every page is a topic
    code, out, _ = run(capsys, "help", "cli")
    assert (code, out) == (0, (repository_docs / "cli.md").read_text(encoding="utf-8"))
    assert run(capsys, "help", "s3")[1] == (repository_docs / "drivers" / "s3.md").read_text(encoding="utf-8")
    code, _, err = run(capsys, "help", "nope")
    assert code == 2 and "no help topic 'nope'; topics: " in err and "cli" in err
    assert "'blobdrivers help cli'" in run(capsys, "--help")[1]
    # The wheel carries the pages: package data of blobdrivers/docs, the repository's docs folder.
    project = tomllib.loads((repository_docs.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"docs/*.md", "docs/drivers/*.md"} <= set(project["tool"]["setuptools"]["package-data"]["blobdrivers"])
    assert (Path(blobdrivers.__file__).parent / "docs").resolve() == repository_docs.resolve()


def test_the_readme_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"`blobdrivers ([a-z|]+)`", readme)
    assert listed is not None
    parser_commands = set(cli.build_parsers()[1])
    assert set(listed.group(1).split("|")) == parser_commands == set(COMMANDS)


def test_writing_into_a_vanishing_memory_store_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    monkeypatch.chdir(tmp_path)
    src = Path(local(tmp_path, "f", b"x")).name
    assert run(capsys, "put", src, f"{mem}#/a") == (0, "", "")  # main(argv) in a process that goes on: silent
    code, _, err = run(capsys, "cp", src, "memory://#/a")
    assert code == 0
    assert err == (
        "blobdrivers: warning: the in-memory store memory:// has no name, so it is private to this command: "
        "what is written there is gone when the command ends\n"
    )
    monkeypatch.setattr(sys, "argv", ["blobdrivers", "put", src, f"{mem}#/b"])  # the one-shot command
    code = cli.main()
    err = capsys.readouterr().err
    assert code == 0 and err == (
        f"blobdrivers: warning: the in-memory store {mem} is held in this process's memory: "
        "what is written there is gone when the command ends\n"
    )
    monkeypatch.setattr(sys, "argv", ["blobdrivers", "cp", f"{mem}#/b", "out"])
    assert cli.main() == 0
    assert capsys.readouterr().err == ""  # reading from one does not warn


def test_missing_sdk_and_import_errors_print_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_registry", dict(factory._registry))  # the registration ends with the test
    factory.register("fakesdk", "tests.fake_drivers.missing_sdk:Driver", sdk="fakesdk-sdk", extra="fakesdk")
    monkeypatch.setattr(factory, "from_url", lambda url: factory.create("fakesdk", {}))
    code, _, err = run(capsys, "ls", "fakesdk://x")
    assert code == 1 and err.count("\n") == 1 and 'pip install "blobdrivers[fakesdk]"' in err

    def broken(url: str) -> StorageDriver:
        raise ImportError("a third-party driver failed to import\n  because of this")

    monkeypatch.setattr(factory, "from_url", broken)
    code, _, err = run(capsys, "ls", "thirdparty://x")
    assert (code, err) == (
        1,
        "blobdrivers: error: a third-party driver failed to import; because of this\n",
    )


def test_the_demo_runs_on_a_temporary_store(tmp_path: Path) -> None:
    demo = Path(__file__).parent.parent / "examples" / "demo.py"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    env["PYTHONPATH"] = os.pathsep.join([str(demo.parent.parent), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "blobdrivers-demo-" in result.stdout
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()  # the default store untouched
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- no copy or move onto its own source


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_file_moved_or_copied_onto_itself_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("self.txt").write_bytes(b"self")
    s1 = (tmp_path / "s1").as_uri()
    assert run(capsys, "put", "self.txt", f"{s1}#/d/0/f3.txt")[0] == 0
    assert run(capsys, "put", "self.txt", f"{mem}#/sub/a")[0] == 0
    code, _, err = run(capsys, "mv", f"{mem}/sub#/a", f"{mem}#/sub/a")  # one store (of any driver), two roots
    assert code == 2 and "same file" in err and blobdrivers.from_url(mem).get("/sub/a") == b"self"
    same_file = [
        ("mv", "./self.txt", "self.txt"),
        ("cp", "self.txt", "./self.txt"),
        ("mv", "self.txt", "."),  # into the folder it is in
        ("mv", f"{s1}#/d/0/f3.txt", f"{s1}/d#/0/f3.txt"),  # two roots of one folder
        ("mv", f"{s1}#/d/0/f3.txt", f"{s1}/d/0"),  # the store's root is the file's folder
        ("mv", "s1/d/0/f3.txt", f"{s1}#/d/0/"),  # a local path inside the store's folder
        ("cp", f"{s1}/d#/0/f3.txt", "s1/d/0/f3.txt"),
        ("mv", f"{s1}#/d/0/f3.txt", f"{s1}#/d/0/f3.txt"),  # one driver: a rename onto itself
    ]
    for argv in same_file:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.count("\n") == 1 and "the source and the destination are the same file" in err, argv
        assert Path("self.txt").read_bytes() == b"self"
        assert (tmp_path / "s1" / "d" / "0" / "f3.txt").read_bytes() == b"self"
    assert run(capsys, "mv", "self.txt", "other.txt") == (0, "", "")  # a real move still works
    assert Path("other.txt").read_bytes() == b"self" and not Path("self.txt").exists()


def test_a_directory_moved_onto_itself_is_refused_and_kept(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str
) -> None:
    monkeypatch.chdir(tmp_path)
    s3 = (tmp_path / "s3").as_uri()
    assert run(capsys, "put", local(tmp_path, "f.txt", b"a"), f"{s3}#/d/a.txt")[0] == 0
    assert run(capsys, "put", local(tmp_path, "f.txt", b"b"), f"{s3}#/d/x/b.txt")[0] == 0
    kept = {"a.txt": b"a", "x/b.txt": b"b"}
    into_itself = [
        ("mv", f"{s3}#/d", "s3/d"),  # the local folder s3/d is the store's /d
        ("mv", f"{s3}#/d", f"{s3}/d"),
        ("mv", f"{s3}#/d", f"{s3}/d/#/"),
        ("cp", "-r", f"{s3}#/d", "s3/d/x/sub"),  # a copy that would grow while it runs
        ("cp", "-r", f"{s3}#/d", f"{s3}/d#/x"),
        ("cp", "-r", s3, "s3/d"),
        ("mv", f"{tree}#/d", f"{tree}#/d/e"),
        ("mv", f"{tree}#/", f"{tree}#/new"),
    ]
    for argv in into_itself:
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.count("\n") == 1 and "into itself" in err, argv
        assert _files(tmp_path / "s3" / "d") == kept
    assert run(capsys, "ls", "-r", tree)[1].splitlines() == ["/a.txt", "/d", "/d/b.txt", "/d/e", "/d/e/c.txt", "/dz"]
    assert not (tmp_path / "s3" / "d" / "x" / "sub").exists()


def test_a_directory_moved_up_never_writes_over_its_own_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mem: str
) -> None:
    fs = (tmp_path / "fs").as_uri()
    for url in (mem, fs):
        for path, data in [("/d/x/x/z.txt", b"inner"), ("/d/x/z.txt", b"outer")]:
            assert run(capsys, "put", local(tmp_path, "f", data), f"{url}#{path}")[0] == 0
    # /d/x/x/z.txt would land on /d/x/z.txt, a source file not yet moved.
    for argv in [
        ("mv", f"{mem}#/d/x", f"{mem}#/d"),
        ("mv", f"{fs}#/d/x", f"{fs}/d#/"),
        ("cp", "-r", f"{fs}#/d/x", fs + "/d"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "would overwrite its file " in err, argv
        assert err.endswith("/x/z.txt\n"), err  # the file below DST, as DST spells it
    for url in (mem, fs):
        store = blobdrivers.from_url(url)
        assert (store.get("/d/x/x/z.txt"), store.get("/d/x/z.txt")) == (b"inner", b"outer")
    assert run(capsys, "mv", f"{mem}#/d/x/x", f"{mem}#/d") == (0, "", "")  # no file lands on another: fine
    assert blobdrivers.from_url(mem).get("/d/z.txt") == b"inner"


def test_mv_into_a_vanishing_memory_store_is_refused_before_anything_is_touched(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mem: str
) -> None:
    local(tmp_path, "p.txt", b"p")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "mv", "./p.txt", "memory://#/p.txt")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "mv into the in-memory store memory:// would delete the source" in err and "use cp" in err
    assert Path("p.txt").read_bytes() == b"p"
    monkeypatch.setattr(sys, "argv", ["blobdrivers", "mv", "p.txt", f"{mem}#/p.txt"])  # the one-shot command
    assert cli.main() == 2
    assert "would delete the source" in capsys.readouterr().err
    assert Path("p.txt").read_bytes() == b"p" and list(blobdrivers.from_url(mem).walk()) == []
    assert run(capsys, "mv", "p.txt", f"{mem}#/p.txt") == (0, "", "")  # main(argv): the store outlives the command
    monkeypatch.setattr(sys, "argv", ["blobdrivers", "cp", f"{mem}#/p.txt", "memory://#/q"])
    assert cli.main() == 0 and "warning" in capsys.readouterr().err  # cp keeps the warning


def test_every_vanishing_store_warns_and_a_named_one_is_not_called_private(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = (tmp_path / "x").as_uri()
    assert run(capsys, "put", local(tmp_path, "f", b"x"), f"{source}#/a")[0] == 0
    code, _, err = run(capsys, "sync", "-q", source, "memory://")
    assert code == 0 and err == (
        "blobdrivers: warning: the in-memory store memory:// has no name, so it is private to this command: "
        "what is written there is gone when the command ends\n"
    )
    assert run(capsys, "sync", "-q", "--dry-run", source, "memory://")[2] == ""  # nothing is written
    name = f"cli-{uuid.uuid4().hex}"
    for argv in (["put", str(tmp_path / "f"), f"memory://?name={name}#/a"], ["sync", "-q", source, f"memory://{name}"]):
        assert run(capsys, *argv)[2] == ""  # named, in a program that goes on
        monkeypatch.setattr(sys, "argv", ["blobdrivers", *argv])
        assert cli.main() == 0
        err = capsys.readouterr().err
        assert "has no name" not in err and "is held in this process's memory" in err and err.count("\n") == 1
    InMemoryDriver._stores.pop(name, None)


@pytest.mark.parametrize("name", ["~", "-x", "cwd/~", "cwd/-x", "~/a", "-", "sub/", "a b", "link/../x", ".hidden"])
def test_an_ambiguous_path_suggests_a_local_spelling_of_the_same_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str, name: str
) -> None:
    (tmp_path / "cwd").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "er")  # link/.. is deep, not tmp_path
    (tmp_path / "~").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = f"{tmp_path}/{name}"
    code, _, err = run(capsys, "cp", f"{tree}#/a.txt", text)
    assert code == 2 and err.count("\n") == 1
    found = re.search(r"write '([^']*)' for the local path(?:, or URL#(\S+) for the store)?$", err.strip())
    assert found is not None, err
    spelling, in_store = found.groups()
    assert spelling.startswith(("./", "../")), spelling
    assert cli.parse_endpoint(spelling) == cli.LocalFile(spelling)
    assert in_store is None or paths.is_valid(in_store.rstrip("/"))
    assert run(capsys, "cp", f"{tree}#/a.txt", spelling) == (0, "", "")
    written = Path(text, "a.txt") if Path(text).is_dir() else Path(text)
    assert written.read_bytes() == b"aaa"
    assert not (tmp_path / "home").exists()


def test_the_default_stores_root_is_a_cp_and_mv_location(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.ENV_URL, tree)
    assert cli.parse_endpoint("/") == cli.parse_endpoint("//") == cli.StoreLocation(None, "/")
    assert run(capsys, "cp", "-r", "/", "./all") == (0, "", "")
    assert _files(tmp_path / "all") == {"a.txt": b"aaa", "d/b.txt": b"bb", "d/e/c.txt": b"c", "dz": b"zz"}
    Path("f.txt").write_bytes(b"f")
    assert run(capsys, "cp", "f.txt", "/") == (0, "", "")
    assert run(capsys, "mv", "/d/b.txt", "/") == (0, "", "")
    store = blobdrivers.from_url(tree)
    assert (store.get("/f.txt"), store.get("/b.txt")) == (b"f", b"bb") and store.list("/d") == ["/d/e"]
    code, _, err = run(capsys, "cp", "/a.txt", f"/{tmp_path}/out")  # '//tmp/...': the store spelling is valid
    assert code == 2 and re.search(r"URL#(\S+) for the store", err) is not None
    assert paths.is_valid(re.findall(r"URL#(\S+) for the store", err)[0])


def test_get_names_a_file_in_the_way_and_expands_a_quoted_home(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tree: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("tf").write_bytes(b"keep")
    assert run(capsys, "get", "-r", f"{tree}#/d", "tf") == (
        1,
        "",
        "blobdrivers: error: tf is not a directory (a directory's files are copied into a folder)\n",
    )
    code, _, err = run(capsys, "get", "-r", f"{tree}#/d", "tf/below")
    assert (code, err) == (1, "blobdrivers: error: Not a directory: tf\n")
    assert Path("tf").read_bytes() == b"keep"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert run(capsys, "get", f"{tree}#/a.txt", "~/got.txt") == (0, "", "")
    assert run(capsys, "cp", f"{tree}#/dz", "~/cp.txt") == (0, "", "")
    assert run(capsys, "put", "~/got.txt", f"{tree}#/back.txt") == (0, "", "")
    assert _files(tmp_path / "home") == {"got.txt": b"aaa", "cp.txt": b"zz"}
    assert blobdrivers.from_url(tree).get("/back.txt") == b"aaa"


def test_help_topics_come_from_the_installed_pages(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = " ".join(run(capsys, "help", "--help")[1].split())
    listed = re.search(r"a topic: (.*?) options:", usage)
    assert listed is not None and listed.group(1).split(", ") == list(cli.docs.topics())
    monkeypatch.setattr(cli.docs, "topics", dict)  # an installation without its docs folder
    code, _, err = run(capsys, "help")
    assert code == 1 and "blobdrivers/docs is missing" in err
