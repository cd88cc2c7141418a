"""The message pipeline: every inbound message, from any channel, goes through here.

In order: dedupe by (channel, message id) → per-conversation lock → per-user rate
limit (one notice per window) → the same message repeated (one notice per window) →
ID numbers masked → transcript → NLU → router and
flows → state saved → replies. State is saved before the
replies are returned, so nothing the resident is told was saved can be lost to a
crash between two messages.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from handlers.catalog import Catalog
from handlers.flows.base import Turn
from handlers.flows.chat import menu
from handlers.messages import Inbound, Outbound
from handlers.router import COMMANDS, Router, is_cancel
from handlers.state import ConversationState, ConversationStore
from integration.errors import DuplicateMessage
from integration.metrics import MESSAGES, NLU_FALLBACKS, NLU_SECONDS
from integration.privacy import has_id_number, mask_id_numbers, only_id_numbers
from integration.state.keys import KeyBuilder
from integration.state.throttle import Throttle
from integration.state.types import Admission, Ticket
from integration.transcript import InboundRecord, Transcript
from nlu.contract import REPORT_INTENTS
from nlu.normalize import has_content, has_emoji
from nlu.types import BUTTON_INTENT, FALLBACK_INTENT, Interpreter, Parse

log = logging.getLogger(__name__)

INTENT_PAYLOAD = "intent:"
# The intent recorded (transcript, yimen_messages_total) for a message the model could
# not place but a person, the active step or a rule then answered (Router.takes). Plain
# FALLBACK_INTENT is left for messages nothing understood: the dashboard's 未识别率.
TAKEN_FALLBACK = f"{FALLBACK_INTENT}:taken"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limits:
    """The pipeline's tunables; the composition root fills them from settings."""

    max_text: int = 2000  # characters; longer messages are refused politely
    rate_limit: int = 30  # messages per user per rate window (the store's Timing)
    # Copies of one message (a stuck client, a pasted complaint) answered per window,
    # counted past this many messages; with a throttle only (the running server's).
    repeat_limit: int = 5
    repeat_window: float = 60.0


class Pipeline:
    """Turns one Inbound into the replies to send, exactly once per message id."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        transcript: Transcript,
        interpreter: Interpreter,
        router: Router,
        catalog: Catalog,
        keys: KeyBuilder,
        limits: Limits | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self._store = store
        self._transcript = transcript
        self._interpreter = interpreter
        self._router = router
        self._t = catalog
        self._keys = keys
        self._limits = limits or Limits()
        self._throttle = throttle  # counts copies of one message; None: not counted

    @property
    def interpreter(self) -> Interpreter:
        """The NLU backend messages are understood with."""
        return self._interpreter

    async def handle(self, inbound: Inbound) -> list[Outbound] | None:
        """Process one message; None when it is a duplicate that was already handled."""
        ticket = turn_ticket(self._keys, inbound)
        try:
            admission = await self._store.enter(ticket)
        except BaseException:
            await self._store.abort(ticket)
            raise
        if admission is None:
            log.info("duplicate %s message %s dropped", inbound.channel, inbound.message_id)
            return None
        try:
            replies, state, changed = await self._admitted(inbound, admission)
        except BaseException:
            # Not stored, so let the platform's redelivery (or the resident's retry) in.
            await self._store.abort(ticket)
            raise
        await self._store.leave(ticket, state, changed=changed)
        return replies

    async def release(self, channel: str, chat_id: str) -> list[Outbound]:
        """End a flow that holds the conversation (staff hand it back); what to push.

        Under the conversation's lock, like a turn: a flow whose step ``holds`` (the
        human handoff) is ended, and the flow the resident was in before resumes with
        its question, which the caller pushes to the chat. Nothing held: no replies.
        """

        async def release(state: ConversationState) -> list[Outbound]:
            replies = await self._router.release(state)
            # Nothing resumed: the hand-back push offers the main menu (handback_buttons).
            state.offer(replies[-1].buttons if replies else menu(self._t))
            return replies

        return await self._staff_turn(channel, chat_id, "release", release)

    async def take_over(self, channel: str, chat_id: str, handoff_id: int) -> bool:
        """A staff member takes the conversation from the console (handoff ``handoff_id``).

        Under the conversation's lock: the flow under way is paused and the bot falls
        silent until ``release``. False when no staffed handoff flow is registered.
        """

        async def take(state: ConversationState) -> bool:
            return self._router.take_over(state, handoff_id)

        return await self._staff_turn(channel, chat_id, "take", take)

    async def _staff_turn(
        self,
        channel: str,
        chat_id: str,
        kind: str,
        act: Callable[[ConversationState], Awaitable[T]],
    ) -> T:
        """Run a staff action on a conversation's state under its lock, like a turn."""
        token = uuid.uuid4().hex
        build = functools.partial(self._keys.build, tag=self._keys.conversation(channel, chat_id))
        ticket = Ticket(
            mark=build("dedupe", channel, f"{kind}-{token}"),
            lock=build("lock", channel, chat_id),
            rate=build("rate", "staff", chat_id),
            state=self._keys.state(channel, chat_id),
            token=token,
        )
        admission = await self._store.enter(ticket)
        if admission is None:  # cannot happen: the mark is fresh
            raise RuntimeError("a fresh staff mark was taken")
        try:
            state = ConversationState.from_dict(admission.state)
            result = await act(state)
        except BaseException:
            await self._store.abort(ticket)
            raise
        after = None if state.empty else state.to_dict()
        await self._store.leave(ticket, after, changed=after != admission.state)
        return result

    async def _admitted(
        self, inbound: Inbound, admission: Admission
    ) -> tuple[list[Outbound] | None, dict[str, Any] | None, bool]:
        """The replies, and the state to save (with whether it changed)."""
        saved = admission.state
        if admission.count > self._limits.rate_limit:
            # One notice per window: the first message over the limit hears why, the
            # rest of the window's flood is dropped without an answer each.
            notice = admission.count == self._limits.rate_limit + 1
            return ([Outbound(self._t("chat.rate_limited"))] if notice else []), saved, False
        copies = await self._copies(inbound, admission)
        if copies > self._limits.repeat_limit:
            # The same message again and again: heard once, as a flood is, then dropped.
            notice = copies == self._limits.repeat_limit + 1
            return ([Outbound(self._t("chat.repeated"))] if notice else []), saved, False
        # Residents never need to send an ID number, and staff never need one from chat:
        # it is masked before anything stores, understands or echoes the message.
        masked = has_id_number(inbound.text)
        only_id = masked and only_id_numbers(inbound.text)
        if masked:
            inbound = replace(inbound, text=mask_id_numbers(inbound.text))
        try:
            stored = await self._transcript.record_inbound(transcript_record(inbound))
        except DuplicateMessage:
            log.info("message %s:%s already in transcript", inbound.channel, inbound.message_id)
            return None, saved, False
        state = ConversationState.from_dict(saved)
        parse: Parse | None = None
        try:
            parse, replies = await self._respond(inbound, state, only_id=only_id)
        except Exception:
            # The message is safe in the transcript for staff; tell the resident plainly,
            # and keep the conversation where it was.
            log.exception("failed to handle %s message %s", inbound.channel, inbound.message_id)
            replies, state = [Outbound(self._t("chat.busy"))], ConversationState.from_dict(saved)
        if masked:
            replies = [Outbound(self._t("chat.id_masked")), *replies]
        MESSAGES.labels(inbound.channel, parse.intent if parse else "none").inc()
        await self._transcript.record_outcome(
            stored,
            parse.intent if parse else None,
            parse.confidence if parse else None,
            [r.text for r in replies],
        )
        after = None if state.empty else state.to_dict()
        return replies, after, after != saved

    async def _copies(self, inbound: Inbound, admission: Admission) -> int:
        """How many times this resident has sent this very message, at this very step of
        the conversation, in the window (0 when not counted: no throttle, or a photo or
        place, which are not floods of text). The step keeps a fast resident answering
        "1" at one menu after another from counting as a flood.

        Copies are counted only from the resident's ``repeat_limit + 1``-th message in
        the rate window on: a resident who writes less costs no round trip, and a flood
        is still cut, after at most twice the limit and one.
        """
        limit = self._limits.repeat_limit
        if self._throttle is None or admission.count <= limit:
            return 0
        if inbound.media or inbound.location is not None:
            return 0
        saved = admission.state or {}
        where = saved.get("flow"), saved.get("step")
        digest = hashlib.blake2b(
            f"{where}\x00{inbound.payload or ''}\x00{inbound.text}".encode(), digest_size=8
        ).hexdigest()
        key = self._keys.build(
            "repeat",
            inbound.channel,
            f"{inbound.user_id}:{digest}",
            tag=self._keys.conversation(inbound.channel, inbound.chat_id),
        )
        return await self._throttle.hit(key, self._limits.repeat_window)

    async def _respond(
        self, inbound: Inbound, state: ConversationState, *, only_id: bool = False
    ) -> tuple[Parse | None, list[Outbound]]:
        """The parse and the replies; ``only_id``: the message was ID numbers and nothing
        more, so the step's question is asked again (after ``chat.id_masked``) instead of
        reading the masked remains as a question about 身份证."""
        again = self._router.ask_again(state) if only_id else None
        if again is not None:
            state.offer(again[-1].buttons if again else ())
            return None, again
        if inbound.payload and not inbound.text.strip():
            # A press whose label the channel could not read (Telegram leaves out the
            # message of an old button): the label offered with that payload, if any.
            inbound = replace(inbound, text=state.label(inbound.payload))
        refusal = self._refusal(inbound)
        if refusal is not None:
            return None, [refusal]
        payload = inbound.payload or state.choice(inbound.text) or ""
        parse = await self._understand(inbound, payload)
        if parse is None:
            command = inbound.text.strip().split()[0]
            return None, [Outbound(self._t("chat.unknown_command", command=command))]
        turn = Turn(inbound, parse, payload)
        if not payload and parse.intent in _SPLIT_OR_ASK and state.flow is None:
            turn = await self._split(turn)
        taken = parse.intent == FALLBACK_INTENT and self._router.takes(turn, state)
        replies = await self._router.route(turn, state)
        state.offer(replies[-1].buttons if replies else ())
        return (replace(parse, intent=TAKEN_FALLBACK) if taken else parse), replies

    async def _split(self, turn: Turn) -> Turn:
        """A message of two requests (我想预约明天办老年证，另外小区路灯坏了), the first of a
        kind that would take the whole message (a booking, a status question…) and the
        second a report or a service question: the first clause's turn, with the
        second's beside it (``Turn.also``). A question as a whole is split only when
        its first clause is such a request. Anything else is left whole. Only messages
        with a joining word (另外, 还有, 顺便, 对了) are parsed again."""
        text = turn.parse.text
        joint = _SECOND.search(text, _CLAUSE)
        if joint is None or len(text) - joint.end() < _CLAUSE:
            return turn
        rest = text[joint.end() :]
        second = await self._interpreter.parse(rest)
        if second.intent not in _SECOND_INTENTS:
            return turn
        first = await self._interpreter.parse(text[: joint.start()])
        if first.intent in REPORT_INTENTS:  # a report says it all: one case
            return turn
        if turn.parse.intent not in _SPLIT and first.intent not in _SPLIT:
            return turn  # a question, with more to it (居住证要带什么，还有要交钱吗)
        inbound = turn.inbound
        also = Turn(replace(inbound, text=rest, location=None, media=()), second)
        return Turn(replace(inbound, text=text[: joint.start()]), first, also=also)

    def _refusal(self, inbound: Inbound) -> Outbound | None:
        """A polite answer to input that cannot be understood at all, else None."""
        text = inbound.text.strip()
        if inbound.location or inbound.media:
            if text or inbound.location or any(m.kind == "image" for m in inbound.media):
                return None
            return Outbound(self._t("chat.unsupported_media"))
        if not text:
            return None if inbound.payload else Outbound(self._t("chat.empty"))
        if len(text) > self._limits.max_text:
            return Outbound(self._t("chat.too_long", limit=self._limits.max_text))
        if not has_content(text):  # 👍 is an emoji; ？？？ is puzzlement, not a picture
            return Outbound(self._t("chat.emoji_only" if has_emoji(text) else "chat.marks_only"))
        return None

    async def _understand(self, inbound: Inbound, payload: str) -> Parse | None:
        """The parse of a message; None for an unknown slash command."""
        text = inbound.text.strip()
        if payload.startswith(INTENT_PAYLOAD):
            return Parse(text, payload.removeprefix(INTENT_PAYLOAD), 1.0)
        if payload:
            return Parse(text, BUTTON_INTENT, 1.0)
        if not text:  # a photo or a location pin on its own
            return Parse(text, "report", 1.0)
        if text.startswith("/"):
            command = text.split()[0].split("@")[0].lower()
            if command in COMMANDS:
                return Parse(text, COMMANDS[command], 1.0)
            turn = Turn(inbound, Parse(text, FALLBACK_INTENT, 0.0))
            return turn.parse if is_cancel(turn) else None
        started = time.perf_counter()
        parse = await self._interpreter.parse(text)
        NLU_SECONDS.observe(time.perf_counter() - started)
        if parse.intent == FALLBACK_INTENT:
            NLU_FALLBACKS.inc()
        return parse


# Requests that take a whole message, and what may be joined after them to wait its turn.
_SPLIT = frozenset(
    {
        "book_appointment",
        "cancel_appointment",
        "check_status",
        "proxy_service",
        "request_home_service",
    }
)
_SECOND_INTENTS = frozenset({*REPORT_INTENTS, "ask_service_info"})
# A booking with a question joined (帮我约后天的社保卡，还有老年证要带什么) may read as the
# question as a whole: split too when its first clause is one of _SPLIT.
_SPLIT_OR_ASK = _SPLIT | {"ask_service_info"}
# Where a second request begins: a joining word after a clause of its own.
_SECOND = re.compile("[，,。；;！!？?\\s]*(?:另外|还有|顺便|对了|再就是)")
_CLAUSE = 4  # characters each request needs at least


def turn_ticket(keys: KeyBuilder, inbound: Inbound) -> Ticket:
    """The shared-state keys of one message's turn, with a fresh token.

    One hash tag (the conversation) for all four: the store's scripts touch them
    together, and Redis Cluster runs a script only on keys of one hash slot.
    """
    channel = inbound.channel
    build = functools.partial(keys.build, tag=keys.conversation(channel, inbound.chat_id))
    return Ticket(
        mark=build("dedupe", channel, inbound.message_id),
        lock=build("lock", channel, inbound.chat_id),
        rate=build("rate", channel, inbound.user_id),
        state=keys.state(channel, inbound.chat_id),
        token=uuid.uuid4().hex,
    )


def transcript_record(inbound: Inbound) -> InboundRecord:
    """What the transcript keeps of an inbound message."""
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
