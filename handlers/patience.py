"""Patience with insults and nonsense: one calm answer, then a person, then quiet.

A *strike* is a message that only insults (an insult with no request the model can
act on), or, outside a flow, one the model cannot place or finds out of scope
(呃呃呃, asdfgh). Strikes in a row get, in turn:

1. one calm answer (insults) or the usual answer (please say it another way, or
   that is beyond the street's services);
2. the offer of a person (the 转人工 button);
3. silence: the bot stops answering strikes for ``quiet_for`` seconds
   (``YIMEN_QUIET_PERIOD``). The messages are still stored in the transcript, where
   staff read them; afterwards the count starts again.

Any message the bot can act on (a report, a question, 转人工) resets the count and
ends the quiet at once: an angry resident with a real problem is always heard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from handlers.flows.base import Turn
from handlers.state import ConversationState
from handlers.words import ABUSE, CANCEL, HANDOFF
from nlu.types import FALLBACK_INTENT

# Outside a flow, what the model cannot place, or places outside the street's work
# (呃呃呃, asdfgh, 哈哈哈哈): each is answered, but in a row they are strikes.
_NONSENSE = frozenset({FALLBACK_INTENT, "out_of_scope"})
# Intents an insult may come with and still be nothing but an insult.
_EMPTY_INTENTS = frozenset(
    {FALLBACK_INTENT, "out_of_scope", "greet", "goodbye", "thanks", "affirm", "deny", "help"}
)


class Verdict(enum.StrEnum):
    """What to do with a message."""

    answer = "answer"  # route it as usual
    calm = "calm"  # the first insult: a calm answer
    offer_person = "offer_person"  # the second insult: offer a person
    offer_menu = "offer_menu"  # the second message not understood: a person, or the menu
    silent = "silent"  # stay quiet (stored, not answered)


@dataclass(frozen=True, slots=True)
class Patience:
    """Counts strikes in the conversation state and says how to answer (see module)."""

    quiet_for: float = 600.0

    def judge(self, turn: Turn, state: ConversationState, *, taken: bool = False) -> Verdict:
        """The verdict on ``turn``, updating ``state.strikes`` and ``state.quiet_until``.

        ``taken``: a rule or the active step takes the message (绑定123456, 结案 YM…),
        so it is no nonsense, whatever the model read.
        """
        now = turn.inbound.time.timestamp()
        if turn.text and (HANDOFF.search(turn.text) or CANCEL.search(turn.text)):
            return Verdict.answer  # 转人工 / 取消, however rudely put, is a request
        insult = bool(turn.text) and ABUSE.search(turn.text)
        insult = insult and turn.parse.intent in _EMPTY_INTENTS and not turn.payload
        nonsense = state.idle and not taken and turn.parse.intent in _NONSENSE and not turn.payload
        if not (insult or nonsense):
            state.strikes, state.quiet_until = 0, 0.0
            return Verdict.answer
        if now < state.quiet_until:
            return Verdict.silent
        state.quiet_until = 0.0
        state.strikes += 1
        if state.strikes >= 3:
            state.strikes, state.quiet_until = 0, now + self.quiet_for
            return Verdict.silent
        if state.strikes == 2:
            return Verdict.offer_person if insult else Verdict.offer_menu
        return Verdict.calm if insult else Verdict.answer
