"""The terminal channel behind `yimen chat`: a resident's conversation on stdin/stdout.

Works interactively and with piped input (one message per line). Buttons are shown
numbered; typing a button's number or label chooses it. Status pushes print as they
arrive while the chat runs.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import TextIO

from handlers.messages import DeliveryError, Inbound, Outbound

BOT = "一门"


class TerminalChannel:
    """Prints replies and pushes for one local resident."""

    name = "terminal"

    def __init__(self, user_id: str, out: TextIO | None = None) -> None:
        self.user_id = user_id
        self._out = out or sys.stdout

    def to_inbound(self, update: str) -> Inbound | None:
        """One typed line as an Inbound with a fresh message id."""
        text = update.rstrip("\r\n")
        return Inbound(
            channel=self.name,
            user_id=self.user_id,
            chat_id=self.user_id,
            message_id=uuid.uuid4().hex,
            text=text,
        )

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Print the bot's answers."""
        for message in messages:
            self._print(message)

    async def push(self, chat_id: str, message: Outbound) -> None:
        """Print a status update for this terminal's resident; others' wait for their own."""
        if chat_id != self.user_id:
            raise DeliveryError("another resident's terminal", offline=True)
        self._print(message)

    def _print(self, message: Outbound) -> None:
        lines = [f"{BOT}: {message.text}"]
        if message.buttons:
            lines.append(
                "    " + "  ".join(f"[{i}] {b.label}" for i, b in enumerate(message.buttons, 1))
            )
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()


async def read_lines(stream: TextIO, queue: asyncio.Queue[str | None]) -> None:
    """Feed lines from a blocking stream into ``queue`` from a thread; None at EOF."""
    loop = asyncio.get_running_loop()

    def pump() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
