"""The WeChat channel's errors, and what they mean for a push."""

from __future__ import annotations

from handlers.messages import DeliveryError

# The access_token was invalid, expired or not the latest: refresh and try once more.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# Outside the 48-hour customer-service window, or over its message allowance.
WINDOW_CLOSED = frozenset({45015, 45047})
# Worth trying again later: system busy, rate and quota limits, token trouble.
RETRYABLE = frozenset({-1, 45009, 45011, 45033, *TOKEN_ERRORS})


class WeChatError(Exception):
    """Root of the WeChat channel's errors."""


class WeChatUnavailable(WeChatError):
    """WeChat could not be reached or answered with a server error."""


class WeChatAPIError(WeChatError):
    """WeChat answered with a non-zero ``errcode``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def delivery_error(exc: WeChatError) -> DeliveryError:
    """The DeliveryError a push raises for ``exc``: retryable unless retrying cannot help."""
    if isinstance(exc, WeChatAPIError):
        return DeliveryError(f"WeChat {exc}", retryable=exc.errcode in RETRYABLE)
    return DeliveryError(f"WeChat unavailable: {exc}", retryable=True)
