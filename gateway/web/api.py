"""The JSON API under /api/v1: what the live board's script uses, and what other systems integrate
with. Its OpenAPI document is at /api/v1/openapi.json."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import reports
from ..service import FOLLOWUP_RESULTS, Gateway
from . import views
from .accounts import User
from .app import (
    COOKIE,
    SESSION_COOKIE_ARGS,
    Web,
    ack_as,
    actor,
    check_csrf,
    client_of,
    need_manager,
    need_user,
    record,
    resolve,
    web_of,
)
from .live import stream

router = APIRouter(prefix="/api/v1", tags=["api"])

Name = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=120)]
Cost = Annotated[float, Field(ge=0, le=1_000_000)]
IncidentId = Annotated[int, Field(ge=1, le=2**62)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: Name
    password: Annotated[str, Field(min_length=1, max_length=256)]


class SessionOut(BaseModel):
    username: str
    role: str
    staff_id: str | None
    csrf: str


class AckIn(Strict):
    staff: Name | None = Field(None, description="who is on it; staff accounts act as themselves")


class RecordIn(Strict):
    compensation: Short | None = None
    cost: Cost | None = None
    root_cause: Name | None = None
    notes: Text | None = None


class ResolveIn(RecordIn):
    action: Name = Field(description="one of the venue's recovery actions")


class ReassignIn(Strict):
    staff: Name


class FollowUpIn(Strict):
    result: Literal["satisfied", "unsatisfied", "no_response"]


assert set(FollowUpIn.model_fields["result"].annotation.__args__) == set(FOLLOWUP_RESULTS)  # type: ignore[union-attr]

Writer = Annotated[User, Depends(need_user)]


def writer(request: Request, user: Writer) -> User:
    check_csrf(request, user)
    return user


def manager_writer(request: Request, user: Annotated[User, Depends(need_manager)]) -> User:
    check_csrf(request, user)
    return user


Write = Annotated[User, Depends(writer)]
ManagerWrite = Annotated[User, Depends(manager_writer)]
Reader = Annotated[User, Depends(need_user)]
Manager = Annotated[User, Depends(need_manager)]
Since = Annotated[datetime.date | None, Query(description="first day, in the venue's time zone")]
Until = Annotated[datetime.date | None, Query(description="last day (inclusive)")]


def _period(gw: Gateway, since: datetime.date | None, until: datetime.date | None) -> tuple[float, float]:
    return reports.period(since, until, gw.venue.tz, gw.now())


@router.post("/session", response_model=SessionOut, summary="log in")
def login(body: LoginIn, request: Request, response: Response) -> SessionOut:
    web = web_of(request)
    token, user = web.accounts.login(body.username, body.password, client_of(request))
    response.set_cookie(COOKIE, token, secure=web.secure_cookies, **SESSION_COOKIE_ARGS)
    return SessionOut(username=user.username, role=user.role, staff_id=user.staff_id, csrf=user.csrf)


@router.delete("/session", status_code=204, summary="log out")
def logout(request: Request, _user: Write) -> Response:
    web_of(request).accounts.logout(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/session", response_model=SessionOut, summary="who is logged in")
def me(user: Reader) -> SessionOut:
    return SessionOut(username=user.username, role=user.role, staff_id=user.staff_id, csrf=user.csrf)


@router.get("/board", summary="active incidents, most urgent first")
def board(request: Request, _user: Reader) -> list[dict[str, Any]]:
    gw = web_of(request).gateway
    return views.board(gw, gw.now())


@router.get("/incidents", summary="incidents received in a period")
def incident_list(request: Request, _user: Reader, since: Since = None, until: Until = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    gw = web_of(request).gateway
    start, end = _period(gw, since, until)
    found = gw.store.incidents(start, end)[-limit:]
    paged = gw.store.outstanding()
    now = gw.now()
    return [views.card(gw, inc, paged.get(inc.id, []), now) for inc in found]


@router.get("/incidents/{inc_id}", summary="one incident's whole record and history")
def incident(request: Request, inc_id: IncidentId, _user: Reader) -> dict[str, Any]:
    gw = web_of(request).gateway
    inc = gw.store.incident(inc_id)
    if inc is None:
        raise LookupError(f"no incident {inc_id}")
    return views.detail(gw, inc, gw.now())


def _card(web: Web, inc_id: int) -> dict[str, Any]:
    found = views.incident_card(web.gateway, inc_id, web.gateway.now())
    if found is None:
        raise LookupError(f"no incident {inc_id}")
    return found


@router.post("/incidents/{inc_id}/ack", summary="someone is on it")
def ack(request: Request, inc_id: IncidentId, body: AckIn, user: Write) -> dict[str, Any]:
    web = web_of(request)
    web.gateway.acknowledge(inc_id, ack_as(web, user, body.staff), actor(user))
    return _card(web, inc_id)


@router.post("/incidents/{inc_id}/resolve", summary="resolved, with the recovery action and record")
def resolve_incident(request: Request, inc_id: IncidentId, body: ResolveIn, user: Write) -> dict[str, Any]:
    web = web_of(request)
    resolve(web, user, inc_id, body.action, body.compensation, body.cost, body.root_cause, body.notes)
    return _card(web, inc_id)


@router.post("/incidents/{inc_id}/record", summary="compensation, cost, root cause, notes")
def record_incident(request: Request, inc_id: IncidentId, body: RecordIn, user: Write) -> dict[str, Any]:
    web = web_of(request)
    record(web, user, inc_id, body.compensation, body.cost, body.root_cause, body.notes)
    return _card(web, inc_id)


@router.post("/incidents/{inc_id}/reassign", summary="page someone else for it (managers)")
def reassign(request: Request, inc_id: IncidentId, body: ReassignIn, user: ManagerWrite) -> dict[str, Any]:
    web = web_of(request)
    web.gateway.reassign(inc_id, body.staff, actor(user))
    return _card(web, inc_id)


@router.post("/incidents/{inc_id}/follow-up", summary="the follow-up's result at the table")
def follow_up(request: Request, inc_id: IncidentId, body: FollowUpIn, user: Write) -> dict[str, Any]:
    web = web_of(request)
    web.gateway.follow_up(inc_id, body.result, actor(user))
    return _card(web, inc_id)


@router.get("/devices", summary="buttons and pagers: online, battery, signal, firmware, trouble")
def devices(request: Request, _user: Reader) -> list[dict[str, Any]]:
    gw = web_of(request).gateway
    return views.devices(gw, gw.now())


@router.get("/staff", summary="staff, their shifts, and who is on duty now")
def staff(request: Request, _user: Reader) -> list[dict[str, Any]]:
    gw = web_of(request).gateway
    return views.staff(gw, gw.now())


@router.get("/venue", summary="the venue by zone")
def venue(request: Request, _user: Reader) -> dict[str, Any]:
    gw = web_of(request).gateway
    v = gw.venue
    return {"site": v.site, "name": v.name, "timezone": v.timezone, "zones": views.floor(gw),
            "recovery_actions": list(v.device_settings.recovery_actions), "root_causes": list(v.root_causes)}


@router.get("/reports", summary="service-recovery report for a period (managers)")
def report(request: Request, _user: Manager, since: Since = None, until: Until = None) -> dict[str, Any]:
    gw = web_of(request).gateway
    start, end = _period(gw, since, until)
    return reports.as_dict(views.period_report(gw, start, end))


@router.get("/reports.csv", summary="every incident of a period as CSV (managers)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def report_csv(request: Request, _user: Manager, since: Since = None, until: Until = None) -> Response:
    gw = web_of(request).gateway
    start, end = _period(gw, since, until)
    name = f"incidents-{gw.venue.site}-{reports.day_text(start, gw.venue.tz)}.csv"
    return Response(reports.csv_text(gw.store.incidents(start, end), gw.venue), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/events", summary="live board updates (server-sent events)",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def events(request: Request, _user: Reader) -> StreamingResponse:
    web = web_of(request)

    async def card(inc_id: int) -> dict[str, Any] | None:
        return await run_in_threadpool(views.incident_card, web.gateway, inc_id, web.gateway.now())

    return StreamingResponse(stream(web.hub, card, request.is_disconnected, lambda: web.stopping),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
