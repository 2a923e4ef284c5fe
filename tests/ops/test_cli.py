"""The operations commands as an operator runs them: `conveyor status|dlq|replay`."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import Api, Service, settings_env


def conveyor(service: Service, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ops", *args],
        env=settings_env(service.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_status_dlq_and_replay_commands(api: Api, service: Service) -> None:
    status = json.loads(conveyor(service, "status", "--json"))
    assert [s["name"] for s in status["streams"]] == ["JOBS", "DEADLETTER"]
    assert len(status["persistence"]) == service.settings.partitions
    assert "persistence partition" in conveyor(service, "status")
    assert isinstance(json.loads(conveyor(service, "dlq", "list", "--json")), list)
    last = status["streams"][0]["last_seq"]
    out = conveyor(service, "replay", "--from-seq", str(max(last, 1)))
    final = out.splitlines()[-1]
    assert final.startswith("replayed ")
    assert "events/s" in final


def test_the_command_line_loads_no_benchmark_or_processing_libraries() -> None:
    # Every `conveyor` command builds the same parser, the gateway's included: what a
    # benchmark suite or a processor needs would sit in the gateway's memory.
    probe = "import sys, ops.cli; ops.cli.parser(); print(sorted(m for m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(done.stdout.strip()[2:-2].split("', '"))
    assert "ops.cli" in loaded
    assert not loaded & {"polars", "PIL", "fastapi", "celery", "pyinstrument"}
