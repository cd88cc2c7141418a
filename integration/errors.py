"""The integration package's exceptions."""

from __future__ import annotations


class IntegrationError(Exception):
    """Root of the integration package's errors."""


class CaseNotFound(IntegrationError):
    """No case has the given number."""

    def __init__(self, number: str) -> None:
        super().__init__(f"no case {number}")
        self.number = number


class InvalidTransition(IntegrationError):
    """A status change the case lifecycle does not allow."""

    def __init__(self, number: str, current: str, requested: str) -> None:
        super().__init__(f"case {number} cannot go from {current} to {requested}")
        self.number = number
        self.current = current
        self.requested = requested


class DuplicateMessage(IntegrationError):
    """An inbound message with this channel and message id is already stored."""


class DatabaseMissing(IntegrationError):
    """There is no Yimen database where the settings point, and none may be created here.

    ``where`` is the database as it can be shown (a SQLite file's absolute path, or a
    URL without its password); ``reason`` says what was found instead.
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"no Yimen database at {where}: {reason}")
        self.where = where
        self.reason = reason
