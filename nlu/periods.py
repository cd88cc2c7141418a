"""Periods: durations, since-expressions, recurrences and stretches of the calendar.

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
from dataclasses import dataclass

from nlu.timewords import (
    APPROX,
    CN_DAY,
    CN_MONTH,
    COMPOUND,
    PARTS,
    WEEK_PREFIX,
    WEEK_WORD,
    clock,
)

# The grammar of periods (see the module docstring).
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
    rf"|(?:上|这|本|下)?(?:{WEEK_WORD})[一二三四五六日天]|{_MONTH_DAY}"
    rf"|(?:\d{{1,2}}|{_CN_UP_TO_31})[号日](?!\d))"
)
# Dates, holidays and seasons before 以后/之后 ([12月1日以后], [下周三以后], [元旦以后]):
# a since-expression. After an event (报修以后, 出院以后) it is no time.
_AFTER_WORD = (
    rf"(?:今年|去年|前年|明年|\d{{4}}年|本月|这个?月|上上个?月|上个?月|下个?月|上上周|上周|下周|上星期"
    rf"|下星期|上个?礼拜|下个?礼拜|本周|这周|年初|年底|月初|月底|月中|入夏|入冬|入秋|开春|春节|过年"
    rf"|元旦|五一|国庆节?|中秋节?|端午节?|清明节?|夏天|冬天|春天|秋天|大前天|前天|昨天|昨晚|今天|明天"
    rf"|(?:正月|腊月)(?:初|十|二十|廿)[一二三四五六七八九十]?"
    rf"|后天|(?:上|这|本|下)?(?:{WEEK_WORD})[一二三四五六日天](?!{_TIMES})|{_MONTH_DAY}"
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
    return rf"(?:\s?(?:{PARTS})|(?<=[日号天])[早晚夜](?![饭餐上间里]))?(?:\s?{clock(n)})?"


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
_MONTH_WORD = rf"(?:(?:{WEEK_PREFIX})个?月|当月)"
_MONTH_NUM = r"(?<![\d个])(?:\d{1,2}|十[一二]?|[一二三四五六七八九])月份?"
_NO_DAY = rf"(?!\s?(?:\d|{CN_DAY}[号日]))"
_SEASON = f"(?:[春夏秋冬]天|[春夏秋冬]季(?!取暖|供暖|采暖){COMPOUND}|雨季|汛期)"
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
    rf"|(?:{WEEK_WORD})(?:{_WEEKDAY_ITEM}(?!{_TIMES}))?"
    rf"(?:(?:\s?[、和及与至到]\s?(?:{WEEK_WORD})?|(?:{WEEK_WORD})){_WEEKDAY_ITEM}"
    rf"|(?<=[一二三四五])[二三四五六](?!{_TIMES}))*"
    rf"|个?月|年|个?季度)?|(?:每个?)?(?:法定)?(?:工作日|节假日|双休日|休息日)(?:期间)?)"
    rf"(?:[春夏秋冬](?:天|季)|[年月]?(?:初|底|末)|上旬|中旬|下旬|(?:\d{{1,2}}|{CN_DAY})[号日]"
    rf"|(?<=年)的?(?:{_MONTH_RANGE}|{_HOLIDAY}|雨季|汛期))?"
    rf"(?:\s?(?:{PARTS}|[早晚](?=\d)))?"
    rf"(?:\s?{clock('p')}(?:\s?(?:到|至|-|~|～|—)\s?(?:次日|第[二2]天|隔天)?"
    rf"(?:(?:{PARTS}|[早晚](?=\d))?\s?{clock('q')}|(?:{PARTS})))?"  # 每晚10点至次日凌晨
    rf"(?:{APPROX})?)?)"
)
# 每到/每逢 before a weekday, the weekend, a season, a holiday, a month or a part of the
# day ([每到周末], [每逢周六周日], [每到冬天], [每到傍晚]); not before an event (每到下雨天).
_EVERY_TO_ITEM = (
    rf"(?:{WEEK_WORD}){_WEEKDAY_ITEM}(?!{_TIMES})"
    rf"(?:(?:\s?[、和及与至到]\s?(?:{WEEK_WORD})?|(?:{WEEK_WORD})){_WEEKDAY_ITEM})*"
    rf"|周末|(?:法定)?节假日|假期|双休日|休息日|工作日|{_SEASON}|{_HOLIDAY}|[年月][初底末]|{_MONTH_RANGE}"
)
_EVERY_TO = (
    rf"(?:每到|每逢)\s?(?:(?:{_EVERY_TO_ITEM})(?:\s?[、和及与或]\s?(?:{_EVERY_TO_ITEM}))*"
    rf"|(?=(?:{PARTS})))"
    rf"(?:\s?(?:{PARTS}))?(?:\s?{clock('r')}(?:{APPROX})?)?"
)
# A few days with a part of the day ([这几天晚上], [前两天夜里], [最近几天早上]).
_DAYS_PART = (
    rf"(?:(?:这|前|最近|近|连续|接连|头)(?:几|一|两|2|3|三|好几)天|头天)\s?(?:{PARTS})"
    rf"(?:\s?{clock('d')}(?:{APPROX})?)?"
)
# Weekdays listed or spanned without 上/下/这 (周一到周五, 周六周日, 周二、四, 周六日):
# opening days or a routine, not one day.
_WEEKDAY_LIST = (
    rf"(?<![上下这本])(?:{WEEK_WORD}){_WEEKDAY_ITEM}(?!{_TIMES})"
    rf"(?:\s?(?:到|至|-|~|～|—)\s?(?:{WEEK_WORD})?{_WEEKDAY_ITEM}"
    rf"|(?:\s?[、和及与]\s?(?:{WEEK_WORD})?{_WEEKDAY_ITEM}|(?:{WEEK_WORD}){_WEEKDAY_ITEM}"
    rf"|(?<=六)日)+)(?:\s?(?:{PARTS}))?"
    rf"(?:\s?{clock('w')}(?:\s?(?:到|至|-|~|～|—)\s?(?:(?:{PARTS})\s?)?{clock('x')})?)?"
)
# A span of days (11月20日至25日, 从11月10日到11月30日) or of weekdays (下周一至周三).
_DATE = rf"(?:\d{{1,2}}|{CN_MONTH})月(?:\d{{1,2}}|{CN_DAY})[日号]"
_DATE_RANGE = (
    rf"(?:从|自)?(?:{_YEAR_WORD})?{_DATE}\s?(?:到|至|-|~|～|—)\s?(?:{_YEAR_WORD})?"
    rf"(?:{_DATE}|(?:\d{{1,2}}|{CN_DAY})[日号])(?!\d)"
    rf"|(?:{WEEK_PREFIX})(?:{WEEK_WORD}){_WEEKDAY_ITEM}\s?(?:到|至|-|~|～|—)\s?"
    rf"(?:{WEEK_WORD})?{_WEEKDAY_ITEM}(?:\s?(?:{PARTS}))?"
)
_HOLIDAYS = rf"(?:{_HOLIDAY})(?:\s?(?:到|至|—)\s?(?:{_HOLIDAY}))?(?:假期|小?长假)?"
_CALENDAR = (
    rf"{_DATE_RANGE}"
    rf"|(?:{_YEAR_WORD})?(?:{_MONTH_WORD}{_MONTH_PART}?{_NO_DAY}|{_MONTH_RANGE})"
    rf"|(?:{_YEAR_WORD}|这个?|那个?|整个)?(?:年初|年底|年末|上半年|下半年|{_SEASON}|{_HOLIDAYS})"
    r"(?:期间|前后|左右|[前后][一两三1-3]天)?"
    rf"|{_YEAR_WORD}(?:[初底末](?!\d))?(?!\s?(?:\d{{1,2}}|[一二三四五六七八九十]{{1,2}})月)"
    r"|(?:(?<![点时\d分半钟][到至~～—-])(?:第[二三23]天|次日|隔天)|当天|当日|翌日)"
    rf"(?:\s?(?:{PARTS}))?(?:\s?{clock('c')}(?:{APPROX})?)?|当晚"
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
