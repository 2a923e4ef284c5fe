"""Webhooks as the `webhooks` KV bucket keeps them: one document per owner.

One key per owner (`subjects.owner_key`), holding all of that owner's webhooks: a
listing is one read, and an update is one compare-and-set on the revision read, so
two gateways adding at once can not lose one or pass the cap.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

EventType = Literal["uploaded", "verifying", "verified", "rejected", "processed", "failed"]
DEFAULT_EVENTS: tuple[EventType, ...] = ("processed", "rejected", "failed")
"""A job's end, whichever way: what a webhook is sent unless it asks for more."""


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    url: str
    events: list[EventType]
    # Signs every delivery (HMAC-SHA256); shown to the owner once, at creation.
    secret: str
    created_at: datetime


class OwnerWebhooks(msgspec.Struct, frozen=True, kw_only=True):
    owner: str
    hooks: list[Webhook] = []
