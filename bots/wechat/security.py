"""Webhook security: signatures, the replay window, safe-mode AES, and XML safe to parse.

Every POST is authenticated before its content is looked at: in plain mode by
``signature`` (SHA-1 over the sorted token, timestamp and nonce), in safe mode by
``msg_signature`` (the same plus the ciphertext, so it binds the body too). A
timestamp more than ``max_age`` seconds from our clock is refused as a replay. XML
must open with its ``<xml>`` root (after an optional XML declaration): a DOCTYPE can
only come before the root, so no DTD, entity declaration or billion-laughs payload
ever reaches the parser; xmltodict's own entity ban stays on as a second fence.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

MAX_BODY = 1024 * 1024  # bytes; WeChat's messages are a few hundred
MAX_AGE = 300.0  # seconds a signed timestamp stays acceptable
# An optional BOM and XML declaration, then the <xml> root: nothing may come between.
_PROLOG = re.compile(r"\A\ufeff?\s*(?:<\?xml[^<>]*\?>\s*)?<xml[\s/>]")
# The safe-mode envelope as WeChat writes it: read without a second XML parse (the
# ciphertext is what msg_signature authenticates); anything else is parsed in full.
_ENCRYPT = re.compile(r"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>")
_SEALED = (
    "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
    "<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
    "<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
)


class WebhookRejected(Exception):
    """A delivery refused before it reached the pipeline, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_xml(raw: bytes | str) -> dict[str, Any]:
    """The fields under the ``<xml>`` root of a WeChat document; 400 for anything else."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected(400, "body is not UTF-8") from None
    if not _PROLOG.match(raw):
        raise WebhookRejected(400, "expected an <xml> document without DOCTYPE or entities")
    try:
        # The text is passed as str, so expat reads UTF-8 whatever the declaration says.
        document = xmltodict.parse(raw, disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise WebhookRejected(400, f"malformed XML: {exc}") from None
    fields = document.get("xml")
    if not isinstance(fields, dict):
        raise WebhookRejected(400, "the <xml> root has no fields")
    return fields


def signature(*parts: str) -> str:
    """WeChat's callback signature: SHA-1 of the sorted parts, concatenated."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


class WebhookGuard:
    """Authenticates deliveries and seals replies for one Official Account.

    ``clock`` is injectable so recorded deliveries (Tencent's published sample
    vectors date from 2014) can be checked, and replays tested.
    """

    def __init__(
        self,
        token: str,
        aes_key: str = "",
        app_id: str = "",
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = MAX_AGE,
    ) -> None:
        if not token:
            raise ValueError("YIMEN_WECHAT_TOKEN is required for the WeChat webhook")
        self._token = token
        self._app_id = app_id
        self._clock = clock
        self._max_age = max_age
        self._prp: PrpCrypto | None = None
        if aes_key:
            self._prp = PrpCrypto(_aes_key(aes_key, app_id))

    @property
    def safe_mode(self) -> bool:
        """Whether messages arrive AES-encrypted."""
        return self._prp is not None

    def now(self) -> float:
        """The guard's clock (seconds since the epoch)."""
        return self._clock()

    def check_url(self, query: Mapping[str, str]) -> str:
        """URL verification (GET): the ``echostr`` to send back, once authenticated."""
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        self._check_fresh(timestamp)
        self._check(query.get("signature", ""), self._token, timestamp, nonce)
        return query.get("echostr", "")

    def open(self, query: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Authenticate a delivery (POST) and return its message fields."""
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        self._check_fresh(timestamp)
        encrypted = query.get("encrypt_type", "raw") == "aes"
        if self._prp is None:
            if encrypted:
                raise WebhookRejected(400, "encrypted delivery, but YIMEN_WECHAT_AES_KEY is unset")
            self._check(query.get("signature", ""), self._token, timestamp, nonce)
            return parse_xml(body)
        if not encrypted:
            # Safe mode is chosen for a reason: a plaintext delivery is a downgrade.
            raise WebhookRejected(400, "safe mode expects encrypt_type=aes")
        ciphertext = _ciphertext(body)
        self._check(query.get("msg_signature", ""), self._token, timestamp, nonce, ciphertext)
        try:
            plaintext = self._prp.decrypt(ciphertext, self._app_id)
        except InvalidAppIdException:
            raise WebhookRejected(403, "message is for another AppID") from None
        except (ValueError, IndexError, struct.error):
            raise WebhookRejected(400, "Encrypt does not decrypt to a message") from None
        return parse_xml(plaintext)

    def seal(self, reply_xml: str, nonce: str) -> str:
        """The body answering a delivery: encrypted and signed in safe mode, else as is.

        The same envelope as wechatpy's ``encrypt_message``, with the cipher built once.
        """
        if self._prp is None:
            return reply_xml
        timestamp = str(int(self._clock()))
        ciphertext = self._prp.encrypt(reply_xml, self._app_id).decode()
        return _SEALED.format(
            encrypt=ciphertext,
            signature=signature(self._token, timestamp, nonce, ciphertext),
            timestamp=timestamp,
            nonce=nonce,
        )

    def _check_fresh(self, timestamp: str) -> None:
        try:
            sent = int(timestamp)
        except ValueError:
            raise WebhookRejected(403, "missing or malformed timestamp") from None
        if abs(self._clock() - sent) > self._max_age:
            raise WebhookRejected(403, "timestamp outside the replay window")

    @staticmethod
    def _check(given: str, *parts: str) -> None:
        expected = signature(*parts).encode()
        if not secrets.compare_digest(expected, given.encode("utf-8", "replace")):
            raise WebhookRejected(403, "bad signature")


def _ciphertext(body: bytes) -> str:
    """The safe-mode envelope's Encrypt field; 400 when there is none."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "body is not UTF-8") from None
    if not _PROLOG.match(text):
        raise WebhookRejected(400, "expected an <xml> document without DOCTYPE or entities")
    found = _ENCRYPT.search(text)
    if found:
        return found.group(1)
    ciphertext = parse_xml(text).get("Encrypt")  # written some other way: parse it in full
    if not isinstance(ciphertext, str) or not ciphertext:
        raise WebhookRejected(400, "no Encrypt field")
    return ciphertext


def _aes_key(encoding_aes_key: str, app_id: str) -> bytes:
    """The AES key an EncodingAESKey stands for (43 characters of Base64, one "=" short)."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        key = b""
    if len(encoding_aes_key) != 43 or len(key) != 32 or not app_id:
        raise ValueError(
            "YIMEN_WECHAT_AES_KEY must be the 43-character EncodingAESKey, "
            "and YIMEN_WECHAT_APP_ID must be set with it"
        )
    return key
