"""The staff web console, served by `yimen run` at /console.

An aiohttp sub-application (``console.web.Console``) mounted by ``bots.app``, with
Jinja2 templates in console/templates/ and static files (ECharts, vendored from the npm
registry; the console's CSS and JS) served at /console/static. No CDN, no external
fonts: it works on an intranet without internet.

Security, for every module, without the module doing anything:
- Every console URL except /console/signin and /console/static/ needs a signed-in
  session; without one, the browser is redirected to /console/signin?next=….
- Every request other than GET/HEAD/OPTIONS needs the session's CSRF token, as the
  form field ``csrf`` or the ``X-CSRF-Token`` header; else 403.
- Sessions are server-side (table staff_sessions, only the token's SHA-256 kept); the
  cookie is HttpOnly, SameSite=Lax, Secure over HTTPS, and expires after 8 hours.
- Sign-in is throttled through the shared-state Throttle (Redis with several
  workers): after 10 wrong passwords in a minute for an account, or from an
  address, the next attempt is refused (429), even with the right password.
- Pages get a strict Content-Security-Policy (only Yimen's own scripts and styles:
  no inline script or style attribute) and ``Cache-Control: no-store``.

Adding a module (the inbox, cases, dashboard… each is one):

1. Write ``console/<name>.py`` with ``def install(console: Console) -> None``, and add
   ``"console.<name>"`` to ``MODULES`` below. ``install`` adds routes (paths without
   the /console prefix) and fills a nav slot::

       def install(console: Console) -> None:
           console.add_routes([web.get("/inbox", inbox_page), web.post("/inbox/{id}/claim", claim)])
           console.add_page("inbox", "待接入", "/console/inbox")   # roles=ALL_ROLES by default

   Nav slots, in their order: ``inbox``, ``cases``, ``appointments``, ``dashboard``,
   ``audit`` (``console.web.NAV_SLOTS``). An empty slot is not shown.
2. In handlers (``from console.web import ...``):
   - ``member(request) -> StaffMember``: the signed-in staff member (``username``,
     ``role`` a ``StaffRole``, ``community`` for community/grid accounts, ``scoped``,
     ``sees_community(name)``, ``csrf``).
   - ``@require_role(StaffRole.admin, StaffRole.staff)``: 403 for other roles.
   - ``services(request) -> bots.runtime.Services``: cases, sessions, catalog,
     notifications, dispatch, media… of the running Yimen.
   - ``render(request, "page.html", {...}, status=200)``: a template extending
     ``base.html`` (blocks ``title``, ``head``, ``main``, ``scripts``); the context
     has ``member``, ``csrf``, ``nav``, ``path``, ``static(name)`` and the filter
     ``|local`` (a UTC time as Asia/Shanghai, to the minute). Autoescaped. Forms
     contain ``<input type="hidden" name="csrf" value="{{ csrf }}">``; scripts use
     ``yimenConsole.post(url, body)`` (console/static/console.js), which sends the
     token as ``X-CSRF-Token``.
   - ``await audit(request, "case.status", target="YM…", before={...}, after={...})``:
     one append-only audit entry for the member's action (its own transaction). To
     write it in the action's own transaction: ``await console.audit.record(connection,
     actor(request), action, target, before, after)``.
   - ``text(request, "key")``: a text from the catalogue's ``console.`` section
     (handlers/locale/zh_CN.console.yml; a module may add its own part file).
   - ``see_other(url)``: the 303 to return after a form.
3. Tests: tests/test_console_security.py walks every route of the sub-application, so
   a new page is checked for sign-in and CSRF automatically.

Accounts: ``yimen admin create NAME [--role admin|staff|community|grid] [--community C]``
prompts for the password (argon2id hash, console.accounts).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bots.settings import Settings
    from console.web import Console

# The console's modules, each with ``install(console)``; their nav slots keep their
# own order whatever the order here.
MODULES: tuple[str, ...] = (
    "console.inbox",
    "console.cases",
    "console.appointments",
    "console.dashboard",
    "console.corrections",
    "console.volunteers",
)


def build_console(settings: Settings) -> Console:
    """The console with every module installed (``bots.app`` mounts ``console.app``)."""
    from console.web import Console

    console = Console(settings)
    for name in MODULES:
        importlib.import_module(name).install(console)
    return console
