"""What `conveyor status --json` and `conveyor dlq list --json` print."""

from __future__ import annotations

import msgspec


class StreamStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    messages: int
    bytes: int
    first_seq: int
    last_seq: int


class ConsumerStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int


class PartitionStatus(msgspec.Struct, frozen=True, kw_only=True):
    partition: int
    watermark: int
    # Events stored in the partition after the watermark: not applied yet.
    lag: int | None
    owner: str | None


class Status(msgspec.Struct, frozen=True, kw_only=True):
    streams: list[StreamStatus]
    consumers: list[ConsumerStatus]
    persistence: list[PartitionStatus]
    dead_letters: int


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    subject: str
    actor: str
    original_subject: str
    original_seq: int
    delivered: int
    error: str
