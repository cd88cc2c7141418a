"""Property-based fuzzing of everything that reads outside input (issue 16, item 6).

Each parser gets inputs hypothesis builds (random bytes and text, and documents shaped
like the real ones with hostile values) and may only answer or refuse in its own
documented way: no other exception, and no input that takes seconds (the deadline is
generous, to catch runaway backtracking or recursion rather than to time anything).
"""

from __future__ import annotations

import base64
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bots.sanitize import RefusedInput, load_json
from bots.telegram.channel import TelegramChannel
from bots.wechat.security import WebhookGuard, WebhookRejected, parse_xml, signature
from integration.dispatch.errors import CallbackRefused
from integration.dispatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from nlu.entities import EntityExtractor
from nlu.rasa_client import RasaError, check_response, to_parse
from nlu.timeparse import find_times
from nlu.training_data import load as load_training_data

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
APP_ID = "wx0123456789abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, next to a month end

# Text as residents and attackers send it: Chinese, digits, punctuation, controls,
# lone surrogates excluded (the channel edge refuses those before any parser).
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
TEXT = st.text(
    st.one_of(
        CJK,
        st.sampled_from("0123456789一二三四五六七八九十百千万号楼单元室路街小区上下午点分半月日周"),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=300,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor.from_training_data(load_training_data())


# -- WeChat -------------------------------------------------------------------------


def xml_document(fields: dict[str, str]) -> str:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{body}</xml>"


FIELD = st.text(string.ascii_letters, min_size=1, max_size=12)
CDATA = TEXT.map(lambda t: t.replace("]]>", ""))


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.dictionaries(FIELD, CDATA).map(xml_document)))
def test_wechat_xml_parser_answers_or_refuses(raw: bytes | str) -> None:
    try:
        fields = parse_xml(raw)
    except WebhookRejected as refused:
        assert refused.status == 400
    else:
        assert isinstance(fields, dict)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["timestamp", "nonce", "signature", "msg_signature", "encrypt_type"]),
        TEXT,
    ),
    body=st.one_of(
        st.binary(max_size=1000),
        st.binary(max_size=600).map(
            lambda b: xml_document({"Encrypt": base64.b64encode(b).decode()}).encode()
        ),
    ),
    safe=st.booleans(),
)
def test_wechat_envelope_answers_or_refuses(query: dict[str, str], body: bytes, safe: bool) -> None:
    guard = WebhookGuard("token", AES_KEY if safe else "", APP_ID, clock=lambda: 1_700_000_000.0)
    try:
        guard.open(query, body)
    except WebhookRejected as refused:
        assert refused.status in (400, 403)


@FUZZ
@given(st.binary(max_size=600))
def test_a_correctly_signed_envelope_with_garbage_inside_is_refused(garbage: bytes) -> None:
    """Past the signature, the AES layer and the XML inside are still hostile input."""
    guard = WebhookGuard("token", AES_KEY, APP_ID, clock=lambda: 1_700_000_000.0)
    ciphertext = base64.b64encode(garbage).decode()
    query = {
        "timestamp": "1700000000",
        "nonce": "n",
        "encrypt_type": "aes",
        "msg_signature": signature("token", "1700000000", "n", ciphertext),
    }
    with pytest.raises(WebhookRejected):
        guard.open(query, xml_document({"Encrypt": ciphertext}).encode())


# -- Telegram -----------------------------------------------------------------------

USER = st.fixed_dictionaries(
    {"id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": TEXT}
)
CHAT = st.fixed_dictionaries(
    {"id": st.integers(-(2**40), 2**40), "type": st.sampled_from(["private", "group"])}
)
MESSAGE = st.fixed_dictionaries(
    {"message_id": st.integers(0, 2**31), "date": st.integers(0, 2**31), "chat": CHAT},
    optional={
        "from": USER,
        "text": TEXT,
        "caption": TEXT,
        "location": st.fixed_dictionaries(
            {"latitude": st.floats(allow_nan=False), "longitude": st.floats(allow_nan=False)}
        ),
        "contact": st.fixed_dictionaries({"phone_number": TEXT, "first_name": TEXT}),
        "sticker": st.fixed_dictionaries(
            {
                "file_id": TEXT,
                "file_unique_id": TEXT,
                "type": st.just("regular"),
                "width": st.integers(0, 600),
                "height": st.integers(0, 600),
                "is_animated": st.booleans(),
                "is_video": st.booleans(),
            },
            optional={"emoji": TEXT},
        ),
    },
)
UPDATE = st.fixed_dictionaries(
    {"update_id": st.integers(0, 2**31)},
    optional={
        "message": MESSAGE,
        "callback_query": st.fixed_dictionaries(
            {"id": TEXT, "from": USER, "chat_instance": TEXT},
            optional={"data": TEXT, "message": MESSAGE},
        ),
    },
)


@FUZZ
@given(st.one_of(UPDATE, JSON, st.binary(max_size=500)))
def test_telegram_updates_become_a_message_or_nothing(document: Any) -> None:
    channel = TelegramChannel(Bot("123456:" + "A" * 35), None, None, 1)  # type: ignore[arg-type]
    try:
        raw = document if isinstance(document, bytes) else json.dumps(document)
        update = Update.model_validate(load_json(raw))
    except (RefusedInput, ValidationError):
        return  # the webhook answers 400 or "ignored"
    inbound = channel.to_inbound(update)
    if inbound is not None:
        assert inbound.channel == "telegram" and inbound.chat_id
        assert "\ud800" not in inbound.text


# -- the dispatch callback ----------------------------------------------------------


@FUZZ
@given(
    headers=st.dictionaries(st.sampled_from([TIMESTAMP_HEADER, SIGNATURE_HEADER, "X-Other"]), TEXT),
    body=st.binary(max_size=1000),
)
def test_callback_verifier_refuses_everything_unsigned(
    headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(CallbackRefused) as refused:
        verify("secret", headers, body, tolerance=300, now=1_700_000_000)
    assert refused.value.status in (400, 401)


# -- Rasa's answers -----------------------------------------------------------------

RASA_BODY = st.fixed_dictionaries(
    {"text": TEXT, "intent": st.one_of(JSON, st.fixed_dictionaries({"name": TEXT}))},
    optional={"intent_ranking": JSON, "entities": JSON},
)


@FUZZ
@given(status=st.integers(100, 599), body=st.one_of(TEXT, JSON.map(json.dumps)))
def test_rasa_answers_are_read_or_refused(status: int, body: str) -> None:
    try:
        document = check_response(status, body)
    except RasaError:
        return
    assert isinstance(document, dict)


@FUZZ
@given(RASA_BODY, TEXT)
def test_a_strange_rasa_answer_is_a_rasa_error_never_a_crash(
    body: dict[str, Any], text: str
) -> None:
    """The fallback interpreter answers on RasaError; anything else would reach residents."""
    try:
        document = check_response(200, json.dumps(body))
        parse = to_parse(text, document, now=NOW)
    except RasaError:
        return
    assert parse.text == text
    assert all(0 <= e.start < e.end <= len(text) for e in parse.entities)


# -- the entity extractors ----------------------------------------------------------


@FUZZ
@given(TEXT)
def test_time_expressions_resolve_or_are_left_out(text: str) -> None:
    for match in find_times(text, NOW):
        assert text[match.start : match.end] == match.text


@FUZZ
@given(TEXT)
def test_entities_are_spans_of_the_text(extractor: EntityExtractor, text: str) -> None:
    for entity in extractor.extract(text, now=NOW):
        assert 0 <= entity.start < entity.end <= len(text)
        assert entity.entity in {"address", "time", "phone", "service"}
