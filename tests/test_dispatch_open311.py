"""The Open311 GeoReport v2 client against a GeoReport server emulated on loopback.

The emulator speaks the spec's wire format in JSON and XML, and strays from it the
ways real servers do; the client must read all of it and map failures to types.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bots.runtime import DISTRICT, place_for
from integration.dispatch.errors import (
    DispatchAuthError,
    DispatchProtocolError,
    DispatchRejected,
    DispatchUnavailable,
    DispatchUnsupported,
)
from integration.dispatch.open311 import (
    SAME_REQUEST_FAULTS,
    Open311Platform,
    ServiceMap,
    decode,
)
from integration.dispatch.types import CaseTicket
from integration.models import CaseStatus
from nlu.gazetteer import Gazetteer
from tests.emulators.open311 import Open311Emulator

NOW = datetime.now(UTC)


def ticket(number: str = "YM2611250001", **changes: object) -> CaseTicket:
    values: dict[str, object] = {
        "key": f"yimen-{number}-create-1",
        "number": number,
        "category": "noise",
        "description": "楼下烧烤店每天半夜还很吵",
        "address": "金辉小区3号楼",
        "latitude": 39.6091,
        "longitude": 109.7712,
        "media_urls": ("http://example.org/p/1.jpg",),
        "created_at": NOW,
    }
    values.update(changes)
    return CaseTicket(**values)  # type: ignore[arg-type]


def client(
    emulator: Open311Emulator, http: aiohttp.ClientSession, fmt: str = "json", **options: object
) -> Open311Platform:
    return Open311Platform(
        http,
        emulator.base,
        api_key=emulator.api_key,
        jurisdiction="yjhl",
        fmt=fmt,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_categories_map_to_service_codes_read_from_get_services(
    open311: Open311Emulator, http: aiohttp.ClientSession, fmt: str
) -> None:
    platform = client(open311, http, fmt)

    assert await platform.service_code("noise") == "001"  # by service_name 噪音扰民
    assert await platform.service_code("sanitation") == "002"  # by keywords
    assert await platform.service_code("facility") == "003"  # by keywords 公共设施
    assert await platform.service_code("parking") == "099"  # no match: the default


def test_the_mapping_file_prefers_exact_codes() -> None:
    services = [{"service_code": "A1", "service_name": "噪音"}, {"service_code": "B2"}]
    mapping = ServiceMap(categories={"noise": (("B2",), ("噪音",))})

    assert mapping.resolve(services) == {"noise": "B2"}


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_create_posts_the_spec_form_and_reads_the_id(
    open311: Open311Emulator, http: aiohttp.ClientSession, fmt: str
) -> None:
    receipt = await client(open311, http, fmt).create(ticket(), maybe_sent=False)

    [form] = open311.posts
    assert receipt.platform_id in open311.requests and receipt.token is None
    assert form["service_code"] == "001"
    assert form["description"] == "[YM2611250001] 楼下烧烤店每天半夜还很吵"
    assert (form["lat"], form["long"]) == ("39.609100", "109.771200")
    assert form["address_string"] == "金辉小区3号楼"
    assert form["media_url"] == "http://example.org/p/1.jpg"
    assert (form["api_key"], form["jurisdiction_id"]) == ("test-key", "yjhl")


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_token_answer_is_resolved_later(
    open311: Open311Emulator, http: aiohttp.ClientSession, fmt: str
) -> None:
    open311.quirks.token, open311.quirks.token_pending = True, 1
    platform = client(open311, http, fmt)

    receipt = await platform.create(ticket(), maybe_sent=False)

    assert receipt.platform_id is None and receipt.token
    assert await platform.resolve_token(receipt.token) is None  # not made yet
    assert await platform.resolve_token(receipt.token) in open311.requests
    assert await platform.resolve_token("tok-unknown") is None


async def test_a_post_answered_with_the_whole_request_object(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    open311.quirks.post_returns_request = True

    receipt = await client(open311, http).create(ticket(), maybe_sent=False)

    assert receipt.platform_id in open311.requests


async def test_xml_answers_to_json_requests_are_read(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    open311.quirks.xml_always = True

    receipt = await client(open311, http).create(ticket(), maybe_sent=False)

    assert receipt.platform_id in open311.requests


@pytest.mark.parametrize("as_object", [False, True], ids=["array", "object"])
async def test_errors_become_typed_exceptions(
    open311: Open311Emulator, http: aiohttp.ClientSession, as_object: bool
) -> None:
    open311.quirks.errors_as_object = as_object
    wrong_key = Open311Platform(http, open311.base, api_key="wrong")

    with pytest.raises(DispatchAuthError) as auth:
        await wrong_key.create(ticket(), maybe_sent=False)
    with pytest.raises(DispatchRejected) as rejected:
        await client(open311, http).create(
            ticket(latitude=None, longitude=None, address=""), maybe_sent=False
        )

    assert auth.value.status == 403 and auth.value.retryable
    assert auth.value.errors[0][0] == "403" and "api_key" in auth.value.errors[0][1]
    assert rejected.value.status == 400 and not rejected.value.retryable
    assert "location" in rejected.value.errors[0][1]
    assert open311.requests == {}


async def test_server_errors_and_timeouts_are_retryable(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    open311.faults.fail = [500, 503]
    platform = client(open311, http)

    with pytest.raises(DispatchUnavailable) as first:
        await platform.create(ticket(), maybe_sent=False)
    with pytest.raises(DispatchUnavailable) as second:
        await platform.create(ticket(), maybe_sent=False)
    open311.faults.delay = 30.0  # the session's 1.5 s timeout gives up first
    with pytest.raises(DispatchUnavailable, match="timed out"):
        await platform.create(ticket(), maybe_sent=False)

    assert (first.value.status, second.value.status) == (500, 503)
    assert first.value.retryable and second.value.retryable


async def test_an_address_without_coordinates_gets_the_gazetteers_marked_approximate(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    unplaced = ticket(latitude=None, longitude=None)
    gazetteer = Gazetteer.load()
    platform = client(open311, http, locate=functools.partial(place_for, gazetteer))

    receipt = await platform.create(unplaced, maybe_sent=False)

    assert receipt.platform_id is not None
    posted = open311.posts[-1]
    assert (posted["lat"], posted["long"]) == ("39.609100", "109.771200")
    assert posted["address_string"] == posted["address"] == "金辉小区3号楼"
    assert posted["description"].startswith("[YM2611250001] 楼下烧烤店每天半夜还很吵")
    assert "坐标为金辉小区的大致位置" in posted["description"]


async def test_a_pinned_case_sends_its_own_coordinates_unmarked(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    gazetteer = Gazetteer.load()
    platform = client(open311, http, locate=functools.partial(place_for, gazetteer))
    await platform.create(ticket(latitude=39.5, longitude=109.5), maybe_sent=False)
    posted = open311.posts[-1]
    assert (posted["lat"], posted["long"]) == ("39.500000", "109.500000")
    assert "大致位置" not in posted["description"]


def test_the_best_known_place_is_the_community_then_the_street_then_the_district() -> None:
    gazetteer = Gazetteer.load()
    community = place_for(gazetteer, "金辉小区3号楼")
    street = place_for(gazetteer, "交通街道东边那条路上")
    district = place_for(gazetteer, "幸福路88号")
    assert community is not None and community.near == "金辉小区"
    assert street is not None and street.near == "交通街道"
    assert district is not None and district.near == DISTRICT
    on_street = [c for c in gazetteer if c.street == "交通街道"]
    assert (
        min(c.latitude for c in on_street) <= street.latitude <= max(c.latitude for c in on_street)
    )
    assert (street.latitude, street.longitude) != (district.latitude, district.longitude)
    assert place_for(gazetteer, "  ") is None


async def test_a_server_that_reads_only_address_takes_an_unknown_place(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    """幸福路88号 is in no gazetteer: the non-standard ``address`` field carries it."""
    open311.quirks.needs_latlong = True
    receipt = await client(open311, http).create(
        ticket(address="幸福路88号", latitude=None, longitude=None), maybe_sent=False
    )
    assert receipt.platform_id is not None
    assert "lat" not in open311.posts[-1] and open311.posts[-1]["address"] == "幸福路88号"


async def test_a_500_to_the_same_request_while_the_server_answers_is_named_clearly(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    open311.quirks.required = ("attribute[building_type]",)
    platform = client(open311, http)
    for _ in range(SAME_REQUEST_FAULTS - 1):
        with pytest.raises(DispatchUnavailable) as failed:
            await platform.create(ticket(), maybe_sent=False)
        assert "same request" not in str(failed.value)
    with pytest.raises(DispatchUnavailable) as failed:
        await platform.create(ticket(), maybe_sent=False)
    assert failed.value.retryable  # the server may yet recover; the reason is for staff
    reason = str(failed.value)
    assert f"HTTP 500 to this same request {SAME_REQUEST_FAULTS} times" in reason
    assert "address_string" in reason and "api_key" not in reason


async def test_a_server_in_trouble_is_never_taken_for_a_bad_request(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    platform = client(open311, http)
    await platform.service_code("noise")  # the codes are known before the trouble
    open311.quirks.broken = 502
    for _ in range(SAME_REQUEST_FAULTS + 2):
        with pytest.raises(DispatchUnavailable) as failed:
            await platform.create(ticket(), maybe_sent=False)
        assert "same request" not in str(failed.value)
    open311.quirks.broken = 0
    assert (await platform.create(ticket(), maybe_sent=False)).platform_id is not None
    assert len(open311.created_for("YM2611250001")) == 1


def test_html_and_malformed_answers_are_protocol_errors() -> None:
    with pytest.raises(DispatchProtocolError, match="HTML"):
        decode("<!DOCTYPE html><html><body>311 portal</body></html>")
    with pytest.raises(DispatchProtocolError, match="malformed JSON"):
        decode('[{"service_request_id": ')
    with pytest.raises(DispatchProtocolError, match="malformed XML"):
        decode("<service_requests><request>")
    assert decode('<?xml version="1.0"?><service_requests/>') == []


async def test_a_maybe_sent_create_finds_the_request_instead_of_posting_again(
    open311: Open311Emulator, http: aiohttp.ClientSession
) -> None:
    platform = client(open311, http)
    first = await platform.create(ticket(), maybe_sent=False)
    await platform.create(ticket("YM2611250002"), maybe_sent=False)

    again = await platform.create(ticket(), maybe_sent=True)
    other = await platform.create(ticket("YM2611250003"), maybe_sent=True)  # never landed

    assert again.platform_id == first.platform_id
    assert other.platform_id not in (None, first.platform_id)
    assert len(open311.posts) == 3


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_statuses_map_onto_our_lifecycle(
    open311: Open311Emulator, http: aiohttp.ClientSession, fmt: str
) -> None:
    platform = client(open311, http, fmt)
    ids = [
        (await platform.create(ticket(f"YM261125000{i}"), maybe_sent=False)).platform_id or ""
        for i in range(3)
    ]
    later = NOW + timedelta(minutes=5)
    open311.set_status(ids[1], "open", "已派城管中队", at=later)
    open311.set_status(ids[2], "closed", "已劝导商户", at=later)

    reports = await platform.statuses([*ids, "404404"])
    [single] = await platform.statuses([ids[2]])

    assert [(r.platform_id, r.status, r.note) for r in reports] == [
        (ids[0], CaseStatus.accepted, ""),
        (ids[1], CaseStatus.in_progress, "已派城管中队"),
        (ids[2], CaseStatus.resolved, "已劝导商户"),
    ]
    assert reports[2].updated_at == later.replace(microsecond=0)
    assert single == reports[2]
    assert await platform.statuses(["404404"]) == []


async def test_georeport_cannot_reopen(http: aiohttp.ClientSession) -> None:
    platform = Open311Platform(http, "http://127.0.0.1:9/")

    assert platform.can_reopen is False
    with pytest.raises(DispatchUnsupported):
        await platform.reopen("1", "key", "YM2611250001", "没解决")
