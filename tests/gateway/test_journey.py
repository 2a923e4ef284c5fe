"""The whole path over HTTP with a CSV: the profile is checked against values
computed here from the same bytes with the standard library."""

from __future__ import annotations

import csv
import hashlib
import io
import statistics

from conftest import Api

CSV = (
    b"city,population,area,founded\n"
    b"Lyon,522250,47.87,43\n"
    b'"Paris, FR",2102650,105.4,NA\n'
    b"Nice,342669,,1200\n"
    b"Lille,236710,34.83,640\n"
    b"Lyon,1,N/A,\n"
)

NULLS = {"", "NA", "N/A", "null", "NaN"}


def column(name: str) -> list[str]:
    return [row[name] for row in csv.DictReader(io.StringIO(CSV.decode()))]


def numbers(name: str) -> list[float]:
    return [float(v) for v in column(name) if v not in NULLS]


async def test_csv_journey(api: Api) -> None:
    ticket, accepted = await api.submit(CSV, filename="cities.csv")
    assert accepted["job_id"] == ticket["job_id"]
    assert accepted["status"] == "queued"
    assert accepted["seq"] >= 1

    job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "succeeded", job
    assert job["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert job["size"] == len(CSV)
    assert job["filename"] == "cities.csv"
    assert job["upload_id"] == ticket["upload_id"]
    assert job["error"] is None

    result = job["result"]
    assert result["kind"] == "table"
    assert result["rows"] == 5
    by_name = {c["name"]: c for c in result["columns"]}
    assert list(by_name) == ["city", "population", "area", "founded"]

    for name in ("population", "area", "founded"):
        values = numbers(name)
        col = by_name[name]
        assert col["null_count"] == 5 - len(values), name
        assert col["min"] == min(values)
        assert col["max"] == max(values)
        assert abs(col["mean"] - statistics.fmean(values)) < 1e-9
        assert sum(col["histogram"]["counts"]) == len(values)
        assert col["histogram"]["edges"][0] == min(values)
        assert col["histogram"]["edges"][-1] == max(values)
        assert col["distinct_count"] == len(set(values))

    city = by_name["city"]
    assert city["null_count"] == 0
    assert city["distinct_count"] == len(set(column("city")))
    assert city["top"][0] == {"value": "Lyon", "count": 2}
    assert {"value": "Paris, FR", "count": 1} in city["top"]
    assert len(result["preview"]) == 5
    assert result["preview"][1]["city"] == "Paris, FR"
    assert [list(row) for row in result["preview"]] == [list(by_name)] * 5

    r = await api.get(f"/v1/jobs/{ticket['job_id']}/result")
    assert r.status_code == 200
    assert r.json() == result


async def test_complete_twice_is_one_job(api: Api) -> None:
    ticket, first = await api.submit(b"a,b\n1,2\n3,4\n")
    again = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert again.status_code == 202
    assert again.json()["job_id"] == first["job_id"]
    assert again.json()["seq"] == first["seq"]
    await api.wait_terminal(first["job_id"])
    listed = (await api.get("/v1/jobs")).json()["items"]
    assert [j["job_id"] for j in listed] == [first["job_id"]]


async def test_other_types_get_generic_result(api: Api) -> None:
    gzip_header = bytes.fromhex("1f8b0800000000000003")
    payload = gzip_header + bytes(range(256)) * 4
    # The client's content type is not believed: the type comes from the bytes.
    ticket, _ = await api.submit(payload, filename="pixel.png", content_type="image/png")
    job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"] == {
        "kind": "file",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "mime": "application/gzip",
        "encoding": None,
        "lines": None,
    }


async def test_declared_size_mismatch_is_rejected(api: Api) -> None:
    content = b"x,y\n1,2\n"
    # Declare more than is sent: the presigned PUT signs the declared length, so
    # S3 refuses a shorter body; what lands is nothing, and the job is rejected.
    ticket = await api.create_upload(content, size=len(content) + 10)
    await api.put(ticket, content)
    r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert r.status_code == 202
    job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "rejected"
    assert job["error"]


async def test_longer_body_than_declared_is_rejected(api: Api) -> None:
    declared = b"x,y\n1,2\n"
    ticket = await api.create_upload(declared)
    sent = declared + b"3,4\n" * 50
    put = await api.put(ticket, sent)
    r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert r.status_code == 202
    job = await api.wait_terminal(ticket["job_id"])
    if put.status_code == 200:
        # S3 stored the longer body (SeaweedFS does): the upload actor must catch it.
        assert job["status"] == "rejected", job
        assert "size mismatch" in job["error"]
    else:
        assert job["status"] == "rejected", job


async def test_list_is_newest_first_and_paginates(api: Api) -> None:
    ids = []
    for i in range(3):
        _, accepted = await api.submit(f"n\n{i}\n".encode())
        ids.append(accepted["job_id"])
    for job_id in ids:
        await api.wait_terminal(job_id)
    first = (await api.get("/v1/jobs", params={"limit": 2})).json()
    assert [j["job_id"] for j in first["items"]] == ids[::-1][:2]
    assert first["next_cursor"]
    second = (await api.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [j["job_id"] for j in second["items"]] == ids[::-1][2:]
    assert second["next_cursor"] is None
    ok = (await api.get("/v1/jobs", params={"status": "succeeded"})).json()
    assert len(ok["items"]) == 3
    none = (await api.get("/v1/jobs", params={"status": "failed"})).json()
    assert none["items"] == []
