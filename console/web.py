"""The console's aiohttp sub-application: sign-in, sessions, CSRF, pages, rendering, audit.

See the package docstring (console/__init__.py) for the API other modules use.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from console.accounts import AccountBook, StaffMember
from console.audit import Actor, AuditLog, State
from handlers.catalog import Catalog
from integration.cases import local_minute
from integration.models import StaffRole
from integration.privacy import mask

if TYPE_CHECKING:
    from bots.runtime import Services
    from bots.settings import Settings

PREFIX = "/console"
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "yimen_console"
PRE_COOKIE = "yimen_console_pre"  # the sign-in form's CSRF token, before any session
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNIN_LIMIT = 10  # wrong passwords per account, and per address, in a window
SIGNIN_WINDOW = 60.0
ALL_ROLES = frozenset(StaffRole)
# Where each nav slot sits; a slot shows once a module fills it (Console.add_page).
NAV_SLOTS = ("inbox", "cases", "appointments", "volunteers", "dashboard", "audit")
# Console pages: only Yimen's own scripts, styles, fonts and images.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
MEMBER: web.RequestKey[StaffMember] = web.RequestKey("console.member", StaffMember)
SIGNIN_CSRF: web.RequestKey[str] = web.RequestKey("console.signin_csrf", str)

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


@dataclass(frozen=True, slots=True)
class NavItem:
    """A nav entry: its slot, label, link, and the roles that see it."""

    slot: str
    label: str
    href: str
    roles: frozenset[StaffRole] = ALL_ROLES


CONSOLE: web.AppKey[Console] = web.AppKey("console")


class Console:
    """The console: its sub-application, templates, nav, and the services it works with.

    ``bots.app`` builds one with the settings, mounts ``app`` at /console, and binds
    the services once they are open (``bind``), as it does for the web chat.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = web.Application(middlewares=[self._guard])
        self.app[CONSOLE] = self
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            enable_async=False,
        )
        self.templates.filters["local"] = lambda moment: local_minute(moment) if moment else ""
        # Residents' and volunteers' free text on pages without a need to know the numbers.
        self.templates.filters["masked"] = mask
        self.nav: dict[str, NavItem] = {}
        self._public: set[str] = set()
        self._services: Services | None = None
        self.accounts: AccountBook | None = None
        self.audit_log: AuditLog | None = None
        self.app.router.add_static("/static", STATIC, append_version=True, name="static")
        self.add_routes(
            [
                web.get("", _home, name="home"),
                web.get("/", _home),
                web.get("/signin", _signin_form, name="signin"),
                web.post("/signin", _signin),
                web.post("/signout", _signout, name="signout"),
                web.get("/audit", _audit_page, name="audit"),
            ]
        )
        self._public.update({f"{PREFIX}/signin"})
        self.add_page(
            "audit", "审计日志", f"{PREFIX}/audit", roles={StaffRole.admin, StaffRole.staff}
        )

    # -- what other modules call -------------------------------------------------

    def add_routes(self, routes: list[web.RouteDef]) -> None:
        """Add routes under /console (paths given without the prefix)."""
        self.app.router.add_routes(routes)

    def add_page(
        self,
        slot: str,
        label: str,
        href: str,
        roles: frozenset[StaffRole] | set[StaffRole] = ALL_ROLES,
    ) -> None:
        """Fill a nav slot (one of ``NAV_SLOTS``) with a link shown to ``roles``."""
        if slot not in NAV_SLOTS:
            raise ValueError(f"unknown nav slot {slot!r}; one of {NAV_SLOTS}")
        self.nav[slot] = NavItem(slot, label, href, frozenset(roles))

    def bind(self, services: Services) -> None:
        """The services, once open (the console's routes need them)."""
        self._services = services
        self.accounts = AccountBook(services.sessions)
        self.audit_log = AuditLog(services.sessions)

    @property
    def services(self) -> Services:
        """The open services (raises before ``bind``)."""
        if self._services is None:
            raise RuntimeError("the console is not bound to services yet")
        return self._services

    def nav_for(self, member: StaffMember | None) -> list[NavItem]:
        """The nav entries this member sees, in slot order."""
        if member is None:
            return []
        return [
            self.nav[slot]
            for slot in NAV_SLOTS
            if slot in self.nav and member.role in self.nav[slot].roles
        ]

    # -- the guard: sessions and CSRF ------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every console request: signed in (else to sign-in), and a CSRF token on writes."""
        path = request.path
        if path.startswith(f"{PREFIX}/static/"):
            return await handler(request)
        if path not in self._public:
            token = request.cookies.get(COOKIE, "")
            member = await self._accounts().member(token) if token else None
            if member is None:
                location = f"{PREFIX}/signin?next={quote(request.path_qs, safe='')}"
                raise (web.HTTPFound if request.method in SAFE_METHODS else web.HTTPSeeOther)(
                    location
                )
            request[MEMBER] = member
            if request.method not in SAFE_METHODS:
                await _check_csrf(request, member.csrf)
        response = await handler(request)
        response.headers["Content-Security-Policy"] = POLICY
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _accounts(self) -> AccountBook:
        if self.accounts is None:
            raise web.HTTPServiceUnavailable()
        return self.accounts


async def _check_csrf(request: web.Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(text="CSRF token missing or wrong")


# -- the API for console modules ------------------------------------------------


def console_of(request: web.Request) -> Console:
    """The console serving this request."""
    return request.app[CONSOLE]


def services(request: web.Request) -> Services:
    """Yimen's open services (cases, sessions, catalog, dispatch...)."""
    return console_of(request).services


def member(request: web.Request) -> StaffMember:
    """The signed-in staff member (every console handler has one)."""
    found: StaffMember = request[MEMBER]
    return found


def require_role(*roles: StaffRole) -> Callable[[H], H]:
    """Decorate a handler: 403 unless the signed-in member has one of ``roles``."""
    allowed = frozenset(roles)

    def decorate(handler: H) -> H:
        @functools.wraps(handler)
        async def checked(*args: Any, **kwargs: Any) -> web.StreamResponse:
            # A function handler gets (request); a method (self, request).
            request = next(a for a in args if isinstance(a, web.BaseRequest))
            if member(request).role not in allowed:  # type: ignore[arg-type]
                raise web.HTTPForbidden(text="not for this role")
            return await handler(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def actor(request: web.Request) -> Actor:
    """The audit log's actor for this request (for ``console.audit.record`` in a transaction)."""
    who = member(request)
    return Actor(who.username, who.role.value, request.remote or "")


async def audit(
    request: web.Request, action: str, target: str = "", before: State = None, after: State = None
) -> None:
    """Append an audit entry for the signed-in member's action (its own transaction)."""
    log = console_of(request).audit_log
    assert log is not None
    await log.write(actor(request), action, target, before, after)


def text(request: web.Request, key: str, **values: Any) -> str:
    """A console text from the catalogue (handlers/locale/zh_CN.console.yml)."""
    return services(request).catalog(f"console.{key}", **values)


def intent_name(catalog: Catalog, intent: str) -> str:
    """What staff read for a recorded intent: 未识别, 反映·噪音扰民…; the name if unlisted."""
    return catalog.get(f"console.intent.{intent}", intent)


def actor_name(catalog: Catalog, actor: str) -> str:
    """Who did it, as staff read it: console:li → 工作人员 li, resident → 居民."""
    kind, _, name = actor.partition(":")
    label = catalog.get(f"console.actor.{kind}", kind)
    return f"{label} {name}" if name else label


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """A page from console/templates, with ``member``, ``csrf``, ``nav`` and ``path`` set.

    Everything is HTML-escaped unless a template says otherwise. Forms put
    ``<input type="hidden" name="csrf" value="{{ csrf }}">`` inside; scripts send the
    token of ``<meta name="csrf">`` as the ``X-CSRF-Token`` header.
    """
    console = console_of(request)
    who: StaffMember | None = request.get(MEMBER)
    csrf = who.csrf if who is not None else request.get(SIGNIN_CSRF, "")
    catalog = console.services.catalog
    values = {
        "member": who,
        "csrf": csrf,
        "nav": console.nav_for(who),
        "path": request.path,
        "static": lambda name: f"{PREFIX}/static/{name}",
        "t": lambda key: catalog.get(key, key),  # category.noise, status.…
        "intent_name": functools.partial(intent_name, catalog),
        "actor_name": functools.partial(actor_name, catalog),
        "channel_name": lambda key: catalog.get(f"handoff.channel.{key}", key),
        "role_name": lambda key: catalog.get(f"console.role.{key}", key),
        "action_name": lambda key: catalog.get(f"console.action.{key}", key),
        **(context or {}),
    }
    page = console.templates.get_template(template).render(values)
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def see_other(location: str) -> web.Response:
    """A 303 to ``location``: what a handler returns after a form."""
    return web.Response(status=303, headers={"Location": location})


def signed_in_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS, with an expiry."""
    from console.accounts import SESSION_TTL

    response.set_cookie(
        COOKIE,
        token,
        path=PREFIX,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )


# -- sign-in, sign-out, home, audit -----------------------------------------------


async def _home(request: web.Request) -> web.StreamResponse:
    nav = console_of(request).nav_for(member(request))
    raise web.HTTPFound(nav[0].href if nav else f"{PREFIX}/audit")


def _safe_next(value: str) -> str:
    """Only a path inside the console: never another site (an open redirect)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(f"{PREFIX}/") or value.startswith("//"):
        return PREFIX + "/"
    return value


async def _signin_form(request: web.Request) -> web.StreamResponse:
    return _signin_page(request, error="")


def _signin_page(request: web.Request, error: str, status: int = 200) -> web.Response:
    pre = secrets.token_urlsafe(32)
    request[SIGNIN_CSRF] = pre
    response = render(
        request,
        "signin.html",
        {"error": error, "next": _safe_next(request.query.get("next", ""))},
        status=status,
    )
    response.set_cookie(
        PRE_COOKIE,
        pre,
        path=f"{PREFIX}/signin",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        max_age=3600,
    )
    return response


async def _signin(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    await _check_csrf(request, request.cookies.get(PRE_COOKIE, ""))
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    where = _safe_next(str(form.get("next", "")))
    found = console.services
    keys = found.keys
    counters = (
        keys.build("signin", "console", f"account:{username}"),
        keys.build("signin", "console", f"address:{request.remote or ''}"),
    )
    # Peek (count nothing) first: past the limit, even the right password is refused.
    seen = [await found.throttle.hit(key, SIGNIN_WINDOW, 0) for key in counters]
    if max(seen) >= SIGNIN_LIMIT:
        assert console.audit_log is not None
        await console.audit_log.write(Actor(username, "", request.remote or ""), "signin.throttled")
        return _signin_page(request, text(request, "signin.throttled"), status=429)
    account_id = await console._accounts().verify(username, password)
    if account_id is None:
        for key in counters:
            await found.throttle.hit(key, SIGNIN_WINDOW)
        return _signin_page(request, text(request, "signin.wrong"), status=401)
    token = await console._accounts().open_session(account_id)
    assert console.audit_log is not None
    await console.audit_log.write(Actor(username, "", request.remote or ""), "signin")
    response = see_other(where)
    signed_in_cookie(request, response, token)
    response.del_cookie(PRE_COOKIE, path=f"{PREFIX}/signin")
    return response


async def _signout(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    await console._accounts().close_session(request.cookies.get(COOKIE, ""))
    await audit(request, "signout")
    response = see_other(f"{PREFIX}/signin")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


@require_role(StaffRole.admin, StaffRole.staff)
async def _audit_page(request: web.Request) -> web.StreamResponse:
    log = console_of(request).audit_log
    assert log is not None
    query = request.query
    before = query.get("before", "")
    rows = await log.recent(
        100,
        before_id=int(before) if before.isdigit() else None,
        actor=query.get("actor", "")[:64],
        action=query.get("action", "")[:64],
        target=query.get("target", "")[:128],
    )
    return render(request, "audit.html", {"rows": rows, "query": query})
