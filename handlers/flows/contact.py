"""A resident's contact phone: given once, kept only with consent, changed or forgotten.

Flows that need a phone (代办, help at home) take it from the message (the NLU
``phone`` entity) or ask once, then ask 要不要记住这个号码; only a yes keeps it
(``Contacts.remember``). Whenever they like, 忘记我的电话 clears it and 换个号码
(with or without the new number) replaces it: the ``contact`` flow, started by the
rule triggers ``FORGET_PHONE`` and ``CHANGE_PHONE``. The number is only ever shown
back masked (138****5678).
"""

from __future__ import annotations

from typing import Any, Protocol

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect, Turn
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, YES, words
from integration.privacy import mask_phones

_PHONE = "(电话|手机|号码|手机号|联系方式)"
FORGET_PHONE = words(
    "forget_phone",
    f"(忘记|忘掉|删除|删掉|清除|清掉|别记|不要记|不用记|别保存|不要保存)(我的?|这个)?{_PHONE}",
)
CHANGE_PHONE = words(
    "change_phone",
    f"(换|改|更换|变更|更新)(一?个|成|为|一下)?(新的?)?{_PHONE}|{_PHONE}(换|改)了",
)


# Not giving a phone at all (我不想留电话): told why one is needed, not handed to a person.
NO_PHONE = words(
    "no_phone",
    f"(不想|不愿意?|不方便|不能|不要|不用|不|别)(留|给|告诉|说)(你们?)?(我的?)?{_PHONE}?|没有?(手机|电话)",
)
KEEP, DONT_KEEP = "contact:keep", "contact:dont_keep"  # 要不要记住这个号码
# The answer in words (记住 / 保存吧; 不用记 / 别存), besides yes and no.
DONT_KEEP_WORDS = words("dont_keep", "(?:不用|不要|不需要|别|甭|不)(?:记|保存|存|留)")
KEEP_WORDS = words("keep_words", "记住|记下|记一下|保存|存一下|存着|留着")
# 提交 said at the question is the request's, not consent to keeping the number: the
# number is used for this request only, and the summary shown to be submitted.
SUBMIT_ALONE = words("submit_alone", "提交|交上去|报上去|发送", whole=True)


def keep_buttons(t: Catalog) -> tuple[Button, ...]:
    """记住号码 and 不用记."""
    return (Button(t("button.keep_phone"), KEEP), Button(t("button.dont_keep_phone"), DONT_KEEP))


class Contacts(Protocol):
    """Where residents' remembered phones are kept (integration.contacts)."""

    async def phone(self, channel: str, user_id: str) -> str:
        """The remembered phone, or ""."""
        ...

    async def remember(self, channel: str, user_id: str, phone: str) -> None:
        """Keep the phone (the resident agreed)."""
        ...

    async def forget(self, channel: str, user_id: str) -> bool:
        """Clear the phone; False when none was kept."""
        ...


def phone_of(turn: Turn) -> str:
    """The phone number the message gives, or ""."""
    entity = turn.parse.first("phone")
    return str(entity.value) if entity is not None else ""


def masked(phone: str) -> str:
    """A phone as residents and staff lists see it (138****5678)."""
    return mask_phones(phone)


def take_phone(turn: Turn, slots: dict[str, Any]) -> str:
    """Put the message's phone in ``slots["phone"]``; a new number must be agreed to be
    kept again, except after 不用记 in this request: then it is used once too, without
    asking again (an 同意 meant for the summary once kept it). The phone, or ""."""
    phone = phone_of(turn)
    if phone and phone != slots.get("phone"):
        slots["phone"] = phone
        if slots.get("kept") is not False:
            slots.pop("kept", None)
    return phone


async def recall_phone(turn: Turn, slots: dict[str, Any], contacts: Contacts) -> None:
    """Fill ``slots["phone"]`` from the number the resident agreed to have kept."""
    if "phone" not in slots:
        inbound = turn.inbound
        kept = await contacts.phone(inbound.channel, inbound.user_id)
        if kept:
            slots["phone"], slots["kept"] = kept, True


def with_lead(text: str, replies: list[Outbound]) -> list[Outbound]:
    """``text`` before the first reply (已记住号码 …, then the next question)."""
    first, *rest = replies
    return [Outbound(f"{text}\n{first.text}", first.buttons), *rest]


async def answer_keep(turn: Turn, slots: dict[str, Any], contacts: Contacts) -> bool | None:
    """Take the answer to 要不要记住这个号码 (``slots["phone"]``): True when kept (only
    on a yes), False when not, None when the message answers neither. Sets
    ``slots["kept"]``. A lone 提交 keeps nothing (see ``SUBMIT_ALONE``)."""
    text = turn.text
    declined = not turn.payload and (DONT_KEEP_WORDS.search(text) or SUBMIT_ALONE.search(text))
    if turn.payload == KEEP or (
        not turn.payload
        and not declined
        and (KEEP_WORDS.search(text) or YES.search(text) or turn.means("affirm"))
    ):
        inbound = turn.inbound
        await contacts.remember(inbound.channel, inbound.user_id, slots["phone"])
        slots["kept"] = True
        return True
    if turn.payload == DONT_KEEP or declined or NO.search(text) or turn.means("deny"):
        slots["kept"] = False
        return False
    return None


class ContactFlow:
    """忘记我的电话 and 换个号码, at any time the conversation is idle."""

    name = "contact"

    def __init__(self, contacts: Contacts, catalog: Catalog) -> None:
        self._contacts = contacts
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Forget the phone, or take the new one (asking for it when not given)."""
        inbound = turn.inbound
        if FORGET_PHONE.search(turn.text):
            forgot = await self._contacts.forget(inbound.channel, inbound.user_id)
            return [Outbound(self._t("contact.forgotten" if forgot else "contact.none_kept"))]
        phone = phone_of(turn)
        if phone:
            return await self._keep(turn, state, phone)
        state.begin(self.name, "new_phone", {})
        return self.ask(state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The new number, or the question again."""
        phone = phone_of(turn)
        if phone:
            return await self._keep(turn, state, phone)
        state.reprompts += 1
        return [Outbound(self._t("contact.reask_new_phone"), self._cancel())]

    def expect(self, state: ConversationState) -> Expect:
        """A phone number answers."""
        return Expect(entities=frozenset({"phone"}))

    def ask(self, state: ConversationState) -> list[Outbound]:
        """Which number now."""
        return [Outbound(self._t("contact.ask_new_phone"), self._cancel())]

    async def _keep(self, turn: Turn, state: ConversationState, phone: str) -> list[Outbound]:
        inbound = turn.inbound
        await self._contacts.remember(inbound.channel, inbound.user_id, phone)
        state.finish()
        return [Outbound(self._t("contact.changed", phone=masked(phone)))]

    def _cancel(self) -> tuple[Button, ...]:
        return (Button(self._t("button.cancel"), CANCEL),)
