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

# nats-server reads each password from an environment variable and parses its value
# as a configuration value: `2024-...` becomes a date, `yes` a boolean, a comma or a
# space a syntax error. So: empty (no credentials), or 8+ of letters, digits, `_`
# and `-`, starting with a letter.
NatsPassword = Annotated[str, msgspec.Meta(pattern=r"^$|^[A-Za-z][A-Za-z0-9_-]{7,}$")]


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
    # RS256/ES256 tokens checked against the issuer's keys; when set, HS256 is refused.
    jwt_jwks_url: str = ""
    jwt_jwks_cache_seconds: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    # An unknown `kid` fetches the key set again, at most this often (forged kids are free).
    jwt_jwks_min_refresh_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Rate limits in `limits` notation ("20/second;600/minute"); empty: no limit.
    # Kept in Redis, so every gateway process shares them.
    rate_limit_owner_writes: str = "60/minute"
    rate_limit_owner_reads: str = "1200/minute"
    rate_limit_address_writes: str = "300/minute"
    rate_limit_address_reads: str = "6000/minute"
    # Proxies whose X-Forwarded-For is believed (comma-separated IPs/CIDRs); empty:
    # none, the client address is the peer's.
    forwarded_allow_ips: str = ""
    # How long Redis keeps the view of an ended job for GET /v1/jobs/{id}; 0: no cache.
    job_cache_seconds: Annotated[int, msgspec.Meta(ge=0)] = 3600
    # WebSockets one owner may hold open on one gateway process at once.
    max_sockets_per_owner: Annotated[int, msgspec.Meta(ge=1)] = 100
    # Stored events (every owner's) WS /v1/events?after= reads at most to catch up.
    feed_catch_up_events: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    # Webhooks: how many one owner may have; whether they may point at private,
    # loopback or link-local addresses (off: a webhook could otherwise reach inside
    # the network the service runs in); one delivery's time limit; tries per event
    # before it is dead-lettered, and the first wait between them (x6 each time, at
    # most an hour: 5 s, 30 s, 3 min, 18 min, then hourly).
    max_webhooks_per_owner: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    webhook_allow_private: bool = False
    webhook_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 10.0
    webhook_max_tries: Annotated[int, msgspec.Meta(ge=1, le=50)] = 8
    webhook_retry_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # Request bodies are small JSON documents: files go straight to S3.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024
    # `type/subtype` or `type/*`, comma-separated.
    allowed_content_types: str = (
        "text/csv,text/tab-separated-values,text/plain,application/json,"
        "application/x-ndjson,application/jsonl,application/vnd.apache.parquet,"
        "application/x-parquet,application/octet-stream,"
        # Not image/*: an SVG may carry script.
        "image/png,image/jpeg,image/gif,image/webp,image/tiff,image/bmp"
    )
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
    # One NATS user per process kind, each allowed only its own subjects (see
    # ops.nats_auth). Empty: connect without credentials (a NATS without auth);
    # development fills them (ops.secrets). A process needs only its own.
    nats_password_gateway: NatsPassword = ""
    nats_password_upload: NatsPassword = ""
    nats_password_processing: NatsPassword = ""
    nats_password_persistence: NatsPassword = ""
    nats_password_notification: NatsPassword = ""
    nats_password_webhooks: NatsPassword = ""
    nats_password_ops: NatsPassword = ""
    nats_password_subscriber: NatsPassword = ""

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
