"""Errors of the schemas package.

ValueError
└── SettingsError   a CONVEYOR_* variable is unknown or its value does not fit
"""

from __future__ import annotations


class SettingsError(ValueError):
    """Carries the validation message of msgspec, which names the offending field."""
