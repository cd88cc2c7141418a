"""Phrases the router recognises by rule where the model has no intent for them."""

import pytest

from handlers.flows.contact import DONT_KEEP_WORDS, KEEP_WORDS
from handlers.words import ABUSE, INTRODUCTION, PRIVACY_QUESTION, WHO_ARE_YOU


@pytest.mark.parametrize(
    ("text", "introduces"),
    [
        ("我姓张", True),
        ("您好我姓欧阳", True),
        ("她叫王秀英", True),
        ("我妈叫李桂兰", True),
        ("我是她女儿", True),
        ("我是老人的邻居", True),
        ("我叫了救护车", False),  # 了 is no given name
        ("她叫外卖", False),  # 外 is no surname
        ("我姓张，楼下路灯坏了", False),  # more than a name: the rest is the request
        ("我是志愿者", False),
    ],
)
def test_an_introduction_is_a_name_or_a_relation_and_nothing_more(
    text: str, introduces: bool
) -> None:
    assert INTRODUCTION.search(text) is introduces


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("你是机器人吗", True),
        ("您是哪位？", True),
        ("你好，你是谁", True),
        ("你是不是自动回复", True),
        ("你是谁家的孩子在楼下哭", False),  # more than the question
        ("你们是街道的吗", False),
    ],
)
def test_asking_who_answers(text: str, asks: bool) -> None:
    assert WHO_ARE_YOU.search(text) is asks


@pytest.mark.parametrize(
    ("text", "keep", "dont"),
    [
        ("记住", True, False),
        ("帮我存一下", True, False),
        ("不用记", False, True),
        ("别保存我的号码", True, True),  # both: answer_keep takes the refusal first
        ("嗯", False, False),
    ],
)
def test_keeping_a_phone_in_words(text: str, keep: bool, dont: bool) -> None:
    assert KEEP_WORDS.search(text) is keep
    assert DONT_KEEP_WORDS.search(text) is dont


@pytest.mark.parametrize(
    ("text", "abuse"),
    [
        ("他妈的什么破系统", True),
        ("妈的", True),
        ("不对，是给我妈的", False),  # my mother's, not a swear
        ("俺妈的老年证丢了", False),
    ],
)
def test_a_mother_is_no_swear(text: str, abuse: bool) -> None:
    assert ABUSE.search(text) is abuse


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("你们会把我的电话泄露出去吗", True),
        ("我的信息安全吗", True),
        ("我想删除我的个人信息", True),
        ("删掉我的聊天记录", True),
        ("物业把我的电话泄露给了推销的", False),  # a leak by others is a report
        ("物业泄露业主信息", False),
        ("忘记我的电话", False),  # the contact flow's
    ],
)
def test_asking_how_personal_data_is_used(text: str, asks: bool) -> None:
    assert bool(PRIVACY_QUESTION.search(text)) is asks
