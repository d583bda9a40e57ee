"""The dashboard and API application: pages for managers and staff, the JSON API with its OpenAPI
document, the live board's event stream and the Prometheus metrics.

Every page and API call but the login and /metrics needs a session; every write also needs the
session's CSRF token (form field `csrf` or header X-CSRF-Token) and, when the browser says where
it comes from, the same origin. Gateway errors map to plain 4xx answers: 404 for an unknown
incident or person, 409 for an action the incident's state does not allow, 422 for bad input."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from .. import incidents
from ..service import Gateway
from ..store import IncidentEvent
from .accounts import SESSION_S, AccountError, Accounts, LoginThrottled, User, csrf_ok
from .live import Hub

log = logging.getLogger("redbutton.web")
HERE = Path(__file__).parent
COOKIE = "rb_session"
LOGIN_COOKIE = "rb_login"  # the login form's own CSRF token, before there is a session
SESSION_COOKIE_ARGS: dict[str, Any] = {"httponly": True, "samesite": "strict", "path": "/", "max_age": SESSION_S}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
MAX_BODY = 64 * 1024  # no form or API body of this product is near this size

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
}


@dataclass
class Web:
    """What the application serves from: the running gateway, its accounts and metrics."""

    gateway: Gateway
    accounts: Accounts
    hub: Hub = field(default_factory=Hub)
    metrics: Callable[[], bytes] | None = None  # Prometheus text exposition
    secure_cookies: bool = False  # set when served over HTTPS (directly or behind a proxy)
    watchers: list[Callable[[IncidentEvent], None]] = field(default_factory=list)  # metrics and the like
    stopping: bool = False

    def __post_init__(self) -> None:
        self.watchers.insert(0, self.hub)


class NotLoggedIn(Exception):
    pass


def web_of(request: Request) -> Web:
    w: Web = request.app.state.web
    return w


def user_of(request: Request) -> User | None:
    return web_of(request).accounts.user(request.cookies.get(COOKIE))


def need_user(request: Request) -> User:
    user = user_of(request)
    if user is None:
        raise NotLoggedIn
    return user


def need_manager(request: Request) -> User:
    user = need_user(request)
    if not user.manager:
        raise HTTPException(403, "managers only")
    return user


def check_csrf(request: Request, user: User, form_token: str | None = None) -> None:
    given = request.headers.get("x-csrf-token") or form_token
    if not csrf_ok(user, given):
        web_of(request).gateway.counters.inc("web.csrf_refused")
        log.warning("WEB refused %s %s by %s: missing or wrong CSRF token", request.method, request.url.path,
                    user.username)
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")


class Guard(BaseHTTPMiddleware):
    """Security headers on every answer; writes from another origin and oversized bodies refused."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method in UNSAFE:
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
                web_of(request).gateway.counters.inc("web.cross_origin_refused")
                log.warning("WEB refused %s %s from origin %s", request.method, request.url.path, origin[:80])
                return JSONResponse({"detail": "cross-origin write refused"}, 403)
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, 413)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path != "/metrics" and not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def create_app(web: Web) -> FastAPI:
    from . import api, pages

    app = FastAPI(title="Red Button", version="1",
                  description="Incidents, devices, staff and service-recovery reports of one venue. Log in with "
                              "POST /api/v1/session; send the session cookie, and the csrf token it returns as "
                              "X-CSRF-Token on every write.",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/v1/openapi.json")
    app.state.web = web
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.add_middleware(Guard)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, _e: NotLoggedIn) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first"}, 401)
        return RedirectResponse(f"/login?next={request.url.path}", 303)

    for kind, status in ((LookupError, 404), (incidents.TransitionError, 409), (LoginThrottled, 429),
                         (AccountError, 422), (ValueError, 422)):
        app.add_exception_handler(kind, _answer(status))
    return app


def _answer(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, e: Exception) -> Response:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": text}, status)
        templates: Jinja2Templates = request.app.state.templates
        return templates.TemplateResponse(request, "error.html", {"user": user_of(request), "status": status,
                                                                  "message": text}, status_code=status)

    return handler


def actor(user: User) -> str:
    return user.staff_id or user.username


def ack_as(web: Web, user: User, staff: str | None) -> str:
    """Who is on it: staff acknowledge as themselves; a manager names someone, or themselves if
    the account is a staff member of the venue too."""
    if not user.manager and staff not in (None, user.staff_id):
        raise HTTPException(403, "staff acknowledge as themselves")
    who = staff or user.staff_id
    if who is None:
        raise ValueError("say who is on it: this account is no staff member of the venue")
    return who


def closable(web: Web, user: User, inc_id: int) -> None:
    """Only the person on an incident, or a manager, records its resolution."""
    inc = web.gateway.store.incident(inc_id)
    if inc is None:
        raise LookupError(f"no incident {inc_id}")
    if not user.manager and inc.responder != user.staff_id:
        raise HTTPException(403, "only the person on it, or a manager, records its resolution")


def check_record(web: Web, root_cause: str | None) -> None:
    causes = web.gateway.venue.root_causes
    if root_cause is not None and root_cause not in causes:
        raise ValueError(f"a root cause is one of {', '.join(causes)}, not {root_cause!r}")


def resolve(web: Web, user: User, inc_id: int, action: str, compensation: str | None, cost: float | None,
            root_cause: str | None, notes: str | None) -> None:
    """Resolve with the recovery action and the rest of the record, every input checked first so
    nothing is half done."""
    closable(web, user, inc_id)
    actions = web.gateway.venue.device_settings.recovery_actions
    if action not in actions:
        raise ValueError(f"a recovery action is one of {', '.join(actions)}, not {action!r}")
    check_record(web, root_cause)
    web.gateway.resolve(inc_id, actor(user), action)
    _record(web, user, inc_id, compensation, cost, root_cause, notes)


def record(web: Web, user: User, inc_id: int, compensation: str | None, cost: float | None, root_cause: str | None,
           notes: str | None) -> None:
    """Complete the record of an incident later (compensation, cost, root cause, notes)."""
    closable(web, user, inc_id)
    check_record(web, root_cause)
    _record(web, user, inc_id, compensation, cost, root_cause, notes)


def _record(web: Web, user: User, inc_id: int, compensation: str | None, cost: float | None,
            root_cause: str | None, notes: str | None) -> None:
    if any(v is not None for v in (compensation, cost, root_cause, notes)):
        web.gateway.record(inc_id, actor(user), compensation, cost, root_cause, notes)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def page_data(web: Web) -> dict[str, Any]:
    """What every page's chrome shows of the venue."""
    venue = web.gateway.venue
    return {"venue": venue.name, "site": venue.site, "store_error": web.gateway.store_error,
            "held": len(web.gateway.held)}
