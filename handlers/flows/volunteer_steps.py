"""What the volunteer flows share: their services, the words they read, how items show.

- ``VolunteerDesk``: the stores the flows use (volunteers, items, claims, records)
  and the gazetteer (communities and their coordinates);
- skills and weekly availability read from a volunteer's own words (周末上午, 工作日
  晚上, 随时);
- ``ranked``: open items of the volunteer's community first, then the nearest, only
  those fitting their skills and availability;
- ``item_line``: one item as a list shows it: number, when, where, places left. No
  phone and no resident's name: a volunteer sees only what the item needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from handlers.catalog import Catalog
from handlers.messages import Inbound
from handlers.words import Words, clean, words
from integration.claims import ClaimBook
from integration.items import OTHER_KIND, ItemBook, ItemView
from integration.privacy import mask
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_report import VolunteerRecords
from integration.volunteers import PARTS, VolunteerBook, VolunteerView
from nlu.gazetteer import Gazetteer

VOL = "vol:"
PAGE_SIZE = 5
TITLE = "党员志愿者"


@dataclass(frozen=True, slots=True)
class VolunteerDesk:
    """The stores and the gazetteer the volunteer flows work with."""

    volunteers: VolunteerBook
    items: ItemBook
    claims: ClaimBook
    records: VolunteerRecords
    gazetteer: Gazetteer

    async def volunteer(self, inbound: Inbound) -> VolunteerView | None:
        """The volunteer the message's channel account belongs to, if any."""
        return await self.volunteers.of_account(inbound.channel, inbound.user_id)

    async def holding(self, inbound: Inbound) -> tuple[VolunteerView, list[ItemView]] | None:
        """The message's volunteer and the items they hold a place on (None: no volunteer)."""
        volunteer = await self.volunteer(inbound)
        if volunteer is None:
            return None
        return volunteer, [h.item for h in await self.claims.held(volunteer.id)]


class DeskFlow:
    """A base of the volunteer flows: the desk and the message catalogue they use."""

    def __init__(self, desk: VolunteerDesk, catalog: Catalog) -> None:
        self._desk = desk
        self._t = catalog


SKILL_WORDS: dict[str, Words] = {
    "elder": words("elder", "助老|老人|养老|陪护|照顾|陪伴|助餐|买菜|做饭|理发|聊天"),
    "repair": words(
        "repair", "维修|修理|水电|电工|木工|修东西|家电|电器|修[水电车鞋锁门家]|装修|焊"
    ),
    "legal": words("legal", "法律|律师|法务|普法|调解"),
    "medical": words("medical", "医疗|医生|护士|医护|卫生|护理|看病"),
    "education": words("education", "教育|辅导|教师|老师|教学|作业|家教|教[书课孩]"),
    "culture": words(
        "culture",
        "文体|文艺|体育|唱歌|跳舞|书法|摄影|拍照|摄像|运动|乐器|钢琴|吉他|二胡|古筝|画画|绘画|弹琴|下棋",
    ),
    "other": words(
        "other", "其他|其它|都行|都可以|啥都|什么都|没(有|什么|啥)?特长|跑腿|开车|驾驶|电脑|写材料"
    ),
}
# Words that say "anything" or "nothing in particular": 其他 with nothing to note.
_ANYTHING = re.compile("其他|其它|都行|都可以|啥都|什么都|随便|没(有|什么|啥)?特长|不会")
# How one tells what one can do (我会, 还能, 擅长, 学过): the lead of a skill in one's
# own words, and what is left of a clause without it.
_OWN_LEAD = re.compile("^(?:我|另外|而且|还|也|平时)*(?:会|能|擅长|懂|学过|做过|干过|比较会)+")
# A clause that says when one is free (周末有空), not what one can do.
_WHEN_CLAUSE = re.compile(
    "周|星期|礼拜|工作日|平时有空|随时|每天|天天|上午|下午|晚上|白天|全天|有空|有时间"
)

_ALL_DAYS = tuple(range(7))
_DAYS = (
    (re.compile("每天|天天|随时|都行|都可以|任何时间|什么时候都|全周"), _ALL_DAYS),
    (re.compile("工作日|周一到周五|星期一到星期五|平时|平日"), (0, 1, 2, 3, 4)),
    (re.compile("周末|双休|周六日|周六周日|星期六日|礼拜六日"), (5, 6)),
)
_WEEKDAY = re.compile("(?:周|星期|礼拜)([一二三四五六日天])")
_WEEKDAY_INDEX = {c: i for i, c in enumerate("一二三四五六日")} | {"天": 6}
_PARTS = (
    (re.compile("全天|整天|一整天|随时|都行|都可以"), PARTS),
    (re.compile("白天"), ("morning", "afternoon")),
    (re.compile("上午|早上|早晨|上班前"), ("morning",)),
    (re.compile("中午|下午"), ("afternoon",)),
    (re.compile("晚上|晚间|傍晚|下班后|夜里"), ("evening",)),
)


def skills_of(text: str) -> tuple[str, ...]:
    """The skills a volunteer's words name (助老 维修 → elder, repair)."""
    cleaned = clean(text)
    return tuple(skill for skill, matcher in SKILL_WORDS.items() if matcher.search(cleaned))


def skill_note(text: str) -> str:
    """A volunteer's own words for what the list has no name for, else empty.

    A clause names it when it names no listed skill but 其他's specific words (会开车),
    or when it tells what one can do and names none at all (擅长写PPT); 会修水电 names a
    listed skill, 都可以 and 没什么特长 say nothing in particular, 周末有空 is free time.
    """
    kept = []
    for clause in re.split(r"[，,。；;、！!？?\s]+", text):
        if not clause or _ANYTHING.search(clause) or _WHEN_CLAUSE.search(clause):
            continue
        named, own = set(skills_of(clause)), _OWN_LEAD.sub("", clause)
        if named == {"other"} or (not named and own != clause and len(own) >= 2):
            kept.append(own)
    return "，".join(kept)


def slots_of(text: str) -> tuple[tuple[int, str], ...]:
    """The (weekday, part of day) pairs a volunteer's words say they are free.

    A day without a part of day means the whole day; a part of day without days means
    every day. Empty when the words name neither.
    """
    days: set[int] = set()
    for pattern, named in _DAYS:
        if pattern.search(text):
            days.update(named)
    days.update(_WEEKDAY_INDEX[m.group(1)] for m in _WEEKDAY.finditer(text))
    parts: set[str] = set()
    for pattern, named_parts in _PARTS:
        if pattern.search(text):
            parts.update(named_parts)
    if not days and not parts:
        return ()
    return tuple(sorted((d, p) for d in (days or _ALL_DAYS) for p in (parts or PARTS)))


def part_of(moment: datetime) -> tuple[int, str]:
    """The (weekday, part of day) a moment falls in, local time."""
    local = moment.astimezone(LOCAL_TZ)
    part = "morning" if local.hour < 12 else "afternoon" if local.hour < 18 else "evening"
    return local.weekday(), part


def fits(item: ItemView, volunteer: VolunteerView | None) -> bool:
    """Whether an item suits the volunteer's skills and weekly availability."""
    if volunteer is None:
        return True
    wanted = set(item.skills) - {"other"}
    if wanted and volunteer.skills and not wanted & set(volunteer.skills):
        return False
    if item.starts_at is not None and volunteer.slots:
        return part_of(item.starts_at) in volunteer.slots
    return True


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 6371.0 * 2 * math.asin(math.sqrt(h))


def ranked(
    items: Iterable[ItemView],
    volunteer: VolunteerView | None,
    gazetteer: Gazetteer,
    *,
    fitting: bool = True,
) -> list[ItemView]:
    """Fitting items (every one when not ``fitting``): the volunteer's community first,
    then by distance, then soonest."""
    home = gazetteer.get(volunteer.community) if volunteer else None
    origin = (home.latitude, home.longitude) if home else None

    def key(item: ItemView) -> tuple[int, float, float]:
        place = gazetteer.get(item.community) if item.community else None
        own = 0 if home is not None and place is not None and place.name == home.name else 1
        far = _km(origin, (place.latitude, place.longitude)) if origin and place else math.inf
        soon = item.starts_at.timestamp() if item.starts_at else math.inf
        return own, far, soon

    return sorted((item for item in items if not fitting or fits(item, volunteer)), key=key)


_WHAT_CHARS = 24  # of a resident's own words naming a request, in lists and buttons


def what(t: Catalog, item: ItemView) -> str:
    """The item's title (a staff post), or a resident's request in words: their own
    when no listed kind fits (其他: 我爸瘫痪在床，想请人上门理发), the kind with them when
    they say more than its name (代购代缴（家里老人不会交电费）), else the kind's name
    (助餐); cut short, with phone and ID numbers masked."""
    if item.title:
        return item.title
    label, note = t.get(f"home.kind.{item.kind}", item.kind), item.note.strip()
    if item.kind == OTHER_KIND and note:
        said = note
    else:
        said = f"{label}（{note}）" if note and label not in note else label
    said = mask(said)
    return said if len(said) <= _WHAT_CHARS else f"{said[:_WHAT_CHARS]}…"


def when(t: Catalog, item: ItemView) -> str:
    """The item's time window as people say it (11月10日 09:00-11:00), or its words."""
    if item.starts_at is None:
        return item.when or t("volunteer.when_open")
    start = item.starts_at.astimezone(LOCAL_TZ)
    text = f"{start.month}月{start.day}日 {start:%H:%M}"
    if item.ends_at is not None:
        text += f"-{item.ends_at.astimezone(LOCAL_TZ):%H:%M}"
    return text


def item_line(t: Catalog, position: int, item: ItemView) -> str:
    """One listed item: position, number, what, when, where, places left."""
    return t(
        "volunteer.item_line",
        position=position,
        number=item.id,
        what=what(t, item),
        when=when(t, item),
        where=item.address,
        left=item.left,
    )


def skill_names(t: Catalog, skills: Sequence[str], note: str = "") -> str:
    """Skills as residents read them (助老、维修), with the volunteer's own words for
    the rest (其他（会开车）)."""
    names = "、".join(t(f"volunteer.skill.{s}") for s in skills) or t("volunteer.skill.other")
    return t("volunteer.skill_with_note", skills=names, note=note) if note else names


def coming(volunteer: VolunteerView) -> tuple[str, str]:
    """How a resident is told who is coming: the surname with 师傅, and the title."""
    return f"{volunteer.surname}师傅", TITLE


ITEM_NUMBER = re.compile(r"(?:编号|项目|服务|任务)\s*(\d{1,7})|(\d{1,7})\s*号(?:项目|服务|任务)")


def item_number(text: str) -> int | None:
    """An item number the message names (编号12, 12号项目), if any."""
    match = ITEM_NUMBER.search(text)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))
