"""structlog, configured once at the entry point: JSON lines when not on a terminal."""

from __future__ import annotations

import logging
import sys

import msgspec
import structlog

from schemas.settings import Settings

# What msgspec can not encode (an exception object, a path) is logged as its repr,
# as structlog's own JSON fallback does.
_encoder = msgspec.json.Encoder(enc_hook=repr)


def _json_line(event: object, **_: object) -> bytes:
    # msgspec instead of `json.dumps`: the gateway logs a line per request, and the
    # standard library's encoder was a visible share of a request's CPU.
    return _encoder.encode(event)


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping()[settings.log_level]
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info
        if as_json
        else structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=(
            structlog.BytesLoggerFactory(file=sys.stderr.buffer)
            if as_json
            else structlog.PrintLoggerFactory(file=sys.stderr)
        ),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (uvicorn, botocore, nats).
    logging.basicConfig(
        level=max(level, logging.WARNING),
        stream=sys.stderr,
        format="%(name)s %(levelname)s %(message)s",
    )
