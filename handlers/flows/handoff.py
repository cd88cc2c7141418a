"""The human handoff: a person takes the conversation, and the bot holds its tongue.

Started by the human_handoff intent (or 转人工 anywhere), by two messages in a row the
model cannot place, by an angry or urgent message (``ESCALATIONS``: each rule is named,
and the console shows which fired and on what words), or by a staff member taking
over from the console (``Pipeline.take_over``). The flow under way is paused, not
dropped: when staff hand the conversation back (``Pipeline.release``) it resumes at
the step it was at.

While a person holds the conversation every message goes to ``resume``: it is kept
in the transcript for the console and the bot says nothing, except to the commands
取消 (the resident no longer waits: the paused flow resumes) and 我的进度 (the status
answer, which staff need not type). Off staff hours (integration.handoff_hours) the
resident is told when to expect an answer, and that time is kept as a promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import HANDOFF_INTENT, Expect, Flow, Turn
from handlers.flows.chat import menu
from handlers.flows.staff_link import StaffLinks
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import ABUSE, CANCEL, HANDOFF, Words, clean, words
from integration.handoff import HandoffRequest, HandoffView
from integration.services.calendar import LOCAL_TZ
from nlu.types import FALLBACK_INTENT

HELD = "held"
FALLBACKS_BEFORE_PERSON = 2  # messages in a row the model cannot place


@dataclass(frozen=True, slots=True)
class Escalation:
    """A rule that hands a message to a person at once; ``urgent``: a life or a home at risk."""

    rule: Words
    urgent: bool


# Small and explainable on purpose: each rule has a name the console shows with the words.
ESCALATIONS: tuple[Escalation, ...] = (
    Escalation(  # 厨房着火了; not a hazard (纸箱堆在楼道怕着火, 火灾隐患, 楼道堆满杂物，
        # 着火了都跑不出去, 要是着火就完了): that is a report
        words(
            "fire",
            "(?<!怕)(?<!会)(?<!容易)(?<!担心)(?<!小心)(?<!万一)(?<!防止)(?<!防)(?<!可能)"
            "(?<!引起)(?<!引发)(?<!导致)(?<!造成)(?<!要是)(?<!如果)(?<!一旦)(?<!假如)"
            "(着火|起火(?!灾)|失火|火灾|烧起来|冒浓烟)(?!隐患|风险|危险)"
            "(?!了?人?(都|也)|了?就(完|麻烦|糟|危险|出不|跑不))",
        ),
        urgent=True,
    ),
    Escalation(words("gas", "(煤气|燃气|天然气)(泄漏|泄露|漏了|漏气|中毒)|煤气中毒"), urgent=True),
    Escalation(words("rescue", "救命|救救|快来人|晕倒|昏迷|不省人事|要跳楼|被困"), urgent=True),
    Escalation(  # 隔壁天天打孩子, 我老公又打我了: not a noise report; police and the 妇联
        words(
            "violence",
            "家暴|家庭暴力|虐待|(打|揍)(孩子|小孩|老婆|妻子|媳妇|老公|丈夫|老人|女儿|儿子)"
            "(?!的?(疫苗|预防针|针|电话|手机))|"
            "(被|让)(老公|丈夫|老婆|媳妇|男朋友|他|她)(打|揍)|(老公|丈夫|男人|他)(又|总|经常|天天)?(打|揍)我(?!的?(电话|手机))",
        ),
        urgent=True,
    ),
    Escalation(
        words(
            "elevator",
            "电梯.{0,6}(困|关|卡)(了|住|着)?.{0,3}(人|孩子|老人|在里)|(困|关|卡)在电梯",
        ),
        urgent=True,
    ),
    Escalation(
        words(
            "medical",
            "摔.{0,4}(起不来|爬不起来)|倒地不起|喘不上气|呼吸困难|胸口(疼|痛|闷)得|"
            "心脏病(犯|发作)|突发(心脏病|脑梗|中风)|抽搐|大出血|流了(好多|很多)血",
        ),
        urgent=True,
    ),
    Escalation(  # 孩子在学校门口被车撞了; not 这个路口经常出车祸 (a dangerous crossing)
        words(
            "accident",
            "被(车|汽车|电动车|摩托车|三轮车|货车|出租车)?撞(了|伤|倒)|"
            "(车|车子)撞(了|到|倒|伤)了?(人|孩子|老人|小孩)|(出|发生)(了)?车祸了",
        ),
        urgent=True,
    ),
    Escalation(  # 我要投诉社区工作人员态度不好: about a person, for a person (not a rating)
        words(
            "conduct",
            "(投诉|举报)(社区|街道|窗口|居委会|大厅)?的?(工作人员|网格员|干部|主任|书记|办事员)|"
            "(工作人员|网格员|社区干部|街道干部|窗口的人|办事员|社区的人|居委会的人)"
            ".{0,6}(态度(不好|差|恶劣|太差|很差)|不理人|爱答不理|刁难|推诿|踢皮球|不作为|骂人|"
            "吃拿卡要|要好处|收好处|摆架子|不耐烦)",
        ),
        urgent=False,
    ),
    Escalation(  # 网格员电话多少: staff know each community's grid worker; Yimen does not
        words(
            "grid_contact",
            "网格员.{0,6}(电话|联系方式|手机|微信|怎么联系|是谁|叫什么)|"
            "(找|联系)(我们|我家)?(小区|社区|这片)?的?网格员",
        ),
        urgent=False,
    ),
    Escalation(  # 跟邻居吵架了，能不能帮忙调解一下: the community's mediators, not a report
        words(
            "dispute",
            "调解|邻里纠纷|邻里矛盾|(和|跟|与)邻居.{0,10}(吵|打|闹|纠纷|矛盾|扯皮)|"
            "邻居.{0,4}(吵起来|打起来|闹矛盾|闹翻)",
        ),
        urgent=False,
    ),
    Escalation(
        words(
            "complaint_threat",
            "投诉你们|告你们|打12345|12345投诉|打市长热线|找媒体|曝光你们|上访",
        ),
        urgent=False,
    ),
    Escalation(
        words("anger", "气死我了|忍无可忍|欺人太甚|太过分了|(还|到底|究竟)管不管|没人管了?吗"),
        urgent=False,
    ),
    Escalation(  # 我说了好几遍了你怎么听不懂: the bot has failed them; a person instead
        words(
            "not_understood",
            "你.{0,4}(听不懂|没听懂|听不明白|看不懂|不明白我)|听没听懂|看不懂人话|答非所问|"
            "牛头不对马嘴|驴唇不对马嘴|鸡同鸭讲|跟你说不通|说了(好几|多少|几|半天)遍",
        ),
        urgent=False,
    ),
)
STATUS_WORDS = words("my_status", "^(我的)?(进度|进展)$|^查(一下|下)?进度$", whole=False)


def escalation(text: str) -> tuple[Escalation, str] | None:
    """The first rule ``text`` fires, with the words that fired it."""
    cleaned = clean(text)
    for rule in ESCALATIONS:
        found = rule.rule.pattern.search(cleaned)
        if found:
            return rule, found.group()
    return None


def wants_person(turn: Turn, state: ConversationState) -> bool:
    """Whether to hand the message to a person: asked, escalated, or twice not understood.

    ``state.fallbacks`` must already count this message (``count_fallback``).
    """
    if turn.asks_for_person:
        return True
    if turn.payload:
        return False
    if turn.text and (HANDOFF.search(turn.text) or escalation(turn.text) is not None):
        return True
    return state.fallbacks >= FALLBACKS_BEFORE_PERSON


def count_fallback(turn: Turn, state: ConversationState) -> None:
    """Count messages in a row the model cannot place.

    A pressed button is understood; an insult is not a failure to understand but a
    matter for patience (handlers.patience: a calm answer, a person offered, quiet).
    """
    insult = bool(turn.text) and ABUSE.search(turn.text)
    if turn.payload or insult or turn.parse.intent != FALLBACK_INTENT:
        state.fallbacks = 0
    else:
        state.fallbacks += 1


class HandoffDesk(StaffLinks, Protocol):
    """Where handoffs are opened and closed, and staff chats linked (HandoffBook)."""

    async def open(self, request: HandoffRequest) -> HandoffView:
        """Open a handoff, or return the chat's open one."""
        ...

    async def touch(self, handoff_id: int, at: datetime) -> bool:
        """Note a message from the resident; False when the handoff is no longer open."""
        ...

    async def withdraw(self, channel: str, chat_id: str, at: datetime | None = None) -> bool:
        """Close the chat's open handoff: the resident no longer waits."""
        ...


class HandoffFlow:
    """Holds the conversation for a person (see the module docstring)."""

    name = "handoff"

    def __init__(self, desk: HandoffDesk, catalog: Catalog, status: Flow) -> None:
        self._desk = desk
        self._t = catalog
        self._status = status

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Open the handoff and tell the resident a person is coming (and when, off hours)."""
        reason, detail, urgent = self._reason(turn, state)
        state.fallbacks = 0
        inbound = turn.inbound
        handoff = await self._desk.open(
            HandoffRequest(
                inbound.channel, inbound.user_id, inbound.chat_id, reason, detail, inbound.time
            )
        )
        self.hold(state, handoff.id)
        replies = [Outbound(self._t(f"handoff.urgent.{detail.split(':')[0]}"))] if urgent else []
        return [*replies, self.coming(handoff)]

    def hold(self, state: ConversationState, handoff_id: int) -> None:
        """Make the handoff the active flow (the flow under way is paused by the router)."""
        state.begin(self.name, HELD, {"id": handoff_id})

    def coming(self, handoff: HandoffView) -> Outbound:
        """A person is coming: now, or at the promised time off hours."""
        if handoff.promised_at is None:
            return Outbound(self._t("handoff.coming"))
        return Outbound(self._t("handoff.promised", time=when(handoff.promised_at)))

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Pass the message to the person: silent, except for 取消 and 我的进度."""
        inbound = turn.inbound
        if turn.text and CANCEL.search(turn.text):
            await self._desk.withdraw(inbound.channel, inbound.chat_id, inbound.time)
            state.finish()
            return [Outbound(self._t("handoff.withdrawn"))]
        if turn.parse.intent == "check_status" and (
            turn.text.startswith("/") or STATUS_WORDS.search(turn.text) or turn.payload
        ):
            # Answered on a scratch state: a list to pick from must not replace the hold.
            return await self._status.start(turn, ConversationState())
        handoff_id = state.slots.get("id")
        if isinstance(handoff_id, int) and not await self._desk.touch(handoff_id, inbound.time):
            # Closed in the console while the hold stayed in the state (a release that
            # failed half-way): the resident must not be left talking to nobody.
            state.finish()
            return [handed_back(self._t, "handoff.returned", state)]
        return []

    def expect(self, state: ConversationState) -> Expect:
        """Everything goes to ``resume``: a person holds the conversation."""
        return Expect(text=True, intents=frozenset({HANDOFF_INTENT}), holds=True)

    def ask(self, state: ConversationState) -> list[Outbound]:
        """Nothing to ask: the person is still coming."""
        return []

    def _reason(self, turn: Turn, state: ConversationState) -> tuple[str, str, bool]:
        """Why the message goes to a person: (reason, detail, urgent)."""
        if not turn.payload and turn.text:
            fired = escalation(turn.text)
            if fired is not None:
                rule, found = fired
                return "rule", f"{rule.rule.name}:{found}", rule.urgent
            if HANDOFF.search(turn.text):
                return "asked", "", False
        if state.fallbacks >= FALLBACKS_BEFORE_PERSON:
            return "fallbacks", "", False
        return "asked", "", False


HANDBACK_TEXTS = ("handoff.returned", "handoff.closed")  # staff hand back, or close


def handback_buttons(t: Catalog, text: str) -> tuple[Button, ...]:
    """The main menu, when ``text`` is the whole of a hand-back message; else none.

    Staff ending a handoff push the resident one of ``HANDBACK_TEXTS``, followed by the
    paused flow's question when one resumes (the flow's question then is what to
    answer). With nothing to resume, the bot's main choices go with it as quick replies
    (numbered lines on WeChat), so the resident knows what they can do next.
    """
    return menu(t) if text.strip() in {t(key) for key in HANDBACK_TEXTS} else ()


def handed_back(t: Catalog, key: str, state: ConversationState) -> Outbound:
    """A hand-back message; with the main menu unless a paused flow resumes after it."""
    return Outbound(t(key), () if state.paused else menu(t))


def when(moment: datetime) -> str:
    """A promised time as residents read it: 12月7日（周一）08:30."""
    local = moment.astimezone(LOCAL_TZ)
    weekday = "一二三四五六日"[local.weekday()]
    return f"{local.month}月{local.day}日（周{weekday}）{local:%H:%M}"
