"""Events for tests: the first event of a fresh job."""

from __future__ import annotations

import uuid

from schemas.events import Envelope, Uploaded, new_event


def uploaded_event(
    owner: str,
    *,
    filename: str = "f.csv",
    content_type: str = "text/csv",
    size: int = 3,
    key: str = "k",
) -> Envelope:
    """An `uploaded` of a new job and upload, as the gateway would publish it."""
    data = Uploaded(
        upload_id=uuid.uuid4(), filename=filename, content_type=content_type, size=size, key=key
    )
    return new_event(data, job_id=uuid.uuid4(), owner=owner, source="test", correlation_id="req")
