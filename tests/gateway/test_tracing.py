"""One request id from the HTTP request, through every event it causes, into every
log line of the gateway and of the actors that handle those events."""

from __future__ import annotations

import json
import uuid
from typing import Any

from conftest import Api, Service
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from actors.publisher import REQUEST_ID_HEADER
from schemas import subjects
from tests.waits import eventually


async def stored_events(nc: NATS, job_id: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    js, seq, found = nc.jetstream(), 0, []
    while True:
        try:
            msg = await js.get_msg(
                subjects.JOBS_STREAM,
                seq=seq + 1,
                subject=subjects.stored_job_events(job_id),
                next=True,
            )
        except NotFoundError:
            return found
        assert msg.seq is not None
        found.append((json.loads(msg.data or b""), dict(msg.headers or {})))
        seq = msg.seq


def log_lines(service: Service) -> list[dict[str, Any]]:
    lines = []
    for raw in service.log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


async def test_request_id_reaches_every_event_and_log_line(
    api: Api, service: Service, nc: NATS
) -> None:
    created = f"create-{uuid.uuid4().hex}"
    completed = f"complete-{uuid.uuid4().hex}"
    r = await api.post(
        "/v1/uploads",
        json={"filename": "t.csv", "content_type": "text/csv", "size": 8},
        headers={"X-Request-ID": created},
    )
    assert r.status_code == 201
    assert r.headers["x-request-id"] == created
    ticket = r.json()
    await api.put(ticket, b"a,b\n1,2\n")
    r = await api.post(
        f"/v1/uploads/{ticket['upload_id']}/complete", headers={"X-Request-ID": completed}
    )
    assert r.status_code == 202
    assert r.headers["x-request-id"] == completed
    assert (await api.wait_terminal(ticket["job_id"]))["status"] == "succeeded"

    events = await stored_events(nc, ticket["job_id"])
    assert [e["type"] for e, _ in events] == ["uploaded", "verifying", "verified", "processed"]
    for event, headers in events:
        assert headers[REQUEST_ID_HEADER] == completed, event["type"]
        assert event["correlation_id"] == completed

    def seen() -> dict[str, list[dict[str, Any]]]:
        by: dict[str, list[dict[str, Any]]] = {}
        for line in log_lines(service):
            if line.get("request_id") == completed:
                by.setdefault(line.get("actor") or "gateway", []).append(line)
            elif completed in line.get("request_ids", []):
                by.setdefault(line.get("actor", "?"), []).append(line)
        return by

    async def every_actor_logged() -> bool:
        return {"gateway", "upload", "processing", "notification", "persistence"} <= set(seen())

    await eventually(every_actor_logged, within=15, what="log lines of every actor")
    lines = seen()
    assert [line["path"] for line in lines["gateway"] if line["event"] == "request"] == [
        f"/v1/uploads/{ticket['upload_id']}/complete"
    ]
    # One line per unit of work: upload and processing each handled one event here.
    for actor in ("upload", "processing"):
        handled = [line for line in lines[actor] if line["event"] == "handled"]
        assert [line["job_id"] for line in handled] == [ticket["job_id"]], handled
    # The create request's id stays with the create request.
    assert not any(
        line.get("request_id") == created and "actor" in line for line in log_lines(service)
    )
