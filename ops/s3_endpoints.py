"""S3 endpoint resolution that botocore's cache can serve.

botocore resolves every S3 request's endpoint through the service's rules engine, with
a cache keyed on the rules' input parameters. S3's rules declare the object key (and a
prefix and copy source) as parameters, yet no rule reads them (boto/botocore#3528), so
each new key missed the cache and the whole rule tree ran again: a third of the S3
client's CPU per request in the processing actor. botocore drops the three itself from
boto/botocore#3692 on; the botocore that aioboto3 pins predates it. Dropping them here
gives the same endpoint (the test reads the rules to prove it is still so) from the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

UNREAD_PARAMETERS: Final = frozenset({"Key", "Prefix", "CopySource"})


class _Provider:
    """botocore's endpoint provider, given only the parameters its rules read."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def resolve_endpoint(self, **params: Any) -> Any:
        for name in UNREAD_PARAMETERS:
            params.pop(name, None)
        return self._provider.resolve_endpoint(**params)


def cache_endpoints(client: S3Client) -> None:
    """Make `client`'s endpoint resolution independent of the object key (once)."""
    resolver: Any = getattr(client, "_ruleset_resolver", None)
    if resolver is None or isinstance(resolver._provider, _Provider):
        # No rules engine (an older botocore), or done already.
        return
    resolver._provider = _Provider(resolver._provider)
