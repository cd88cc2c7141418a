"""The service catalogue's shape: pydantic models of catalogue.yml and calendar.yml.

The models check what one field can check (types, non-empty lists, a slot length for
a bookable service, what an agent brings for a service done by proxy); the checks
across entries (unique ids and words, windows that exist) are ``Catalogue``'s own.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class _Strict(BaseModel):
    """A frozen model that rejects unknown fields (a typo in a field name is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Centre(_Strict):
    """The service centre: where it is, how to call it, and its holiday calendar file."""

    name: Text
    address: Text
    phone: Text
    calendar: Text = "calendar.yml"  # relative to the catalogue file


class Hours(_Strict):
    """Working weekdays (ISO: 1 is Monday) and the opening sessions of a working day.

    The gap between two sessions is the lunch break.
    """

    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(min_length=1)
    sessions: list[tuple[time, time]] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Hours:
        previous = time.min
        for start, end in self.sessions:
            if not previous <= start < end:
                raise ValueError("sessions must be in order, each ending after it starts")
            previous = end
        return self


class Window(_Strict):
    """A window or department of the centre."""

    id: Ident
    name: Text
    place: Text
    phone: Text
    # Residents one slot of this window takes at once (the staff serving it in parallel).
    capacity: Annotated[int, Field(ge=1, le=100)] = 5


class Service(_Strict):
    """One matter residents come for, with everything the guide tells them."""

    id: Ident
    name: Text
    synonyms: list[Text] = []
    window: Ident
    materials: list[Text] = Field(min_length=1)
    proxy_materials: list[Text] = []
    bookable: bool
    slot_minutes: Annotated[int, Field(ge=5, le=240)] | None = None
    proxy: bool
    fee: Text
    time_limit: Text
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Service:
        if self.bookable and self.slot_minutes is None:
            raise ValueError("a bookable service needs slot_minutes")
        if self.proxy and not self.proxy_materials:
            raise ValueError(
                "a service done by proxy needs proxy_materials (委托书, the agent's ID)"
            )
        return self

    @property
    def words(self) -> tuple[str, ...]:
        """The name and every synonym."""
        return (self.name, *self.synonyms)


class Topic(_Strict):
    """Public services the street office does not handle, and who does."""

    name: Text
    words: list[Text] = Field(min_length=1)
    where: Text
    note: str = ""  # what the street does for it, said after who handles it


class OutOfRemit(_Strict):
    """What the office does not handle, and the hotline that routes everything else."""

    hotline: Text
    topics: list[Topic] = []


class CatalogueFile(_Strict):
    """catalogue.yml as written."""

    centre: Centre
    hours: Hours
    windows: list[Window] = Field(min_length=1)
    services: list[Service] = Field(min_length=1)
    out_of_remit: OutOfRemit
    common: list[Ident] = []


class Holiday(_Strict):
    """Days off, inclusive."""

    name: Text
    first: date = Field(alias="from")
    last: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Holiday:
        if self.last < self.first:
            raise ValueError("a holiday must end on or after the day it starts")
        return self


class Year(_Strict):
    """One year's holidays and make-up working days (调休)."""

    source: Text
    provisional: bool = False
    holidays: list[Holiday] = []
    workdays: list[date] = []


class CalendarFile(_Strict):
    """calendar.yml as written."""

    years: dict[int, Year] = Field(min_length=1)
