"""Sends bot messages to Telegram: paced, in order per chat, flood control honoured.

Replies and status pushes share one sender per process. Messages to one chat go out
in the order they were submitted (each batch waits for the one before it), different
chats proceed side by side, and every send first waits for a slot from the limiter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup

from bots.telegram.keyboards import inline_keyboard
from bots.telegram.limiter import SendLimiter
from handlers.messages import DeliveryError, Outbound

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # characters in one Telegram message

# Errors that say this chat will not take this message, however often it is retried:
# the resident blocked the bot or deleted their account (403), the chat is unknown or
# the request is malformed (400, 404), a group moved, a file is too big.
_PERMANENT = (
    TelegramForbiddenError,
    TelegramBadRequest,
    TelegramNotFound,
    TelegramMigrateToChat,
    TelegramEntityTooLarge,
)


def delivery_error(exc: AiogramError) -> DeliveryError:
    """The DeliveryError for a failed send: permanent refusals are not retryable."""
    reason = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return DeliveryError(reason[:300], retryable=not isinstance(exc, _PERMANENT))


class TelegramSender:
    """Delivers Outbound messages through one aiogram Bot and one SendLimiter."""

    def __init__(self, bot: Bot, limiter: SendLimiter) -> None:
        self._bot = bot
        self._limiter = limiter
        self._tails: dict[str, asyncio.Task[None]] = {}  # the last batch queued per chat
        self._pending: set[asyncio.Task[None]] = set()

    def submit(self, chat_id: str, messages: Sequence[Outbound]) -> asyncio.Task[None]:
        """Queue ``messages`` for ``chat_id`` behind what is already queued for it.

        Returns the task delivering them; it raises DeliveryError when a message
        cannot be delivered (the rest of the batch is then dropped).
        """
        previous = self._tails.get(chat_id)
        task = asyncio.create_task(self._deliver(previous, chat_id, tuple(messages)))
        self._tails[chat_id] = task
        self._pending.add(task)
        task.add_done_callback(lambda done: self._forget(chat_id, done))
        return task

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for queued messages, then drop the rest."""
        pending = list(self._pending)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("shutting down with %d batches of telegram messages unsent", len(late))
            await asyncio.wait(late)

    async def _deliver(
        self, previous: asyncio.Task[None] | None, chat_id: str, messages: tuple[Outbound, ...]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # order only: its failure belongs to its caller
        for message in messages:
            for part, markup in _parts(message):
                await self._send(chat_id, part, markup)

    async def _send(self, chat_id: str, text: str, markup: InlineKeyboardMarkup | None) -> None:
        limits = self._limiter.limits
        for _ in range(limits.max_retries + 1):
            await self._limiter.acquire(chat_id)
            try:
                await self._bot.send_message(
                    chat_id=_chat(chat_id),
                    text=text,
                    reply_markup=markup,
                )
                return
            except TelegramRetryAfter as exc:
                log.warning("telegram flood control: pausing sends for %ss", exc.retry_after)
                self._limiter.pause(exc.retry_after)
            except AiogramError as exc:
                raise delivery_error(exc) from exc
            finally:
                self._limiter.sent(chat_id)
        raise DeliveryError(f"flood control: still limited after {limits.max_retries} retries")

    def _forget(self, chat_id: str, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if self._tails.get(chat_id) is task:
            del self._tails[chat_id]
        if task.cancelled():
            return
        # A DeliveryError is for whoever submitted (the pump records it; a reply's is
        # logged by the receiver); anything else is a bug worth a traceback.
        error = task.exception()
        if error is not None and not isinstance(error, DeliveryError):
            log.error("telegram delivery failed", exc_info=error)


def _parts(message: Outbound) -> list[tuple[str, InlineKeyboardMarkup | None]]:
    """The message as Telegram-sized texts; the keyboard goes with the last one."""
    text = message.text
    if not text.strip():
        return []  # Telegram refuses empty messages; media-only replies have no text form
    chunks = [text[i : i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)]
    markup = inline_keyboard(message.buttons)
    return [(chunk, markup if i == len(chunks) - 1 else None) for i, chunk in enumerate(chunks)]


def _chat(chat_id: str) -> int | str:
    """Telegram chat ids are integers; anything else is an @channel name."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id
