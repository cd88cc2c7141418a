"""The dispatch package's exceptions: one root, data-carrying subclasses.

``retryable`` tells the outbox worker whether trying again later may succeed; the rest
go to the dead-letter state for staff at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from integration.errors import IntegrationError


class DispatchError(IntegrationError):
    """Root of every dispatch-platform failure."""

    retryable = True


class DispatchUnavailable(DispatchError):
    """The platform could not be reached, timed out, or answered 5xx."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class DispatchRetryAfter(DispatchUnavailable):
    """The platform asked us to come back after ``retry_after`` seconds (429, 503)."""

    def __init__(self, reason: str, retry_after: float, status: int | None = None) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class DispatchProtocolError(DispatchError):
    """The platform answered something we cannot read (malformed JSON, an HTML page).

    Retryable: the request may well have been processed, and the next attempt looks
    the case up (or sends the same idempotency key) before creating it again.
    """


class DuplicatePlatformId(DispatchProtocolError):
    """The platform gave a new case an id that another of our cases already holds."""

    def __init__(self, platform_id: str, holder: str) -> None:
        super().__init__(f"platform id {platform_id} already belongs to case {holder}")
        self.platform_id = platform_id
        self.holder = holder


class DispatchRejected(DispatchError):
    """The platform refused the request (4xx) with its errors as (code, description)."""

    retryable = False

    def __init__(self, status: int, errors: Sequence[tuple[str, str]]) -> None:
        text = "; ".join(f"{code}: {description}" for code, description in errors)
        super().__init__(f"HTTP {status}: {text or 'no detail'}")
        self.status = status
        self.errors = tuple(errors)


class DispatchAuthError(DispatchRejected):
    """401/403: the API key or secret is wrong. Retried, since staff can fix the setting."""

    retryable = True


class DispatchNotFound(DispatchRejected):
    """404: the platform has no such service request, token or endpoint."""


class DispatchUnsupported(DispatchError):
    """The platform cannot do this at all (GeoReport v2 cannot reopen a request)."""

    retryable = False


class CallbackRefused(DispatchError):
    """A status callback that is not accepted: unsigned, badly signed, stale or replayed."""

    retryable = False

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
