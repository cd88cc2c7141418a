"""The service catalogue and its calendar: validation with file:line: field, and opening hours."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from integration.services import (
    DEFAULT_CATALOGUE,
    CatalogueError,
    ServiceCatalogue,
    load_catalogue,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def catalogue() -> ServiceCatalogue:
    return load_catalogue()


def broken(tmp_path: Path, old: str, new: str, *, calendar: tuple[str, str] | None = None) -> Path:
    """A copy of the shipped catalogue (and calendar) with one edit."""
    text = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "catalogue.yml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    shutil.copy(DEFAULT_CATALOGUE.parent / "calendar.yml", tmp_path / "calendar.yml")
    if calendar is not None:
        cal = tmp_path / "calendar.yml"
        cal_text = cal.read_text(encoding="utf-8")
        assert calendar[0] in cal_text
        cal.write_text(cal_text.replace(calendar[0], calendar[1], 1), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first occurrence of ``needle`` in ``path``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


# -- validation ----------------------------------------------------------------------------


def test_the_shipped_catalogue_is_valid(catalogue: ServiceCatalogue) -> None:
    names = {s.name for s in catalogue.services.values()}
    for wanted in (
        "居住证",
        "社保卡申领/补换",
        "城乡居民医保参保",
        "老年证",
        "高龄津贴",
        "低保申请",
    ):
        assert wanted in names
    for wanted in ("残疾证", "生育登记", "就业失业登记", "开具证明", "临时救助", "退役军人优待证"):
        assert wanted in names
    for service in catalogue.services.values():
        assert service.window in catalogue.windows
        if service.proxy:
            assert service.proxy_materials
    assert catalogue.out_of_remit.hotline == "12345"
    assert catalogue.window_for("senior_card").name == "老龄残联窗口"


def test_an_unknown_window_names_file_line_and_field(tmp_path: Path) -> None:
    path = broken(tmp_path, "    window: elderly_disabled\n", "    window: elderly\n")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problem = caught.value.problems[0]
    assert problem.line == line_of(path, "window: elderly")
    assert problem.field.endswith(".window")
    assert f"{path}:{problem.line}: services[" in str(caught.value)
    assert "no window 'elderly'" in str(caught.value)


def test_a_wrong_type_names_its_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "    slot_minutes: 20\n", "    slot_minutes: twenty\n")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    (problem,) = caught.value.problems
    assert problem.line == line_of(path, "slot_minutes: twenty")
    assert problem.field == "services[6].slot_minutes"


def test_a_missing_field_names_the_entry(tmp_path: Path) -> None:
    path = broken(tmp_path, "    fee: 免费（评定在指定医院进行）\n", "")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    (problem,) = caught.value.problems
    assert problem.field == "services[10].fee"
    assert problem.line == line_of(path, "- id: disability_card")
    assert "Field required" in problem.message


def test_a_bookable_service_needs_a_slot_length(tmp_path: Path) -> None:
    path = broken(tmp_path, "    slot_minutes: 15\n", "")
    with pytest.raises(CatalogueError, match="bookable service needs slot_minutes"):
        load_catalogue(path)


def test_a_misspelt_field_is_an_error(tmp_path: Path) -> None:
    path = broken(tmp_path, "    time_limit: 当场办结\n", "    timelimit: 当场办结\n")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    fields = {p.field for p in caught.value.problems}
    assert any(f.endswith(".timelimit") for f in fields)
    assert any(f.endswith(".time_limit") for f in fields)


def test_a_word_naming_two_services_is_an_error(tmp_path: Path) -> None:
    path = broken(tmp_path, "synonyms: [老年卡,", "synonyms: [低保, 老年卡,")
    wanted = r"services\[6\]\.synonyms\[0\]: '低保' already names 'senior_card'"
    with pytest.raises(CatalogueError, match=wanted):
        load_catalogue(path)


def test_a_service_word_out_of_remit_is_an_error(tmp_path: Path) -> None:
    path = broken(tmp_path, "words: [公积金,", "words: [老年证, 公积金,")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    (problem,) = caught.value.problems
    assert problem.field == "out_of_remit.topics[4].words[0]"
    assert problem.line == line_of(path, "words: [老年证, 公积金,")
    assert "'老年证' already names 'senior_card'" in problem.message


def test_broken_yaml_names_its_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "  name: 交通街道政务服务中心\n", "  name: [交通街道政务服务中心\n")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert caught.value.problems[0].field == "(yaml)"
    assert caught.value.problems[0].line > 0


def test_a_bad_calendar_names_its_own_file(tmp_path: Path) -> None:
    path = broken(tmp_path, "x", "x", calendar=("to: 2026-01-03}", "to: 2025-12-31}"))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    (problem,) = caught.value.problems
    assert caught.value.path == tmp_path / "calendar.yml"
    assert problem.field == "years[2026].holidays[0]"
    assert problem.line == line_of(tmp_path / "calendar.yml", "name: 元旦, from: 2026-01-01")


# -- the calendar --------------------------------------------------------------------------


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_open_on_a_weekday_within_hours(catalogue: ServiceCatalogue) -> None:
    assert catalogue.is_open(at(2026, 12, 4, 9, 0))  # a Friday
    assert catalogue.is_open(at(2026, 12, 4, 17, 29))


def test_closed_at_lunch_and_outside_hours(catalogue: ServiceCatalogue) -> None:
    assert not catalogue.is_open(at(2026, 12, 4, 12, 0))
    assert not catalogue.is_open(at(2026, 12, 4, 13, 29))
    assert catalogue.is_open(at(2026, 12, 4, 13, 30))
    assert not catalogue.is_open(at(2026, 12, 4, 8, 59))
    assert not catalogue.is_open(at(2026, 12, 4, 17, 30))
    assert not catalogue.is_open(at(2026, 12, 5, 10, 0))  # a plain Saturday


def test_closed_on_a_public_holiday(catalogue: ServiceCatalogue) -> None:
    assert not catalogue.is_open(at(2026, 10, 5, 10, 0))  # 国庆节, a Monday
    assert not catalogue.is_open(at(2026, 2, 17, 10, 0))  # 春节
    assert not catalogue.is_open(at(2027, 2, 8, 10, 0))  # 春节 2027 (provisional year)


def test_open_on_a_make_up_working_weekend(catalogue: ServiceCatalogue) -> None:
    assert catalogue.is_open(at(2026, 2, 14, 10, 0))  # 春节调休, a Saturday
    assert catalogue.is_open(at(2026, 9, 20, 15, 0))  # 国庆调休, a Sunday


def test_times_are_read_in_shanghai(catalogue: ServiceCatalogue) -> None:
    utc = ZoneInfo("UTC")
    assert catalogue.is_open(datetime(2026, 12, 4, 2, 0, tzinfo=utc))  # 10:00 in Shanghai
    assert not catalogue.is_open(datetime(2026, 12, 4, 10, 0, tzinfo=utc))  # 18:00
    assert catalogue.is_open(datetime(2026, 12, 4, 10, 0))  # naive: local time


def test_next_working_days_skip_holidays_and_take_make_up_days(catalogue: ServiceCatalogue) -> None:
    assert catalogue.next_working_days(date(2026, 9, 30), 3) == [
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),  # the 调休 Saturday
    ]
    assert catalogue.next_working_days(date(2026, 12, 4)) == [date(2026, 12, 7)]


def test_next_opening_after_lunch_and_over_a_weekend(catalogue: ServiceCatalogue) -> None:
    calendar = catalogue.calendar
    assert calendar.next_opening(at(2026, 12, 4, 12, 10)) == at(2026, 12, 4, 13, 30)
    assert calendar.next_opening(at(2026, 12, 4, 18, 0)) == at(2026, 12, 7, 9, 0)
    assert calendar.provisional == frozenset({2027})


def test_upcoming_holidays_and_make_up_days(catalogue: ServiceCatalogue) -> None:
    closures, workdays = catalogue.calendar.upcoming(date(2026, 9, 15))
    assert [c[0] for c in closures] == ["中秋节", "国庆节"]
    assert workdays == [date(2026, 9, 20), date(2026, 10, 10)]
    closures, _ = catalogue.calendar.upcoming(date(2026, 10, 3))  # under way
    assert closures[0] == ("国庆节", date(2026, 10, 1), date(2026, 10, 7))
    assert catalogue.calendar.upcoming(date(2026, 11, 1)) == ([], [])
