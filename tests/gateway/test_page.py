"""GET /jobs/{job_id}: the job's web page."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import httpx
import pytest
from conftest import Api, Service
from PIL import Image

from gateway.page import number
from tests.waits import wait_for_value

CSV = (
    b"city,population,area,<script>alert(1)</script>\n"
    b'Lyon,522250,47.87,"<img src=x onerror=alert(2)>"\n'
    b"Paris,2102650,105.4,a\n"
    b"Nice,342669,NA,a\n"
)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


async def page(service: Service, job_id: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        return await client.get(f"/jobs/{job_id}", params={"token": token})


async def test_page_shows_the_profile_escaped_with_charts(api: Api, service: Service) -> None:
    ticket, _ = await api.submit(CSV)
    job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "succeeded"
    r = await page(service, ticket["job_id"], api.token)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "unsafe-inline" not in policy
    tags = parse(r.text)
    text = " ".join(tags.text)
    # What the file held, as text: no tag of it made it into the page.
    assert [name for name, _ in tags.tags if name in ("script", "img")] == []
    assert "<script>alert(1)</script>" in text
    assert "<img src=x onerror=alert(2)>" in text
    assert not any(attrs.get("onerror") for _, attrs in tags.tags)
    # One histogram per numeric column (population, area), as many bars as bins.
    result = job["result"]
    numeric = [c for c in result["columns"] if c.get("histogram")]
    assert [c["name"] for c in numeric] == ["population", "area"]
    charts = tags.named("svg")
    assert [c["aria-label"] for c in charts] == [f"histogram of {c['name']}" for c in numeric]
    assert len(tags.named("rect")) == sum(len(c["histogram"]["counts"]) for c in numeric)
    # The tallest bar of each chart reaches the top.
    heights = [float(str(a["height"])) for a in tags.named("rect")]
    assert max(heights) == 100.0
    # The preview: every row, and the 3 rows figure.
    assert "Paris" in text
    assert "Nice" in text
    assert re.search(r"rows\s+3\b", text)
    # Artifacts: a link for each, signed for S3.
    links = [a["href"] for a in tags.named("a")]
    assert len(links) == len(
        (await api.get(f"/v1/jobs/{ticket['job_id']}/artifacts")).json()["artifacts"]
    )
    assert all(str(h).startswith(service.settings.s3_endpoint) for h in links)
    # Ended: the page no longer reloads itself.
    assert not [m for m in tags.named("meta") if m.get("http-equiv") == "refresh"]


async def test_page_shows_an_image_with_its_thumbnail(api: Api, service: Service) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), "blue").save(buffer, format="PNG")
    ticket, _ = await api.submit(buffer.getvalue(), filename="blue.png", content_type="image/png")
    assert (await api.wait_terminal(ticket["job_id"]))["status"] == "succeeded"
    r = await page(service, ticket["job_id"], api.token)
    assert "400 \u00d7 200" in r.text
    images = parse(r.text).named("img")
    assert len(images) == 1
    src = str(images[0]["src"])
    assert "/artifacts/thumbnail.webp?" in src
    # The one place the page may load an image from is where the thumbnail is.
    origin = src.split("/")[:3]
    assert f"img-src {'/'.join(origin)};" in r.headers["content-security-policy"]


async def test_page_shows_any_other_file(api: Api, service: Service) -> None:
    content = bytes(range(256)) * 4
    ticket, _ = await api.submit(
        content, filename="blob.bin", content_type="application/octet-stream"
    )
    job = await api.wait_terminal(ticket["job_id"])
    assert job["result"]["kind"] == "file"
    text = " ".join(parse((await page(service, ticket["job_id"], api.token)).text).text)
    assert re.search(r"detected type\s+" + re.escape(job["result"]["mime"]), text)
    assert re.search(r"size\s+1,024 bytes", text)


async def test_page_reloads_while_the_job_runs_and_takes_the_header_too(
    api: Api, service: Service
) -> None:
    ticket = await api.create_upload(b"a\n1\n")
    # Completed without the bytes: the upload actor rejects it, soon but not at once.
    r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert r.status_code == 202
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        first = await client.get(
            f"/jobs/{ticket['job_id']}", headers={"Authorization": f"Bearer {api.token}"}
        )
    assert first.status_code == 200
    refresh = [m for m in parse(first.text).named("meta") if m.get("http-equiv") == "refresh"]
    status = re.search(r'class="status (\w+)"', first.text)
    assert status is not None
    assert bool(refresh) == (status[1] not in ("succeeded", "failed", "rejected"))

    async def rejected() -> str | None:
        r = await page(service, ticket["job_id"], api.token)
        return r.text if 'class="status rejected"' in r.text else None

    ended = await wait_for_value(rejected, within=30, what="the rejected job's page")
    assert "no object was uploaded" in ended  # the reason the upload actor gave
    assert not [m for m in parse(ended).named("meta") if m.get("http-equiv") == "refresh"]


async def test_page_is_the_owners_alone(api: Api, other_api: Api, service: Service) -> None:
    ticket, _ = await api.submit(b"a\n1\n")
    assert (await page(service, ticket["job_id"], other_api.token)).status_code == 404
    assert (await page(service, "not-a-job", api.token)).status_code == 404
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        assert (await client.get(f"/jobs/{ticket['job_id']}")).status_code == 401
        # `?token=` is the page's alone: the API still wants the header.
        r = await client.get(f"/v1/jobs/{ticket['job_id']}", params={"token": api.token})
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (True, "true"),
        (1234567, "1,234,567"),
        (0.0, "0"),
        (4.3333333, "4.333"),
        (47.87, "47.87"),
        (-989190.33, "-989,190"),
        (0.000123456, "0.0001235"),
        (0.0000123456, "1.235e-05"),
        (1e20, "1e+20"),
        ("x", "x"),
    ],
)
def test_number(value: object, shown: str) -> None:
    assert number(value) == shown
