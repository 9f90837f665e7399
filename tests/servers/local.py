"""Start and stop the local servers the test suite talks to over real HTTP.

Every server binds 127.0.0.1 on a free port, is started by the tests themselves
and is stopped by its own PID (SIGTERM, then SIGKILL after a timeout).

* S3: moto's ``ThreadedMotoServer`` in-process (or ``python -m moto.server`` in a
  subprocess with ``start_moto(in_process=False)``).
* Azure Blob: Azurite from ``tests/servers/node/node_modules`` (installed by
  ``scripts/install-test-deps.sh``), run with node.
* GCS: ``python -m gcp_storage_emulator start ... -M`` (in memory).
* Redis: ``redis-server`` from PATH (Debian package ``redis-server``).

A server that cannot be started raises :class:`ServerUnavailable`; the pytest
fixtures turn that into :func:`require`, which fails the test under ``CI=true``
and skips it (with the reason) otherwise.

This module must not import the ``blobdrivers`` package, and imports the cloud
SDKs only inside the functions that need them.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import pytest

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzuriteServer",
    "GcsServer",
    "ManagedProcess",
    "MotoServer",
    "RedisServer",
    "ServerStartError",
    "ServerUnavailable",
    "free_port",
    "in_ci",
    "require",
    "start_azurite",
    "start_gcs",
    "start_moto",
    "start_redis",
    "wait_for_http",
    "wait_for_port",
]

_T = TypeVar("_T")

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = REPO_ROOT / "tests" / "servers" / "node"
AZURITE_BLOB_MAIN = NODE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"

LOCALHOST = "127.0.0.1"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 3  # free_port() races with other processes: retry a start on "address in use"

# The well-known Azurite / Azure Storage Emulator development account (public, documented).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Fake AWS credentials: passed explicitly to the clients we build, never put in os.environ.
MOTO_REGION = "us-east-1"
MOTO_CREDENTIALS: dict[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}

# urllib without any proxy from the environment: we only ever talk to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerUnavailable(Exception):
    """A local test server cannot be used here (missing binary, package or failed start)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerStartError(ServerUnavailable):
    """A server was launched but did not come up; the reason includes its log tail."""


# --------------------------------------------------------------------------- helpers


def in_ci() -> bool:
    """True when running under CI (``CI=true``; ``1``/``yes`` are accepted too)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require(name: str, reason: str) -> NoReturn:
    """A test needs server ``name`` and cannot have it: fail under CI, skip locally.

    "No silent skips in CI": with ``CI=true`` this calls :func:`pytest.fail`,
    otherwise :func:`pytest.skip`; both carry ``reason``.
    """
    message = f"{name} unavailable: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing test server is a failure)", pytrace=False)
    pytest.skip(message)


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0 and release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    process: ManagedProcess | None = None,
    name: str | None = None,
) -> int:
    """Poll ``url`` until any HTTP response arrives; return its status code.

    Any status counts (Azurite answers ``/`` with 400): the server is listening
    and speaking HTTP. When ``process`` is given and it exits meanwhile, fail at
    once. On timeout raise :class:`ServerStartError` with the process' log tail.
    """

    def answer() -> int:
        try:
            with _OPENER.open(url, timeout=2.0) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:  # an HTTP answer: the server is up
            exc.close()
            return int(exc.code)

    label = name or (process.name if process else url)
    return _poll(answer, label, f"answering {url}", f"answer {url}", timeout, process, first_delay=0.01)


def wait_for_port(
    host: str,
    port: int,
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    process: ManagedProcess | None = None,
    name: str | None = None,
    probe: bytes | None = None,
    expect: bytes | None = None,
) -> None:
    """Poll until a TCP connect to ``host:port`` succeeds.

    With ``probe``/``expect``, also send ``probe`` and require the reply to start
    with ``expect`` (e.g. Redis ``PING`` -> ``+PONG``).
    """

    def connect() -> None:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            if probe is None:
                return
            sock.sendall(probe)
            reply = sock.recv(64)
            if expect is not None and not reply.startswith(expect):
                raise ConnectionError(f"unexpected reply {reply!r}")

    label = name or (process.name if process else f"{host}:{port}")
    where = f"{host}:{port}"
    _poll(connect, label, f"listening on {where}", f"listen on {where}", timeout, process, first_delay=0.005)


def _poll(
    attempt: Callable[[], _T],
    label: str,
    before: str,
    did_not: str,
    timeout: float,
    process: ManagedProcess | None,
    *,
    first_delay: float,
) -> _T:
    """Call ``attempt`` until it returns, backing off from ``first_delay`` to 0.2 s between tries.

    An ``OSError`` from ``attempt`` means "not yet". Raise
    :class:`ServerStartError` when ``process`` exits first ("exited ... before
    ``before``") or ``timeout`` passes ("did not ``did_not``"), with the log tail.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    last_error: BaseException | None = None
    while True:
        if process is not None and process.returncode is not None:
            raise ServerStartError(
                f"{label} exited with code {process.returncode} before {before}{process.describe_log()}"
            )
        try:
            return attempt()
        except OSError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            tail = process.describe_log() if process else ""
            raise ServerStartError(
                f"{label} did not {did_not} within {timeout:.1f}s (last error: {last_error!r}){tail}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


# --------------------------------------------------------------------------- processes

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort: never leave a server of ours running after the interpreter exits."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        proc.stop(timeout=3.0)


class ManagedProcess:
    """A server subprocess stopped by its own PID, with its output in a temp file.

    stdout and stderr both go to one temporary log file so that a failed start
    can show the tail of what the server said.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.env = env
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path: Path | None = None

    # -- lifecycle
    def start(self) -> ManagedProcess:
        if self._popen is not None and self._popen.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self._popen.pid})")
        self._close_log(delete=True)
        fd, path = tempfile.mkstemp(prefix=f"bd-{self.name}-", suffix=".log")
        self.log_path = Path(path)
        self._log = os.fdopen(fd, "wb")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches pytest only, and the
                # fixtures' finalizers (or the atexit hook) stop the server cleanly.
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            self._close_log(delete=True)
            raise ServerUnavailable(f"cannot run {self.argv[0]!r} for {self.name}: {exc}") from exc
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """None while running (or never started); the exit code once it has exited."""
        return self._popen.poll() if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._popen.pid, sig)  # by our own PID only

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait(timeout)
        self._forget()
        return self._popen.returncode

    def kill(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGKILL at once (simulates a crash). The log file is kept for :meth:`log_tail`."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGKILL)
            self._popen.wait(timeout)
        self._forget()
        return self._popen.returncode

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _close_log(self, *, delete: bool) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if delete and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def cleanup(self) -> None:
        """Stop if needed and delete the log file."""
        self.stop()
        self._close_log(delete=True)

    # -- logs
    def log_tail(self, max_bytes: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log is not None:
            self._log.flush()
        with self.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
        return data.decode("utf-8", errors="replace")

    def describe_log(self, max_bytes: int = 4000) -> str:
        tail = self.log_tail(max_bytes).strip()
        if not tail:
            return f"\n--- {self.name} output: (empty) ---"
        return f"\n--- last output of {self.name} ({self.log_path}) ---\n{tail}\n---"

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, returncode={self.returncode})"


def _looks_like_port_clash(proc: ManagedProcess) -> bool:
    tail = proc.log_tail().lower()
    return "address already in use" in tail or "eaddrinuse" in tail or "errno 98" in tail


def _launch_on_free_port(
    name: str,
    argv_for_port: Callable[[int], Sequence[str]],
    wait_ready: Callable[[ManagedProcess, int], None],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> tuple[ManagedProcess, int]:
    """Start a server on a free port, retrying when another process took the port first."""
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        proc = ManagedProcess(name, argv_for_port(chosen), cwd=cwd, env=env).start()
        try:
            wait_ready(proc, chosen)
            return proc, chosen
        except ServerStartError:
            proc.stop()
            clash = _looks_like_port_clash(proc)
            proc.cleanup()  # the exception message already carries the log tail
            if attempt < attempts and clash:
                continue
            raise
        except BaseException:
            proc.cleanup()
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- moto (S3)


@dataclass
class MotoServer:
    endpoint_url: str
    region: str = MOTO_REGION
    credentials: dict[str, str] = field(default_factory=lambda: dict(MOTO_CREDENTIALS))
    startup_seconds: float = 0.0
    _stop: Callable[[], None] = field(default=lambda: None, repr=False)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)`` against this server."""
        return {"endpoint_url": self.endpoint_url, "region_name": self.region, **self.credentials}

    def reset(self) -> None:
        """Drop all state (buckets, objects) via ``POST /moto-api/reset``."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with _OPENER.open(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        self._stop()


def start_moto(*, in_process: bool = True, timeout: float = DEFAULT_START_TIMEOUT) -> MotoServer:
    """Start a moto S3 server on 127.0.0.1.

    ``in_process=True`` runs ``moto.server.ThreadedMotoServer`` in a daemon thread
    (fast, but it shares the GIL with the test: for benchmarks prefer
    ``in_process=False``, which runs ``python -m moto.server`` as a subprocess).
    """
    try:
        import moto.server  # noqa: F401  (moto[server] pulls in flask & werkzeug)
    except ImportError as exc:
        raise ServerUnavailable(f"moto[server] is not installed ({exc})") from exc

    t0 = time.monotonic()
    if in_process:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request to stderr at INFO; that is noise (and per-request
        # cost in benchmarks). Only this process' werkzeug logger, which only moto uses.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # port=0: the OS picks the port, no race. (With a taken fixed port,
        # ThreadedMotoServer.start() would hang forever: the bind error stays in its thread.)
        server = ThreadedMotoServer(ip_address=LOCALHOST, port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        try:
            wait_for_http(f"{endpoint}/moto-api/", timeout, name="moto")
        except BaseException:
            server.stop()
            raise

        def stop_threaded() -> None:
            server.stop()

        return MotoServer(endpoint_url=endpoint, startup_seconds=time.monotonic() - t0, _stop=stop_threaded)

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)]

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_http(f"http://{LOCALHOST}:{port}/moto-api/", timeout, process=proc)

    proc, port = _launch_on_free_port("moto", argv, ready)
    return MotoServer(
        endpoint_url=f"http://{LOCALHOST}:{port}",
        startup_seconds=time.monotonic() - t0,
        _stop=proc.cleanup,
    )


# --------------------------------------------------------------------------- Azurite (Azure Blob)


@dataclass
class AzuriteServer:
    blob_endpoint: str
    account_name: str
    account_key: str
    connection_string: str
    port: int
    startup_seconds: float = 0.0
    process: ManagedProcess | None = field(default=None, repr=False)
    workdir: str | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.cleanup()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def azurite_connection_string(blob_endpoint: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT_NAME};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint={blob_endpoint};"
    )


def start_azurite(*, timeout: float = DEFAULT_START_TIMEOUT) -> AzuriteServer:
    """Start Azurite's blob service (in-memory) with node."""
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("node is not on PATH (Azurite needs Node.js; see scripts/install-test-deps.sh)")
    if not AZURITE_BLOB_MAIN.is_file():
        raise ServerUnavailable(
            f"Azurite is not installed: {AZURITE_BLOB_MAIN.relative_to(REPO_ROOT)} is missing "
            "(run: npm ci --prefix tests/servers/node, or scripts/install-test-deps.sh)"
        )
    # In memory (--inMemoryPersistence, which refuses --location); run in a private
    # temporary cwd anyway so a stray debug/db file can never land in the repo.
    workdir = tempfile.mkdtemp(prefix="bd-azurite-")

    def argv(port: int) -> list[str]:
        return [
            node,
            str(AZURITE_BLOB_MAIN),
            "--blobHost", LOCALHOST,
            "--blobPort", str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",  # the SDK sends newer x-ms-version values than Azurite knows
            "--loose",
            "--disableTelemetry",  # otherwise Azurite tries to reach an outside telemetry host
            "--silent",
        ]  # fmt: skip

    def ready(proc: ManagedProcess, port: int) -> None:
        # Azurite answers GET / with 400 (no account): any HTTP answer means it is up.
        wait_for_http(f"http://{LOCALHOST}:{port}/", timeout, process=proc)

    t0 = time.monotonic()
    try:
        proc, port = _launch_on_free_port("azurite", argv, ready, cwd=workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    blob_endpoint = f"http://{LOCALHOST}:{port}/{AZURITE_ACCOUNT_NAME}"
    return AzuriteServer(
        blob_endpoint=blob_endpoint,
        account_name=AZURITE_ACCOUNT_NAME,
        account_key=AZURITE_ACCOUNT_KEY,
        connection_string=azurite_connection_string(blob_endpoint),
        port=port,
        startup_seconds=time.monotonic() - t0,
        process=proc,
        workdir=workdir,
    )


# --------------------------------------------------------------------------- gcp-storage-emulator (GCS)


@dataclass
class GcsServer:
    endpoint: str
    port: int
    project: str = "test-project"
    startup_seconds: float = 0.0
    process: ManagedProcess | None = field(default=None, repr=False)

    def reset(self) -> None:
        """Delete all buckets and objects (the emulator's ``GET /wipe``)."""
        with _OPENER.open(f"{self.endpoint}/wipe", timeout=30) as response:
            response.read()

    def stop(self) -> None:
        if self.process is not None:
            self.process.cleanup()


def start_gcs(*, timeout: float = DEFAULT_START_TIMEOUT) -> GcsServer:
    """Start gcp-storage-emulator in memory (``python -m gcp_storage_emulator start ... -M``).

    It runs under this interpreter (the package has a ``__main__``), so no PATH
    lookup of the ``gcp-storage-emulator`` script is needed.
    """
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise ServerUnavailable("gcp-storage-emulator is not installed (pip install gcp-storage-emulator)")

    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "gcp_storage_emulator", "start",
            "-H", LOCALHOST, "--port", str(port), "-M",
        ]  # fmt: skip

    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_http(f"http://{LOCALHOST}:{port}/", timeout, process=proc)  # health check: "OK"

    t0 = time.monotonic()
    proc, port = _launch_on_free_port("gcp-storage-emulator", argv, ready)
    return GcsServer(
        endpoint=f"http://{LOCALHOST}:{port}",
        port=port,
        startup_seconds=time.monotonic() - t0,
        process=proc,
    )


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    url: str
    port: int
    host: str = LOCALHOST
    startup_seconds: float = 0.0
    process: ManagedProcess | None = field(default=None, repr=False)
    timeout: float = field(default=DEFAULT_START_TIMEOUT, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) by PID."""
        if self.process is not None:
            self.process.cleanup()

    def kill(self) -> None:
        """SIGKILL now: simulates Redis dying mid-run. :meth:`restart` brings it back."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        """Start a fresh (empty) redis-server on the same port; stops the old one first if alive."""
        if self.process is not None:
            self.process.cleanup()
        t0 = time.monotonic()
        proc, _ = _launch_on_free_port("redis-server", _redis_argv, _redis_ready(self.timeout), port=self.port)
        self.process = proc
        self.startup_seconds = time.monotonic() - t0


def _redis_argv(port: int) -> list[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServerUnavailable("redis-server is not on PATH (Debian: apt-get install redis-server)")
    return [
        exe,
        "--bind", LOCALHOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip


def _redis_ready(timeout: float) -> Callable[[ManagedProcess, int], None]:
    def ready(proc: ManagedProcess, port: int) -> None:
        wait_for_port(LOCALHOST, port, timeout, process=proc, probe=b"PING\r\n", expect=b"+PONG")

    return ready


def start_redis(*, timeout: float = DEFAULT_START_TIMEOUT) -> RedisServer:
    """Start ``redis-server`` (no persistence, foreground) on a free port."""
    if shutil.which("redis-server") is None:
        raise ServerUnavailable("redis-server is not on PATH (Debian: apt-get install redis-server)")
    t0 = time.monotonic()
    proc, port = _launch_on_free_port("redis-server", _redis_argv, _redis_ready(timeout))
    return RedisServer(
        url=f"redis://{LOCALHOST}:{port}/0",
        port=port,
        startup_seconds=time.monotonic() - t0,
        process=proc,
        timeout=timeout,
    )
