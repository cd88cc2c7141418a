"""A resident withdraws their own help-at-home request (取消上门服务, 助餐不需要了).

Started by words (``WITHDRAW_HOME``) in an idle conversation, before the model, which
reads them as a new request. The resident's requests not yet begun (awaiting staff,
open, or claimed) are looked up:

- none: told so, or, when one is already under way or done, that staff handle it now
  (with 转人工); with no request at all and no 上门 said (维修不用了), declined: the
  message is routed as if the words had not fired;
- one: asked to confirm, with 确认取消 and 不取消 (a typed 取消 or 是的 confirms);
- several: one button each, the button saying which it cancels.

A request withdrawn is cancelled in the item book, and every volunteer who claimed it
is told in the same transaction, so nobody goes to a door that no longer needs them.
"""

from __future__ import annotations

from handlers.catalog import Catalog
from handlers.flows.base import OFFER_INTERRUPTS, Declined, Expect, Turn
from handlers.flows.chat import MENU_HUMAN
from handlers.flows.home import ItemDesk
from handlers.flows.volunteer_steps import what
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, YES, words
from integration.items import WITHDRAWABLE, ItemNotFound, ItemNotPending, ItemView

_SERVICES = "上门服务|上门|助餐|送餐|送饭|助浴|陪诊|陪同就医|助医|探访|保洁|家政|维修|代购"
WITHDRAW_HOME = words(
    "withdraw_home",
    f"(取消|撤销|撤回)(一下|掉)?(我的|这个|那个|刚才的?|申请的)?({_SERVICES})(的)?(服务)?(申请)?|"
    f"({_SERVICES})(的)?(服务)?(申请)?.{{0,4}}(不用了|不要了|不需要了|取消|撤销)|"
    f"不(要|需要|用)(再)?({_SERVICES})(的)?(服务)?了|不用(再)?上门了|别上门了",
)
_STEP = "home_withdraw:"
YES_PAYLOAD, NO_PAYLOAD, PICK = f"{_STEP}yes", f"{_STEP}no", f"{_STEP}pick:"
# At the confirmation a typed 取消 (or 撤销, 不要了) confirms, it does not end the question.
_CONFIRMS = words("withdraw_yes", "确认取消|取消|撤销|撤回|不要了|不需要了")
_KEEPS = words("withdraw_no", "不取消|不用取消|别取消|先不|还要|继续")


class HomeWithdrawFlow:
    """Withdraws a help-at-home request the resident made, once they confirm."""

    name = "home_withdraw"

    def __init__(self, items: ItemDesk, catalog: Catalog) -> None:
        self._items = items
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Which request, and the question whether to cancel it."""
        inbound, t = turn.inbound, self._t
        requests = await self._items.requested_by(inbound.channel, inbound.user_id)
        open_ = [r for r in requests if r.status in WITHDRAWABLE]
        if not open_:
            human = (Button(t("button.menu_human"), MENU_HUMAN),)
            if requests:  # begun or done: the community handles it now
                return [Outbound(t("home.withdraw_begun", number=requests[0].id), human)]
            if "上门" not in turn.text:  # 维修不用了 from someone with no request: a case?
                raise Declined
            return [Outbound(t("home.withdraw_none"))]
        if len(open_) == 1:
            item = open_[0]
            state.begin(self.name, "confirm", {"item": item.id})
            return [Outbound(t("home.withdraw_confirm", **self._about(item)), self._buttons())]
        state.begin(self.name, "pick", {})
        buttons = tuple(
            Button(t("home.withdraw_this", **self._about(r)), f"{PICK}{r.id}") for r in open_
        )
        return [Outbound(t("home.withdraw_which"), buttons)]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The answer: a pick, a yes or a no."""
        payload, text, slots = turn.payload, turn.text, dict(state.slots)
        state.finish()
        if payload.startswith(PICK):
            return await self._withdraw(turn, int(payload.removeprefix(PICK)))
        if "item" not in slots:  # a pick step answered by no button: nothing chosen
            return [Outbound(self._t("home.kept"))]
        typed = not payload and bool(text)
        # 不取消 before 取消, 不要了 (no longer wanted) before a plain no (不用了: kept)
        if payload == NO_PAYLOAD or (typed and _KEEPS.search(text)):
            return [Outbound(self._t("home.kept"))]
        if payload == YES_PAYLOAD or (typed and (_CONFIRMS.search(text) or YES.search(text))):
            return await self._withdraw(turn, int(slots["item"]))
        if typed and NO.search(text):
            return [Outbound(self._t("home.kept"))]
        state.begin(self.name, "confirm", slots)
        return [Outbound(self._t("home.withdraw_reask"), self._buttons())]

    def expect(self, state: ConversationState) -> Expect:
        """The buttons, or a typed yes or no (a typed 取消 confirms, not withdraws)."""
        if state.step == "pick":
            return Expect(prefixes=(PICK,), interrupts=OFFER_INTERRUPTS, optional=True)
        return Expect(
            payloads=frozenset({YES_PAYLOAD, NO_PAYLOAD}),
            words=(YES, NO, _CONFIRMS, _KEEPS),
            intents=frozenset({"affirm", "deny"}),
            interrupts=OFFER_INTERRUPTS,
            withdrawal_answers=_CONFIRMS,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The question again."""
        return [Outbound(self._t("home.withdraw_reask"), self._buttons())]

    async def _withdraw(self, turn: Turn, number: int) -> list[Outbound]:
        inbound, t = turn.inbound, self._t
        try:
            before = await self._items.get(number)
            tell = t("home.withdrawn_volunteer", **self._about(before))
            item = await self._items.cancel(
                number, "resident", owner=(inbound.channel, inbound.user_id), tell=tell
            )
        except ItemNotFound:
            return [Outbound(t("home.withdraw_none"))]
        except ItemNotPending:
            human = (Button(t("button.menu_human"), MENU_HUMAN),)
            return [Outbound(t("home.withdraw_begun", number=number), human)]
        text = t("home.withdrawn", **self._about(item))
        if before.taken:  # a volunteer was coming
            text = f"{text}\n{t('home.withdrawn_told')}"
        return [Outbound(text)]

    def _buttons(self) -> tuple[Button, ...]:
        t = self._t
        return (Button(t("home.withdraw_yes"), YES_PAYLOAD), Button(t("home.keep"), NO_PAYLOAD))

    def _about(self, item: ItemView) -> dict[str, object]:
        return {"number": item.id, "what": what(self._t, item), "when": item.when or "-"}
