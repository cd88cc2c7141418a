"""The Rasa backend: a client of a Rasa 3.6 server's ``POST /model/parse``.

Rasa runs as its own server in its own venv (scripts/rasa-server.sh), trained on the
same nlu/data. ``FallbackInterpreter`` puts the embedded backend behind it, so a Rasa
outage costs accuracy, never a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp

from nlu.contract import ENTITIES, INTENTS
from nlu.timeparse import TimeParseError, resolve
from nlu.types import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    FALLBACK_INTENT,
    Entity,
    Interpreter,
    NLUError,
    Parse,
    unsure,
)

log = logging.getLogger(__name__)

# Rasa's lookup-based entities are named after our entities (nlu/rasa/assembly.py), but a
# hand-trained model may still say "community".
ENTITY_ALIASES = {"community": "address"}
# Extractors whose spans come from our own patterns and lookups; they beat DIET's guesses.
RULE_EXTRACTORS = frozenset({"RegexEntityExtractor"})


class RasaError(NLUError):
    """The Rasa server did not give a usable parse; ``status`` is its HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RasaUnavailable(RasaError):
    """The server is down, timed out, has no model loaded, or kept answering 5xx."""


class RasaRejected(RasaError):
    """The server refused the request (4xx), e.g. 401 for a wrong token: retrying won't help."""


def check_response(status: int, body: str) -> dict[str, Any]:
    """The JSON body of a ``/model/parse`` answer, or the exception its status means."""
    if status == 200:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise RasaError(f"Rasa answered 200 with a body that is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("intent"), dict):
            raise RasaError("Rasa answered 200 without an intent", status)
        return document
    message = _error_message(body)
    if status == 409:  # rasa.server: "No agent loaded", e.g. while a model loads
        raise RasaUnavailable(f"Rasa has no model loaded: {message}", status)
    if 400 <= status < 500:
        raise RasaRejected(f"Rasa rejected the request ({status}): {message}", status)
    raise RasaUnavailable(f"Rasa failed ({status}): {message}", status)


def _error_message(body: str) -> str:
    # Rasa's errors are {"status": "failure", "message": ..., "reason": ..., "code": ...}.
    try:
        document = json.loads(body)
    except ValueError:
        return body[:200]
    if isinstance(document, dict) and "message" in document:
        return f"{document.get('reason', '')}: {document['message']}".lstrip(": ")
    return body[:200]


def to_parse(
    text: str,
    body: Mapping[str, Any],
    threshold: float = 0.0,
    margin: float = 0.0,
    *,
    now: datetime | None = None,
) -> Parse:
    """Our ``Parse`` of Rasa's answer: contract intents only, entities without overlaps.

    An intent outside the contract (including Rasa's own ``nlu_fallback``), below
    ``threshold`` or within ``margin`` of the runner-up becomes ``nlu_fallback``; the
    confidence is then the best contract intent's, as the embedded backend reports it.
    Entity values are made the same as the embedded extractor's: a time span resolves to
    ISO 8601 relative to ``now`` (by default the current time in Asia/Shanghai), a mobile
    number loses its dashes.
    """
    try:
        ranked = body.get("intent_ranking") or [body["intent"]]
        ranking = tuple(
            (str(item["name"]), _confidence(item.get("confidence")))
            for item in ranked
            if item.get("name") in INTENTS
        )
        name = body["intent"].get("name")
        confidence = _confidence(body["intent"].get("confidence"))
        if name not in INTENTS:
            name, confidence = FALLBACK_INTENT, ranking[0][1] if ranking else confidence
        elif unsure(((name, confidence), *ranking[1:]), threshold, margin):
            name = FALLBACK_INTENT
        entities = _entities(text, body.get("entities") or (), now)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # Not the shape rasa.server answers: the fallback interpreter takes the message.
        raise RasaError(f"Rasa's answer cannot be read: {type(exc).__name__}: {exc}") from exc
    return Parse(text, name, confidence, entities, ranking)


def _confidence(value: Any) -> float:
    """A confidence in [0, 1]; anything else is not an answer we can rank by."""
    number = float(value or 0.0)
    if not 0.0 <= number <= 1.0:  # also NaN
        raise ValueError(f"confidence {value!r} outside [0, 1]")
    return number


def _value(name: str, span: str, value: str, now: datetime | None) -> str | None:
    """The entity's value as the embedded extractor gives it; None drops the entity."""
    if name == "time":
        try:
            return resolve(span, now).iso
        except TimeParseError:
            # DIET tagged something our grammar cannot date (e.g. 改天): no time at all is
            # better than a value the dialogue would have to guess at.
            log.debug("dropping Rasa time entity %r: not a resolvable time", span)
            return None
    if name == "phone" and value.startswith("1"):
        return value.replace("-", "").replace(" ", "")
    return value


def _entities(text: str, raw: Any, now: datetime | None) -> tuple[Entity, ...]:
    candidates = []
    for item in raw:
        name = ENTITY_ALIASES.get(item.get("entity"), item.get("entity"))
        if name not in ENTITIES:
            continue
        start, end = int(item["start"]), int(item["end"])
        value = _value(name, text[start:end], str(item["value"]), now)
        if value is not None:
            candidates.append(Entity(name, start, end, value, str(item["extractor"])))
    # Rule-based spans first; a statistical span is kept where it overlaps nothing, or
    # where it strictly widens spans of its own type (金辉小区 -> 金辉小区3号楼).
    candidates.sort(key=lambda e: (e.extractor not in RULE_EXTRACTORS, e.start - e.end, e.start))
    kept: list[Entity] = []
    for entity in candidates:
        overlapping = [k for k in kept if k.start < entity.end and entity.start < k.end]
        if not overlapping:
            kept.append(entity)
        elif entity.extractor not in RULE_EXTRACTORS and all(
            k.entity == entity.entity
            and entity.start <= k.start
            and k.end <= entity.end
            and entity.end - entity.start > k.end - k.start
            for k in overlapping
        ):
            kept = [k for k in kept if k not in overlapping] + [entity]
    return tuple(sorted(kept, key=lambda e: e.start))


class RasaInterpreter:
    """Interpreter backed by a Rasa server's ``POST /model/parse``.

    Uses ``session`` if given (the caller closes it), otherwise opens one on first use and
    closes it in ``close()``. Each attempt has ``timeout`` seconds; connection errors and
    5xx are retried ``retries`` times with exponential backoff from ``backoff`` seconds.
    A timeout is not retried: a server that is that slow is overloaded, and the fallback
    answers at once. 4xx raises ``RasaRejected`` at once.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.1,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/model/parse"
        self._params = {"token": token} if token else {}
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._threshold = threshold
        self._margin = margin

    async def parse(self, text: str) -> Parse:
        """Parse one message on the Rasa server."""
        body = await self._post({"text": text})
        return to_parse(text, body, self._threshold, self._margin)

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        session = self._open_session()
        error: RasaUnavailable | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                async with session.post(
                    self._endpoint, json=payload, params=self._params, timeout=self._timeout
                ) as response:
                    body = await response.text()
                return check_response(response.status, body)
            except TimeoutError as exc:  # aiohttp's timeouts are all TimeoutError subclasses
                raise RasaUnavailable(
                    f"Rasa did not answer within {self._timeout.total} s"
                ) from exc
            except aiohttp.ClientError as exc:  # refused, reset, DNS
                error = RasaUnavailable(f"cannot reach Rasa at {self._endpoint}: {exc!r}")
                error.__cause__ = exc
            except RasaUnavailable as exc:
                if exc.status is None or exc.status < 500:
                    raise
                error = exc
        assert error is not None
        raise error

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the session if this object opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RasaInterpreter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class FallbackInterpreter:
    """Parses with ``primary`` and, when it fails with a ``RasaError``, with ``fallback``.

    Every message answered by the fallback is counted in ``fallbacks``. Warnings are
    logged at most once per ``log_interval`` seconds, with the count since the last one.
    After a failure the primary is skipped for ``retry_after`` seconds, so an outage
    does not add a timeout to every message. A 4xx (``RasaRejected``) falls back too,
    since residents should not suffer a misconfiguration, but is logged as an error.
    """

    def __init__(
        self,
        primary: Interpreter,
        fallback: Interpreter,
        *,
        retry_after: float = 5.0,
        log_interval: float = 30.0,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.fallbacks = 0
        self._retry_after = retry_after
        self._log_interval = log_interval
        self._skip_until = 0.0
        self._logged_at = -float("inf")
        self._logged_count = 0
        self._failure: RasaError | None = None

    @property
    def failure(self) -> RasaError | None:
        """Why the primary was last skipped, while it still is; None when it answers."""
        return self._failure

    async def parse(self, text: str) -> Parse:
        """The primary's parse, or the fallback's when the primary is unavailable."""
        if time.monotonic() >= self._skip_until:
            try:
                parse = await self.primary.parse(text)
                self._failure = None
                return parse
            except RasaError as exc:
                self._skip_until = time.monotonic() + self._retry_after
                self._failure = exc
        self.fallbacks += 1
        self._warn()
        return await self.fallback.parse(text)

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._logged_at < self._log_interval:
            return
        level = logging.ERROR if isinstance(self._failure, RasaRejected) else logging.WARNING
        log.log(
            level,
            "Rasa NLU failed (%s); the fallback interpreter answered %d messages since the "
            "last warning, %d in all",
            self._failure,
            self.fallbacks - self._logged_count,
            self.fallbacks,
        )
        self._logged_at = now
        self._logged_count = self.fallbacks
