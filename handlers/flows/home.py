"""Help at home (上门服务): a household asks for help; staff approve it as a service item.

Started by request_home_service (我家老人需要上门助餐, 能不能有人陪我妈去医院). It asks
only for what the resident has not said yet, in this order:

- ``kind``: 助餐, 助医/陪同就医, 代购代缴, 上门维修, 探访, 家政保洁, 助浴, 其他 (buttons that
  also take words; words that say more than the kind are its note, 家里老人不会交电费
  being 代购代缴 with those words; other words are kept as 其他 with the words as a
  note, and 其他 pressed takes the first message's words when it named no kind, as does
  a time, place or phone given instead of a kind; a bare yes or no is no kind);
- ``when``: the time entity's words (明天上午) or the resident's own (每天中午);
- ``where``: an address or a location pin;
- ``whom``: 本人, 家中老人, 母亲 … (words or the buttons);
- ``phone`` and ``keep``: the contact phone, asked once, kept only on a yes
  (handlers.flows.contact);
- ``confirm``: yes records a service item in ``pending`` (integration.items), which
  staff approve (`yimen items approve ITEM`) and volunteers will later claim.
"""

from __future__ import annotations

from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect, Turn
from handlers.flows.contact import (
    CHANGE_PHONE,
    DONT_KEEP,
    DONT_KEEP_WORDS,
    FORGET_PHONE,
    KEEP,
    KEEP_WORDS,
    NO_PHONE,
    Contacts,
    answer_keep,
    keep_buttons,
    masked,
    phone_of,
    recall_phone,
    take_phone,
    with_lead,
)
from handlers.flows.proxy_steps import WHOM_WORDS, whom_of
from handlers.flows.report_slots import part_said, typed_address, within
from handlers.flows.report_steps import SUBMIT_WORDS
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, YES, AnyOf, Words, clean, words
from integration.items import OTHER_KIND, ItemDraft, ItemView

HOME = "home:"
KIND, WHOM, SUBMIT = f"{HOME}kind:", f"{HOME}whom:", f"{HOME}submit"
_MIN_ADDRESS = 4
_KIND_ALONE_CHARS = 6  # a kind named in no more (帮我买点菜) has no note of its own

KINDS: dict[str, Words] = {
    "medical": words("medical", "助医|就医|医院|看病|拿药|取药|复查|体检|打针"),
    "meal": words(
        "meal",
        "助餐|送(个|点|顿|一顿|份|一份)?(餐|饭)|做(个|顿|点)?饭|吃饭|早饭|午饭|晚饭|饭菜|盒饭",
    ),
    "shopping": words(
        "shopping",
        "代购|买菜|买东西|买药|购物|买点|买些|捎|代缴|缴费|交费|(交|缴|充)(一下)?(电|水|燃气|煤气|暖气)费",
    ),
    "repair": words(  # and small fittings for the old (装个扶手, 防滑垫): 适老化 work
        "repair",
        "维修|修理|修一下|修修|坏了|换灯泡|水龙头|漏水|马桶|电路|门锁|安装|装(个|一个|上|一下)|扶手|防滑",
    ),
    "visit": words("visit", "探访|看望|看看|聊天|陪伴|陪陪|独居|没人照顾"),
    "housework": words(
        "housework", "打扫|保洁|家政|家务|收拾屋|收拾房|搞卫生|做卫生|洗衣|擦玻璃|擦窗"
    ),
    "bath": words("bath", "助浴|洗澡|洗个澡|洗头|擦身|擦洗"),
}
# Help at home of no listed kind that households often ask for: 其他, with their words.
OTHER_HELP = words(
    "other_help",
    "理发|剪(个|一下|下)?头发?|剪发|推头|修脚|剪指甲|按摩|推拿|陪(我|他|她)?聊天?|"
    "(量|测)(个|一下|下)?(血压|血糖)",
)
KIND_WORDS = AnyOf("home_kind", (*KINDS.values(), OTHER_HELP))
_ANSWER_WORDS = AnyOf("answer", (YES, NO, SUBMIT_WORDS))


def _bare_answer(text: str) -> bool:
    """确认 / 好的 / 不是 (a few characters and a yes or no): no kind of help."""
    return len(clean(text)) <= 4 and _ANSWER_WORDS.search(text)


SELF_WORDS = words("self", "本人|我自己|自己|给我|就我|我本人")
# A field of the summary said to be wrong (门牌号不对, 时间写错了): asked for, not cancelled.
FIELD_WRONG = words(
    "field_wrong", "(地址|门牌|单元|楼号|房号|时间|日子|电话|号码|手机).{0,3}(不对|错|有误|不是)"
)
# Words every step takes: the phone's (忘记我的电话, 换个号码) and whom it is for (给我爸).
_PHONE_WORDS = (FORGET_PHONE, CHANGE_PHONE, WHOM_WORDS)


class ItemDesk(Protocol):
    """Where service items are recorded (integration.items.ItemBook)."""

    async def create(self, draft: ItemDraft) -> ItemView:
        """Record a request in ``pending``."""
        ...

    async def requested_by(self, channel: str, user_id: str) -> list[ItemView]:
        """A resident's own requests still under way, newest first (我的进度)."""
        ...

    async def get(self, item_id: int) -> ItemView:
        """One item (ItemNotFound when there is none)."""
        ...

    async def cancel(
        self,
        item_id: int,
        actor: str = "staff",
        *,
        owner: tuple[str, str] | None = None,
        tell: str = "",
    ) -> ItemView:
        """Cancel ``owner``'s request not yet begun, telling its volunteers ``tell``."""
        ...


def kind_of(text: str) -> str:
    """The kind of help ``text`` asks for (a KINDS key, or 其他 for OTHER_HELP), or ""."""
    kind = next((key for key, matcher in KINDS.items() if matcher.search(text)), "")
    return kind or (OTHER_KIND if OTHER_HELP.search(text) else "")


class HomeFlow:
    """Collects a help-at-home request and records it as a service item."""

    name = "home"

    def __init__(self, items: ItemDesk, catalog: Catalog, contacts: Contacts) -> None:
        self._items = items
        self._t = catalog
        self._contacts = contacts

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin with whatever the message says (kind, time, place, whom, phone)."""
        state.begin(self.name, "kind", {})
        self._take(turn, state, "start")
        replies = await self._advance(turn, state)
        if state.step in ("kind", "when"):  # their questions name what is known
            return replies
        lead = self._t("home.understood", kind=self._kind(state), when=state.slots["when"])
        return with_lead(lead, replies)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The answer to the active step, a correction, or the question again."""
        slots, step, payload = state.slots, state.step or "kind", turn.payload
        inbound = turn.inbound
        if FORGET_PHONE.search(turn.text) and not payload:
            forgot = await self._contacts.forget(inbound.channel, inbound.user_id)
            if slots.get("kept"):
                slots.pop("phone", None)
                slots.pop("kept", None)
            lead = self._t("contact.forgotten" if forgot else "contact.none_kept")
            return with_lead(lead, await self._advance(turn, state))
        if CHANGE_PHONE.search(turn.text) and not phone_of(turn) and not payload:
            slots.pop("phone", None)
            slots.pop("kept", None)
            return await self._advance(turn, state)
        if step == "phone" and not phone_of(turn) and NO_PHONE.search(turn.text):
            state.reprompts += 1
            return [
                Outbound(self._t("home.phone_needed"), (Button(self._t("button.cancel"), CANCEL),))
            ]
        if (
            step == "keep"
            and not phone_of(turn)
            and turn.parse.first("time") is None
            and not whom_of(turn.text)
        ):
            return await self._on_keep(turn, state)
        if step == "confirm" and (payload == SUBMIT or self._agrees(turn)):
            return await self._submit(turn, state)
        before = dict(slots)
        if step == "confirm" and not payload and (NO.search(turn.text) or turn.means("deny")):
            if not self._changes(turn, state):  # 地址写错了，是4单元401 changes it
                if FIELD_WRONG.search(turn.text):  # 门牌号不对: the right one is to come
                    return [Outbound(self._t("home.send_new"), self.ask(state)[0].buttons)]
                state.finish()
                return [Outbound(self._t("home.cancelled"))]
        if payload.startswith(KIND):
            slots["kind"] = payload.removeprefix(KIND)
            if slots["kind"] == OTHER_KIND and "said" in slots:
                slots.setdefault("note", slots["said"])
        elif payload.startswith(WHOM):
            slots["whom"] = self._t(f"home.whom.{payload.removeprefix(WHOM)}")
        self._take(turn, state, step)
        if slots == before:
            state.reprompts += 1
            question = self.ask(state)[0]
            return [Outbound(f"{self._t('home.reprompt')}\n{question.text}", question.buttons)]
        replies = await self._advance(turn, state)
        noted = [
            self._t(f"home.field.{key}", value=slots[key])
            for key in ("when", "whom")
            if slots.get(key) != before.get(key)
        ]
        if state.step == step != "confirm" and noted:  # 我爸 at the address question
            return with_lead(self._t("home.noted", items="，".join(noted)), replies)
        return replies

    def expect(self, state: ConversationState) -> Expect:
        """What answers each step: any step takes a phone and a time, the summary corrections."""
        step = state.step or "kind"
        # A time at any step says when (每周三下午 after 每周来看看她): never a booking.
        anywhere = frozenset({"phone", "time"})
        if step == "kind":
            return Expect(
                prefixes=(KIND,), entities=anywhere, words=(KIND_WORDS, *_PHONE_WORDS), text=True
            )
        if step == "when":
            return Expect(entities=anywhere, words=_PHONE_WORDS, text=True)
        if step == "where":
            return Expect(
                entities=anywhere | {"address"}, location=True, words=_PHONE_WORDS, text=True
            )
        if step == "whom":
            return Expect(
                prefixes=(WHOM,), entities=anywhere, words=(SELF_WORDS, *_PHONE_WORDS), text=True
            )
        if step == "phone":
            return Expect(entities=anywhere, words=(NO_PHONE, *_PHONE_WORDS))
        if step == "keep":
            return Expect(
                payloads=frozenset({KEEP, DONT_KEEP}),
                entities=anywhere,
                words=(KEEP_WORDS, DONT_KEEP_WORDS, YES, NO, *_PHONE_WORDS),
                intents=frozenset({"affirm", "deny"}),
            )
        return Expect(
            payloads=frozenset({SUBMIT}),
            entities=anywhere | {"address"},
            location=True,
            words=(SUBMIT_WORDS, KIND_WORDS, YES, NO, *_PHONE_WORDS),
            intents=frozenset({"affirm", "deny"}),
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question."""
        step, slots = state.step or "kind", state.slots
        cancel = Button(self._t("button.cancel"), CANCEL)
        if step == "kind":
            kinds = [*KINDS, OTHER_KIND]
            buttons = tuple(Button(self._t(f"home.kind.{k}"), f"{KIND}{k}") for k in kinds)
            return [Outbound(self._t("home.ask_kind"), (*buttons, cancel))]
        if step in ("when", "where", "phone"):
            return [Outbound(self._t(f"home.ask_{step}", kind=self._kind(state)), (cancel,))]
        if step == "whom":
            buttons = tuple(
                Button(self._t(f"home.whom.{w}"), f"{WHOM}{w}") for w in ("self", "elder")
            )
            return [Outbound(self._t("home.ask_whom"), (*buttons, cancel))]
        if step == "keep":
            text = self._t("proxy.ask_keep", phone=masked(slots["phone"]))
            return [Outbound(text, keep_buttons(self._t))]
        text = self._t(
            "home.confirm",
            kind=self._kind(state),
            when=slots["when"],
            address=slots["address"],
            whom=slots["whom"],
            phone=masked(slots["phone"]),
        )
        return [Outbound(text, (Button(self._t("button.submit"), SUBMIT), cancel))]

    # -- steps ---------------------------------------------------------------------------

    async def _on_keep(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        kept = await answer_keep(turn, state.slots, self._contacts)
        if kept is None:
            state.reprompts += 1
            return self.ask(state)
        phone = masked(state.slots["phone"])
        lead = self._t("proxy.kept", phone=phone) if kept else self._t("home.not_kept")
        return with_lead(lead, await self._advance(turn, state))

    def _agrees(self, turn: Turn) -> bool:
        if turn.payload or self._says_something_new(turn):
            return False
        return bool(SUBMIT_WORDS.search(turn.text) or YES.search(turn.text) or turn.means("affirm"))

    def _says_something_new(self, turn: Turn) -> bool:
        parse = turn.parse
        return any(parse.first(e) is not None for e in ("phone", "address", "time"))

    def _changes(self, turn: Turn, state: ConversationState) -> bool:
        before = dict(state.slots)
        self._take(turn, state, "confirm")
        return state.slots != before

    def _take(self, turn: Turn, state: ConversationState, step: str) -> None:
        """Fill what the message says."""
        slots, text, parse = state.slots, turn.text, turn.parse
        free = bool(text) and not turn.payload
        # Words of its own answer the step asked; a place or a time alone fills its slot.
        own = free and not phone_of(turn) and not turn.only_a_value
        if free:
            kind = kind_of(text)
            if kind and (step in ("start", "kind", "confirm")):
                slots["kind"] = kind
                # 家里老人不会交电费 says more than 代购代缴: its words go with the request
                if own and (len(clean(text)) > _KIND_ALONE_CHARS or kind == OTHER_KIND):
                    slots["note"] = text.strip()[:200]
                else:
                    slots.pop("note", None)
            elif step == "start":
                slots["said"] = text.strip()[:200]  # the note, should 其他 be pressed
            elif step == "kind" and own and not _bare_answer(text):
                slots["kind"], slots["note"] = OTHER_KIND, text[:200]
            whom = whom_of(text)
            if whom:
                slots["whom"] = whom
            elif step == "whom" and SELF_WORDS.search(text):
                slots["whom"] = self._t("home.whom.self")
            elif step == "whom" and own and len(clean(text)) <= 20:
                slots["whom"] = text.strip()
        time = parse.first("time")
        if time is not None:
            slots["when"] = parse.text[time.start : time.end]
        elif step == "when" and own and not whom_of(text):  # 我妈 there answers whom
            slots["when"] = text.strip()[:100]
        take_phone(turn, slots)
        location = turn.inbound.location
        if location is not None:
            slots["address"] = location.label or f"{location.latitude:.5f},{location.longitude:.5f}"
        entity = typed_address(parse)
        said = part_said(text) if free and step == "confirm" and slots.get("address") else None
        if entity is not None and len(clean(entity.value)) >= _MIN_ADDRESS:
            slots["address"] = within(str(slots.get("address") or ""), entity.value)
        elif said:  # 门牌号不对，是402
            slots["address"] = within(str(slots["address"]), said)
        elif step == "where" and own and time is None and len(clean(text)) >= _MIN_ADDRESS:
            slots["address"] = text.strip()[:200]
        answered_on = bool(time or phone_of(turn) or entity or location)
        if step == "kind" and "kind" not in slots and slots.get("said") and answered_on:
            # 我家老人想理发 asked its kind, answered with a time or a place: the first
            # words are the kind (其他), not asked again and again
            slots["kind"], slots["note"] = OTHER_KIND, slots["said"]

    async def _advance(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        await recall_phone(turn, slots, self._contacts)
        steps = (
            ("kind", "kind"),
            ("when", "when"),
            ("where", "address"),
            ("whom", "whom"),
            ("phone", "phone"),
            ("keep", "kept"),
        )
        step = next((name for name, slot in steps if slot not in slots), "confirm")
        state.step, state.reprompts = step, 0
        return self.ask(state)

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, inbound = state.slots, turn.inbound
        item = await self._items.create(
            ItemDraft(
                channel=inbound.channel,
                user_id=inbound.user_id,
                chat_id=inbound.chat_id,
                kind=slots["kind"],
                when=slots["when"],
                address=slots["address"],
                whom=slots["whom"],
                phone=slots["phone"],
                note=slots.get("note", ""),
            )
        )
        kind = self._kind(state)
        state.finish()
        return [Outbound(self._t("home.submitted", number=item.id, kind=kind))]

    def _kind(self, state: ConversationState) -> str:
        kind = state.slots.get("kind")
        if kind is None:
            return ""
        note = state.slots.get("note")
        if kind == OTHER_KIND and note:  # 理发 when it says so, else the resident's words
            named = OTHER_HELP.pattern.search(clean(str(note)))
            return named.group() if named else str(note)
        return self._t(f"home.kind.{kind}")
