"""The message pipeline: every inbound message, from any channel, goes through here.

In order: dedupe by (channel, message id) → per-conversation lock → per-user rate
limit → transcript → NLU → flow → state saved → replies. State is saved before the
replies are returned, so nothing the resident is told was saved can be lost to a
crash between two messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from handlers.catalog import Catalog
from handlers.flows.base import Turn
from handlers.messages import Inbound, Outbound
from handlers.router import COMMANDS, Router, is_cancel
from handlers.state import ConversationState, ConversationStore, Gate
from integration.errors import DuplicateMessage
from integration.state.keys import KeyBuilder
from integration.transcript import InboundRecord, Transcript
from nlu.normalize import has_content
from nlu.types import FALLBACK_INTENT, Interpreter, Parse

log = logging.getLogger(__name__)

INTENT_PAYLOAD = "intent:"


@dataclass(frozen=True, slots=True)
class Limits:
    """The pipeline's tunables; the composition root fills them from settings."""

    max_text: int = 2000  # characters; longer messages are refused politely
    rate_limit: int = 30  # messages per user per window
    rate_window: float = 60.0
    dedupe_ttl: float = 86_400.0  # how long a processed message id is remembered
    processing_ttl: float = 60.0  # how long an unfinished claim blocks a redelivery
    lock_timeout: float = 10.0
    state_ttl: float = 3 * 86_400.0


class Pipeline:
    """Turns one Inbound into the replies to send, exactly once per message id."""

    def __init__(
        self,
        *,
        gate: Gate,
        store: ConversationStore,
        transcript: Transcript,
        interpreter: Interpreter,
        router: Router,
        catalog: Catalog,
        keys: KeyBuilder,
        limits: Limits | None = None,
    ) -> None:
        self._gate = gate
        self._store = store
        self._transcript = transcript
        self._interpreter = interpreter
        self._router = router
        self._t = catalog
        self._keys = keys
        self._limits = limits or Limits()

    async def handle(self, inbound: Inbound) -> list[Outbound] | None:
        """Process one message; None when it is a duplicate that was already handled."""
        mark = self._keys.build("dedupe", inbound.channel, inbound.message_id)
        if not await self._gate.claim(mark, self._limits.processing_ttl):
            log.info("duplicate %s message %s dropped", inbound.channel, inbound.message_id)
            return None
        try:
            lock = self._keys.build("lock", inbound.channel, inbound.chat_id)
            async with self._gate.lock(lock, self._limits.lock_timeout):
                replies = await self._admitted(inbound)
        except BaseException:
            # Not stored, so let the platform's redelivery (or the resident's retry) in.
            await self._gate.forget(mark)
            raise
        await self._gate.settle(mark, self._limits.dedupe_ttl)
        return replies

    async def _admitted(self, inbound: Inbound) -> list[Outbound] | None:
        rate = self._keys.build("rate", inbound.channel, inbound.user_id)
        if await self._gate.hit(rate, self._limits.rate_window) > self._limits.rate_limit:
            return [Outbound(self._t("chat.rate_limited"))]
        try:
            stored = await self._transcript.record_inbound(_record(inbound))
        except DuplicateMessage:
            log.info("message %s:%s already in transcript", inbound.channel, inbound.message_id)
            return None
        parse: Parse | None = None
        try:
            parse, replies = await self._respond(inbound)
        except Exception:
            # The message is safe in the transcript for staff; tell the resident plainly.
            log.exception("failed to handle %s message %s", inbound.channel, inbound.message_id)
            replies = [Outbound(self._t("chat.busy"))]
        await self._transcript.record_outcome(
            stored,
            parse.intent if parse else None,
            parse.confidence if parse else None,
            [r.text for r in replies],
        )
        return replies

    async def _respond(self, inbound: Inbound) -> tuple[Parse | None, list[Outbound]]:
        key = self._keys.build("state", inbound.channel, inbound.chat_id)
        saved = await self._store.load(key)
        state = ConversationState.from_dict(saved)
        refusal = self._refusal(inbound)
        if refusal is not None:
            return None, [refusal]
        payload = inbound.payload or state.choice(inbound.text) or ""
        parse = await self._understand(inbound, payload)
        if parse is None:
            command = inbound.text.strip().split()[0]
            return None, [Outbound(self._t("chat.unknown_command", command=command))]
        replies = await self._router.route(Turn(inbound, parse, payload), state)
        state.offer(replies[-1].buttons if replies else ())
        if state.idle and not state.buttons:
            if saved:
                await self._store.delete(key)
        else:
            await self._store.save(key, state.to_dict(), self._limits.state_ttl)
        return parse, replies

    def _refusal(self, inbound: Inbound) -> Outbound | None:
        """A polite answer to input that cannot be understood at all, else None."""
        text = inbound.text.strip()
        if inbound.location or inbound.media:
            if text or inbound.location or any(m.kind == "image" for m in inbound.media):
                return None
            return Outbound(self._t("chat.unsupported_media"))
        if not text:
            return Outbound(self._t("chat.empty"))
        if len(text) > self._limits.max_text:
            return Outbound(self._t("chat.too_long", limit=self._limits.max_text))
        if not has_content(text):
            return Outbound(self._t("chat.emoji_only"))
        return None

    async def _understand(self, inbound: Inbound, payload: str) -> Parse | None:
        """The parse of a message; None for an unknown slash command."""
        text = inbound.text.strip()
        if payload.startswith(INTENT_PAYLOAD):
            return Parse(text, payload.removeprefix(INTENT_PAYLOAD), 1.0)
        if payload:
            return Parse(text, "button", 1.0)
        if not text:  # a photo or a location pin on its own
            return Parse(text, "report", 1.0)
        if text.startswith("/"):
            command = text.split()[0].split("@")[0].lower()
            if command in COMMANDS:
                return Parse(text, COMMANDS[command], 1.0)
            turn = Turn(inbound, Parse(text, FALLBACK_INTENT, 0.0))
            return turn.parse if is_cancel(turn) else None
        return await self._interpreter.parse(text)


def _record(inbound: Inbound) -> InboundRecord:
    location = inbound.location
    return InboundRecord(
        channel=inbound.channel,
        user_id=inbound.user_id,
        chat_id=inbound.chat_id,
        message_id=inbound.message_id,
        text=inbound.text,
        time=inbound.time,
        latitude=location.latitude if location else None,
        longitude=location.longitude if location else None,
        location_label=location.label if location else "",
        media_ref=",".join(m.ref for m in inbound.media),
    )
