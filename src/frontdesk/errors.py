"""Exceptions that carry enough context for a user to fix the problem."""

from __future__ import annotations


class FrontdeskError(Exception):
    """Base class for every error frontdesk raises on purpose."""


class DataError(FrontdeskError, ValueError):
    """Bad input data: the message names ``file:line: field: reason``."""

    def __init__(self, path: str, line: int | None, field: str | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: {reason}" if field else reason
        super().__init__(f"{where}: {what}")


class SettingsError(FrontdeskError, ValueError):
    """A setting (a ``FRONTDESK_*`` variable or an explicit override) has a bad value."""


class IndexIntegrityError(FrontdeskError):
    """An index on disk is missing files, was tampered with, or is incompatible."""


class ModelUnavailableError(FrontdeskError):
    """The sentence-transformers model (or its package) cannot be loaded."""
