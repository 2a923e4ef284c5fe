"""Development secrets: made once, kept under the data folder, never used when configured."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from schemas.settings import Settings

FILE = "secrets.json"


def with_dev_secrets(settings: Settings) -> Settings:
    """Fill an empty JWT secret and S3 credentials from `<data_dir>/secrets.json`."""
    if settings.jwt_secret and settings.s3_access_key and settings.s3_secret_key:
        return settings
    path = Path(settings.data_dir) / FILE
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    wanted = {
        "jwt_secret": secrets.token_urlsafe(48),
        "s3_access_key": "conveyor" + secrets.token_hex(6),
        "s3_secret_key": secrets.token_urlsafe(30),
    }
    if any(key not in stored for key in wanted):
        stored = {**wanted, **stored}
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created private: the file holds the key that signs every token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out, indent=2)
    return settings.replace(
        jwt_secret=settings.jwt_secret or stored["jwt_secret"],
        s3_access_key=settings.s3_access_key or stored["s3_access_key"],
        s3_secret_key=settings.s3_secret_key or stored["s3_secret_key"],
    )
