"""Bad input at the WeChat webhook: each refused clearly, and nothing stored half-way.

Tencent's published WXBizMsgCrypt sample (token ``spamtest``, AppID
``wx2c2769f8efd9abc2``, timestamp 1409735669) is decrypted with the guard's clock set
to 2014; the same delivery with today's clock is a replay.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import xmltodict
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto

from bots.wechat.security import MAX_BODY, WebhookGuard, WebhookRejected, parse_xml
from integration.models import Message
from tests.emulators.wechat import (
    AES_KEY,
    APP_ID,
    TOKEN,
    Tencent,
    WeChatAPIEmulator,
    sign,
)
from tests.emulators.wechat_app import COMPLAINT, Clock, T, Yimen, serve, wechat_settings

# The app tests share the module's apps, so they share its event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

# Tencent's sample delivery (WXBizMsgCrypt, also in wechatpy's tests).
VECTOR_TIMESTAMP = "1409735669"
VECTOR_NONCE = "1320562132"
VECTOR_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
VECTOR_SIGNATURE = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
VECTOR_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
VECTOR_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
    f"<Encrypt><![CDATA[{VECTOR_ENCRYPT}]]></Encrypt></xml>"
)
VECTOR_QUERY = {
    "signature": VECTOR_SIGNATURE,
    "timestamp": VECTOR_TIMESTAMP,
    "nonce": VECTOR_NONCE,
    "openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
    "encrypt_type": "aes",
    "msg_signature": VECTOR_MSG_SIGNATURE,
}
VECTOR_SENDER = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o-bomb</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content>"
    "<MsgId>1</MsgId></xml>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o-xxe</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content>"
    "<MsgId>2</MsgId></xml>"
)
HIDDEN_DOCTYPE = "\ufeff  <?xml version='1.0'?>\n<!doctype xml SYSTEM 'http://evil/x.dtd'><xml/>"
UNDECLARED_ENTITY = (
    "<xml><ToUserName>gh</ToUserName><FromUserName>o-ent</FromUserName>"
    "<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>3</MsgId></xml>"
)


# -- the guard on its own ---------------------------------------------------------------


def vector_guard(now: float = float(VECTOR_TIMESTAMP)) -> WebhookGuard:
    return WebhookGuard(TOKEN, AES_KEY, APP_ID, clock=lambda: now)


def test_tencents_sample_delivery_decrypts() -> None:
    fields = vector_guard().open(VECTOR_QUERY, VECTOR_BODY.encode())
    assert fields == {
        "ToUserName": "gh_10f6c3c3ac5a",
        "FromUserName": VECTOR_SENDER,
        "CreateTime": "1409735668",
        "MsgType": "text",
        "Content": "abcdteT",
        "MsgId": "6054768590064713728",
    }


def test_an_envelope_written_another_way_is_parsed_in_full() -> None:
    body = f"<xml>\n  <Encrypt>{VECTOR_ENCRYPT}</Encrypt>\n  <ToUserName>gh</ToUserName>\n</xml>"
    assert vector_guard().open(VECTOR_QUERY, body.encode())["Content"] == "abcdteT"


@pytest.mark.parametrize(
    ("aes_key", "app_id"),
    [("too-short", APP_ID), ("!" * 43, APP_ID), (AES_KEY, "")],
    ids=["short", "not-base64", "no-app-id"],
)
def test_a_malformed_aes_key_stops_the_start(aes_key: str, app_id: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        WebhookGuard(TOKEN, aes_key, app_id)


def test_tencents_sample_url_verification_echoes() -> None:
    query = {k: VECTOR_QUERY[k] for k in ("signature", "timestamp", "nonce")}
    assert vector_guard().check_url(query | {"echostr": "shr5ch"}) == "shr5ch"


@pytest.mark.parametrize("skew", [-301, 301, 10**8], ids=["future", "past", "years-later"])
def test_a_timestamp_outside_five_minutes_is_a_replay(skew: int) -> None:
    with pytest.raises(WebhookRejected) as refused:
        vector_guard(float(VECTOR_TIMESTAMP) + skew).open(VECTOR_QUERY, VECTOR_BODY.encode())
    assert (refused.value.status, refused.value.reason) == (
        403,
        "timestamp outside the replay window",
    )


@pytest.mark.parametrize("skew", [-299, 299])
def test_a_timestamp_within_five_minutes_is_accepted(skew: int) -> None:
    fields = vector_guard(float(VECTOR_TIMESTAMP) + skew).open(VECTOR_QUERY, VECTOR_BODY.encode())
    assert fields["Content"] == "abcdteT"


def test_a_sealed_reply_opens_with_wechats_own_crypto() -> None:
    guard = vector_guard()
    sealed = xmltodict.parse(guard.seal("<xml><Content>好</Content></xml>", "42"))["xml"]
    assert sealed["MsgSignature"] == sign(TOKEN, sealed["TimeStamp"], "42", sealed["Encrypt"])
    assert sealed["TimeStamp"] == VECTOR_TIMESTAMP  # the guard's clock, not the machine's
    opened = PrpCrypto(base64.b64decode(AES_KEY + "=")).decrypt(sealed["Encrypt"], APP_ID)
    assert opened == "<xml><Content>好</Content></xml>"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (BOMB, "expected an <xml> document without DOCTYPE or entities"),
        (XXE, "expected an <xml> document without DOCTYPE or entities"),
        (HIDDEN_DOCTYPE, "expected an <xml> document without DOCTYPE or entities"),
        ("<!-- hi --><xml/>", "expected an <xml> document without DOCTYPE or entities"),
        ("<foo><xml/></foo>", "expected an <xml> document without DOCTYPE or entities"),
        (UNDECLARED_ENTITY, "malformed XML: undefined entity: line 1, column 98"),
        ("<xml><a>1</a>", "malformed XML: no element found: line 1, column 13"),
        ("<xml></xml>", "the <xml> root has no fields"),
    ],
    ids=[
        "billion-laughs",
        "xxe",
        "doctype-after-declaration",
        "comment",
        "other-root",
        "undeclared-entity",
        "unclosed",
        "empty-root",
    ],
)
def test_only_plain_wechat_xml_reaches_the_parser(document: str, reason: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        parse_xml(document.encode())
    assert (refused.value.status, refused.value.reason) == (400, reason)


def test_xmltodict_refuses_entity_declarations_as_a_second_fence() -> None:
    # What wechatpy's parser (xmltodict) does on its own: the prolog check stops such
    # documents first, but the fence behind it must hold too.
    with pytest.raises(ValueError, match="entities are disabled"):
        xmltodict.parse(BOMB, disable_entities=True)


# -- through the app ---------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plain(
    module_data_dir: Path, module_wechat_api: WeChatAPIEmulator
) -> AsyncIterator[Yimen]:
    """The app in plain mode."""
    async with serve(
        wechat_settings(module_data_dir / "plain", module_wechat_api), module_wechat_api
    ) as app:
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def safe(module_data_dir: Path, module_wechat_api: WeChatAPIEmulator) -> AsyncIterator[Yimen]:
    """The app in safe mode, as the account of Tencent's sample, with a settable clock."""
    settings = wechat_settings(module_data_dir, module_wechat_api, safe=True)
    async with serve(settings, module_wechat_api, clock=Clock()) as app:
        yield app


async def stored(yimen: Yimen) -> int:
    """Messages in the transcript: unchanged by anything refused."""
    async with yimen.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


@in_module_loop
async def test_tencents_sample_is_a_replay_today_and_answered_in_2014(safe: Yimen) -> None:
    before = await stored(safe)
    response = await safe.client.post("/wechat", params=VECTOR_QUERY, data=VECTOR_BODY)
    assert response.status == 403
    assert await stored(safe) == before

    safe.clock.frozen = float(VECTOR_TIMESTAMP)
    try:
        response = await safe.client.post("/wechat", params=VECTOR_QUERY, data=VECTOR_BODY)
        assert response.status == 200
        reply = safe.tencent.open_reply(await response.text())  # checks its msg_signature
    finally:
        safe.clock.frozen = None
    assert (reply["ToUserName"], reply["FromUserName"]) == (VECTOR_SENDER, "gh_10f6c3c3ac5a")
    assert reply["MsgType"] == "text" and reply["Content"]
    lines = await safe.services.transcript.lines("wechat", VECTOR_SENDER)
    assert [line.text for line in lines][:1] == ["abcdteT"]


@in_module_loop
async def test_our_own_encrypted_messages_are_answered_encrypted(safe: Yimen) -> None:
    resident = safe.resident()
    reply = await resident.say(COMPLAINT)
    assert reply.startswith(T("complaint.ask_where", category=T("category.noise")))
    assert "<Encrypt>" in resident.deliveries[-1].body  # sealed on the wire


@in_module_loop
@in_module_loop
@pytest.mark.parametrize(
    "tamper",
    ["signature", "msg_signature", "timestamp", "nonce", "no-signature"],
)
async def test_a_forged_signature_is_refused(plain: Yimen, safe: Yimen, tamper: str) -> None:
    for yimen, key in ((plain, "signature"), (safe, "msg_signature")):
        before = await stored(yimen)
        resident = yimen.resident()
        body = yimen.tencent.seal(yimen.tencent.text(resident.openid, "你好"))
        query = yimen.tencent.query(body)
        if tamper == "no-signature":
            query.pop(key)
        elif tamper in ("timestamp", "nonce"):
            query[tamper] = str(int(query[tamper]) - 1)  # still fresh, no longer signed
        elif tamper == key:
            query[key] = "f" * 40
        else:
            continue  # the other mode's signature: not what this mode checks
        delivery = await yimen.tencent.deliver("", query=query, body=body)
        assert delivery.status == 403, (tamper, delivery.body)
        assert await stored(yimen) == before


@in_module_loop
async def test_a_message_for_another_account_is_refused(safe: Yimen) -> None:
    before = await stored(safe)
    other = Tencent(safe.client, aes_key=AES_KEY, app_id="wx0000000000000000")
    delivery = await other.deliver(other.text("o-other", "你好"))
    assert (delivery.status, delivery.body) == (403, "message is for another AppID")
    assert await stored(safe) == before


@in_module_loop
async def test_ciphertext_that_does_not_decrypt_is_refused(safe: Yimen) -> None:
    body = "<xml><ToUserName>gh</ToUserName><Encrypt>bm90IGEgbWVzc2FnZQ==</Encrypt></xml>"
    delivery = await safe.tencent.deliver("", query=safe.tencent.query(body), body=body)
    assert (delivery.status, delivery.body) == (400, "Encrypt does not decrypt to a message")


@in_module_loop
@pytest.mark.parametrize("document", [BOMB, XXE, HIDDEN_DOCTYPE, UNDECLARED_ENTITY])
async def test_doctype_and_entities_are_refused_in_either_mode(
    plain: Yimen, safe: Yimen, document: str
) -> None:
    for yimen in (plain, safe):
        before = await stored(yimen)
        delivery = await yimen.tencent.deliver(document)  # sealed in safe mode: inside AES
        assert delivery.status == 400, delivery.body
        assert await stored(yimen) == before


@in_module_loop
async def test_the_wrong_mode_is_refused(plain: Yimen, safe: Yimen) -> None:
    xml = plain.tencent.text("o-mode", "你好")
    to_safe = await safe.tencent.deliver("", query=plain.tencent.query(xml), body=xml)
    assert (to_safe.status, to_safe.body) == (400, "safe mode expects encrypt_type=aes")
    sealed = safe.tencent.seal(xml)
    to_plain = await plain.tencent.deliver("", query=safe.tencent.query(sealed), body=sealed)
    assert to_plain.status == 400


@in_module_loop
async def test_a_missing_timestamp_is_refused(plain: Yimen) -> None:
    xml = plain.tencent.text("o-time", "你好")
    query = plain.tencent.query(xml)
    del query["timestamp"]
    assert (await plain.tencent.deliver("", query=query, body=xml)).status == 403


@in_module_loop
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_one_megabyte_is_refused(plain: Yimen, declared: bool) -> None:
    before = await stored(plain)
    filler = "吵" * (MAX_BODY // 3 + 10)
    xml = plain.tencent.text("o-big", filler).encode()
    query = plain.tencent.query(xml.decode())

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(xml), 64 * 1024):
            yield xml[start : start + 64 * 1024]

    data = io.BytesIO(xml) if declared else stream()
    response = await plain.client.post("/wechat", params=query, data=data)
    assert response.status == 413
    assert await stored(plain) == before


@in_module_loop
@in_module_loop
@pytest.mark.parametrize(
    "body",
    [b"", b"not xml at all", b"<xml><Content>unclosed", "<xml>\u4f60</xml>".encode("utf-16")],
    ids=["empty", "text", "unclosed", "utf-16"],
)
async def test_unparseable_bodies_are_refused(plain: Yimen, body: bytes) -> None:
    before = await stored(plain)
    query = plain.tencent.query("")
    response = await plain.client.post("/wechat", params=query, data=body)
    assert response.status == 400
    assert await stored(plain) == before


@in_module_loop
async def test_a_delivery_without_a_sender_is_refused(plain: Yimen) -> None:
    xml = "<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType><Content>hi</Content></xml>"
    delivery = await plain.tencent.deliver(xml)
    assert (delivery.status, delivery.body) == (400, "FromUserName and ToUserName are required")


@in_module_loop
@in_module_loop
@pytest.mark.parametrize(
    "fields",
    [
        {"Content": "你好"},  # no MsgType
        {"MsgType": "text", "Content": "你好"},  # no MsgId
        {"MsgType": "location", "Location_X": "north", "Location_Y": "1", "MsgId": "9"},
        {"MsgType": "location", "Location_X": "91", "Location_Y": "1", "MsgId": "10"},
        {"MsgType": "image", "PicUrl": "http://x/y.jpg", "MsgId": "11"},  # no MediaId
    ],
    ids=["no-type", "no-id", "bad-latitude", "latitude-out-of-range", "image-without-media"],
)
async def test_malformed_messages_get_a_polite_answer(plain: Yimen, fields: dict[str, str]) -> None:
    before = await stored(plain)
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    xml = f"<xml><ToUserName>gh</ToUserName><FromUserName>o-odd</FromUserName>{body}</xml>"
    assert (await plain.tencent.deliver(xml)).text == T("wechat.malformed")
    assert await stored(plain) == before
