"""The embedded stack: free, non-standard ports; shared through stack.json; and
`conveyor run` leaves no server behind on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from conftest import settings_env

from ops import nats_auth
from ops.stack import EmbeddedStack, read_stack_env
from schemas.settings import Settings

STANDARD_PORTS = {4222, 5432, 6379, 8333, 9000, 9333, 8080, 8888}


def test_servers_use_free_loopback_ports(stack: EmbeddedStack) -> None:
    s = stack.settings_out
    for url in (s.nats_url, s.database_url, s.redis_url, s.s3_endpoint):
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port not in STANDARD_PORTS


def test_stack_file_lets_other_processes_find_the_servers(stack: EmbeddedStack) -> None:
    found = read_stack_env(Path(stack.settings.data_dir))
    assert found["CONVEYOR_NATS_URL"] == stack.settings_out.nats_url
    assert found["CONVEYOR_DATABASE_URL"] == stack.settings_out.database_url
    assert found["CONVEYOR_S3_ENDPOINT"] == stack.settings_out.s3_endpoint


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: it holds no port and no data.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[1].split()[0] != "Z"


def test_run_stops_every_server_on_ctrl_c(tmp_path: Path, settings: Settings) -> None:
    data_dir = tmp_path / "run"
    env = settings_env(settings)
    # Nothing configured but a data folder and a port: everything starts embedded,
    # NATS with fresh passwords for its users.
    for name in (
        "NATS_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "JWT_SECRET",
    ):
        env.pop(f"CONVEYOR_{name}")
    for user in nats_auth.USERS:
        env.pop(nats_auth.password_env(user))
    env["CONVEYOR_DATA_DIR"] = str(data_dir)
    env["CONVEYOR_HTTP_PORT"] = "0"
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while b"token" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        servers = json.loads((data_dir / "stack.json").read_text())["servers"]
        assert set(servers) == {"nats", "valkey", "s3", "postgres"}
        assert all(_alive(pid) for pid in servers.values())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [name for name, pid in servers.items() if _alive(pid)] == []
    assert not (data_dir / "stack.json").exists()


def test_only_unconfigured_servers_start(tmp_path: Path, settings: Settings) -> None:
    # NATS, Postgres and S3 given: only Valkey is started, and the given URLs pass through.
    partial = settings.replace(data_dir=str(tmp_path), redis_url="")
    with EmbeddedStack(partial) as started:
        assert [s.name for s in started.servers] == ["valkey"]
        out = started.settings_out
        assert (out.nats_url, out.database_url, out.s3_endpoint) == (
            settings.nats_url,
            settings.database_url,
            settings.s3_endpoint,
        )
        assert out.redis_url not in ("", settings.redis_url)
        pid = started.servers[0].proc.pid  # type: ignore[union-attr]
    assert not _alive(pid)


def test_separate_processes_find_a_running_stack(stack: EmbeddedStack) -> None:
    from ops.cli import load_settings

    found = load_settings({"CONVEYOR_DATA_DIR": stack.settings.data_dir})
    assert found.nats_url == stack.settings_out.nats_url
    assert found.database_url == stack.settings_out.database_url
    # An explicit variable still wins over the stack file.
    mine = load_settings(
        {
            "CONVEYOR_DATA_DIR": stack.settings.data_dir,
            "CONVEYOR_REDIS_URL": "redis://elsewhere:1/0",
        }
    )
    assert mine.redis_url == "redis://elsewhere:1/0"
    assert mine.jwt_secret == stack.settings.jwt_secret
