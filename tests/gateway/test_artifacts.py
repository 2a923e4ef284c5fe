"""`GET /v1/jobs/{id}/artifacts`: what the processor produced, downloadable, owner-scoped."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET

import httpx
import polars as pl
from conftest import Api
from PIL import Image

CSV = b"city,population,founded\nOslo,709037,1040-01-01\nBergen,289330,1070-01-01\nTroms\xc3\xb8,78745,1794-01-01\n"


async def _artifacts(api: Api, job_id: str) -> dict[str, dict[str, object]]:
    r = await api.get(f"/v1/jobs/{job_id}/artifacts")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_id"] == job_id
    return {a["name"]: a for a in body["artifacts"]}


async def _download(url: str) -> httpx.Response:
    # A presigned GET needs no bearer token: a browser or curl can fetch it as it is.
    async with httpx.AsyncClient(timeout=10) as s3:
        return await s3.get(url)


async def test_csv_exports_and_charts_download(api: Api) -> None:
    _, accepted = await api.submit(CSV)
    job = await api.wait_terminal(accepted["job_id"])
    assert job["status"] == "succeeded", job
    found = await _artifacts(api, accepted["job_id"])
    assert sorted(found) == ["export.csv", "export.parquet", "histogram-2.svg"]

    parquet = await _download(str(found["export.parquet"]["url"]))
    assert parquet.status_code == 200
    assert len(parquet.content) == found["export.parquet"]["size"]
    table = pl.read_parquet(io.BytesIO(parquet.content))
    assert table["city"].to_list() == ["Oslo", "Bergen", "Tromsø"]
    assert table["population"].to_list() == [709037, 289330, 78745]

    exported = await _download(str(found["export.csv"]["url"]))
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0] == "city,population,founded"

    chart = await _download(str(found["histogram-2.svg"]["url"]))
    assert chart.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(chart.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "population" in chart.text


async def test_image_gets_a_thumbnail(api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 320), (200, 40, 40)).save(buffer, "PNG")
    _, accepted = await api.submit(buffer.getvalue(), filename="red.png", content_type="image/png")
    job = await api.wait_terminal(accepted["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["kind"] == "image"
    assert (job["result"]["width"], job["result"]["height"]) == (640, 320)
    found = await _artifacts(api, accepted["job_id"])
    thumb = await _download(str(found["thumbnail.webp"]["url"]))
    image = Image.open(io.BytesIO(thumb.content))
    assert (image.format, image.size) == ("WEBP", (256, 128))


async def test_failed_job_lists_no_artifacts(api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    truncated = buffer.getvalue()[:60]  # the PNG signature, then nothing decodable
    _, accepted = await api.submit(truncated, filename="broken.png", content_type="image/png")
    job = await api.wait_terminal(accepted["job_id"])
    assert job["status"] == "failed", job
    assert await _artifacts(api, accepted["job_id"]) == {}


async def test_another_owner_gets_404(api: Api, other_api: Api) -> None:
    _, accepted = await api.submit(CSV)
    await api.wait_terminal(accepted["job_id"])
    r = await other_api.get(f"/v1/jobs/{accepted['job_id']}/artifacts")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    unknown = await api.get(f"/v1/jobs/{uuid.uuid4()}/artifacts")
    assert unknown.status_code == 404
    malformed = await api.get("/v1/jobs/not-a-uuid/artifacts")
    assert malformed.status_code == 404
