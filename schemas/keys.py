"""S3 object keys and Redis cache keys. Scoped by a digest of the owner, never built
from client text."""

from __future__ import annotations

import hashlib
import uuid


def owner_prefix(owner: str) -> str:
    # A digest, so any `sub` (slashes, dots, unicode) makes a safe, fixed-length segment.
    return hashlib.sha256(owner.encode()).hexdigest()[:24]


def upload_key(owner: str, upload_id: uuid.UUID) -> str:
    return f"uploads/{owner_prefix(owner)}/{upload_id}"


def result_key(owner: str, job_id: uuid.UUID) -> str:
    return f"results/{owner_prefix(owner)}/{job_id}/result.json"


def artifact_key(owner: str, job_id: uuid.UUID, name: str) -> str:
    return f"results/{owner_prefix(owner)}/{job_id}/artifacts/{name}"


def job_cache_key(owner: str, job_id: uuid.UUID) -> str:
    """Redis: the view of one ended job of `owner` (see `gateway.cache`)."""
    return f"conveyor:job:{owner_prefix(owner)}:{job_id}"
