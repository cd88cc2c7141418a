"""`yimen volunteers list|approve|reject|invite|report`: staff's view of volunteers.

Until the console exists, staff approve or reject registrations, issue a community's
invitation codes (single use, expiring; a code approves its registration at once) and
write the monthly report a street office sends upward (CSV or XLSX): one row per
volunteer, then the totals per community and per party branch.
"""

from __future__ import annotations

import csv
import enum
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from bots.commands.items import community_of, staff_call
from integration.cases import local_minute
from integration.models import VolunteerStatus
from integration.privacy import mask
from integration.volunteer_report import MonthReport, VolunteerRecords, month_bounds
from integration.volunteers import INVITE_DAYS, VolunteerBook, VolunteerView

volunteers_app = typer.Typer(help="Party-member volunteers.", no_args_is_help=True)
HEADER = ("kind", "volunteer", "name", "community", "branch", "items", "hours", "residents")


class Format(enum.StrEnum):
    """The report's file format."""

    csv = "csv"
    xlsx = "xlsx"


def line(volunteer: VolunteerView) -> str:
    """One volunteer as staff lists show them, the phone masked."""
    return (
        f"{volunteer.id:>5}  {volunteer.status.value:<9} {volunteer.name}  "
        f"{mask(volunteer.phone)}  {volunteer.community}  {volunteer.branch}  "
        f"{volunteer.employer}  {','.join(volunteer.skills)}"
        f"{f'（{volunteer.skill_note}）' if volunteer.skill_note else ''}  "
        f"{local_minute(volunteer.created_at)}"
    )


@volunteers_app.command("list")
def volunteers_list(
    status: Annotated[
        list[VolunteerStatus] | None, typer.Option(help="Only this status (repeatable).")
    ] = None,
) -> None:
    """One line per volunteer: number, status, name, phone (masked), community, branch."""

    found = staff_call(lambda sessions: VolunteerBook(sessions).list_volunteers(status or ()))
    if not found:
        print("no volunteers")
    for volunteer in found:
        print(line(volunteer))


def _decide(volunteer: int, approve: bool, actor: str) -> None:
    view = staff_call(lambda sessions: VolunteerBook(sessions).decide(volunteer, approve, actor))
    print(f"{view.id} -> {view.status.value}")


@volunteers_app.command("approve")
def volunteers_approve(
    volunteer: Annotated[int, typer.Argument(help="The volunteer number, from the list.")],
    actor: Annotated[str, typer.Option(help="Who approved.")] = "staff",
) -> None:
    """Approve a pending registration: the volunteer may then claim items."""
    _decide(volunteer, True, actor)


@volunteers_app.command("reject")
def volunteers_reject(
    volunteer: Annotated[int, typer.Argument(help="The volunteer number, from the list.")],
    actor: Annotated[str, typer.Option(help="Who rejected.")] = "staff",
) -> None:
    """Reject a pending registration."""
    _decide(volunteer, False, actor)


@volunteers_app.command("invite")
def volunteers_invite(
    community: Annotated[str, typer.Option(help="The community (gazetteer name).")],
    days: Annotated[int, typer.Option(min=1, help="Days until the code expires.")] = INVITE_DAYS,
    actor: Annotated[str, typer.Option(help="Who issued it.")] = "staff",
) -> None:
    """Issue a single-use invitation code: a registration with it is approved at once."""
    name = community_of(community)

    code, expires = staff_call(
        lambda sessions: VolunteerBook(sessions).invite(name, actor, days=days)
    )
    print(f"{code}  {name}  expires {local_minute(expires)}")


def rows(report: MonthReport) -> Iterator[tuple[object, ...]]:
    """The report as rows: volunteers, then totals per community and per branch."""
    yield HEADER
    for row in report.rows:
        r = row.record
        yield (
            "volunteer",
            row.volunteer_id,
            row.name,
            row.community,
            row.branch,
            r.items,
            r.hours,
            r.residents,
        )
    for community, r in report.communities:
        yield ("community", "", "", community, "", r.items, r.hours, r.residents)
    for branch, r in report.branches:
        yield ("branch", "", "", "", branch, r.items, r.hours, r.residents)


def report_bytes(report: MonthReport, format: Format) -> bytes:
    """The report as a CSV (UTF-8 with a BOM: Excel reads it) or XLSX file's bytes."""
    if format is Format.csv:
        out = io.StringIO()
        csv.writer(out).writerows(rows(report))
        return out.getvalue().encode("utf-8-sig")
    from openpyxl import Workbook  # only the xlsx report needs it

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = report.month
    for row in rows(report):
        sheet.append(list(row))
    out_bytes = io.BytesIO()
    book.save(out_bytes)
    return out_bytes.getvalue()


@volunteers_app.command("report")
def volunteers_report(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM.")],
    format: Annotated[Format, typer.Option("--format", help="csv or xlsx.")] = Format.csv,
    output: Annotated[
        Path | None, typer.Option(help="The file to write (default: volunteers-MONTH.FORMAT).")
    ] = None,
) -> None:
    """Write the month's report: confirmed items done that month, hours, residents helped."""
    try:
        month_bounds(month)
    except ValueError:
        print(f"error: --month {month!r} is not YYYY-MM", file=sys.stderr)
        raise typer.Exit(2) from None

    report = staff_call(lambda sessions: VolunteerRecords(sessions).month(month))
    path = output or Path(f"volunteers-{month}.{format.value}")
    path.write_bytes(report_bytes(report, format))
    print(f"{path}: {len(report.rows)} volunteer(s)")
