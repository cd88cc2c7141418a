"""Resolve Chinese date and time expressions to datetimes in Asia/Shanghai.

``find_times(text, now)`` scans a message for expressions such as 明天上午, 下周一下午三点,
11月28日9点, 后天 or 两小时后; ``resolve(expression, now)`` reads a string that is exactly
one expression. Each becomes a ``TimeValue``: a point (``end is None``) or a half-open
interval ``[start, end)``, with a grain and an ``iso`` form (``2026-11-30T15:00:00+08:00``,
or ``start/end`` in ISO 8601 interval notation). Arabic and Chinese numerals both work.

Conventions, Duckling-like: prefer the future, weeks run Monday to Sunday.

- Days: 今天/明天/后天/大后天/昨天/前天/大前天 and N天后/N周后/N天前 are points at midnight,
  grain ``day``. 今早/明早 and 今晚/明晚/昨晚 are that day's 早上 and 晚上.
- Weekdays: plain 周三 (星期三, 礼拜三) is the coming Wednesday, today if today is one.
  这/本周三 is the Wednesday of this week even if past, 下周三 of next week, 下下周三 of the
  week after, 上周三 of last week. So on a Sunday 下周一 is tomorrow.
- Weeks: 这周/本周/下周/下下周/上周 run from Monday 00:00 to the next Monday 00:00 (grain
  ``week``). 周末 is this week's Saturday 00:00 to Monday 00:00, 下周末 next week's
  (grain ``day``); on a Sunday 周末 is the weekend under way.
- Dates: N月N日/号 without a year is the next such date, today included (late in November
  1月5日 is next January's); 今年/明年/去年 or a four-digit year pins it. A bare N号/N日 is
  the next such day of a month, today included, skipping months without it.
- Parts of day are intervals (grain ``part_of_day``): 凌晨 0–6, 早上/早晨/清晨/一大早
  6–9, 上午 9–12, 中午 12–13, 下午 13–18, 傍晚 17–19, 晚上/晚间/夜晚 19–23,
  夜里/夜间/半夜/大半夜/深夜 22–02 the next day, 后半夜 0–5 the next day, 白天 8–18.
  Without a date they mean today. 夜间 in a compound (夜间施工许可) is no time.
- Clock times (N点, N点半, N点一刻/三刻, N点M分, N:MM, N时) are points, grain ``minute``
  when minutes are said, else ``hour``. After a part of day the hour is the 12-hour
  reading nearest that part: 下午三点 15:00, 晚上8点 20:00, 晚上12点 and 半夜12点 the next
  00:00, 半夜1点 the next 01:00, 凌晨12点 00:00, 中午12点 12:00. With no part of day,
  1–6点 is afternoon (13:00–18:00, as at a service window) and other hours are as
  written, so 12点 is noon. Without a date a clock time is today, even if already past:
  whether a past time makes sense is the dialogue's call.
- Clock ranges (上午9点到11点, 3点-5点, 上午10点至下午2点) are intervals. Two
  neighbouring hours (凌晨两三点, 晚上八九点) are the first one; 左右/多/以后 after a clock
  (10点左右, 12点多, 晚上10点以后) are part of the expression and change nothing.
- 上个月15号/下个月3号 are that day of last or next month. N个月前, 半个月前 (15 days),
  N年前, 半年前 count months and years back from today (the day clamped to the month).
- N小时后, 半小时后, 一个半小时后, N分钟后 are ``now`` plus that, to the minute (…前 counts
  back), grain ``minute``.
- Recurring expressions (每天半夜, 每周一, 每晚8点) are not one time and are skipped, as
  are 一点 meaning "a little" (快一点, 一点都不, 一点小事), points of a list (以下三点),
  一时 "for the moment" (一时半会儿), directions (10点钟方向), house and plot numbers
  (3号楼, 小区3号, 8号地块) and 一次 after a week (这周一次都没来 is this week, not Monday).
- 前/以前/之前 after a clock are part of it like 以后 (下午5点前 is 17:00; not 10点前来,
  "come at ten"); 本周内 is this week; a clock range may end on 今天 (昨晚11点半到今天凌晨一点).

Periods (durations, since-expressions, recurrences: 连续一周, 自今年3月以来,
每晚10点至凌晨2点) are found by ``nlu.periods`` and kept as a description, never a time:
``find_times`` leaves out any time inside one.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import cn2an

from nlu.periods import Period, find_periods
from nlu.timewords import (
    DAY_OFFSET,
    DPW_PART,
    PART_HOURS,
    RELATIVE_DAYS,
    SCAN,
    WEEK_OFFSET,
    WEEKDAYS,
    YEAR_OFFSET,
)
from nlu.types import NLUError

SHANGHAI = ZoneInfo("Asia/Shanghai")

Grain = Literal["minute", "hour", "part_of_day", "day", "week"]


class TimeParseError(NLUError):
    """``expression`` is not a time this resolver can place; ``reason`` says why."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression!r}: {reason}")
        self.expression = expression
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TimeValue:
    """A resolved time: a point when ``end`` is None, else the interval ``[start, end)``."""

    start: datetime
    end: datetime | None
    grain: Grain

    @property
    def iso(self) -> str:
        """ISO 8601: one datetime for a point, ``start/end`` for an interval."""
        if self.end is None:
            return self.start.isoformat()
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass(frozen=True, slots=True)
class TimeMatch:
    """A time expression found in a text: its character span and resolved value."""

    start: int
    end: int
    text: str
    value: TimeValue


# -- public API ------------------------------------------------------------------------
def find_times(
    text: str, now: datetime | None = None, *, periods: list[Period] | None = None
) -> list[TimeMatch]:
    """Every time expression in ``text``, left to right, resolved relative to ``now``.

    Expressions that look like times but cannot be placed (13月, 2月30日, 每天半夜)
    are left out, and so is any time inside a period (``find_periods``; pass
    ``periods`` when they have been found already).
    """
    now = _local(now)
    if periods is None:
        periods = find_periods(text)
    spans = [(p.start, p.end) for p in periods]
    found = []
    for match in SCAN.finditer(text):
        if not match.group():
            continue
        if any(start < match.end() and match.start() < end for start, end in spans):
            continue
        try:
            value = _resolve(match, now)
        except TimeParseError:
            continue
        found.append(TimeMatch(match.start(), match.end(), match.group(), value))
    return found


def resolve(expression: str, now: datetime | None = None, *, on: date | None = None) -> TimeValue:
    """Resolve ``expression``, which must be one whole time expression, relative to ``now``.

    A time of day that names no day (10点, 下午) falls on ``on`` (default: ``now``'s
    day): the day a conversation is already about, as when slots of 后天 were offered.
    Raises ``TimeParseError`` when it is not one (or names no real date).
    """
    match = SCAN.fullmatch(expression.strip())
    if match is None or not match.group():
        raise TimeParseError(expression, "not a time expression")
    return _resolve(match, _local(now), on)


# -- resolution ------------------------------------------------------------------------
def _local(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(SHANGHAI)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(SHANGHAI)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


@lru_cache(maxsize=256)
def _number(numeral: str) -> int:
    """An Arabic or (well-formed, see the patterns) Chinese numeral as an int."""
    if numeral.isdigit():
        return int(numeral)
    return int(cn2an.cn2an(numeral.replace("廿", "二十"), "smart"))


def _resolve(m: re.Match[str], now: datetime, on: date | None = None) -> TimeValue:
    text = m.group()
    if m.group("every"):
        raise TimeParseError(text, "a recurring time")
    if m.group("rel_unit"):
        return _relative(m, now)
    today = now.date()
    if m.group("weekend") is not None:
        monday = today - timedelta(days=today.weekday())
        monday += timedelta(weeks=WEEK_OFFSET.get(m.group("we_prefix") or "", 0))
        start = _midnight(monday + timedelta(days=5))
        return TimeValue(start, start + timedelta(days=2), "day")
    if m.group("week") is not None:
        monday = today - timedelta(days=today.weekday())
        start = _midnight(monday + timedelta(weeks=WEEK_OFFSET[m.group("wk_prefix")]))
        return TimeValue(start, start + timedelta(weeks=1), "week")

    day = _day(m, today, text)
    part = m.group("part")
    if m.group("dpw_part"):
        part = DPW_PART[m.group("dpw_part")]
    base = _midnight(day if day is not None else on or today)
    if m.group("hour") is None and m.group("vague") is None:
        if part is None:
            if day is None:
                raise TimeParseError(text, "no date or time")
            return TimeValue(base, None, "day")
        first, last = PART_HOURS[part]
        return TimeValue(base + timedelta(hours=first), base + timedelta(hours=last), "part_of_day")

    hour, minute, precise = _clock_of(m, "", text)
    start = base + timedelta(hours=_hour_in(hour, part), minutes=minute)
    if m.group("hour2") is None and m.group("vague2") is None:
        return TimeValue(start, None, "minute" if precise else "hour")
    hour2, minute2, precise2 = _clock_of(m, "2", text)
    end = base + timedelta(hours=_hour_in(hour2, m.group("part2") or part), minutes=minute2)
    for _ in range(2):  # 上午11点到1点: the end is the next 1 o'clock after the start
        if end <= start:
            end += timedelta(hours=12)
    return TimeValue(start, end, "minute" if precise or precise2 else "hour")


def _relative(m: re.Match[str], now: datetime) -> TimeValue:
    amount = 0.5 if m.group("rel_n") == "半" else float(_number(m.group("rel_n")))
    if m.group("rel_half"):
        amount += 0.5
    unit = timedelta(minutes=1) if m.group("rel_unit") == "分钟" else timedelta(hours=1)
    sign = -1 if m.group("rel_dir").endswith("前") else 1
    start = (now + sign * amount * unit).replace(second=0, microsecond=0)
    return TimeValue(start, None, "minute")


def _day(m: re.Match[str], today: date, text: str) -> date | None:
    """The date the match names, or None when it names none (a bare part of day or clock)."""
    if m.group("rel_day"):
        return today + timedelta(days=RELATIVE_DAYS[m.group("rel_day")])
    if m.group("dpw_day"):
        return today + timedelta(days=DAY_OFFSET[m.group("dpw_day")])
    if m.group("weekday"):
        weekday = WEEKDAYS[m.group("weekday")]
        prefix = m.group("wd_prefix")
        if prefix is None:
            return today + timedelta(days=(weekday - today.weekday()) % 7)
        monday = today - timedelta(days=today.weekday())
        return monday + timedelta(weeks=WEEK_OFFSET[prefix], days=weekday)
    if m.group("ago_unit"):
        return _ago(m.group("ago_n"), m.group("ago_unit"), m.group("ago_dir"), today, text)
    if m.group("rm_prefix"):
        years, month0 = divmod(today.month - 1 + WEEK_OFFSET[m.group("rm_prefix")], 12)
        return _date(today.year + years, month0 + 1, _number(m.group("rm_day")), text)
    if m.group("month"):
        month = _number(m.group("month"))
        mday = _number(m.group("mday") or m.group("cn_mday"))
        year = m.group("year")
        if year:
            number = today.year + YEAR_OFFSET[year] if year in YEAR_OFFSET else int(year)
            return _date(number, month, mday, text)
        # Feb 29 may be up to eight years away; anything else is this year or next.
        for number in range(today.year, today.year + 9):
            try:
                candidate = date(number, month, mday)
            except ValueError:
                continue
            if candidate >= today:
                return candidate
        raise TimeParseError(text, "no such date")
    if m.group("dom") or m.group("cn_dom"):
        mday = _number(m.group("dom") or m.group("cn_dom"))
        for ahead in range(13):
            year, month = divmod(today.month - 1 + ahead, 12)
            try:
                candidate = date(today.year + year, month + 1, mday)
            except ValueError:
                continue
            if candidate >= today:
                return candidate
        raise TimeParseError(text, "no such day of the month")
    return None


def _ago(count: str, unit: str, direction: str, today: date, text: str) -> date:
    """The day ``count`` ``unit``s before (…前) or after (…后) today; 半 is a half month or year."""
    sign = -1 if direction.endswith("前") else 1
    if unit not in ("月", "年"):
        if count == "半":
            raise TimeParseError(text, "half a day or week is no date")
        days = _number(count) * (1 if unit in ("天", "日") else 7)
        return today + timedelta(days=sign * days)
    if count == "半" and unit == "月":
        return today + timedelta(days=sign * 15)
    months = 6 if count == "半" else _number(count) * (12 if unit == "年" else 1)
    year, month = divmod(today.year * 12 + today.month - 1 + sign * months, 12)
    return date(year, month + 1, min(today.day, monthrange(year, month + 1)[1]))


def _date(year: int, month: int, mday: int, text: str) -> date:
    try:
        return date(year, month, mday)
    except ValueError as exc:
        raise TimeParseError(text, str(exc)) from exc


def _clock_of(m: re.Match[str], n: str, text: str) -> tuple[int, int, bool]:
    """(hour as said, minute, whether minutes were said) of clock ``n``."""
    vague = m.group(f"vague{n}")
    hour = _number(vague[:-1]) if vague else _number(m.group(f"hour{n}"))
    minute, precise = 0, True
    if m.group(f"colon{n}"):
        minute = int(m.group(f"colon{n}"))
    elif m.group(f"half{n}"):
        minute = 30
    elif m.group(f"quarter{n}"):
        minute = 15 if m.group(f"quarter{n}") == "一" else 45
    elif m.group(f"minute{n}"):
        minute = _number(m.group(f"minute{n}").lstrip("零〇") or "0")
    else:
        precise = False
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise TimeParseError(text, "no such clock time")
    return hour, minute, precise


def _hour_in(hour: int, part: str | None) -> int:
    """Hours after the day's midnight for a clock hour said within ``part`` (may be ≥ 24)."""
    if part is None:
        return hour + 12 if 1 <= hour <= 6 else hour
    first, last = PART_HOURS[part]
    candidates = [hour % 12 + 12 * k for k in range(4)]
    return min(candidates, key=lambda h: max(first - h, h - last, 0))
