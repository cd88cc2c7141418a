"""Helpers for the console's tests: an app with accounts, and signing in over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bots.app import SERVICES, create_app
from bots.settings import Settings
from console.accounts import AccountBook
from integration.models import StaffRole

PASSWORD = "correct horse battery"
# Accounts every console test app has: (username, role, community).
ACCOUNTS = (
    ("boss", StaffRole.admin, ""),
    ("desk", StaffRole.staff, ""),
    ("jinhui", StaffRole.community, "金辉小区"),
    ("grid7", StaffRole.grid, "金辉小区"),
)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def console_client(data_dir: Path, **overrides: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A test client of the whole app, with the console's test accounts made."""
    settings = Settings(data_dir=data_dir, push_poll_interval=0.1, **overrides)
    async with TestClient(TestServer(create_app(settings))) as client:
        book = AccountBook(client.server.app[SERVICES].sessions)
        for username, role, community in ACCOUNTS:
            await book.create(username, PASSWORD, role, community)
        yield client


def csrf_of(page: str) -> str:
    """The CSRF token in a page's form."""
    found = _CSRF.search(page)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def sign_in(client: TestClient[Any, Any], username: str, password: str = PASSWORD) -> Any:
    """Sign in through the form; the response (a 303 on success)."""
    form = await client.get("/console/signin")
    token = csrf_of(await form.text())
    return await client.post(
        "/console/signin",
        data={"username": username, "password": password, "csrf": token, "next": "/console/"},
        allow_redirects=False,
    )


async def page_csrf(client: TestClient[Any, Any], path: str = "/console/audit") -> str:
    """The signed-in session's CSRF token, read from a page."""
    response = await client.get(path)
    return csrf_of(await response.text())


async def report(client: TestClient[Any, Any], chat: str, *messages: str) -> str:
    """A resident's conversation through the real pipeline and NLU; the case number opened."""
    from handlers.messages import Inbound

    services = client.server.app[SERVICES]
    assert services.pipeline is not None
    for index, message in enumerate(messages):
        await services.pipeline.handle(Inbound("webchat", chat, chat, f"{chat}-{index}", message))
    opened = await services.cases.open_cases("webchat", chat)
    assert opened, f"no case opened by {messages}"
    return opened[0].number


async def open_case(
    client: TestClient[Any, Any], address: str, description: str = "路灯不亮了", chat: str = "r1"
) -> str:
    """A case opened directly in the case book (no conversation); its number."""
    from integration.cases import CaseDraft

    services = client.server.app[SERVICES]
    view = await services.cases.create_case(
        CaseDraft("webchat", chat, chat, "facility", description, address, 39.6091, 109.7712)
    )
    return view.number
