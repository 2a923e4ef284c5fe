"""Errors raised by actor handlers; the runtime decides what each means for the message.

ActorError
├── TransientError   the world may fix it (a server is down): nak, redeliver later
├── PermanentError   retrying can never help (a bug, a broken message): term, dead-letter
├── BadFile          the uploaded file is at fault: the job ends with `reason`, the message is acked
└── AlreadyStored    a `first_of_type` publish found its job's event of that type stored
"""

from __future__ import annotations


class ActorError(Exception):
    """Base of every error an actor raises on purpose."""


class TransientError(ActorError):
    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class PermanentError(ActorError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadFile(ActorError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AlreadyStored(ActorError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"an event on {subject} is stored already")
        self.subject = subject
