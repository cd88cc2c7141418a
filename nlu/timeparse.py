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

Periods are what a complaint says about how long, how often or in which stretch of the
calendar, not when to meet:

- durations (连续一周, 半个多月了, 近两个月, 三天了, 多年来, 快两个月了, 这半年来, 前几天,
  连续三个晚上, 一整天, 大半天了, 三天内, 十分钟), and idioms of one (一年四季, 从早到晚);
  not a count asked for (能领几个月) or 三天两头 (a frequency);
- since-expressions (自今年3月以来, 从去年10月起, 今年入夏以来, 自开业以来, 从上周三起,
  上周开始);
- recurrences with their hours (每晚10点至凌晨2点, 每天晚上11点以后, 每周六, 每周二和周五,
  天天, 每隔两天, 工作日下午, 每年夏季) and weekdays listed or spanned without 上/下/这
  (周一到周五, 周六周日, 周二、四: opening days or a routine);
- stretches of the calendar: a year, a month or part of one, a span of months, a season
  or a holiday (今年, 去年12月, 这个月底, 下个月初, 10月中旬, 5月到10月, 去年夏天, 年初, 春节,
  初八), unless a day follows (今年3月5日 and 下个月3号 are dates). Not in a compound
  (冬季取暖问题). A day word or a few days with a part of the day and a clock are one
  period (第二天上午, 当天晚上十点, 这几天晚上, 前两天夜里, 天天夜里);
- since an event (自开工以来, 开工以来, 自提交申请以来, 自动工之日起, 从开工到现在), and
  以后/之后/后 after a date, a holiday or a season (12月1日以后, 下周三以后, 春节后,
  开春以后); after an event (报修以后, 出院以后) there is no time;
- 每到/每逢 before a calendar word or a part of the day (每到周末, 每逢周末及节假日,
  每到傍晚; not 每到下雨天), and 每年 with months (每年5月至6月, 每年7-8月).
- 期间, 前后, 左右, 假期 and the day before or after go with a holiday or season (节假日期间,
  春节期间, 元旦前后, 国庆假期, 除夕前一天, 元旦至春节期间, 腊月二十三以后); 前 as a deadline
  does not (春节前 is 春节).
- Spans of days and of weekdays, even after 上/下/这 (11月20日至25日, 从11月10日到11月30日,
  下周一至周三), and weekdays with their hours (周一至周五上午9:00-12:00).
- Since a day with its part of the day and clock, or from a day to come (从今天早上起,
  自11月20日晚起, 从今天上午9点开始, 明年1月1日起, 自下个月起, 2026年上半年以来,
  今年第三季度起, 从国庆节后).
- Recurrences with weekdays said in a row (每周一三五), quarters (每季度), 年底 (每年年底),
  早8点/晚10点 (每日早8点至晚10点), and a clock with 前 (每天早上6点前); 法定节假日.
- Vague durations (好些年, 小半年, 十天半个月, 一年半载, 两年有余) and a vague count ahead
  (十来天后, 个把月后). Not durations: 小区四周 (all around), 百年老店, 一天比一天,
  任意一天, 近半年 in 近半年多次.
- A count of times after a week word is a frequency: 每周一次 is 每周, not Monday, and
  一周三次 is 一周. A vague count (几天, 几个月) is a period when it describes ([几天了],
  [几年来], [几个月]都不…, [几天前]) and nothing when it is asked for (几天能办好).

``find_periods`` finds them; they are kept as a description, never resolved to a point
or slot, and ``find_times`` leaves out any time inside one (凌晨2点 in 每晚10点至凌晨2点
is not an appointment). A count before 前/后 (三天后, 两小时前, 半个月前) is a point in
time, not a period.
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


# -- grammar ---------------------------------------------------------------------------
# Chinese numerals are matched strictly (0-24 for hours, 1-31 for days...) so that 两三点
# or 三五天 are never misread as 23 or 35.
_D1 = "一二三四五六七八九"
_CN_HOUR = f"二十[一二三四]?|廿[一二三四]?|十[一二]?|[零〇两{_D1}]"
_CN_MINUTE = f"[零〇][{_D1}]|[二三四五]?十[{_D1}]?|[{_D1}](?=分)"
_CN_DAY = f"三十一?|二十[{_D1}]?|廿[{_D1}]?|十[{_D1}]?|[{_D1}]"
_CN_MONTH = f"十[一二]?|[{_D1}]"
_CN_COUNT = f"[二三四五六七八九]?十[{_D1}]?|[两{_D1}]"

_WEEK_PREFIX = "上上|上|这|本|下下|下"
_WEEK_WORD = "周|星期|礼拜"
# 夜间 heading a noun phrase (夜间施工许可, 夜间施工扰民问题) is no time.
_COMPOUND = "(?![^，。,.!?！？；;:：\\s]{0,8}(?:问题|的反映|的投诉|的情况|标准))"
_PARTS = (
    "凌晨|清晨|早晨|清早|早上|一大早|大清早|一早|上午|中午|午后|下午|傍晚|晚上|晚间|夜晚|夜里"
    "|后半夜|大半夜|深更半夜|三更半夜|半夜|深夜|白天"
    f"|夜间(?!施工许可|施工证|照明|出行|模式|门诊|急诊|噪音|噪声|标准){_COMPOUND}"
)
# Chars after which a bare N点 is "a bit" or an ordinal, not a clock (快一点, 第3点, 有两点).
_CLOCK_GUARD = f"快慢早晚小大多少好轻近远高低有第这那些差几上下\\d.:：/A-Za-z零〇两十{_D1}"
# Chars around N号 that make it a house or line number, not a day of the month.
_PLACE_BEFORE = "区院楼路街巷道村苑园场厦寓栋座弄里府庭湾城期元层室幢门号牌编铺位口"
_NUMBER_AFTER = "楼院线门室栋单房铺店窗码机床车位桌柜箱口厅馆区街路巷座地井岗摊泊公\\d"


# A bare N点 that is a point of a list or "a bit" (一点小事, 三点意见, 两点要求).
_NOT_CLOCK = "(?:\\d{1,2}|[一两二三四五六七八九十])点(?:[小意建要看问想事东原理疑好]|儿)"
# Two neighbouring hours said together (两三点, 八九点, 十一二点): about the first one.
_VAGUE_HOURS = "一两|一二|两三|二三|三四|四五|五六|六七|七八|八九|九十|十一二"
# What may follow a clock time inside its expression: 10点左右, 12点多, 晚上10点以后,
# 早上6点前 (not 前往, 前来: 10点前来 is "come at ten").
_APPROX = "左右|前后|多钟|多(?![久少])|以后|之后|后(?!天)|许|以前|之前|前(?![往来去天年面后边夕])"


def _clock(n: str) -> str:
    """A clock time whose groups end with ``n`` (a regex cannot reuse a group name)."""
    minutes = (
        rf"(?:(?P<half{n}>半)|(?P<quarter{n}>[一三])刻"
        rf"|(?P<minute{n}>\d{{1,2}}(?!\d)|{_CN_MINUTE})分?|整)"
    )
    return (
        rf"(?:(?P<vague{n}>{_VAGUE_HOURS})(?=[点时])|(?P<hour{n}>\d{{1,2}}|{_CN_HOUR}))"
        rf"(?:[:：](?P<colon{n}>\d{{2}})(?!\d)|(?:点(?!钟?方向)钟?|时)"
        rf"(?:{minutes}|(?<![一两][点时])(?![儿些点])|(?![儿都也些点])))"
    )


_PART = (
    rf"(?P<part>(?:{_PARTS})(?!好)|[早晚](?=\d{{1,2}}[点:：时])"
    r"|(?<=[日号])[早晚夜](?![饭餐安上间里点会辈晨市宵班]))"  # 12月1日晚, 周日夜
)
_DAY = (
    r"(?P<rel_day>大前天|(?<![门面眼跟目当提])前天|昨天|昨日|今天|今日|明后天|明天|明日|大后天|后天)"
    r"|(?P<dpw_day>[今明昨])(?P<dpw_part>[早晚夜])[上里]?"
    rf"|(?P<wd_prefix>{_WEEK_PREFIX})?个?(?:{_WEEK_WORD})(?P<weekday>(?:[二三四五六日天1-7]|一(?!起))(?![次趟回遍]))"
    rf"|(?P<ago_n>\d{{1,3}}|{_CN_COUNT}|半)个?多?(?P<ago_unit>天|日|周|星期|礼拜|年|(?<=[个多])月)"
    r"(?P<ago_dir>以后|之后|后|以前|之前|前)"
    rf"|(?P<rm_prefix>{_WEEK_PREFIX})个?月份?(?P<rm_day>\d{{1,2}}|{_CN_DAY})[号日]"
    rf"|(?<!\d)(?:(?P<year>\d{{4}}|今|明|去)年)?(?P<month>\d{{1,2}}|{_CN_MONTH})月"
    rf"(?:(?P<mday>\d{{1,2}})(?!\d)[日号]?|(?P<cn_mday>{_CN_DAY})[日号])"
    rf"|(?<![\dA-Za-z第{_PLACE_BEFORE}])(?:(?P<dom>\d{{1,2}})[号日]|(?P<cn_dom>{_CN_DAY})号)"
    rf"(?![{_NUMBER_AFTER}])"
)
_RANGE = (
    r"(?:\s?(?:到|至|-|~|～|—)\s?"
    rf"(?:次日|第[二2]天|隔天|今天|今日|当天|当日)?(?P<part2>(?:{_PARTS})|[早晚](?=\d))?\s?{_clock('2')})?"
)
_EVERY = (
    rf"(?P<every>(?:每个?|天天)(?:天|日|晚|早|(?:{_WEEK_WORD})[一二三四五六日天]?|周末|月)?)"
    rf"(?:\s?(?:{_PARTS}))?(?:\s?(?:\d{{1,2}}|{_CN_HOUR})[点:：时])?"
)
# Cheap first-character filter: every expression starts with one of these, or with the
# first digit of a number.
_STARTS = f"[每天大前昨今明后去上这本下周星礼凌清早中午傍晚夜半深白零〇两廿十{_D1}]|(?<!\\d)\\d"
# A date, a part of day, or both; (?!) fails the head when it has neither.
_HEAD = rf"(?P<head>(?P<date>{_DAY})?(?:\s?{_PART})?(?(date)|(?(part)|(?!))))"
_SCAN = re.compile(
    rf"(?={_STARTS})(?<!马)(?:{_EVERY}"
    r"|(?P<rel_n>\d{1,3}|" + _CN_COUNT + r"|半)个?(?P<rel_half>半)?(?P<rel_unit>小时|钟头|分钟)"
    r"(?P<rel_dir>以后|之后|后|以前|之前|前)"
    rf"|(?P<weekend>(?P<we_prefix>{_WEEK_PREFIX})?个?周末)"
    rf"|(?P<week>(?P<wk_prefix>{_WEEK_PREFIX})个?(?:{_WEEK_WORD}))"
    rf"(?![边围到转期全密岁年刊报末二三四五六日天1-7]|一(?![起次]))(?:之?内)?"
    # A clock time needs no guard after a date or part of day (明天一点), only alone.
    rf"|{_HEAD}?(?:(?(head)\s?|(?<![{_CLOCK_GUARD}])(?!一时|{_NOT_CLOCK})){_clock('')}{_RANGE}"
    rf"(?:{_APPROX})?)?)"
)

# Part of day -> (first hour, last hour), the last possibly past midnight.
_PART_HOURS = {
    "凌晨": (0, 6),
    "清晨": (6, 9),
    "早晨": (6, 9),
    "早上": (6, 9),
    "早": (6, 9),
    "上午": (9, 12),
    "中午": (12, 13),
    "下午": (13, 18),
    "傍晚": (17, 19),
    "晚上": (19, 23),
    "晚间": (19, 23),
    "晚": (19, 23),
    "夜": (22, 26),
    "夜里": (22, 26),
    "夜间": (22, 26),
    "半夜": (22, 26),
    "深夜": (22, 26),
    "深更半夜": (22, 26),
    "三更半夜": (22, 26),
    "清早": (6, 9),
    "一早": (6, 9),
    "午后": (13, 18),
    "大半夜": (22, 26),
    "后半夜": (24, 29),
    "一大早": (6, 9),
    "大清早": (6, 9),
    "夜晚": (19, 23),
    "白天": (8, 18),
}
_DPW_PART = {"早": "早上", "晚": "晚上", "夜": "夜里"}
_RELATIVE_DAYS = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "今天": 0,
    "今日": 0,
    "明天": 1,
    "明后天": 1,
    "明日": 1,
    "后天": 2,
    "大后天": 3,
}
_DAY_OFFSET = {"今": 0, "明": 1, "昨": -1}
_WEEK_OFFSET = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2}
_WEEKDAYS = (
    {c: i for i, c in enumerate("一二三四五六日")} | {"天": 6} | {str(i + 1): i for i in range(7)}
)
_YEAR_OFFSET = {"今": 0, "明": 1, "去": -1}


# Periods: durations, since-expressions, recurrences and stretches of the calendar (see
# the module docstring).
_WEEKDAY_ITEM = "[一二三四五六日天]"
# A count of times after a week word (每周一次, 一周三次, 每周一至两次): a frequency, not
# a weekday.
_TIMES = "(?:[至到~\\-—]?[一两二三四五六七八九十\\d]{0,2})?[次趟回遍]"
_COUNT = (
    r"(?:\d{1,3}|[零〇一二两三四五六七八九十百]{1,4}|[数几](?:[十百]|10|100)|几|十几|二十几|好几"
    r"|数|半)"
)
_UNIT = (
    rf"(?:个?[多来余]?半?(?:小时|钟头)|[多来余]?分钟|[多来余]?天(?!两头|比)|[多来余]?日(?![期子常早晚夜上中下凌傍白])"
    rf"|个?[多来余]?(?:星期|礼拜)|周(?!{_WEEKDAY_ITEM}(?!{_TIMES})|[末岁边围年])|个[多来余]?半?月|(?<=数)月"
    r"|[多来余]?年(?!级|纪|轻)|个?工作日)"
)
# Nights, mornings and weekends counted (连续三个晚上, 两晚, 一下午): never 半 (半夜 is a time).
_NIGHTS = (
    r"(?:\d{1,3}|[一两二三四五六七八九十]{1,3}|几|好几|数)个?"
    r"(?:晚上|夜晚|通宵|晚(?!饭|餐|点|会|班|辈)|夜(?!班|宵|市)|宿|周末|白天|上午|下午|早上)"
)
# Before a count: 连续/整整/将近 …, and 这/前 as in 这半年来, 前几天.
_DURATION_PREFIX = (
    r"(?:连续|整整|足足|将近|接近|最近|近|快要?|大约|大概|差不多|至少|长达|超过|逾|不到|(?<!预)约"
    r"|这|(?<![提之以目眼当门面跟往向])前)"
)
_DURATION = (
    rf"(?:{_DURATION_PREFIX})?(?<![\d第每月周期拜号初零〇一二两三四五六七八九十百比意何哪])(?<!不如)"
    # 百年老店 and 小区四周 ("all around") are no durations.
    r"(?!百年|四周(?:的|都|是|有|环境|围))(?<![区楼院园场屋房墙村路]四)"
    rf"(?:一年半载|(?:十|10)天半个?月|{_COUNT}{_UNIT}(?:多(?!次)|余|半(?![夜天年]))?|{_NIGHTS}"
    r"|多年|半年多?(?!次)|[大小]半(?:天|年|个月|辈子)"
    r"|[前这近]些(?:天|日子|年)|好些(?:天|日子|年)|成天|成宿|个把(?:月|星期|礼拜|小时|钟头)|连日|多日|一?整(?:天|夜|晚|宿|日)|一?整个(?:上午|下午|晚上|白天|夜里|月|星期|礼拜"
    r"|假期|暑假|寒假|[春夏秋冬](?:天|季))|通宵)"
    r"(?:有余)?(?:了|来|以来|之久|之内|以内|内|以上|(?!\s?(?:[前后内]|以[前后内]|之[前后内]|[号层岁]|楼(?![道下上里顶])|不如)))"
)
# A vague count ago or ahead (几天前, 十几年前, 好几个月之前, 十来天后): no count to place
# it, so a period.
_VAGUE_AGO = (
    r"(?:(?:好|十|二十)?几(?:十)?|(?:\d{1,2}|[一二三四五六七八九]?十)来|个把)个?"
    r"(?:天|日|周|星期|礼拜|月|年)(?:前|之前|以前|后|之后|以后)"
)
_IDIOM = (
    "一年四季|一年到头|一天到晚|(?:[一两三几\\d])天(?:[一两三几\\d])夜|从早到晚|从早到黑|没日没夜|日日夜夜|白天黑夜"
    "|(?<![周期拜天今明昨节生号\\d一二三四五六七八九十])日夜(?!间)|昼夜"
)
_CN_UP_TO_31 = "[一二三四五六七八九十]{1,3}"
_MONTH_DAY = rf"(?:\d{{1,2}}|{_CN_UP_TO_31})月份?(?:(?:\d{{1,2}}|{_CN_UP_TO_31})[日号])?"
_SINCE_WORD = (
    rf"(?:今年|去年|前年|明年|\d{{4}}年|本月|这个?月|上上个?月|上个?月|下个?月|上上周|上周|上星期"
    rf"|上个?礼拜|本周|这周|下周|下星期|上半年|下半年|第[一二三四1-4]季度"
    rf"|年初|年底|月初|月底|入夏|入冬|入秋|开春|春节|国庆节?|夏天|冬天|春天|秋天|开业|入住|搬来"
    rf"|大前天|前天|昨天|昨晚|今天|今日|今早|今晚|当天|明天|明日|后天"
    rf"|(?:上|这|本|下)?(?:{_WEEK_WORD})[一二三四五六日天]|{_MONTH_DAY}"
    rf"|(?:\d{{1,2}}|{_CN_UP_TO_31})[号日](?!\d))"
)
# Dates, holidays and seasons before 以后/之后 ([12月1日以后], [下周三以后], [元旦以后]):
# a since-expression. After an event (报修以后, 出院以后) it is no time.
_AFTER_WORD = (
    rf"(?:今年|去年|前年|明年|\d{{4}}年|本月|这个?月|上上个?月|上个?月|下个?月|上上周|上周|下周|上星期"
    rf"|下星期|上个?礼拜|下个?礼拜|本周|这周|年初|年底|月初|月底|月中|入夏|入冬|入秋|开春|春节|过年"
    rf"|元旦|五一|国庆节?|中秋节?|端午节?|清明节?|夏天|冬天|春天|秋天|大前天|前天|昨天|昨晚|今天|明天"
    rf"|(?:正月|腊月)(?:初|十|二十|廿)[一二三四五六七八九十]?"
    rf"|后天|(?:上|这|本|下)?(?:{_WEEK_WORD})[一二三四五六日天](?!{_TIMES})|{_MONTH_DAY}"
    rf"|(?:\d{{1,2}}|{_CN_UP_TO_31})[号日](?!\d))"
)
_AFTER = (
    rf"(?:自|从)?(?:{_AFTER_WORD}){{1,3}}(?:上旬|中旬|下旬|初|底|中)?(?:以后|之后)"
    rf"|(?:自|从)?(?:今年|去年|明年|\d{{4}}年)?(?:{_MONTH_DAY}|春节|过年|元旦|五一|国庆节?|中秋节?|端午节?"
    rf"|清明节?)(?:上旬|中旬|下旬|初|底)?后(?![天年来])"
)
# Since an event: 自/从…以来 and …之日起 ([自开工以来], [自提交申请以来], [自动工之日起]),
# and …以来 after an event word ([开工以来], [今年9月开工以来]).
_EVENT = (
    "开工|施工|动工|开业|开张|营业|入住|搬来|搬进来|搬过来|开学|装修|建成|通车|投用|投入使用"
    "|供暖|停暖|停水|停电|交房|收房|启用|开放"
)
_SINCE_EVENT = (
    rf"(?:自从?|从)(?!己|来水|来不|来没|行车|然|家)[^\s，。,.!?！？；;：:、（）()]{{1,10}}?"
    rf"(?:以来|之日起|那天起)"
    rf"|(?:{_SINCE_WORD}){{0,2}}(?:{_EVENT})(?:以来|之日起)"
    # 从去年到现在, 从开工到现在: a since-expression with its end said
    rf"|(?:自从?|从)(?:{_SINCE_WORD}|{_EVENT}){{1,3}}(?:上旬|中旬|下旬|初|底|中)?到(?:现在|今天|如今)"
)


# A day may come with a part of the day and a clock ([从今天早上起], [自11月20日晚起],
# [从今天上午9点开始]).
def _since_part(n: str) -> str:
    """An optional part of the day and clock after a since-word; groups end with ``n``."""
    return rf"(?:\s?(?:{_PARTS})|(?<=[日号天])[早晚夜](?![饭餐上间里]))?(?:\s?{_clock(n)})?"


_SINCE = (
    rf"(?:(?:自|从|打)(?:{_SINCE_WORD}){{1,3}}(?:上旬|中旬|下旬|初|底|中)?"
    + _since_part("s")
    + r"(?:以来|起|开始|至今)"
    rf"|(?:{_SINCE_WORD}){{1,3}}(?:上旬|中旬|下旬|初|底|中)?"
    + _since_part("t")
    + r"(?:以来|起(?![来去走吃玩干做办])|开始|至今))"
)
# Stretches of the calendar: a year, a month, part of one, a season or a holiday.
_YEAR_WORD = r"(?:今年|去年|前年|明年|\d{4}年)"
_MONTH_WORD = rf"(?:(?:{_WEEK_PREFIX})个?月|当月)"
_MONTH_NUM = r"(?<![\d个])(?:\d{1,2}|十[一二]?|[一二三四五六七八九])月份?"
_NO_DAY = rf"(?!\s?(?:\d|{_CN_DAY}[号日]))"
_SEASON = f"(?:[春夏秋冬]天|[春夏秋冬]季(?!取暖|供暖|采暖){_COMPOUND}|雨季|汛期)"
_HOLIDAY = (
    "春节|过年|元旦|除夕|国庆节?|中秋节?|端午节?|清明节?|元宵节|劳动节|寒假|暑假|暑期"
    "|(?:正月|腊月)?初[一二三四五六七八九十](?![中级学年班次步])"
    "|(?:正月|腊月)(?:二十|廿)[一二三四五六七八九]?|(?:正月|腊月)十[一二三四五六七八九]?"
)
_MONTH_PART = "(?:上旬|中旬|下旬|初|底|末)"
# A month or a span of months (5月到10月, 今年4月至9月).
_MONTH_RANGE = (
    r"(?<![\d个])(?:\d{1,2}|十[一二]?|[一二三四五六七八九])\s?(?:到|至|-|~|～|—)\s?"
    rf"(?:\d{{1,2}}|十[一二]?|[一二三四五六七八九])月份?{_NO_DAY}"
    rf"|{_MONTH_NUM}{_MONTH_PART}?{_NO_DAY}"
    rf"(?:\s?(?:到|至|-|~|～|—)\s?(?:{_YEAR_WORD})?{_MONTH_NUM}{_MONTH_PART}?{_NO_DAY})?"
)
_EVERY_PERIOD = (
    rf"(?:每隔\s?{_COUNT}{_UNIT}"
    rf"|(?:(?:每个?|(?<![今明昨前当每聊白整半几])(?<![^前]后)天天)(?:天|日|晚(?![上间])|早(?![上晨])"
    rf"|夜(?![里间晚])|周末"
    rf"|(?:{_WEEK_WORD})(?:{_WEEKDAY_ITEM}(?!{_TIMES}))?"
    rf"(?:(?:\s?[、和及与至到]\s?(?:{_WEEK_WORD})?|(?:{_WEEK_WORD})){_WEEKDAY_ITEM}"
    rf"|(?<=[一二三四五])[二三四五六](?!{_TIMES}))*"
    rf"|个?月|年|个?季度)?|(?:每个?)?(?:法定)?(?:工作日|节假日|双休日|休息日)(?:期间)?)"
    rf"(?:[春夏秋冬](?:天|季)|[年月]?(?:初|底|末)|上旬|中旬|下旬|(?:\d{{1,2}}|{_CN_DAY})[号日]"
    rf"|(?<=年)的?(?:{_MONTH_RANGE}|{_HOLIDAY}|雨季|汛期))?"
    rf"(?:\s?(?:{_PARTS}|[早晚](?=\d)))?"
    rf"(?:\s?{_clock('p')}(?:\s?(?:到|至|-|~|～|—)\s?(?:次日|第[二2]天|隔天)?"
    rf"(?:(?:{_PARTS}|[早晚](?=\d))?\s?{_clock('q')}|(?:{_PARTS})))?"  # 每晚10点至次日凌晨
    rf"(?:{_APPROX})?)?)"
)
# 每到/每逢 before a weekday, the weekend, a season, a holiday, a month or a part of the
# day ([每到周末], [每逢周六周日], [每到冬天], [每到傍晚]); not before an event (每到下雨天).
_EVERY_TO_ITEM = (
    rf"(?:{_WEEK_WORD}){_WEEKDAY_ITEM}(?!{_TIMES})"
    rf"(?:(?:\s?[、和及与至到]\s?(?:{_WEEK_WORD})?|(?:{_WEEK_WORD})){_WEEKDAY_ITEM})*"
    rf"|周末|(?:法定)?节假日|假期|双休日|休息日|工作日|{_SEASON}|{_HOLIDAY}|[年月][初底末]|{_MONTH_RANGE}"
)
_EVERY_TO = (
    rf"(?:每到|每逢)\s?(?:(?:{_EVERY_TO_ITEM})(?:\s?[、和及与或]\s?(?:{_EVERY_TO_ITEM}))*"
    rf"|(?=(?:{_PARTS})))"
    rf"(?:\s?(?:{_PARTS}))?(?:\s?{_clock('r')}(?:{_APPROX})?)?"
)
# A few days with a part of the day ([这几天晚上], [前两天夜里], [最近几天早上]).
_DAYS_PART = (
    rf"(?:(?:这|前|最近|近|连续|接连|头)(?:几|一|两|2|3|三|好几)天|头天)\s?(?:{_PARTS})"
    rf"(?:\s?{_clock('d')}(?:{_APPROX})?)?"
)
# Weekdays listed or spanned without 上/下/这 (周一到周五, 周六周日, 周二、四, 周六日):
# opening days or a routine, not one day.
_WEEKDAY_LIST = (
    rf"(?<![上下这本])(?:{_WEEK_WORD}){_WEEKDAY_ITEM}(?!{_TIMES})"
    rf"(?:\s?(?:到|至|-|~|～|—)\s?(?:{_WEEK_WORD})?{_WEEKDAY_ITEM}"
    rf"|(?:\s?[、和及与]\s?(?:{_WEEK_WORD})?{_WEEKDAY_ITEM}|(?:{_WEEK_WORD}){_WEEKDAY_ITEM}"
    rf"|(?<=六)日)+)(?:\s?(?:{_PARTS}))?"
    rf"(?:\s?{_clock('w')}(?:\s?(?:到|至|-|~|～|—)\s?(?:(?:{_PARTS})\s?)?{_clock('x')})?)?"
)
# A span of days (11月20日至25日, 从11月10日到11月30日) or of weekdays (下周一至周三).
_DATE = rf"(?:\d{{1,2}}|{_CN_MONTH})月(?:\d{{1,2}}|{_CN_DAY})[日号]"
_DATE_RANGE = (
    rf"(?:从|自)?(?:{_YEAR_WORD})?{_DATE}\s?(?:到|至|-|~|～|—)\s?(?:{_YEAR_WORD})?"
    rf"(?:{_DATE}|(?:\d{{1,2}}|{_CN_DAY})[日号])(?!\d)"
    rf"|(?:{_WEEK_PREFIX})(?:{_WEEK_WORD}){_WEEKDAY_ITEM}\s?(?:到|至|-|~|～|—)\s?"
    rf"(?:{_WEEK_WORD})?{_WEEKDAY_ITEM}(?:\s?(?:{_PARTS}))?"
)
_HOLIDAYS = rf"(?:{_HOLIDAY})(?:\s?(?:到|至|—)\s?(?:{_HOLIDAY}))?(?:假期|小?长假)?"
_CALENDAR = (
    rf"{_DATE_RANGE}"
    rf"|(?:{_YEAR_WORD})?(?:{_MONTH_WORD}{_MONTH_PART}?{_NO_DAY}|{_MONTH_RANGE})"
    rf"|(?:{_YEAR_WORD}|这个?|那个?|整个)?(?:年初|年底|年末|上半年|下半年|{_SEASON}|{_HOLIDAYS})"
    r"(?:期间|前后|左右|[前后][一两三1-3]天)?"
    rf"|{_YEAR_WORD}(?:[初底末](?!\d))?(?!\s?(?:\d{{1,2}}|[一二三四五六七八九十]{{1,2}})月)"
    r"|(?:(?<![点时\d分半钟][到至~～—-])(?:第[二三23]天|次日|隔天)|当天|当日|翌日)"
    rf"(?:\s?(?:{_PARTS}))?(?:\s?{_clock('c')}(?:{_APPROX})?)?|当晚"
    r"|月初|月底|月末"
)
# Cheap first-character filter, as for times: every period starts with one of these.
_PERIOD_STARTS = (
    "[一二三四五六七八九十百零〇两几好数半多大从没日自打今去前明本这上下当年月入开春夏秋冬国搬昨"
    "周星礼每天工节双休连整足将接最近快差至长超不约那通过元除中端清劳寒暑正腊初个第次隔逾白昼翌"
    "施动营装建投供停交收启雨汛五头成法小好后]|\\d"
)
_PERIOD = re.compile(
    rf"(?={_PERIOD_STARTS})"
    rf"(?:{_IDIOM}|{_SINCE}|{_SINCE_EVENT}|{_AFTER}|{_EVERY_TO}|{_EVERY_PERIOD}|{_WEEKDAY_LIST}"
    rf"|{_DAYS_PART}|{_VAGUE_AGO}|{_DURATION}|{_CALENDAR})"
)
# A recurrence word with nothing after it is no period (每个人, 每隔多久); nor is a count
# asked for (能领几个月, 几天能办好: a period starting with 几, unless it closes with 了/来
# or 前, or an adverb follows it: [几天了], [几年来], [几个月]都不…, [几天]就修好了).
_NOT_PERIODS = frozenset({"每", "每个", "每隔"})
_VAGUE_TELLS = ("了", "来", "前")
_VAGUE_NEXT = frozenset("都也没未不就还")


@dataclass(frozen=True, slots=True)
class Period:
    """A duration, since-expression or recurrence in a text: a description, not a slot."""

    start: int
    end: int
    text: str


# -- public API ------------------------------------------------------------------------
def find_periods(text: str) -> list[Period]:
    """Every period (duration, since-expression, recurrence) in ``text``, left to right."""
    return [
        Period(m.start(), m.end(), m.group())
        for m in _PERIOD.finditer(text)
        if m.group() and m.group() not in _NOT_PERIODS and _told(m, text)
    ]


def _told(m: re.Match[str], text: str) -> bool:
    """Whether a period is a description, not a count asked for (几天能办好)."""
    found = m.group()
    if not found.startswith("几") or found.startswith(("几十", "几10", "几百", "几100")):
        return True
    return found.endswith(_VAGUE_TELLS) or text[m.end() : m.end() + 1] in _VAGUE_NEXT


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
    for match in _SCAN.finditer(text):
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


def resolve(expression: str, now: datetime | None = None) -> TimeValue:
    """Resolve ``expression``, which must be one whole time expression, relative to ``now``.

    Raises ``TimeParseError`` when it is not one (or names no real date).
    """
    match = _SCAN.fullmatch(expression.strip())
    if match is None or not match.group():
        raise TimeParseError(expression, "not a time expression")
    return _resolve(match, _local(now))


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


def _resolve(m: re.Match[str], now: datetime) -> TimeValue:
    text = m.group()
    if m.group("every"):
        raise TimeParseError(text, "a recurring time")
    if m.group("rel_unit"):
        return _relative(m, now)
    today = now.date()
    if m.group("weekend") is not None:
        monday = today - timedelta(days=today.weekday())
        monday += timedelta(weeks=_WEEK_OFFSET.get(m.group("we_prefix") or "", 0))
        start = _midnight(monday + timedelta(days=5))
        return TimeValue(start, start + timedelta(days=2), "day")
    if m.group("week") is not None:
        monday = today - timedelta(days=today.weekday())
        start = _midnight(monday + timedelta(weeks=_WEEK_OFFSET[m.group("wk_prefix")]))
        return TimeValue(start, start + timedelta(weeks=1), "week")

    day = _day(m, today, text)
    part = m.group("part")
    if m.group("dpw_part"):
        part = _DPW_PART[m.group("dpw_part")]
    base = _midnight(day if day is not None else today)
    if m.group("hour") is None and m.group("vague") is None:
        if part is None:
            if day is None:
                raise TimeParseError(text, "no date or time")
            return TimeValue(base, None, "day")
        first, last = _PART_HOURS[part]
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
        return today + timedelta(days=_RELATIVE_DAYS[m.group("rel_day")])
    if m.group("dpw_day"):
        return today + timedelta(days=_DAY_OFFSET[m.group("dpw_day")])
    if m.group("weekday"):
        weekday = _WEEKDAYS[m.group("weekday")]
        prefix = m.group("wd_prefix")
        if prefix is None:
            return today + timedelta(days=(weekday - today.weekday()) % 7)
        monday = today - timedelta(days=today.weekday())
        return monday + timedelta(weeks=_WEEK_OFFSET[prefix], days=weekday)
    if m.group("ago_unit"):
        return _ago(m.group("ago_n"), m.group("ago_unit"), m.group("ago_dir"), today, text)
    if m.group("rm_prefix"):
        years, month0 = divmod(today.month - 1 + _WEEK_OFFSET[m.group("rm_prefix")], 12)
        return _date(today.year + years, month0 + 1, _number(m.group("rm_day")), text)
    if m.group("month"):
        month = _number(m.group("month"))
        mday = _number(m.group("mday") or m.group("cn_mday"))
        year = m.group("year")
        if year:
            number = today.year + _YEAR_OFFSET[year] if year in _YEAR_OFFSET else int(year)
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
    first, last = _PART_HOURS[part]
    candidates = [hour % 12 + 12 * k for k in range(4)]
    return min(candidates, key=lambda h: max(first - h, h - last, 0))
