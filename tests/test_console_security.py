"""The console's security: sessions, CSRF, throttling, escaping, the audit log.

Every route of the console's sub-application is walked, so a page added later is
checked for sign-in and CSRF without a new test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from bots.app import SERVICES
from console.web import CONSOLE, COOKIE
from integration.models import AuditEntry
from tests.console_client import PASSWORD, console_client, csrf_of, page_csrf, sign_in

pytestmark = pytest.mark.slow


def console_routes(client: TestClient[Any, Any]) -> list[tuple[str, str]]:
    """(method, path) of every console route, dynamic parts filled with a sample value."""
    console = client.server.app[CONSOLE]
    routes = []
    for route in console.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path is None or route.method == "HEAD":
            continue
        path = re.sub(r"\{[^}]+\}", "YM2601010001", path)
        routes.append((route.method, path))
    return routes


@pytest.fixture
async def client(data_dir: Path, backend: dict[str, Any]) -> Any:
    async with console_client(data_dir, **backend) as client:
        yield client


async def test_every_console_url_without_a_session_goes_to_sign_in(client: Any) -> None:
    routes = console_routes(client)
    assert ("GET", "/console/audit") in routes and len(routes) >= 5
    for method, path in routes:
        if path.startswith("/console/static") or path == "/console/signin":
            continue
        response = await client.request(method, path, allow_redirects=False)
        assert response.status in (302, 303), (method, path, response.status)
        assert response.headers["Location"].startswith("/console/signin?next="), (method, path)
    # A forged cookie is no session either.
    client.session.cookie_jar.update_cookies({COOKIE: "forged"})
    response = await client.get("/console/audit", allow_redirects=False)
    assert response.status == 302


async def test_writes_without_the_sessions_csrf_token_are_refused(client: Any) -> None:
    assert (await sign_in(client, "boss")).status == 303
    token = await page_csrf(client)
    writes = [(m, p) for m, p in console_routes(client) if m not in ("GET", "HEAD")]
    assert ("POST", "/console/signout") in writes
    for method, path in writes:
        if path == "/console/signin":
            continue
        for data in ({}, {"csrf": "forged"}, {"csrf": token + "x"}):
            response = await client.request(method, path, data=data, allow_redirects=False)
            assert response.status == 403, (method, path, data)
    # Still signed in: the refused sign-out did nothing.
    assert (await client.get("/console/audit")).status == 200
    # The sign-in form has its own token.
    response = await client.post(
        "/console/signin", data={"username": "boss", "password": PASSWORD, "csrf": "forged"}
    )
    assert response.status == 403


async def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(client: Any) -> None:
    response = await sign_in(client, "boss")
    assert response.status == 303
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/console"
    assert int(cookie["max-age"]) > 0
    page = await client.get("/console/audit")
    assert page.status == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    body = await page.text()
    assert "boss" in body and "signin" in body  # its own sign-in is audited
    token = csrf_of(body)
    old = cookie.value
    response = await client.post("/console/signout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303
    # The old cookie no longer works, even sent again by hand.
    client.session.cookie_jar.update_cookies({COOKIE: old})
    response = await client.get("/console/audit", allow_redirects=False)
    assert response.status == 302


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(client: Any) -> None:
    wrong = await sign_in(client, "boss", "not the password")
    unknown = await sign_in(client, "nobody", "not the password")
    assert wrong.status == unknown.status == 401
    assert "用户名或密码错误" in await wrong.text()
    assert COOKIE not in wrong.cookies


async def test_the_eleventh_wrong_password_in_a_minute_is_refused(client: Any) -> None:
    for _ in range(10):
        assert (await sign_in(client, "desk", "wrong password!")).status == 401
    # The 11th attempt is refused, even with the right password.
    refused = await sign_in(client, "desk")
    assert refused.status == 429
    assert "次数过多" in await refused.text()
    # Another account from another address is not locked out by it.
    other = await sign_in(client, "boss")
    assert other.status in (303, 429)


async def test_the_limit_holds_per_address_across_accounts(client: Any) -> None:
    for i in range(10):
        assert (await sign_in(client, f"guess{i}", "wrong password!")).status == 401
    assert (await sign_in(client, "boss")).status == 429


async def test_only_paths_inside_the_console_are_followed_after_sign_in(client: Any) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/chat"):
        form = await client.get("/console/signin?next=https://evil.example/")
        assert 'name="next" value="/console/"' in await form.text()
        token = csrf_of(await form.text())
        response = await client.post(
            "/console/signin",
            data={"username": "boss", "password": PASSWORD, "csrf": token, "next": target},
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.headers["Location"] == "/console/", target


async def test_community_and_grid_accounts_cannot_read_the_audit_log(client: Any) -> None:
    assert (await sign_in(client, "jinhui")).status == 303
    assert (await client.get("/console/audit", allow_redirects=False)).status == 403


async def test_the_audit_log_is_append_only_in_the_database(client: Any) -> None:
    assert (await sign_in(client, "boss")).status == 303
    sessions = client.server.app[SERVICES].sessions
    for statement in (update(AuditEntry).values(actor="someone"), delete(AuditEntry)):
        with pytest.raises((DBAPIError, IntegrityError, OperationalError)):
            async with sessions.begin() as session:
                await session.execute(statement)
    async with sessions() as session:
        count = await session.scalar(text("SELECT count(*) FROM audit_log"))
    assert count == 1


async def test_what_staff_type_is_kept_as_text_and_shown_escaped(client: Any) -> None:
    assert (await sign_in(client, "boss")).status == 303
    nasty = "<script>alert(1)</script>'; DROP TABLE audit_log; --"
    response = await client.get("/console/audit", params={"actor": nasty, "target": nasty})
    body = await response.text()
    assert response.status == 200
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # The table is still there.
    assert (await client.get("/console/audit")).status == 200
