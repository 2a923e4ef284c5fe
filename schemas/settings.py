"""The one settings object, built from `CONVEYOR_*` variables at the entry point.

Only `ops.cli` reads the process environment; everything else receives a `Settings`.
A server URL left empty means "start that server embedded" (see `ops.stack`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from schemas.errors import SettingsError

PREFIX = "CONVEYOR_"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = ".conveyor"
    nats_url: str = ""
    database_url: str = ""
    redis_url: str = ""
    s3_endpoint: str = ""
    # The S3 address clients use for presigned URLs when it differs from the one the
    # service reaches (a container network, a proxy). Empty: same as `s3_endpoint`.
    s3_public_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "conveyor"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    jwt_secret: str = ""
    jwt_audience: str = "conveyor"
    jwt_issuer: str = ""
    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1024**3
    presign_ttl_seconds: Annotated[int, msgspec.Meta(ge=10, le=7 * 24 * 3600)] = 900
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    shutdown_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    # How long JOBS keeps events for replay; see ops.provision for the other limits.
    stream_max_age_days: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    ack_wait_seconds: Annotated[float, msgspec.Meta(ge=1)] = 30.0
    max_deliver: Annotated[int, msgspec.Meta(ge=1)] = 5
    # Partitions of JOBS (by job id) that persistence applies in parallel, each in
    # order. Fixed when the stream is created: changing it needs `replay --rebuild`.
    partitions: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    # Copies of each stream in a NATS cluster (1 for a single server, 3 in compose.yaml).
    stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    db_pool_size: Annotated[int, msgspec.Meta(ge=1)] = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build from `CONVEYOR_*` entries of `env`; unknown `CONVEYOR_*` names are an error."""
        raw = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k.startswith(PREFIX)}
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(str(exc)) from exc

    def replace(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)


def env_name(field: str) -> str:
    return PREFIX + field.upper()
