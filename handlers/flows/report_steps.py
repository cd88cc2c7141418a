"""The complaint flow's vocabulary: payloads, words, expectations, buttons.

Kept apart from the flow's transitions (handlers.flows.complaint); the README's
interruption table is this module in prose.
"""

from __future__ import annotations

import re

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect, Turn
from handlers.messages import Button
from handlers.words import NO, YES, words
from handlers.words import SKIP as SKIP_WORDS
from nlu.contract import REPORT_INTENTS
from nlu.types import Parse

REPORT_PREFIX = "report_"
SUBMIT, EDIT, SKIP_PHOTO = "complaint:submit", "complaint:edit", "complaint:skip"
SAME_PLACE = "complaint:same_place"  # the place of the resident's last report, again
JOIN, NEW = "complaint:join", "complaint:new"
EDIT_ADDRESS, EDIT_DESCRIPTION = "complaint:edit_address", "complaint:edit_description"

EDIT_WORDS = words("edit", "修改|改一下|改下|改改|改成|改为|写错|错了|更正|换个|重新填|重填|不是这")
ABOUT_PLACE = words("about_place", "地址|地点|位置|地方|门牌|楼号|小区名")
ABOUT_TEXT = words("about_text", "描述|内容|情况|说明|问题写")
# 就这些，没有了 at the summary: nothing to add, so send it (it was read as a no: withdrawn).
SUBMIT_WORDS = words(
    "submit",
    "(?<![不别没])提交|就这样|就这些|就这么多|发吧|报吧|没有?问题|^没有?(别的|其他的?)?了$",
)
# 跳过 typed at the summary (the photo question already behind): the summary again.
SKIP_ALONE = words(
    "skip_alone",
    "^(?:我|我这|我这边|手机里|现在)?(?:跳过吧?|skip|没有?(?:照片|图片|相片)|没(?:有)?拍(?:照|到)?|"
    "拍不了|没法拍|不会(?:拍|发)(?:照片)?|(?:照片)?发不了|不拍了?|不发了?)(?:了|啊|呀|呢|哦)?$",
)
# Adding to the report under way (再加一句，已经有小孩差点掉下去了): a detail of this report,
# whatever kind of report the model reads in it, never a new one.
_MORE = "再?加一句|再?补充(说明)?(一下|一句|两句)?(情况)?|再说一句|多说一句|顺便说一下|还想说"
MORE_WORDS = words("more", _MORE)
_MORE_LEAD = re.compile(f"^(我想|我再|我要|我)?({_MORE})[，,。.：:；;！!、\\s]*")
# 我刚才说错了，是自行车 / 不对，是在小区外面: the report corrected before it is sent,
# added to its description in the resident's words (never a withdrawal or a new report).
CORRECTION = words("correction", "说错了|写错了|打错了|搞错了|弄错了|讲错了|^不对|^不是|^更正")
# What was meant instead, said with a no (描述不对，是楼道灯不是路灯): a correction, not a
# withdrawal.
INSTEAD = words("instead", "(?<![不还])(是|应该是|其实是|改成|改为)[^，,。；;！!？?]{2,}")
# A photo said to be sent with none in the message (这是照片, 照片发过去了): not received.
PHOTO_SENT = words(
    "photo_sent",
    "^(这|这个|这张|这几张|下面|上面)(是|就是)?(照片|图片|相片|图)|"
    "(照片|图片|图)(发|传)(了|过去|给你)",
)
# A photo on its way (等一下，我拍个照片): the step waits for it.
PHOTO_COMING = words(
    "photo_coming",
    "^(?!.*(没|不用|不想|不能|不会|懒得|算了|发不了|拍不了)).*"
    "((拍|照|发|传)(个|张|一张|几张|一下|下)?(照片|图片|相片|图)|等我拍|我去拍|我拍一下)",
)
JOIN_WORDS = words("join", "加入|跟进|关注|一起|同一个|就是这个")
NEW_WORDS = words("new", "新建|新的|单独|重新提交|另外|不是这个|不是同一")
# A place said too vaguely to dispatch to (就是我们小区门口啊, 在我家楼下): the whole
# message is place words, so it answers "where" (asking for more), not a new report.
VAGUE_PLACE = words(
    "vague_place",
    "(我们|我家|咱们|咱家|俺们|俺家|你们)?(小区|社区|楼|单元|院|村)?"
    "(门口|楼下|楼上|楼道|附近|旁边|对面|这边|那边|这儿|那儿|这里|那里|里面|外面|后面|前面|大门|院子|路边|马路上?)"
    "|在哪|哪里|哪儿|什么地方|就是|就在|在|我们|我家|咱们|小区|社区|家",
    whole=True,
    slack=1,
)
UNKNOWN_PLACE = words("unknown_place", "不知道|不清楚|说不清|不记得|不认识|叫不上")
# 跳过 at the place question (the photo's is optional, the place is not): said so.
SKIP_PLACE = words("skip_place", "跳过|不填|略过|先不说|不想说|skip", whole=True, slack=2)
# The last report's place again (还是那个地方, 同一个地方, 同上), when it was offered.
SAME_PLACE_WORDS = words(
    "same_place",
    "(还是|也是|也在|就在|同样在?)(刚才那个?|上次那个?|那个|那儿|那里|那)(地方|位置|地点)?|"
    "同一(个)?(地方|位置|地点)|一样的(地方|位置|地点)|同上|同一处|刚才(的|那个)(地方|地址|位置)",
    whole=True,  # 就在那个路口东边 names a place of its own
    slack=2,
)
_AFFIRM_DENY = frozenset({"affirm", "deny"})


def expectation(step: str, category: str | None) -> Expect:
    """The expectations of ``step`` in a report of ``category`` (None: not known yet)."""
    same = frozenset({f"{REPORT_PREFIX}{category}"}) if category else frozenset()
    if step in ("what", "describe"):
        return Expect(
            media=True,
            location=True,
            entities=frozenset({"address"}) if step == "what" else frozenset(),
            intents=frozenset(REPORT_INTENTS),
            text=True,
        )
    if step == "where":
        return Expect(
            payloads=frozenset({SAME_PLACE}),
            media=True,
            location=True,
            entities=frozenset({"address"}),
            words=(
                UNKNOWN_PLACE,
                VAGUE_PLACE,
                MORE_WORDS,
                SAME_PLACE_WORDS,
                CORRECTION,
                SKIP_PLACE,
            ),
            intents=same,
        )
    if step == "photo":
        return Expect(
            payloads=frozenset({SKIP_PHOTO}),
            media=True,
            location=True,
            entities=frozenset({"address"}),
            words=(SKIP_WORDS, YES, NO, MORE_WORDS, CORRECTION, PHOTO_COMING, PHOTO_SENT),
            intents=same | _AFFIRM_DENY,
        )
    if step == "confirm":
        return Expect(
            payloads=frozenset({SUBMIT, EDIT}),
            media=True,
            location=True,
            entities=frozenset({"address"}),
            words=(
                EDIT_WORDS,
                SUBMIT_WORDS,
                YES,
                NO,
                MORE_WORDS,
                SKIP_ALONE,
                PHOTO_COMING,
                PHOTO_SENT,
            ),
            intents=same | _AFFIRM_DENY,
        )
    if step == "edit":
        return Expect(
            payloads=frozenset({EDIT_ADDRESS, EDIT_DESCRIPTION}),
            media=True,
            location=True,
            entities=frozenset({"address"}),
            words=(ABOUT_PLACE, ABOUT_TEXT, MORE_WORDS),
            intents=frozenset(REPORT_INTENTS),
        )
    return Expect(  # duplicate
        payloads=frozenset({JOIN, NEW}),
        media=True,
        location=True,
        words=(JOIN_WORDS, NEW_WORDS, YES, NO),
        intents=_AFFIRM_DENY,
    )


def more_of(text: str) -> str:
    """The detail a message adds, without its lead (补充一下，… → …); "" for the lead alone."""
    return _MORE_LEAD.sub("", text.strip())


def category_of(parse: Parse) -> str:
    """The case category: the suffix of the best-ranked report_* intent, else "other"."""
    if parse.intent.startswith(REPORT_PREFIX):
        return parse.intent.removeprefix(REPORT_PREFIX)
    for intent, _ in parse.ranking:
        if intent.startswith(REPORT_PREFIX):
            return intent.removeprefix(REPORT_PREFIX)
    return "other"


def report_intent(turn: Turn) -> str:
    """The report intent of the message (top, or read from the ranking), or ""."""
    for intent in (turn.parse.intent, turn.expected):
        if intent.startswith(REPORT_PREFIX):
            return intent
    return ""


def photo_buttons(t: Catalog) -> tuple[Button, ...]:
    """跳过 and 取消, under the photo question."""
    return (Button(t("button.skip"), SKIP_PHOTO), Button(t("button.cancel"), CANCEL))


def confirm_buttons(t: Catalog) -> tuple[Button, ...]:
    """提交, 修改 and 取消, under the summary."""
    return (
        Button(t("button.submit"), SUBMIT),
        Button(t("button.edit"), EDIT),
        Button(t("button.cancel"), CANCEL),
    )


def duplicate_buttons(t: Catalog) -> tuple[Button, ...]:
    """加入已有工单, 仍然新建工单 and 取消, under the offer of a similar case."""
    return (
        Button(t("duplicate.join"), JOIN),
        Button(t("duplicate.new"), NEW),
        Button(t("button.cancel"), CANCEL),
    )


def edit_buttons(t: Catalog) -> tuple[Button, ...]:
    """修改地点, 修改描述 and 取消."""
    return (
        Button(t("button.edit_address"), EDIT_ADDRESS),
        Button(t("button.edit_description"), EDIT_DESCRIPTION),
        Button(t("button.cancel"), CANCEL),
    )
