"""GET /jobs/{job_id}: a job and its result as a web page, charts included, no script.

For people with a browser rather than an HTTP client: a token may come as `?token=`,
since a link can not carry a header. The page sends no referrer (the token stays off
S3's logs), is never cached, and its policy lets it load nothing but its own style
and the thumbnail from S3. Everything shown is escaped by Jinja; bars are SVG
attributes, not inline styles, so the policy holds without 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response, get
from markupsafe import Markup

from gateway.artifacts import artifact_links
from gateway.auth import QUERY_TOKEN
from gateway.errors import NotFound
from gateway.jobs import find_job, parse_job_id
from gateway.services import Services
from schemas.api import ENDED_STATUSES, ArtifactList, JobView
from schemas.results import ColumnProfile, FileResult, ImageResult, TableResult

TEMPLATES = Path(__file__).parent / "templates"
# A job still running: reload this often, without script.
REFRESH_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Bin:
    low: str
    high: str
    count: int
    percent: float


@dataclass(frozen=True, slots=True)
class ColumnView:
    profile: ColumnProfile
    facts: list[tuple[str, str]]
    bins: list[Bin]
    top_max: int


def number(value: Any) -> str:
    """A figure as a person reads it: thousands grouped, at least four significant
    digits, and an exponent only for the very large or very small; nothing for null."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return f"{value:g}"
        magnitude = math.floor(math.log10(abs(value)))
        if -4 <= magnitude < 15:
            return f"{value:,.{max(0, 3 - magnitude)}f}"
        return f"{value:.4g}"
    return str(value)


def _bins(profile: ColumnProfile) -> list[Bin]:
    histogram = profile.histogram or profile.time_histogram
    if histogram is None or not histogram.counts:
        return []
    tallest = max(histogram.counts) or 1
    edges = [number(edge) for edge in histogram.edges]
    return [
        Bin(edges[i], edges[i + 1], count, round(100 * count / tallest, 2))
        for i, count in enumerate(histogram.counts)
    ]


def _facts(profile: ColumnProfile) -> list[tuple[str, str]]:
    distinct = number(profile.distinct_count) + ("" if profile.distinct_exact else " (estimate)")
    facts = [
        ("values", number(profile.count)),
        ("nulls", number(profile.null_count)),
        ("distinct", distinct),
    ]
    optional: list[tuple[str, Any]] = [
        ("min", profile.min),
        ("max", profile.max),
        ("mean", profile.mean),
        ("std", profile.std),
    ]
    if profile.quantiles is not None:
        q = profile.quantiles
        optional += [("p5", q.p5), ("p25", q.p25), ("median", q.p50), ("p75", q.p75)]
        optional += [("p95", q.p95)]
    optional += [
        ("shortest", profile.min_length),
        ("mean length", profile.mean_length),
        ("longest", profile.max_length),
    ]
    return facts + [(label, number(value)) for label, value in optional if value is not None]


def _columns(result: TableResult) -> list[ColumnView]:
    return [
        ColumnView(
            profile=column,
            facts=_facts(column),
            bins=_bins(column),
            top_max=max((t.count for t in column.top or ()), default=1) or 1,
        )
        for column in result.columns
    ]


class Page:
    """The template, its style and the policy that admits that style, built once."""

    def __init__(self, s3_origin: str) -> None:
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["j2"], default_for_string=True),
            trim_blocks=True,
        )
        self._env.filters["num"] = number
        self._template = self._env.get_template("job.html.j2")
        css = (TEMPLATES / "job.css").read_text(encoding="utf-8")
        self._css = Markup(css)  # our own file: not escaped, and hashed as written
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        self.headers = {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'sha256-{digest}'; img-src {s3_origin}; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }

    def render(self, job: JobView, artifacts: ArtifactList | None) -> str:
        result = job.result
        thumbnail = None
        if isinstance(result, ImageResult) and artifacts is not None:
            thumbnail = next(
                (a.url for a in artifacts.artifacts if a.name == result.thumbnail), None
            )
        return self._template.render(
            job=job,
            ended=job.status in ENDED_STATUSES,
            refresh_seconds=REFRESH_SECONDS,
            css=self._css,
            table=_columns(result) if isinstance(result, TableResult) else None,
            image=result if isinstance(result, ImageResult) else None,
            file=result if isinstance(result, FileResult) else None,
            thumbnail=thumbnail,
            artifacts=artifacts if artifacts is not None and artifacts.artifacts else None,
        )


@get(
    "/jobs/{job_id:str}",
    media_type=MediaType.HTML,
    include_in_schema=False,
    opt={QUERY_TOKEN: True},
)
async def job_page(
    job_id: str, request: Request[str, Any, Any], services: Services, page: Page
) -> Response[str]:
    uid = parse_job_id(job_id)
    job = await find_job(services, uid, request.user)
    if job is None:
        raise NotFound(f"no job {job_id}")
    artifacts = await artifact_links(services, uid, request.user) if job.result else None
    return Response(page.render(job, artifacts), media_type=MediaType.HTML, headers=page.headers)
