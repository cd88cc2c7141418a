"""`yimen residents forget USER`: delete a resident's data on request.

What is deleted and what is kept detached is integration.residents' docstring (and
the README's "Privacy"). Besides the database, this command deletes the photos only
the transcript referenced, and the resident's unfinished conversation in Redis.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from bots.commands import load_settings, run_async, staff_services
from bots.media import MEDIA_NAME
from bots.settings import Settings
from integration.residents import Forgotten, ResidentBook, ResidentNotFound
from integration.state import KeyBuilder

residents_app = typer.Typer(help="Residents' personal data.", no_args_is_help=True)
_CHANNEL_PREFIX = re.compile(r"^([a-z]+):(.+)$")


@residents_app.command("forget")
def forget(
    user: Annotated[str, typer.Argument(help="The resident's id on their channel, or CHANNEL:ID.")],
    channel: Annotated[
        str | None, typer.Option(help="The channel (webchat, wechat, telegram, terminal).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a resident's transcript, pushes, follows and comments; detach their cases."""
    match = _CHANNEL_PREFIX.match(user)
    if match and channel is None:
        channel, user = match.group(1), match.group(2)
    settings = load_settings()
    try:
        forgotten = run_async(_forget(settings, user, channel, yes))
    except ResidentNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    if forgotten is None:
        print("nothing was deleted")
        raise typer.Exit(1)
    print(_report(forgotten, settings))


async def _forget(
    settings: Settings, user: str, channel: str | None, yes: bool
) -> Forgotten | None:
    async with staff_services(settings) as services:
        book = ResidentBook(services.sessions)
        identity = await book.find(user, channel)
        if not yes:
            question = f"Forget {identity.channel}:{identity.user_id}? This cannot be undone."
            if not await asyncio.to_thread(typer.confirm, question):
                return None
        forgotten = await book.forget(identity)
        if services.redis is not None:
            keys = KeyBuilder(settings.redis_prefix)
            names = [keys.state(identity.channel, chat) for chat in forgotten.chats]
            if names:
                await services.redis.delete(*names)
        await asyncio.to_thread(_delete_photos, settings.media_dir, forgotten.media)
        return forgotten


def _delete_photos(media_dir: Path, refs: tuple[str, ...]) -> None:
    for ref in refs:
        name = ref.removeprefix("/media/")
        if MEDIA_NAME.match(name):  # our own files only, never a path from elsewhere
            (media_dir / name).unlink(missing_ok=True)


def _report(forgotten: Forgotten, settings: Settings) -> str:
    who = forgotten.identity
    state = (
        "deleted from Redis"
        if settings.redis_url
        else f"held only in the server's memory; it lapses within {settings.state_ttl:.0f} s"
    )
    return "\n".join(
        [
            f"forgot {who.channel}:{who.user_id}",
            f"  transcript: {forgotten.messages} messages in {len(forgotten.chats)} chat(s) "
            "deleted",
            f"  pushes: {forgotten.notifications} deleted; follows: {forgotten.follows} removed; "
            f"rating comments: {forgotten.comments} cleared",
            f"  cases: {forgotten.cases_kept} kept for the record, detached from the resident "
            "(no more pushes), phone and ID numbers masked",
            f"  photos: {len(forgotten.media)} deleted (photos attached to cases stay with them)",
            f"  unfinished conversation: {state}",
        ]
    )
