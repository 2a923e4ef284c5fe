"""Development secrets: made once, kept, and completed when a newer version needs more."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from ops import nats_auth
from ops.secrets import FILE, with_dev_secrets
from schemas.settings import Settings


def test_made_once_and_kept(tmp_path: Path) -> None:
    first = with_dev_secrets(Settings(data_dir=str(tmp_path)))
    again = with_dev_secrets(Settings(data_dir=str(tmp_path)))
    assert first == again
    assert all((first.jwt_secret, first.s3_access_key, first.s3_secret_key))
    passwords = {nats_auth.password_of(first, user) for user in nats_auth.USERS}
    assert len(passwords) == len(nats_auth.USERS)
    assert "" not in passwords
    # Each one valid as a setting, as nats-server reads it from the environment.
    env = {nats_auth.password_env(u): nats_auth.password_of(first, u) for u in nats_auth.USERS}
    assert Settings.from_env(env) == Settings().replace(
        **{nats_auth.password_field(u): nats_auth.password_of(first, u) for u in nats_auth.USERS}
    )
    assert stat.S_IMODE((tmp_path / FILE).stat().st_mode) == 0o600


def test_an_older_file_is_completed_and_keeps_what_it_had(tmp_path: Path) -> None:
    # Written before NATS had users: no passwords in it.
    (tmp_path / FILE).write_text(json.dumps({"jwt_secret": "kept", "s3_access_key": "k"}))
    filled = with_dev_secrets(Settings(data_dir=str(tmp_path)))
    assert filled.jwt_secret == "kept"
    assert filled.s3_access_key == "k"
    assert filled.s3_secret_key
    assert all(nats_auth.password_of(filled, u) for u in nats_auth.USERS)
    stored = json.loads((tmp_path / FILE).read_text())
    assert stored["jwt_secret"] == "kept"
    assert stored[nats_auth.password_field("ops")] == filled.nats_password_ops
    assert stat.S_IMODE((tmp_path / FILE).stat().st_mode) == 0o600
    assert with_dev_secrets(Settings(data_dir=str(tmp_path))) == filled


def test_configured_values_win(tmp_path: Path) -> None:
    mine = Settings(data_dir=str(tmp_path), nats_password_gateway="Gateway-secret-1")
    assert with_dev_secrets(mine).nats_password_gateway == "Gateway-secret-1"
