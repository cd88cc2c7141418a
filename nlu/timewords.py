"""The words of Chinese time expressions as regular-expression pieces: numerals, parts
of the day, days, weeks and clock times, shared by the resolver of points in time
(``nlu.timeparse``) and the finder of periods (``nlu.periods``)."""

from __future__ import annotations

import re

# -- grammar ---------------------------------------------------------------------------
# Chinese numerals are matched strictly (0-24 for hours, 1-31 for days...) so that 两三点
# or 三五天 are never misread as 23 or 35.
_D1 = "一二三四五六七八九"
_CN_HOUR = f"二十[一二三四]?|廿[一二三四]?|十[一二]?|[零〇两{_D1}]"
_CN_MINUTE = f"[零〇][{_D1}]|[二三四五]?十[{_D1}]?|[{_D1}](?=分)"
CN_DAY = f"三十一?|二十[{_D1}]?|廿[{_D1}]?|十[{_D1}]?|[{_D1}]"
CN_MONTH = f"十[一二]?|[{_D1}]"
_CN_COUNT = f"[二三四五六七八九]?十[{_D1}]?|[两{_D1}]"

WEEK_PREFIX = "上上|上|这|本|下下|下"
WEEK_WORD = "周|星期|礼拜"
# 夜间 heading a noun phrase (夜间施工许可, 夜间施工扰民问题) is no time.
COMPOUND = "(?![^，。,.!?！？；;:：\\s]{0,8}(?:问题|的反映|的投诉|的情况|标准))"
PARTS = (
    "凌晨|清晨|早晨|清早|早上|一大早|大清早|一早|上午|中午|午后|下午|傍晚|晚上|晚间|夜晚|夜里"
    "|后半夜|大半夜|深更半夜|三更半夜|半夜|深夜|白天"
    f"|夜间(?!施工许可|施工证|照明|出行|模式|门诊|急诊|噪音|噪声|标准){COMPOUND}"
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
APPROX = "左右|前后|多钟|多(?![久少])|以后|之后|后(?!天)|许|以前|之前|前(?![往来去天年面后边夕])"


def clock(n: str) -> str:
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
    rf"(?P<part>(?:{PARTS})(?!好)|[早晚](?=\d{{1,2}}[点:：时])"
    r"|(?<=[日号])[早晚夜](?![饭餐安上间里点会辈晨市宵班]))"  # 12月1日晚, 周日夜
)
_DAY = (
    r"(?P<rel_day>大前天|(?<![门面眼跟目当提])前天|昨天|昨日|今天|今日|明后天|明天|明日|大后天|后天)"
    r"|(?P<dpw_day>[今明昨])(?P<dpw_part>[早晚夜])[上里]?"
    rf"|(?P<wd_prefix>{WEEK_PREFIX})?个?(?:{WEEK_WORD})(?P<weekday>(?:[二三四五六日天1-7]|一(?!起))(?![次趟回遍]))"
    rf"|(?P<ago_n>\d{{1,3}}|{_CN_COUNT}|半)个?多?(?P<ago_unit>天|日|周|星期|礼拜|年|(?<=[个多])月)"
    r"(?P<ago_dir>以后|之后|后|以前|之前|前)"
    rf"|(?P<rm_prefix>{WEEK_PREFIX})个?月份?(?P<rm_day>\d{{1,2}}|{CN_DAY})[号日]"
    rf"|(?<!\d)(?:(?P<year>\d{{4}}|今|明|去)年)?(?P<month>\d{{1,2}}|{CN_MONTH})月"
    rf"(?:(?P<mday>\d{{1,2}})(?!\d)[日号]?|(?P<cn_mday>{CN_DAY})[日号])"
    rf"|(?<![\dA-Za-z第{_PLACE_BEFORE}])(?:(?P<dom>\d{{1,2}})[号日]|(?P<cn_dom>{CN_DAY})号)"
    rf"(?![{_NUMBER_AFTER}])"
)
_RANGE = (
    r"(?:\s?(?:到|至|-|~|～|—)\s?"
    rf"(?:次日|第[二2]天|隔天|今天|今日|当天|当日)?(?P<part2>(?:{PARTS})|[早晚](?=\d))?\s?{clock('2')})?"
)
_EVERY = (
    rf"(?P<every>(?:每个?|天天)(?:天|日|晚|早|(?:{WEEK_WORD})[一二三四五六日天]?|周末|月)?)"
    rf"(?:\s?(?:{PARTS}))?(?:\s?(?:\d{{1,2}}|{_CN_HOUR})[点:：时])?"
)
# Cheap first-character filter: every expression starts with one of these, or with the
# first digit of a number.
_STARTS = f"[每天大前昨今明后去上这本下周星礼凌清早中午傍晚夜半深白零〇两廿十{_D1}]|(?<!\\d)\\d"
# A date, a part of day, or both; (?!) fails the head when it has neither.
_HEAD = rf"(?P<head>(?P<date>{_DAY})?(?:\s?{_PART})?(?(date)|(?(part)|(?!))))"
SCAN = re.compile(
    rf"(?={_STARTS})(?<!马)(?:{_EVERY}"
    r"|(?P<rel_n>\d{1,3}|" + _CN_COUNT + r"|半)个?(?P<rel_half>半)?(?P<rel_unit>小时|钟头|分钟)"
    r"(?P<rel_dir>以后|之后|后|以前|之前|前)"
    rf"|(?P<weekend>(?P<we_prefix>{WEEK_PREFIX})?个?周末)"
    rf"|(?P<week>(?P<wk_prefix>{WEEK_PREFIX})个?(?:{WEEK_WORD}))"
    rf"(?![边围到转期全密岁年刊报末二三四五六日天1-7]|一(?![起次]))(?:之?内)?"
    # A clock time needs no guard after a date or part of day (明天一点), only alone.
    rf"|{_HEAD}?(?:(?(head)\s?|(?<![{_CLOCK_GUARD}])(?!一时|{_NOT_CLOCK})){clock('')}{_RANGE}"
    rf"(?:{APPROX})?)?)"
)

# Part of day -> (first hour, last hour), the last possibly past midnight.
PART_HOURS = {
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
DPW_PART = {"早": "早上", "晚": "晚上", "夜": "夜里"}
RELATIVE_DAYS = {
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
DAY_OFFSET = {"今": 0, "明": 1, "昨": -1}
WEEK_OFFSET = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2}
WEEKDAYS = (
    {c: i for i, c in enumerate("一二三四五六日")} | {"天": 6} | {str(i + 1): i for i in range(7)}
)
YEAR_OFFSET = {"今": 0, "明": 1, "去": -1}
