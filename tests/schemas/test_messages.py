"""Settings from the environment, and the evolution rules of messages."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from conftest import ENVELOPE_FIELDS

from schemas.api import UploadRequest
from schemas.errors import SettingsError
from schemas.events import Envelope, Uploaded, Verifying, follow_up, new_event
from schemas.settings import Settings


def test_settings_from_env_converts_types() -> None:
    s = Settings.from_env(
        {"CONVEYOR_HTTP_PORT": "9001", "CONVEYOR_SHUTDOWN_GRACE_SECONDS": "2.5", "PATH": "/bin"}
    )
    assert s.http_port == 9001
    assert s.shutdown_grace_seconds == 2.5
    assert s.jwt_audience == "conveyor"


@pytest.mark.parametrize(
    "env",
    [
        {"CONVEYOR_HTTP_PORT": "eighty"},
        {"CONVEYOR_NO_SUCH_THING": "1"},
        {"CONVEYOR_HTTP_PORT": "70000"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_envelopes_tolerate_unknown_fields_and_keep_their_shape() -> None:
    event = new_event(
        Uploaded(upload_id=uuid.uuid4(), filename="a", content_type="t/c", size=1, key="k"),
        job_id=uuid.uuid4(),
        owner="o",
        source="s",
        correlation_id="c",
    )
    raw = msgspec.json.decode(msgspec.json.encode(event))
    assert set(raw) == ENVELOPE_FIELDS
    assert raw["data"]["type"] == raw["type"] == "uploaded"
    raw["added_later"] = {"x": 1}
    raw["data"]["also_new"] = True
    assert msgspec.json.decode(msgspec.json.encode(raw), type=Envelope) == event


def test_follow_up_ids_are_stable() -> None:
    cause = new_event(Verifying(), job_id=uuid.uuid4(), owner="o", source="s", correlation_id="c")
    first = follow_up(cause, Verifying(), source="a")
    again = follow_up(cause, Verifying(), source="a")
    assert first.id == again.id
    assert first.causation_id == cause.id


def test_request_bodies_forbid_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"filename":"a","content_type":"t/c","size":1,"owner":"x"}', type=UploadRequest
        )
