"""The processing actor: runs the processor for the file's detected type, stores the
result JSON in S3, and emits `processed` or `failed`."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from actors.errors import BadFile, PermanentError, TransientError
from actors.processors.base import FileInfo, Processor
from actors.processors.registry import pick
from actors.runtime import Delivery
from schemas.events import Envelope, Failed, Processed, Verified, follow_up
from schemas.keys import artifact_key, result_key
from schemas.results import RESULT_KINDS, Artifact, CustomResult, Result

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

CHUNK = 1024 * 1024
UPLOAD_CONCURRENCY = 8
# Files above this size are profiled one at a time per process (see `_large`).
LARGE_FILE_BYTES = 16 * 1024 * 1024
# Artifacts up to this size go up in one PUT (the managed upload's own multipart
# threshold is 8 MiB): most of a small table's exports and every chart.
SINGLE_PUT_BYTES = 8 * 1024 * 1024
# Artifact names become the last segment of an S3 key and of a URL: keep them plain.
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
CONTENT_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".json": "application/json",
}


class ProcessingActor:
    name: ClassVar[str] = "processing"
    confirm_ack: ClassVar[bool] = False
    # Several files at once: while one is profiled (in a thread, polars off the GIL),
    # others download and upload. Each is kept alive and acked on its own.
    batch: ClassVar[int] = 4
    concurrency: ClassVar[int] = 4
    fails_job: ClassVar[bool] = True

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        processors: Sequence[Processor],
        *,
        work_dir: Path | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._processors = processors
        self._work_dir = work_dir
        self._encoder = msgspec.json.Encoder()
        # Small files are handled `concurrency` at a time; a large one holds this too, so a
        # replica profiles one large file at a time and its memory stays that of one profile.
        self._large = asyncio.Semaphore(1)

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
        match event.data:
            case Verified() as data:
                return [follow_up(event, await self._process(event, data), source=self.name)]
            case _:
                return []

    async def _process(self, event: Envelope, data: Verified) -> Processed | Failed:
        processor = pick(self._processors, data.mime)
        info = FileInfo(filename=data.filename, size=data.size, sha256=data.sha256, mime=data.mime)
        large = self._large if data.size > LARGE_FILE_BYTES else contextlib.nullcontext()
        async with large:
            return await self._process_file(event, data, processor, info)

    async def _process_file(
        self, event: Envelope, data: Verified, processor: Processor, info: FileInfo
    ) -> Processed | Failed:
        with tempfile.TemporaryDirectory(prefix="conveyor-", dir=self._work_dir) as tmp:
            source, out = Path(tmp) / "source", Path(tmp) / "artifacts"
            out.mkdir()
            changed = await self._download(data, source)
            if changed:
                return Failed(reason=changed, stage=self.name)
            try:
                # Processors block and use CPU (polars releases the GIL): keep the loop free.
                returned = await asyncio.to_thread(processor.run, source, info, out)
            except BadFile as exc:
                return Failed(reason=exc.reason, stage=self.name)
            result = as_result(returned)
            artifacts = await self._store_artifacts(event, out)
        key = result_key(event.owner, event.job_id)
        try:
            await self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=self._encoder.encode(result),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"S3 put_object: {exc}") from exc
        return Processed(
            processor=processor.name, result_key=key, result=result, artifacts=artifacts
        )

    async def _store_artifacts(self, event: Envelope, out: Path) -> list[Artifact]:
        files: list[tuple[Path, int]] = []
        for path, size in await asyncio.to_thread(_files, out):
            if size is None or not ARTIFACT_NAME.fullmatch(path.name):
                raise PermanentError(f"processor wrote an artifact with a bad name: {path.name!r}")
            files.append((path, size))
        # A table with many numeric columns has a chart each: upload several at a time.
        limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def store(path: Path, size: int) -> Artifact:
            content_type = CONTENT_TYPES.get(path.suffix) or (
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            )
            key = artifact_key(event.owner, event.job_id, path.name)
            async with limit:
                try:
                    if size <= SINGLE_PUT_BYTES:
                        # One request, as the managed upload would make for it anyway,
                        # without setting up a transfer per file.
                        body = await asyncio.to_thread(path.read_bytes)
                        await self._s3.put_object(
                            Bucket=self._bucket, Key=key, Body=body, ContentType=content_type
                        )
                    else:
                        # Managed (multipart) upload: an export may be as large as the upload.
                        await self._s3.upload_file(
                            str(path), self._bucket, key, ExtraArgs={"ContentType": content_type}
                        )
                except (ClientError, BotoCoreError) as exc:
                    raise TransientError(f"S3 upload of artifact {path.name}: {exc}") from exc
            return Artifact(name=path.name, key=key, content_type=content_type, size=size)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(store(path, size)) for path, size in files]
        except ExceptionGroup as failed:
            # The runtime decides by the error's type (a TransientError is retried later):
            # hand it the first one, not the group; the TaskGroup cancelled the others.
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _download(self, data: Verified, target: Path) -> str | None:
        """Fetch exactly the verified object; the reason it can not be, or None."""
        try:
            if data.etag:
                obj = await self._s3.get_object(
                    Bucket=self._bucket, Key=data.key, IfMatch=data.etag
                )
            else:  # an event from before etags were recorded
                obj = await self._s3.get_object(Bucket=self._bucket, Key=data.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                return "the uploaded object changed after it was verified"
            raise TransientError(f"S3 get_object: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"S3 get_object: {exc}") from exc
        if int(obj["ContentLength"]) != data.size:
            obj["Body"].close()
            return (
                f"the uploaded object changed after it was verified ({obj['ContentLength']} bytes)"
            )
        body = obj["Body"]
        try:
            with target.open("wb") as out:
                while chunk := await body.read(CHUNK):
                    out.write(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"S3 get_object: {exc}") from exc
        finally:
            body.close()
        return None


def as_result(returned: msgspec.Struct) -> Result:
    """One of the known result kinds as it is; a plugin's own Struct as a `CustomResult`."""
    if isinstance(returned, RESULT_KINDS):
        return returned
    data = msgspec.to_builtins(returned)
    if not isinstance(data, dict):
        raise PermanentError(f"processor returned {type(returned).__name__}, not a Struct")
    return CustomResult(type=type(returned).__name__, data=data)


def _files(directory: Path) -> list[tuple[Path, int | None]]:
    """Entries of `directory` by name, with their sizes (None for anything not a file)."""
    return [(p, p.stat().st_size if p.is_file() else None) for p in sorted(directory.iterdir())]
