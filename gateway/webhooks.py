"""/v1/webhooks: the caller's webhooks, which the webhooks actor sends job events to.

Kept in the `webhooks` KV bucket (actors.webhook_store): JetStream stores the write
before it is answered, like every other write here.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, get_args

import msgspec
from litestar import Request, delete, get, post

from actors import webhook_store
from actors.destinations import normalized, url_problem
from actors.errors import TransientError
from gateway.errors import NATS_UNREACHABLE, Conflict, NotFound, Unavailable, Unprocessable
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import READ, WRITE
from gateway.services import Services
from schemas.api import WebhookCreated, WebhookList, WebhookRequest, WebhookView
from schemas.webhooks import DEFAULT_EVENTS, EventType, Webhook

SECRET_PREFIX = "whsec_"

_ORDER: tuple[EventType, ...] = get_args(EventType)  # the order a job goes through


@contextlib.contextmanager
def _store_answers() -> Iterator[None]:
    """The store's own failures as 503: the request may be sent again."""
    try:
        yield
    except TransientError as exc:
        raise Unavailable(f"{exc.reason}; retry") from exc
    except NATS_UNREACHABLE as exc:
        raise Unavailable("the webhooks store did not answer; retry") from exc


async def _change(
    services: Services, owner: str, edit: Callable[[list[Webhook]], list[Webhook]]
) -> None:
    with _store_answers():
        await webhook_store.change(services.webhooks, owner, edit)


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(
        webhook_id=hook.id, url=hook.url, events=hook.events, created_at=hook.created_at
    )


@post(
    "/v1/webhooks",
    status_code=201,
    summary="Have job events sent to a URL",
    responses=problems(
        409,
        422,
        scope=WRITE,
        notes={409: "The owner has CONVEYOR_MAX_WEBHOOKS_PER_OWNER webhooks already."},
    ),
    operation_class=ProblemOperation,
)
async def create_webhook(
    data: WebhookRequest, request: Request[str, Any, Any], services: Services
) -> WebhookCreated:
    settings = services.settings
    problem = url_problem(data.url, allow_private=settings.webhook_allow_private)
    if problem is not None:
        raise Unprocessable(f"url: {problem}")
    wanted = set(data.events or DEFAULT_EVENTS)
    hook = Webhook(
        id=uuid.uuid4(),
        url=normalized(data.url),
        events=[e for e in _ORDER if e in wanted],
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        created_at=datetime.now(UTC),
    )

    def add(hooks: list[Webhook]) -> list[Webhook]:
        if len(hooks) >= settings.max_webhooks_per_owner:
            raise Conflict(f"{len(hooks)} webhooks already: delete one first")
        return [*hooks, hook]

    await _change(services, request.user, add)
    return WebhookCreated(**msgspec.structs.asdict(_view(hook)), secret=hook.secret)


@get(
    "/v1/webhooks",
    summary="The caller's webhooks (without their secrets)",
    responses=problems(scope=READ),
    operation_class=ProblemOperation,
)
async def list_webhooks(request: Request[str, Any, Any], services: Services) -> WebhookList:
    with _store_answers():
        hooks, _ = await webhook_store.read(services.webhooks, request.user)
    return WebhookList(items=[_view(h) for h in hooks])


@delete(
    "/v1/webhooks/{webhook_id:str}",
    status_code=204,
    summary="Stop sending events to a webhook",
    responses=problems(404, scope=WRITE),
    operation_class=ProblemOperation,
)
async def delete_webhook(
    webhook_id: str, request: Request[str, Any, Any], services: Services
) -> None:
    try:
        wanted = uuid.UUID(webhook_id)
    except ValueError:
        raise NotFound(f"no webhook {webhook_id!r}") from None

    def remove(hooks: list[Webhook]) -> list[Webhook]:
        kept = [h for h in hooks if h.id != wanted]
        if len(kept) == len(hooks):
            raise NotFound(f"no webhook {webhook_id}")
        return kept

    await _change(services, request.user, remove)
