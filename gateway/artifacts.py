"""A job's artifacts (exports, charts, thumbnails), as short-lived presigned GET URLs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, get

from gateway.errors import NotFound
from gateway.jobs import parse_job_id
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import READ
from gateway.services import Services
from schemas.api import ArtifactLink, ArtifactList
from schemas.results import Artifact

# The list comes from the job's `processed` event as persisted: what the stream says the
# processor produced, not whatever happens to sit under the job's prefix in the bucket.
_QUERY = """
SELECT (SELECT e.envelope -> 'data' -> 'artifacts' FROM job_events e
         WHERE e.job_id = j.job_id AND e.type = 'processed'
         ORDER BY e.seq DESC LIMIT 1) AS artifacts
  FROM jobs j
 WHERE j.job_id = $1 AND j.owner = $2
"""
_decoder = msgspec.json.Decoder(list[Artifact] | None)


@get(
    "/v1/jobs/{job_id:str}/artifacts",
    summary="Files the processor produced, with download URLs",
    responses=problems(404, scope=READ),
    operation_class=ProblemOperation,
)
async def list_artifacts(
    job_id: str, request: Request[str, Any, Any], services: Services
) -> ArtifactList:
    uid = parse_job_id(job_id)
    found = await artifact_links(services, uid, request.user)
    if found is None:
        raise NotFound(f"no job {job_id}")
    return found


async def artifact_links(services: Services, job_id: uuid.UUID, owner: str) -> ArtifactList | None:
    """The owner's job's artifacts with fresh presigned URLs; None for no such job."""
    row = await services.pool.fetchrow(_QUERY, job_id, owner)
    if row is None:
        return None
    raw = row["artifacts"]
    artifacts = _decoder.decode(raw) if raw is not None else None
    ttl = services.settings.presign_ttl_seconds
    # Taken before signing, so the time given is never later than the URLs' own expiry.
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    links = [
        ArtifactLink(
            name=a.name,
            content_type=a.content_type,
            size=a.size,
            url=services.presigner.get_url(a.key, expires_in=ttl),
        )
        for a in artifacts or []
    ]
    return ArtifactList(job_id=job_id, artifacts=links, expires_at=expires_at)
