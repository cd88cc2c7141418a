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
