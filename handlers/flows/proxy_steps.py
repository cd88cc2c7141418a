"""The 代办 flow's vocabulary: payloads, reasons, whom it is for, expectations, buttons.

Kept apart from the flow's transitions (handlers.flows.proxy), as report_steps is
for the complaint flow.
"""

from __future__ import annotations

import re

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect
from handlers.flows.contact import (
    CHANGE_PHONE,
    DONT_KEEP,
    DONT_KEEP_WORDS,
    FORGET_PHONE,
    KEEP,
    KEEP_WORDS,
    NO_PHONE,
)
from handlers.flows.report_steps import SUBMIT_WORDS
from handlers.messages import Button
from handlers.words import NO, YES, AnyOf, Matcher, Words, clean, words

PROXY = "proxy:"  # every button payload of the flow starts with this
SERVICE, REASON = f"{PROXY}service:", f"{PROXY}reason:"
AGREE, EDIT = f"{PROXY}agree", f"{PROXY}edit"

# Why the resident cannot come, most specific first: 老人住院了 is ill, 腿脚不便 disabled.
REASONS: dict[str, Words] = {
    "disabled": words(
        "disabled",
        "残疾|残障|腿脚|行动不便|走路不便|瘫|轮椅|失明|看不见|看不清|聋|听不见|拄拐|眼睛不好",
    ),
    "ill": words(
        "ill",
        "生病|病了|住院|卧床|手术|身体不好|不舒服|养病|病重|看病|中风|脑梗|脑溢血|骨折|摔伤|化疗|透析",
    ),
    "away": words(
        "away", "外地|出差|在外|上班|工作忙|没时间|请不了假|打工|回不来|不在本地|抽不开身"
    ),
    "elderly": words(
        "elderly",
        "年纪大|年龄大|岁数大|老了|高龄|老人|年老|体弱|走不动|七十|八十|九十|"
        "(?<!\\d)([7-9]\\d|1\\d\\d)(多?周?岁|了)",
    ),
}
REASON_WORDS = AnyOf("reason", tuple(REASONS.values()))
# Other reasons, kept in the resident's words: the model reads 他不识字 as a no (which
# would drop the request), 家里离不开人 as help at home, 我家情况比较困难 as out of scope.
OTHER_REASON = words(
    "other_reason",
    "不识字|不认字|不会(用|说|写|操作)|走不开|离不开|脱不开|没空|忙|困难|不方便|来不了|去不了|"
    "没法去|没办法去|(看|带)(孩子|小孩)|照顾",
)

# Staff asked to run the errand in words (代办, 帮我办, 派人, 上门).
_ERRAND_ASKED = re.compile(
    "代办|代为|代理|代缴|帮(我|忙|着)?(办|跑|弄|去|交|领)|替|派人|上门|跑腿|跑一趟|别人去|别人办"
)


def errand_asked(text: str) -> bool:
    """Whether ``text`` asks staff to run the errand: in words, or with a reason one cannot
    come (住院, 腿脚不好, 在外地; not old age alone, which 高龄津贴 and 老年证 are for:
    我想给我家老人办个高龄补贴 asks how, and gets the card with 申请代办 on it)."""
    cannot = ("disabled", "ill", "away")
    return bool(
        _ERRAND_ASKED.search(text)
        or any(REASONS[k].search(text) for k in cannot)
        or OTHER_REASON.search(text)
    )


# Whom it is for, when not the resident: 帮我妈代缴医保.
_WHOM = re.compile(
    "(我家老人|家里老人|家中老人|老母亲|老父亲|母亲|父亲|我妈|俺妈|妈妈|老妈|我爸|俺爸|爸爸|老爸|爷爷|奶奶|姥姥|姥爷|外公|外婆|"
    "公公|婆婆|岳父|岳母|老伴|爱人|丈夫|妻子|儿子|女儿|孩子|邻居)"
)
# Whom, said at the reason question (不是我自己去，是帮我妈办): noted, and the reason asked.
WHOM_SAID = Words("proxy_whom", _WHOM)
_WHOM_ONLY = re.compile(
    f"^(不是(我)?(自己|本人)(去|办|来)?)?(是)?(帮|给|替|为)?{_WHOM.pattern}(办|申请|代办|弄|的)*$"
)


def whom_only(text: str) -> bool:
    """Whether ``text`` says only whom the errand is for (是帮我妈办), and no reason."""
    return bool(_WHOM_ONLY.match(clean(text)))


# 身份证户口本都有, 材料都齐了: the papers are ready (staff check them when they come).
PAPERS_READY = words(
    "papers_ready",
    "(材料|证件|手续|东西|证|户口本|户口簿|照片|复印件|委托书).{0,6}"
    "(都有|有的|都在|齐了|齐全|都齐|准备好|备好|准备了|都带|带着|在手)",
)
# 算了，我自己去办吧: the resident will come after all (the 代办 ends, with a booking offered).
GO_MYSELF = words(
    "go_myself",
    "^(?!.*(不是|不用|不能|没法|没办法|去不了|来不了)(我)?(自己|亲自|本人))"
    ".*(?<![给帮为替])(自己|亲自|本人)(去|来|跑一趟|过去)(?>(办|吧|一趟|窗口)?)(?![不没]|得了)",
)
# 同意 and the like at the confirmation (YES covers most; these are the consent's own).
AGREE_WORDS = words("agree", "(?<![不没])(同意|授权|委托|愿意)")
EDIT_WORDS = words("proxy_edit", "修改|改一下|改下|写错|错了|更正")


def reason_of(text: str, service_words: tuple[str, ...] = ()) -> str:
    """The reason ``text`` gives for not coming in person (a REASONS key), or "".

    The service's own words are left out first: 残疾证 gives no reason, 残疾 does.
    """
    for word in sorted(service_words, key=len, reverse=True):
        text = text.replace(word, "")
    return next((key for key, matcher in REASONS.items() if matcher.search(text)), "")


WHOM_WORDS = Words("whom", _WHOM)  # 给我爸 at a later step: whom it is for


def whom_of(text: str) -> str:
    """Whom ``text`` says the errand is for (我妈 → 母亲), or ""."""
    found = _WHOM.search(clean(text))
    if found is None:
        return ""
    word = found.group(0)
    if word.endswith("妈"):
        return "母亲"
    if word.endswith("爸"):
        return "父亲"
    if word.endswith("老人"):
        return "家中老人"
    return word


_PHONE_WORDS = (FORGET_PHONE, CHANGE_PHONE)


def expectation(step: str, service_words: Matcher, named_alone: Matcher) -> Expect:
    """What answers ``step`` (see handlers.flows.proxy). After the first, a message
    that only names a service (``named_alone``) answers every step."""
    if step == "service":
        return Expect(
            prefixes=(SERVICE,),
            entities=frozenset({"service"}),
            words=(service_words,),
            intents=frozenset({"proxy_service", "ask_service_info"}),
        )
    if step == "reason":
        return Expect(
            prefixes=(REASON,),
            entities=frozenset({"phone"}),
            words=(
                REASON_WORDS,
                OTHER_REASON,
                WHOM_SAID,
                named_alone,
                PAPERS_READY,
                GO_MYSELF,
                *_PHONE_WORDS,
            ),
            text=True,
        )
    if step == "phone":
        return Expect(
            entities=frozenset({"phone"}),
            words=(NO_PHONE, named_alone, PAPERS_READY, GO_MYSELF, *_PHONE_WORDS),
        )
    if step == "keep":
        return Expect(
            payloads=frozenset({KEEP, DONT_KEEP}),
            entities=frozenset({"phone"}),
            words=(
                KEEP_WORDS,
                DONT_KEEP_WORDS,
                YES,
                NO,
                named_alone,
                PAPERS_READY,
                GO_MYSELF,
                *_PHONE_WORDS,
            ),
            intents=frozenset({"affirm", "deny"}),
        )
    if step == "address":
        return Expect(
            entities=frozenset({"address", "phone"}),
            location=True,
            words=(named_alone, PAPERS_READY, GO_MYSELF, *_PHONE_WORDS),
            text=True,
        )
    return Expect(  # confirm
        payloads=frozenset({AGREE, EDIT}),
        entities=frozenset({"address", "phone", "service"}),
        location=True,
        words=(
            AGREE_WORDS,
            SUBMIT_WORDS,
            EDIT_WORDS,
            REASON_WORDS,
            YES,
            NO,
            named_alone,
            GO_MYSELF,
            *_PHONE_WORDS,
        ),
        intents=frozenset({"affirm", "deny"}),
    )


def reason_buttons(t: Catalog) -> tuple[Button, ...]:
    """The four reasons, and 取消."""
    return (
        *(Button(t(f"proxy.reason.{key}"), f"{REASON}{key}") for key in REASONS),
        Button(t("button.cancel"), CANCEL),
    )


def confirm_buttons(t: Catalog) -> tuple[Button, ...]:
    """同意并提交, 修改 and 取消, under the summary and the consent."""
    return (
        Button(t("button.proxy_agree"), AGREE),
        Button(t("button.edit"), EDIT),
        Button(t("button.cancel"), CANCEL),
    )
