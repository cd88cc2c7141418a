"""`yimen handoff link|duty|list`: staff chats for alarms, the on-duty member, the queue.

A staff member links their own chat account with ``link``: the command prints a
one-time code, which they send from that chat as 绑定<code>. ``duty`` names the member
on duty: their linked chat receives the handoff service-level alarms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from bots.commands import load_settings, run_async, staff_services
from integration.cases import local_minute
from integration.handoff import HandoffView

handoff_app = typer.Typer(help="Human handoff: staff chats, duty, the queue.", no_args_is_help=True)


@handoff_app.command("link")
def handoff_link(
    staff: Annotated[str, typer.Argument(help="The staff member's account name.")],
) -> None:
    """Print a one-time code (15 minutes) to send from one's own chat as 绑定<code>."""

    async def go() -> str:
        async with staff_services(load_settings()) as services:
            return await services.handoffs.link_code(staff)

    print(f"send 绑定{run_async(go())} from your own chat within 15 minutes")


@handoff_app.command("duty")
def handoff_duty(
    staff: Annotated[str, typer.Argument(help="The staff member now on duty.")],
) -> None:
    """Put ``staff`` on duty (everyone else off): alarms go to their linked chat."""

    async def go() -> bool:
        async with staff_services(load_settings()) as services:
            await services.handoffs.set_duty(staff)
            return await services.handoffs.on_duty() is not None

    linked = run_async(go())
    print(f"{staff} is on duty" + ("" if linked else " (no linked chat yet: `yimen handoff link`)"))


@handoff_app.command("list")
def handoff_list() -> None:
    """The open handoffs, oldest first: id, status, channel, waited, over the service level."""

    async def go() -> list[HandoffView]:
        async with staff_services(load_settings()) as services:
            return await services.handoffs.open_list()

    now = datetime.now(UTC)
    handoffs = run_async(go())
    if not handoffs:
        print("no conversation waits for a person")
    for h in handoffs:
        flag = "  OVER SLA" if h.overdue(now) else ""
        minutes = int(h.waited(now).total_seconds() // 60)
        print(
            f"{h.id:>5}  {h.status.value:<8} {h.channel:<9} {local_minute(h.opened_at)}  "
            f"{minutes} min  {h.claimed_by or '-'}  {h.reason}{flag}"
        )
