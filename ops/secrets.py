"""Development secrets: made once, kept under the data folder, never used when configured."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from ops.nats_auth import USERS, password_field
from schemas.settings import Settings

FILE = "secrets.json"

# Each secret a development setup needs, and how to make one.
_MAKERS: dict[str, Callable[[], str]] = {
    "jwt_secret": lambda: secrets.token_urlsafe(48),
    "s3_access_key": lambda: "conveyor" + secrets.token_hex(6),
    "s3_secret_key": lambda: secrets.token_urlsafe(30),
    # One password per NATS user (ops.nats_auth); the embedded nats-server gets them all.
    # A letter first: see `NatsPassword` in schemas.settings.
    **{password_field(user): lambda: "n" + secrets.token_urlsafe(24) for user in USERS},
}


def with_dev_secrets(settings: Settings) -> Settings:
    """Fill every empty secret (JWT key, S3 credentials, NATS passwords) from
    `<data_dir>/secrets.json`, making the ones it lacks."""
    empty = {name for name in _MAKERS if not getattr(settings, name)}
    if not empty:
        return settings
    stored = _load_or_create(Path(settings.data_dir) / FILE)
    return settings.replace(**{name: stored[name] for name in empty})


def _load_or_create(path: Path) -> dict[str, str]:
    """The stored secrets, with any missing ones made and saved first."""
    try:
        stored = _read(path)
    except FileNotFoundError:
        stored = {}
    if all(name in stored for name in _MAKERS):
        return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once: one at a time reads, adds what is missing
    # and replaces the file whole, so all of them end up with the same secrets and
    # nobody reads a half-written file.
    with _locked(path.with_name(f".{FILE}.lock")):
        try:
            stored = _read(path)
        except FileNotFoundError:
            stored = {}
        missing = {name: make() for name, make in _MAKERS.items() if name not in stored}
        if missing:
            stored = {**stored, **missing}
            # 0600: it holds the token signing key and the NATS passwords.
            write_private(path, json.dumps(stored, indent=2))
    return stored


def _read(path: Path) -> dict[str, str]:
    loaded = json.loads(path.read_text())
    return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}


def write_private(path: Path, text: str) -> None:
    """Replace `path` whole with `text`, readable by its owner only (0600).

    Written to a fresh temporary file first (created 0600, never world-readable even
    for a moment), then renamed over: a reader sees the old file or the new, never half.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
