"""Quick replies as inline keyboards, and pressed buttons back as label and payload."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from handlers.messages import Button

ROW = 3  # buttons per keyboard row; the labels are two to four characters
MAX_DATA = 64  # bytes of callback_data Telegram accepts
NUMBERED = "#"  # callback_data of a button whose payload is too long: "#<its number>"


def inline_keyboard(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    """The keyboard for ``buttons``; None when there are none.

    A payload that does not fit in callback_data is sent as the button's number: the
    pipeline remembers the buttons it offered, and a number chooses one of them.
    """
    if not buttons:
        return None
    keys = [
        InlineKeyboardButton(text=button.label, callback_data=_data(button.payload, number))
        for number, button in enumerate(buttons, start=1)
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[keys[i : i + ROW] for i in range(0, len(keys), ROW)]
    )


def pressed(query: CallbackQuery) -> tuple[str, str]:
    """The label and payload of the pressed button.

    The label is read from the keyboard of the message the button was on (absent when
    Telegram no longer includes that message); a numbered button has no payload, and
    its label (or number) lets the pipeline find the offered button it stands for.
    """
    data = query.data or ""
    label = ""
    if isinstance(query.message, Message) and query.message.reply_markup is not None:
        for row in query.message.reply_markup.inline_keyboard:
            for key in row:
                if key.callback_data == data:
                    label = key.text
    number = data.removeprefix(NUMBERED)
    if data.startswith(NUMBERED) and number.isdigit():
        return label or number, ""
    return label, data


def _data(payload: str, number: int) -> str:
    if 0 < len(payload.encode()) <= MAX_DATA and not payload.startswith(NUMBERED):
        return payload
    return f"{NUMBERED}{number}"
