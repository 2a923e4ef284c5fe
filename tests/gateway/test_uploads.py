"""What an upload request may declare, and what its presigned URL lets a client do."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from conftest import Api
from test_errors import assert_problem

from gateway.errors import Unprocessable
from gateway.upload_policy import ContentTypes


async def test_presigned_put_is_bound_to_type_and_length(api: Api) -> None:
    content = b"a,b\n1,2\n"
    ticket = await api.create_upload(content, content_type="text/csv")
    url = urllib.parse.urlsplit(ticket["url"])
    query = urllib.parse.parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    # The object key is the owner's prefix and the upload id, never the file name.
    assert url.path.endswith(ticket["upload_id"])
    async with httpx.AsyncClient(timeout=10) as s3:
        for body, headers in (
            (content, {"Content-Type": "image/png"}),
            (content + b"3,4\n", ticket["headers"]),
            (content[:-2], ticket["headers"]),
        ):
            swapped = await s3.put(ticket["url"], content=body, headers=headers)
            assert swapped.status_code == 403, swapped.text
            assert "SignatureDoesNotMatch" in swapped.text
        good = await s3.put(ticket["url"], content=content, headers=ticket["headers"])
        assert good.status_code == 200, good.text


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\eve\\report.csv", "report.csv"),
        ("/abs/path/data.csv", "data.csv"),
        ("  spaced name.csv  ", "spaced name.csv"),
        ("données.csv", "données.csv"),
        ("e\u0301te\u0301.csv", "\u00e9t\u00e9.csv"),  # NFC
    ],
)
async def test_filename_keeps_only_a_clean_base_name(api: Api, sent: str, kept: str) -> None:
    ticket = await api.create_upload(b"a\n1\n", filename=sent)
    await api.put(ticket, b"a\n1\n")
    r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert r.status_code == 202, r.text
    job = await api.wait_terminal(ticket["job_id"])
    assert job["filename"] == kept


@pytest.mark.parametrize(
    "filename",
    [
        "..",
        "dir/..",
        "dir/",
        "evil\u202egpj.exe",  # right-to-left override: shows as "evilexe.jpg"
        "zero\u200bwidth.csv",
        "line\u2028break.csv",
        "é" * 128 + ".csv",  # 260 bytes in UTF-8
    ],
    ids=["dotdot", "dir-dotdot", "dir-only", "rtlo", "zero-width", "line-sep", "long"],
)
async def test_bad_filenames_are_422(api: Api, filename: str) -> None:
    r = await api.post(
        "/v1/uploads", json={"filename": filename, "content_type": "text/csv", "size": 1}
    )
    assert_problem(r, 422)


async def test_content_type_must_be_on_the_allow_list(api: Api) -> None:
    for refused in (
        "application/x-msdownload",
        "text/html",
        "application/javascript",
        "image/svg+xml",
    ):
        r = await api.post(
            "/v1/uploads", json={"filename": "f.bin", "content_type": refused, "size": 1}
        )
        body = assert_problem(r, 422)
        assert "is not accepted" in str(body["detail"])
    ticket = await api.create_upload(b"x", filename="p.png", content_type="IMAGE/PNG")
    assert ticket["headers"] == {"Content-Type": "image/png"}


async def test_body_over_the_limit_is_413(api: Api) -> None:
    huge = {"filename": "f.csv", "content_type": "text/csv", "size": 1, "pad": "x" * 100_000}
    r = await api.post("/v1/uploads", json=huge)
    assert_problem(r, 413)


async def test_body_over_the_limit_with_idempotency_key_is_413(api: Api) -> None:
    # The idempotency layer reads the body first; it must stop at the limit too.
    huge = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    r = await api.post(
        "/v1/uploads",
        content=huge,
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-huge"},
    )
    # Refused by the idempotency layer as the body arrived, before Litestar's own check.
    assert "the request body is over" in str(assert_problem(r, 413)["detail"])


async def test_options_answers_allow_without_a_token(api: Api) -> None:
    r = await api.client.options("/v1/uploads")
    assert r.status_code == 204, r.text
    assert "POST" in r.headers["allow"]


def test_content_type_families() -> None:
    allowed = ContentTypes("text/csv, image/*")
    assert allowed.check("Image/WebP") == "image/webp"
    assert allowed.check("text/csv") == "text/csv"
    for refused in ("text/plain", "imagex/png", "application/csv"):
        with pytest.raises(Unprocessable):
            allowed.check(refused)
