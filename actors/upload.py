"""The upload actor: is the object in S3 what the client declared?

Emits `verifying`, then `verified` or `rejected`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from actors.errors import TransientError
from actors.processors.detect import detect_mime
from actors.publisher import Publisher
from actors.runtime import Delivery
from schemas.events import Envelope, Rejected, Uploaded, Verified, Verifying, follow_up

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

HEAD_BYTES = 64 * 1024
CHUNK = 1024 * 1024


class Digest:
    """sha256, length and first `HEAD_BYTES` of an object, fed chunk by chunk."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._first = bytearray()

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        if len(self._first) < HEAD_BYTES:
            self._first += chunk[: HEAD_BYTES - len(self._first)]

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def first(self) -> bytes:
        return bytes(self._first)


class UploadActor:
    name: ClassVar[str] = "upload"
    confirm_ack: ClassVar[bool] = False
    # I/O bound (S3 round trips): many files at once, each kept alive and acked on its own.
    batch: ClassVar[int] = 16
    concurrency: ClassVar[int] = 16
    fails_job: ClassVar[bool] = True

    def __init__(self, s3: S3Client, bucket: str, publisher: Publisher) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._publisher = publisher

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
        match event.data:
            case Uploaded() as data:
                await self._publisher.publish(follow_up(event, Verifying(), source=self.name))
                return [follow_up(event, await self._verify(data), source=self.name)]
            case _:
                return []

    async def _verify(self, data: Uploaded) -> Verified | Rejected:
        # One GET, no HEAD first: its headers give the stored length (checked before
        # the body is read) and the ETag of exactly the bytes digested.
        try:
            obj = await self._s3.get_object(Bucket=self._bucket, Key=data.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return Rejected(reason="no object was uploaded for this upload_id")
            raise TransientError(f"S3 get_object: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"S3 unreachable: {exc}") from exc
        body = obj["Body"]
        digest = Digest()
        try:
            stored = int(obj["ContentLength"])
            if stored != data.size:
                return Rejected(
                    reason=f"size mismatch: declared {data.size} bytes, stored {stored}"
                )
            while chunk := await body.read(CHUNK):
                digest.update(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"S3 get_object: {exc}") from exc
        finally:
            body.close()
        if digest.size != data.size:
            return Rejected(reason=f"size mismatch: declared {data.size} bytes, read {digest.size}")
        return Verified(
            key=data.key,
            filename=data.filename,
            size=digest.size,
            sha256=digest.sha256,
            mime=detect_mime(digest.first),
            etag=str(obj.get("ETag", "")),
        )
