"""Errors of the ops package.

Exception
└── OpsError            an operation could not be carried out
    ├── StackError      an embedded server did not start or become ready (`server`)
    └── ProvisionError  a stream, consumer, bucket or migration could not be applied (`what`)
"""

from __future__ import annotations


class OpsError(Exception):
    pass


class StackError(OpsError):
    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class ProvisionError(OpsError):
    def __init__(self, message: str, *, what: str) -> None:
        super().__init__(message)
        self.what = what
