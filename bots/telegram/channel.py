"""The Telegram channel: Bot API updates in, Outbound messages out.

Only private chats are served (a conversation is one resident's); group updates are
ignored. Photos are fetched with getFile as they arrive and kept in the media
directory, where the web app serves them at /media/<name> like web-chat uploads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re

import aiohttp
from aiogram import Bot
from aiogram.exceptions import AiogramError
from aiogram.types import CallbackQuery, Message, Update

from bots.media import PhotoKeeper
from bots.sanitize import RefusedInput, clean_text, location
from bots.telegram.keyboards import pressed
from bots.telegram.sender import TelegramSender
from handlers.messages import DeliveryError, Inbound, Location, Media, Outbound

log = logging.getLogger(__name__)

# "/cancel@YimenBot" is how clients address one bot among several; the pipeline knows
# commands without the suffix.
_ADDRESSED_COMMAND = re.compile(r"^(/\w+)@\w+")
_PHONE_LAYOUT = re.compile(r"[\s\-()]")
# Attachments the pipeline cannot read yet; they get its polite "unsupported" answer.
_OTHER_MEDIA = {
    "voice": "voice",
    "audio": "voice",
    "video": "video",
    "video_note": "video",
    "animation": "video",
    "document": "file",
}


class TelegramChannel:
    """Turns updates into Inbound, and sends replies and pushes through the sender."""

    name = "telegram"

    def __init__(
        self, bot: Bot, sender: TelegramSender, photos: PhotoKeeper, max_photo_bytes: int
    ) -> None:
        self._bot = bot
        self._sender = sender
        self._photos = photos
        self._max_photo_bytes = max_photo_bytes

    # -- Channel protocol ----------------------------------------------------------

    def to_inbound(self, update: Update) -> Inbound | None:
        """A message or button press from a private chat; None for anything else.

        The message id is the bot's id and the update id: Telegram redelivers an
        update with the same id, so the pipeline's dedupe drops the copy.
        """
        message_id = f"{self._bot.id}-{update.update_id}"
        if update.message is not None:
            return _from_message(self.name, message_id, update.message)
        if update.callback_query is not None:
            return _from_press(self.name, message_id, update.callback_query)
        return None

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Send the replies to ``inbound`` in order, after anything queued for the chat."""
        await self._sender.submit(inbound.chat_id, messages)

    async def push(self, chat_id: str, message: Outbound) -> None:
        """Send a status update; raises DeliveryError (a blocked bot is not retryable)."""
        await self._sender.submit(chat_id, [message])

    # -- receiving helpers ---------------------------------------------------------

    def reply_later(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Queue the replies without waiting for them to go out (order is still kept)."""
        task = self._sender.submit(inbound.chat_id, messages)
        task.add_done_callback(lambda done: _log_undelivered(inbound, done))

    async def with_photos(self, inbound: Inbound) -> Inbound:
        """``inbound`` with its photos downloaded and their /media/ urls filled in.

        A photo that cannot be fetched keeps its file_id as the reference, which staff
        tools can still resolve later; the message is not held up for it.
        """
        if not any(m.kind == "image" and not m.url for m in inbound.media):
            return inbound
        media = [
            Media(m.kind, m.ref, await self._download(inbound.chat_id, m.ref))
            if m.kind == "image" and not m.url
            else m
            for m in inbound.media
        ]
        return dataclasses.replace(inbound, media=tuple(media))

    async def _download(self, chat_id: str, file_id: str) -> str:
        """The /media/ url of the downloaded photo, or "" when it could not be kept."""
        try:
            file = await self._bot.get_file(file_id)
            if file.file_path is None or (file.file_size or 0) > self._max_photo_bytes:
                log.info("telegram photo %s not downloadable (size %s)", file_id, file.file_size)
                return ""
            buffer = await self._bot.download_file(file.file_path)
        except (AiogramError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("telegram photo %s not downloaded: %s", file_id, type(exc).__name__)
            return ""
        data = buffer.read() if buffer is not None else b""
        ref = (
            await self._photos.keep(self.name, chat_id, data)
            if len(data) <= self._max_photo_bytes
            else None
        )
        if ref is None:
            log.info("telegram photo %s is not an image we keep", file_id)
            return ""
        return ref


def chat_of(update: Update) -> str:
    """The chat an update belongs to, for keeping one chat's updates in order."""
    if update.message is not None:
        return str(update.message.chat.id)
    query = update.callback_query
    if query is not None:
        return str(query.message.chat.id if query.message is not None else query.from_user.id)
    return f"update-{update.update_id}"


def contact_text(phone_number: str) -> str:
    """A shared contact's number as a resident would type it (13912345678)."""
    digits = _PHONE_LAYOUT.sub("", phone_number)
    for prefix in ("+86", "0086", "86"):
        rest = digits.removeprefix(prefix)
        if rest != digits and len(rest) == 11 and rest.startswith("1"):
            return rest
    return digits


def _from_message(channel: str, message_id: str, message: Message) -> Inbound | None:
    if message.chat.type != "private" or message.from_user is None:
        return None
    text = clean_text(message.text or message.caption or "")
    pin: Location | None = None
    media: tuple[Media, ...] = ()
    if message.venue is not None or message.location is not None:
        pin, media = _pin(message)
    elif message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        media = (Media("image", largest.file_id),)
    elif message.contact is not None:
        text = contact_text(clean_text(message.contact.phone_number))
    elif message.sticker is not None:
        text = clean_text(message.sticker.emoji or "")  # answered like any emoji-only message
    elif message.document is not None and (message.document.mime_type or "").startswith("image/"):
        media = (Media("image", message.document.file_id),)  # a photo sent as a file
    else:
        media = tuple(
            Media(kind, getattr(message, field).file_id)
            for field, kind in _OTHER_MEDIA.items()
            if getattr(message, field) is not None
        )
        if not text and not media:
            return None  # polls, dice, service messages: nothing for the pipeline
    return Inbound(
        channel=channel,
        user_id=str(message.from_user.id),
        chat_id=str(message.chat.id),
        message_id=message_id,
        text=_ADDRESSED_COMMAND.sub(r"\1", text),
        location=pin,
        media=media,
        time=message.date,
    )


def _pin(message: Message) -> tuple[Location | None, tuple[Media, ...]]:
    """A message's location (checked), or a media item the pipeline calls unreadable."""
    try:
        if message.venue is not None:
            place = message.venue.location
            label = f"{message.venue.title} {message.venue.address}"
            return location(place.latitude, place.longitude, label), ()
        assert message.location is not None
        return location(message.location.latitude, message.location.longitude), ()
    except RefusedInput:
        return None, (Media("location", ""),)


def _from_press(channel: str, message_id: str, query: CallbackQuery) -> Inbound | None:
    if query.message is not None and query.message.chat.type != "private":
        return None
    label, payload = pressed(query)
    label, payload = clean_text(label), clean_text(payload)
    chat = query.message.chat.id if query.message is not None else query.from_user.id
    return Inbound(
        channel=channel,
        user_id=str(query.from_user.id),
        chat_id=str(chat),
        message_id=message_id,
        text=label,
        payload=payload,
    )


def _log_undelivered(inbound: Inbound, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if isinstance(error, DeliveryError):
        log.info("reply to telegram %s not delivered: %s", inbound.message_id, error.reason)
