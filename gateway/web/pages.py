"""The dashboard's HTML pages: server-rendered with Jinja2, working without script; the board's
script adds live updates and one-click actions on top."""

from __future__ import annotations

import datetime
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from .. import reports
from ..service import FOLLOWUP_RESULTS
from . import views
from .accounts import AccountError, LoginThrottled, User
from .app import (
    COOKIE,
    LOGIN_COOKIE,
    SESSION_COOKIE_ARGS,
    Web,
    ack_as,
    actor,
    check_csrf,
    client_of,
    need_manager,
    need_user,
    page_data,
    record,
    resolve,
    web_of,
)

router = APIRouter(include_in_schema=False)
Reader = Annotated[User, Depends(need_user)]
Manager = Annotated[User, Depends(need_manager)]
FormText = Annotated[str, Form(max_length=2000)]
FormName = Annotated[str, Form(max_length=64)]


def render(request: Request, name: str, user: User | None, code: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    web = web_of(request)
    return templates.TemplateResponse(request, name, {"user": user, **page_data(web), **context}, status_code=code)


def safe_next(target: str | None) -> str:
    """Only a path of this site: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/healthz", response_class=PlainTextResponse)
def healthz(request: Request) -> Response:
    """503 while the store refuses writes, so a watchdog or load balancer sees the alarm too."""
    error = web_of(request).gateway.store_error
    if error is not None:
        return PlainTextResponse(f"store failing: {error}\n", 503)
    return PlainTextResponse("ok")


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    web = web_of(request)
    if web.metrics is None:
        return PlainTextResponse("metrics are off\n", 404)
    return Response(web.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")


def login_page(request: Request, next: str, error: str, code: int = 200) -> Response:
    """The login form with a fresh token of its own, also set as a cookie the post must match."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, code, next=safe_next(next), csrf=token, error=error[:200])
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600,
                        secure=web_of(request).secure_cookies)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/", error: str = "") -> Response:
    return login_page(request, next, error)


@router.post("/login")
def login(request: Request, username: FormName, password: Annotated[str, Form(max_length=256)],
          csrf: FormName, next: FormText = "/") -> Response:
    web = web_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf.encode()):
        web.gateway.counters.inc("web.csrf_refused")
        return RedirectResponse("/login?error=the+form+expired%2C+try+again", 303)
    try:
        token, _user = web.accounts.login(username.strip(), password, client_of(request))
    except AccountError as e:
        return login_page(request, next, str(e), 429 if isinstance(e, LoginThrottled) else 401)
    response = RedirectResponse(safe_next(next), 303)
    response.set_cookie(COOKIE, token, secure=web.secure_cookies, **SESSION_COOKIE_ARGS)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: Reader, csrf: FormName = "") -> Response:
    check_csrf(request, user, csrf)
    web_of(request).accounts.logout(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
def board(request: Request, user: Reader) -> Response:
    gw = web_of(request).gateway
    now = gw.now()
    return render(request, "board.html", user, cards=views.board(gw, now), staff=views.staff(gw, now))


@router.get("/incidents/{inc_id}")
def incident(request: Request, inc_id: int, user: Reader, msg: str = "") -> Response:
    gw = web_of(request).gateway
    inc = gw.store.incident(inc_id)
    if inc is None:
        return render(request, "error.html", user, 404, status=404, message=f"no incident {inc_id}")
    now = gw.now()
    return render(request, "incident.html", user, inc=views.detail(gw, inc, now), staff=views.staff(gw, now),
                  actions=gw.venue.device_settings.recovery_actions, root_causes=gw.venue.root_causes,
                  followup_results=FOLLOWUP_RESULTS, msg=msg[:200])


def _back(inc_id: int, msg: str) -> Response:
    return RedirectResponse(f"/incidents/{inc_id}?msg={msg}", 303)


def _opt(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _cost(text: str | None) -> float | None:
    text = (text or "").strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"a cost is a number, not {text!r}") from None


@router.post("/incidents/{inc_id}/ack")
def ack(request: Request, inc_id: int, user: Reader, csrf: FormName = "", staff: FormName = "") -> Response:
    check_csrf(request, user, csrf)
    web = web_of(request)
    web.gateway.acknowledge(inc_id, ack_as(web, user, _opt(staff)), actor(user))
    return _back(inc_id, "acknowledged")


@router.post("/incidents/{inc_id}/resolve")
def resolve_form(request: Request, inc_id: int, user: Reader, action: FormName, csrf: FormName = "",
                 compensation: FormText = "", cost: FormName = "", root_cause: FormName = "",
                 notes: FormText = "") -> Response:
    check_csrf(request, user, csrf)
    resolve(web_of(request), user, inc_id, action, _opt(compensation), _cost(cost), _opt(root_cause), _opt(notes))
    return _back(inc_id, "resolved")


@router.post("/incidents/{inc_id}/record")
def record_form(request: Request, inc_id: int, user: Reader, csrf: FormName = "", compensation: FormText = "",
                cost: FormName = "", root_cause: FormName = "", notes: FormText = "") -> Response:
    check_csrf(request, user, csrf)
    record(web_of(request), user, inc_id, _opt(compensation), _cost(cost), _opt(root_cause), _opt(notes))
    return _back(inc_id, "recorded")


@router.post("/incidents/{inc_id}/reassign")
def reassign(request: Request, inc_id: int, user: Manager, staff: FormName, csrf: FormName = "") -> Response:
    check_csrf(request, user, csrf)
    web_of(request).gateway.reassign(inc_id, staff, actor(user))
    return _back(inc_id, "reassigned")


@router.post("/incidents/{inc_id}/follow-up")
def follow_up(request: Request, inc_id: int, user: Reader, result: FormName, csrf: FormName = "") -> Response:
    check_csrf(request, user, csrf)
    web_of(request).gateway.follow_up(inc_id, result, actor(user))
    return _back(inc_id, "followed up")


@router.get("/devices")
def devices(request: Request, user: Reader) -> Response:
    gw = web_of(request).gateway
    return render(request, "devices.html", user, devices=views.devices(gw, gw.now()))


@router.get("/staff")
def staff(request: Request, user: Reader) -> Response:
    gw = web_of(request).gateway
    return render(request, "staff.html", user, staff=views.staff(gw, gw.now()), zones=views.floor(gw),
                  timezone=gw.venue.timezone)


Day = Annotated[datetime.date | None, Query()]


def _report_page(request: Request, user: User, web: Web, template: str, start: float, end: float,
                 step_days: int, link: str) -> Response:
    gw = web.gateway
    tz = gw.venue.tz
    rep = views.period_report(gw, start, end)
    d0, d1 = (datetime.datetime.fromtimestamp(t, tz).date() for t in (start, end - 1))  # both days included
    step = datetime.timedelta(days=step_days)
    return render(request, template, user, report=rep, charts=reports.charts_for(rep), since_text=str(d0),
                  until_text=str(d1), csv_url=f"/api/v1/reports.csv?since={d0}&until={d1}",
                  prev_url=f"{link}?since={d0 - step}&until={d1 - step}",
                  next_url=f"{link}?since={d0 + step}&until={d1 + step}",
                  weekly_url=f"/reports/weekly?since={d0}")


@router.get("/reports")
def report(request: Request, user: Manager, since: Day = None, until: Day = None) -> Response:
    web = web_of(request)
    gw = web.gateway
    start, end = reports.period(since, until, gw.venue.tz, gw.now())
    days = max(1, round((end - start) / 86400))
    return _report_page(request, user, web, "reports.html", start, end, days, "/reports")


@router.get("/reports/weekly")
def weekly(request: Request, user: Manager, since: Day = None) -> Response:
    web = web_of(request)
    gw = web.gateway
    day = since or datetime.datetime.fromtimestamp(gw.now(), gw.venue.tz).date()
    start, end = reports.week_of_day(day, gw.venue.tz)
    return _report_page(request, user, web, "weekly.html", start, end, 7, "/reports/weekly")


__all__ = ["router"]
