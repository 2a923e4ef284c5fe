"""The same event published twice with one id, and the same request sent twice with
one Idempotency-Key: one job each."""

from __future__ import annotations

import uuid

import msgspec
from conftest import Api, Service, connect_as

from actors.publisher import Publisher
from schemas import subjects
from schemas.events import Envelope, Uploaded


async def test_same_event_twice_is_one_job(api: Api, service: Service) -> None:
    content = b"d,e\n1,2\n"
    ticket = await api.create_upload(content)
    assert (await api.put(ticket, content)).status_code == 200
    accepted = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    # As a publisher retrying with the same message id (a `complete` retried gets a
    # refusal instead: its publish expects no earlier `uploaded`, see test_complete).
    nc = await connect_as(service.settings, "gateway")
    try:
        js = nc.jetstream()
        stored = await js.get_last_msg(
            subjects.JOBS_STREAM, subjects.stored_job_event(ticket["job_id"], "uploaded")
        )
        event = msgspec.json.decode(stored.data or b"", type=Envelope)
        assert isinstance(event.data, Uploaded)
        # The same event again with the same id: stored once.
        again = await Publisher(js).publish(event)
        assert again.duplicate
        assert again.seq == accepted.json()["seq"]
    finally:
        await nc.close()
    job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "succeeded"
    assert [j["job_id"] for j in (await api.get("/v1/jobs")).json()["items"]] == [ticket["job_id"]]


async def test_same_request_twice_with_one_key_is_one_job(api: Api) -> None:
    content = b"f\n1\n"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"filename": "k.csv", "content_type": "text/csv", "size": len(content)}
    first = await api.post("/v1/uploads", json=body, headers=key)
    second = await api.post("/v1/uploads", json=body, headers=key)
    assert first.json() == second.json()
    ticket = first.json()
    assert (await api.put(ticket, content)).status_code == 200
    done_key = {"Idempotency-Key": str(uuid.uuid4())}
    one = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete", headers=done_key)
    two = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete", headers=done_key)
    assert one.status_code == two.status_code == 202
    assert one.json() == two.json()
    await api.wait_terminal(ticket["job_id"])
    assert len((await api.get("/v1/jobs")).json()["items"]) == 1
