"""The `webhooks` KV bucket: each owner's webhooks as one document (schemas.webhooks).

Read by the webhooks actor, changed by the gateway with compare-and-set on the
revision read, so two gateways adding at once can not lose one or pass the cap.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from actors.errors import TransientError
from schemas.subjects import owner_key
from schemas.webhooks import OwnerWebhooks, Webhook

# Compare-and-set tries before giving up on a document others keep changing.
TRIES = 5

_decoder = msgspec.json.Decoder(OwnerWebhooks)
_encoder = msgspec.json.Encoder()


async def read(kv: KeyValue, owner: str) -> tuple[list[Webhook], int | None]:
    """The owner's webhooks and the document's revision (None: never written)."""
    try:
        entry = await kv.get(owner_key(owner))
    except KeyNotFoundError:
        return [], None
    assert entry.value is not None
    document = _decoder.decode(entry.value)
    # 128 bits of key: a collision is not expected, but never hand out another's hooks.
    hooks = document.hooks if document.owner == owner else []
    return hooks, entry.revision


async def change(
    kv: KeyValue, owner: str, edit: Callable[[list[Webhook]], list[Webhook]]
) -> list[Webhook]:
    """Applies `edit` (which may raise to refuse) to the owner's webhooks; what was stored."""
    for _ in range(TRIES):
        hooks, revision = await read(kv, owner)
        edited = edit(hooks)
        value = _encoder.encode(OwnerWebhooks(owner=owner, hooks=edited))
        try:
            if revision is None:
                await kv.create(owner_key(owner), value)
            else:
                await kv.update(owner_key(owner), value, last=revision)
        except KeyWrongLastSequenceError:
            continue  # changed since it was read: read it again
        return edited
    raise TransientError(f"the webhooks of {owner!r} kept changing under {TRIES} tries")
