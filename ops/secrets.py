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
    stored = _load_or_create(Path(settings.data_dir) / FILE)
    return settings.replace(
        jwt_secret=settings.jwt_secret or stored["jwt_secret"],
        s3_access_key=settings.s3_access_key or stored["s3_access_key"],
        s3_secret_key=settings.s3_secret_key or stored["s3_secret_key"],
    )


def _load_or_create(path: Path) -> dict[str, str]:
    try:
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    except FileNotFoundError:
        pass
    fresh = {
        "jwt_secret": secrets.token_urlsafe(48),
        "s3_access_key": "conveyor" + secrets.token_hex(6),
        "s3_secret_key": secrets.token_urlsafe(30),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: link fails if the
    # file exists, so of several processes starting at once exactly one set wins,
    # and nobody reads a half-written file. 0600: it holds the token signing key.
    tmp = path.with_name(f".{FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(fresh, out, indent=2)
    try:
        os.link(tmp, path)
    except FileExistsError:
        fresh = json.loads(path.read_text())
    finally:
        tmp.unlink()
    return fresh
