"""S3 endpoints resolved once per bucket, not once per object key."""

from __future__ import annotations

import json
from typing import Any

from botocore.loaders import create_loader

from ops.connections import s3_client
from ops.s3_endpoints import UNREAD_PARAMETERS, cache_endpoints
from schemas.settings import Settings


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["ref"]} if isinstance(node.get("ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_the_dropped_parameters_are_read_by_no_rule() -> None:
    # If a botocore upgrade makes a rule read one of them, dropping it could change an
    # endpoint: this fails first.
    rules = create_loader().load_service_model("s3", "endpoint-rule-set-1")
    assert set(rules["parameters"]) >= UNREAD_PARAMETERS
    assert not _refs(rules["rules"]) & UNREAD_PARAMETERS
    assert _refs(rules["rules"])  # the walk does find references
    # Nor inside a template string, such as a URL's "{Bucket}".
    text = json.dumps(rules["rules"])
    assert "{Bucket" in text
    assert not [name for name in UNREAD_PARAMETERS if "{" + name in text]


async def test_two_keys_share_one_resolved_endpoint() -> None:
    # No request is sent: a client is made without connecting.
    settings = Settings(s3_endpoint="http://127.0.0.1:9", s3_access_key="a", s3_secret_key="b")
    async with s3_client(settings) as client:
        provider: Any = client._ruleset_resolver._provider  # type: ignore[attr-defined]
        common = {
            "Bucket": "conveyor",
            "Region": "us-east-1",
            "Endpoint": "http://127.0.0.1:9",
            "ForcePathStyle": True,
        }
        first = provider.resolve_endpoint(**common, Key="a/one.csv")
        second = provider.resolve_endpoint(**common, Key="b/two.csv", CopySource="x/y")
        # The very object botocore's cache handed out the first time.
        assert second is first
        assert first.url == "http://127.0.0.1:9/conveyor"
        # Wrapped once, however often asked.
        cache_endpoints(client)
        assert client._ruleset_resolver._provider is provider  # type: ignore[attr-defined]
