"""Rule matchers: the words that answer a step whatever the model predicts.

The NLU model ranks intents; these matchers catch the short, fixed answers residents
give to a bot's questions (好的, 不用了, 跳过, 算了先别提交了, 转人工, 第二个), which a
classifier trained on whole requests is least sure of. Each is a named regex over the
message's *clean* form: NFKC-normalised, lower-cased, with spaces and punctuation
removed. Flows list them in their steps' expectations (handlers.flows.base.Expect).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

_NOT_TEXT = re.compile(r"[\W_]+")


# A message is checked by a dozen matchers (the triggers, then its step's words): each
# asks for the same clean form, so the last few are remembered.
@functools.lru_cache(maxsize=256)
def clean(text: str) -> str:
    """``text`` NFKC-normalised, lower-cased, without spaces or punctuation."""
    return _NOT_TEXT.sub("", unicodedata.normalize("NFKC", text).lower())


class Matcher(Protocol):
    """Anything that tells whether a message says something (Words, or a flow's own)."""

    def search(self, text: str) -> bool:
        """Whether ``text`` (raw, as the resident wrote it) says it."""
        ...


@dataclass(frozen=True, slots=True)
class Words:
    """A named rule matcher.

    ``whole``: the message must say nothing else, once matches and ``FILLERS`` are
    removed (at most ``slack`` characters may remain), so 算了先别提交了 is a withdrawal
    but 取消我明天的预约 is not.
    """

    name: str
    pattern: re.Pattern[str]
    whole: bool = False
    slack: int = 0

    def search(self, text: str) -> bool:
        """Whether ``text`` says this."""
        cleaned = clean(text)
        if not self.pattern.search(cleaned):
            return False
        if not self.whole:
            return True
        rest = FILLERS.sub("", self.pattern.sub("", cleaned))
        return len(rest) <= self.slack


def words(name: str, pattern: str, *, whole: bool = False, slack: int = 0) -> Words:
    """A ``Words`` matcher from a regex over the clean text."""
    return Words(name, re.compile(pattern), whole, slack)


# Particles and hedges that carry no answer of their own.
FILLERS = re.compile(
    "等等|等一下|等下|那个|这个|那就|就先|还是|我看|我想|我要|我|先|就|那|吧|了|啊|呀|啦|哈|"
    "嗯|哦|噢|呃|额|的|呢|么|吗|嘛|哎|唉|诶|ok"
)

_NEGATED = "(?<![不没别未非否])"
# Latin words count only on their own, not inside other letters and digits (a code).
_LATIN = "(?<![a-z0-9])"


@dataclass(frozen=True, slots=True)
class AnyOf:
    """A matcher that says yes when any of its matchers does."""

    name: str
    matchers: tuple[Matcher, ...]

    def search(self, text: str) -> bool:
        """Whether any of the matchers finds its words in ``text``."""
        return any(m.search(text) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class Brief:
    """A matcher that says yes only for a short message its matcher finds words in (嗯,
    好的, 不用了 answer a question; 杂物的事不用处理了，已经清走了 says more)."""

    name: str
    matcher: Matcher
    chars: int

    def search(self, text: str) -> bool:
        """Whether ``text`` is at most ``chars`` characters, cleaned, and matches."""
        return len(clean(text)) <= self.chars and self.matcher.search(text)


# 可以 before a verb is "can do" (有啥活可以干, 可以帮我买菜吗), not a yes.
_MODAL = "[干做帮办去来看买吃报问认领接参当用]"
# Yes: unambiguous words anywhere, or a lone 好 / 对 / 是 / 嗯 (which inside other
# words — 你好, 好几天, 还是 — say nothing of the kind).
YES = AnyOf(
    "yes",
    (
        words(
            "yes_words",
            f"{_NEGATED}(是的|是啊|是滴|对的|对啊|对头|没错|没问题|没有问题|可以(?!{_MODAL})|确认|确定|提交|就这样|"
            f"就这么|同意|好滴|好嘞|好的|好吧|好啊|行吧|行的|{_LATIN}(ok|okay|yes|yeah)(?![a-z0-9]))",
        ),
        words("yes_alone", "好|行|对|是|嗯|中|成", whole=True),
    ),
)
# No: unambiguous words anywhere, or a lone 不 / 否 / 别 / 没.
NO = AnyOf(
    "no",
    (
        words("no_words", "不是|不对|不用|不要|不需要|不行|不必|没必要|nope"),
        words("no_alone", "不了?|否|别|没|no", whole=True),
    ),
)
SKIP = words(
    "skip",
    "跳过|没有照片|没照片|没有图|没图|没拍|不拍|拍不了|不发|发不了|不用|不需要|没有|^无$|^没$|skip",
)
# A withdrawal of what is being prepared; it must be (almost) the whole message.
CANCEL = words(
    "cancel",
    "取消|算了|先别提交|别提交|不提交|不要提交|不用提交|不报了|不反映了|不投诉了|不举报了|"
    "撤回|撤销|不弄了|不办了|不要了|退出|cancel|quit",
    whole=True,
    slack=2,
)
# Withdrawing a report already submitted (我刚才报的那个不要了, 撤销投诉): with nothing
# under way, the resident is told how, not that there is nothing to cancel. The word
# that withdraws ends the message: 反映一下，物业取消了供暖 is a report.
WITHDRAW_CASE = words(
    "withdraw_case",
    "(报|反映|提交|投诉|举报|工单)的?.{0,8}"
    "(?<!被)(不要了|撤销|撤回|作废|不用了|不用管了|不用处理|取消)(吧|了|掉|啊|吧谢谢)?$|"
    "(撤销|撤回|取消)(这个|那个|我的|刚才的?)?(工单|投诉|举报|反映)",
)
# A resident saying the problem reported is gone (路灯已经修好了，谢谢; 垃圾都清走了): told
# how the open case gets closed. Not a question (修好了吗, 修好了没), not negated (还没修好).
FIXED_MEANWHILE = words(
    "fixed_meanwhile",
    "(?<![没未不])((修好|弄好|修复|解决|处理好|清理好|清理干净|清走|拉走|恢复)了(?![吗么没不嘛呢])|"
    "(通|亮)了(?=$|谢|啊|呀|哈|吧|哦))(?!.*[吗么呢嘛?？][\\s。！!]*$)",
)
# How a report is handled, asked in words (一般要多久能修好, 修好了会通知我吗): answered with
# how cases go, and the step under way asked again; never a report or a status query.
PROCESS_QUESTION = words(
    "process_question",
    "(多久|多长时间|几天|啥时候|什么时候)(才?能|可以|会)?(修好|处理好?|解决|来人|来修|有结果|有回复|答复)|"
    "(会|能)(不能|不会)?(通知|告诉|联系)(我|一声)|"
    "怎么(知道|查)(进度|结果)",
)
# A resident saying who they are, and nothing more (我姓张 / 她叫王秀英 / 我是她女儿): the
# model has no intent for it and reads it as anything (a volunteer's claim, out of
# scope). A name is a common surname and one or two more characters, so 我叫了救护车 and
# 她叫外卖 are not introductions.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
    "毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关"
    "兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻"
    "祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿"
    "桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_WHO = (
    "我|俺|本人|她|他|老人家?|我(?:妈|爸|母亲|父亲|奶奶|爷爷|姥姥|姥爷|外婆|外公|老伴|爱人|家老人)"
)
INTRODUCTION = words(
    "introduction",
    f"^(?:您好|你好)?(?:(?:{_WHO})(?:姓(?:欧阳|司马|诸葛|上官|[{_SURNAMES}])|"
    f"叫(?:欧阳|司马|诸葛|上官|[{_SURNAMES}])[\u4e00-\u9fff]{{1,2}})|"
    "我是(?:她|他|老人)的?(?:女儿|儿子|孙子|孙女|家属|老伴|爱人|邻居|亲戚|儿媳|女婿|外孙女?))$",
)
# Asking who answers (你是机器人吗, 你是谁, 您是哪位): the model reads it as out of scope.
WHO_ARE_YOU = words(
    "who_are_you",
    "^(?:你好|您好|请问)?(?:你|您)(?:们)?(?:这边)?(?:是|是不是)(?:谁|哪位|什么|机器人|机器|智能客服|ai|"
    "人工智能|自动回复|真人)(?:还是(?:真人|机器人|人工))?(?:吗|啊|呀|呢)?$|"
    "^(?:是)?(?:机器人|机器|自动)(?:在)?回复(?:的)?(?:吗|啊|呢)?$",
)
# Asking how personal data is used or kept (你们会把我的电话泄露出去吗, 我想删除我的个人信息):
# answered plainly, beside whatever is under way. A leak by others (物业把我的电话泄露给
# 了推销的) is a report, not this.
PRIVACY_QUESTION = words(
    "privacy",
    "(你们|平台|这里|系统).{0,6}(泄露|泄漏|外泄|卖给|给别人|告诉别人|公开)|"
    "(电话|号码|手机号|信息|隐私|身份证|资料).{0,4}(安全吗|保密吗|会不会泄露|会泄露吗)|"
    "(删除|删掉|注销)(我的)?(个人信息|信息|资料|数据|记录|聊天记录)|个人信息(怎么|如何|会)",
)
# 我要投诉 / 我想反映个问题 / 报修, before saying what: the menu's 我要反映, typed. Never a
# call for a person, whatever the model reads in it (我要反映 as human_handoff).
REPORT_REQUEST = words(
    "report",
    "(有(个|件|一个|一件)?(事情?|事儿|问题|情况))?(我|俺)?(要|想|想要|得|需要)?"
    "((给|跟|向|和)(你们|您|社区|街道|居委会))?"
    "(投诉|反映|举报|报修|报告|报个?事|提(个|一个|点|几个|条|一条)?(建议|意见))"
    "(一下|下|个|一个|件|点)?(问题|情况|事情?|事儿)?",
    whole=True,
    slack=2,
)
# Asking for a person; 工作人员 alone is not enough (物业工作人员态度很差 is a report).
HANDOFF = words(
    "handoff",
    "转人工|人工(?!湖|智能|草|费)|(?<!是)真人|活人|"
    "(找|叫|让|要|请|转|换|接)(个|一个|你们的?)?(工作人员|客服|领导|负责人|人来|人工)",
)
GOODBYE = words("goodbye", f"拜拜|再见|{_LATIN}(bye|byebye)(?![a-z0-9])|^88$|先这样|没事了")
# Insults. 垃圾 only counts aimed at people or the service: 垃圾没人清 is a report. The
# Latin abbreviations count only on their own, not inside other letters and digits: an
# invitation code (MHSBRXSN) or USB接口 is no insult.
ABUSE = words(
    "abuse",
    f"傻逼|煞笔|沙比|傻b|傻x|{_LATIN}(sb|tmd|nmsl|cnm)(?![a-z0-9])|"
    "脑残|智障|白痴|弱智|废物|饭桶|蠢货|蠢猪|去死|(?<![我俺咱])妈的|你妈|尼玛|"
    "草泥马|操你|日你|狗屁|狗东西|王八|混蛋|混账|屁用|放屁|滚蛋|滚开|^滚|"
    "(你们|这帮|这群|一群|一帮)(就是|真是|都是)?(垃圾|人渣)|垃圾(政府|街道|机器人|客服|玩意|东西|系统)",
)
# "The second one", "number 2", "the last one": picking from a list just shown.
ORDINAL = re.compile(
    r"第(\d{1,2}|[一二三四五六七八九十]{1,2})(个|件|条|项|单)?|^(\d{1,2})(号|个)?$|最后(一)?(个|件|条|项)"
)
_CHINESE_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九十")}


def ordinal(text: str, count: int) -> int | None:
    """The 0-based position ``text`` picks from a list of ``count``, if it picks one."""
    match = ORDINAL.search(clean(text))
    if match is None:
        return None
    if match.group(0).startswith("最后"):
        return count - 1
    raw = match.group(1) or match.group(3)
    position = int(raw) if raw.isdigit() else _chinese_number(raw)
    return position - 1 if 1 <= position <= count else None


def _chinese_number(raw: str) -> int:
    if raw == "十":
        return 10
    if raw.startswith("十"):
        return 10 + _CHINESE_DIGITS[raw[1]]
    if raw.endswith("十"):
        return _CHINESE_DIGITS[raw[0]] * 10
    return _CHINESE_DIGITS.get(raw[0], 0)
