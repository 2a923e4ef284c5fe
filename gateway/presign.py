"""Presigned S3 URLs (upload PUTs, artifact GETs), signed by botocore's own SigV4
query-string signer.

The S3 client's `generate_presigned_url` resolves the endpoint through botocore's
rules engine and runs its event hooks on every call: most of `POST /v1/uploads`'s
CPU. Here the URL is path-style (as the client is configured, `ops.connections`) and
signed by the same `S3SigV4QueryAuth` that call ends in. The content type and length
are signed headers: S3 refuses a PUT that sends others.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from schemas.settings import Settings


class Presigner:
    def __init__(self, settings: Settings) -> None:
        # The address clients reach S3 at, which may differ from the service's.
        endpoint = (settings.s3_public_endpoint or settings.s3_endpoint).rstrip("/")
        parts = urlsplit(endpoint)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        """Where presigned URLs point (scheme, host, port): what a page may load from."""
        self._base = f"{endpoint}/{settings.s3_bucket}/"
        self._credentials = Credentials(settings.s3_access_key, settings.s3_secret_key)
        self._region = settings.s3_region

    def put_url(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> str:
        return self._sign(
            "PUT",
            key,
            expires_in,
            {"Content-Type": content_type, "Content-Length": str(content_length)},
        )

    def get_url(self, key: str, *, expires_in: int) -> str:
        return self._sign("GET", key, expires_in, {})

    def _sign(self, method: str, key: str, expires_in: int, headers: dict[str, str]) -> str:
        request = AWSRequest(method=method, url=self._base + quote(key, safe="/~"), headers=headers)
        S3SigV4QueryAuth(self._credentials, "s3", self._region, expires=expires_in).add_auth(
            request
        )
        assert request.url is not None
        return request.url
