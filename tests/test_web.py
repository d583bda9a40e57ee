"""The dashboard and API over real HTTP in front of a gateway on a manual clock: sessions, CSRF,
roles, the incident actions and what the devices are told, live events, and the security headers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import rbproto
from gateway.web.server import WebServer
from gateway_rig import Rig, rules_doc
from waiting import wait_until
from web_rig import MANAGER, PASSWORD, STAFF, Client, serve


@pytest.fixture
def rig(venue_doc: dict[str, Any], tmp_path: Path) -> Iterator[Rig]:
    r = Rig(rules_doc(venue_doc), tmp_path / "gw.db")
    r.online("pgr-ana", "pgr-ben", "pgr-mia", "pgr-flo")
    yield r
    r.store.close()


@pytest.fixture
def server(rig: Rig) -> Iterator[WebServer]:
    s = serve(rig.gw)
    yield s
    s.stop()


@pytest.fixture
def manager(server: WebServer) -> Iterator[Client]:
    c = Client(server.url, MANAGER)
    yield c
    c.close()


@pytest.fixture
def staff(server: WebServer) -> Iterator[Client]:
    c = Client(server.url, STAFF)
    yield c
    c.close()


def open_call(rig: Rig, table: str = "T12") -> int:
    rig.press(table)
    inc = rig.store.active_incident(table)
    assert inc is not None
    return inc.id


def test_nothing_but_the_login_without_a_session(server: WebServer, rig: Rig) -> None:
    inc = open_call(rig)
    anon = Client(server.url)
    assert anon.get("/").status_code == 303 and anon.get("/").headers["location"] == "/login?next=/"
    assert anon.get("/api/v1/board").status_code == 401
    assert anon.get(f"/api/v1/incidents/{inc}").status_code == 401
    assert anon.post(f"/api/v1/incidents/{inc}/ack", {"staff": "ana"}).status_code == 401
    assert anon.get("/login").status_code == 200
    assert rig.store.incident(inc).state == "paged"  # type: ignore[union-attr]


def test_wrong_password_is_counted_and_then_throttled(server: WebServer, rig: Rig) -> None:
    anon = Client(server.url)
    for _ in range(5):
        r = anon.post("/api/v1/session", {"username": MANAGER, "password": "guess guess guess"}, csrf=False)
        assert r.status_code == 422 and r.json()["detail"] == "wrong name or password"
    assert rig.gw.counters.get("login.failed") == 5
    r = anon.post("/api/v1/session", {"username": MANAGER, "password": PASSWORD}, csrf=False)
    assert r.status_code == 429  # even the right password, until the window has passed
    assert rig.gw.counters.get("login.throttled") == 1
    rig.clock.advance(15 * 60 + 1)
    assert anon.post("/api/v1/session", {"username": MANAGER, "password": PASSWORD}, csrf=False).status_code == 200


def test_session_cookie_is_http_only_and_same_site(server: WebServer) -> None:
    r = httpx.post(server.url + "/api/v1/session", json={"username": STAFF, "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'self'" in r.headers["content-security-policy"]


def test_write_needs_the_session_csrf_token_and_the_same_origin(staff: Client, rig: Rig) -> None:
    inc = open_call(rig)
    assert staff.post(f"/api/v1/incidents/{inc}/ack", {}, csrf=False).status_code == 403
    assert staff.post(f"/api/v1/incidents/{inc}/ack", {}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert staff.post(f"/api/v1/incidents/{inc}/ack", {}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert rig.gw.counters.get("web.csrf_refused") == 2
    assert rig.store.incident(inc).state == "paged"  # type: ignore[union-attr]


def test_staff_ack_in_the_browser_tells_the_button_and_the_paged_pager(staff: Client, rig: Rig) -> None:
    inc = open_call(rig)
    assert rig.paged() == ["pgr-ana"]
    r = staff.post(f"/api/v1/incidents/{inc}/ack", {})
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["state"] == "acknowledged" and card["responder"] == "ana" and card["responder_name"] == "Ana"
    assert rig.feedback("btn-t12")[-1] == rbproto.ACKNOWLEDGED
    assert [m.body["why"] for m in rig.commands("alert_cancel", "pgr-ana")] == ["taken by Ana"]
    history = staff.get(f"/api/v1/incidents/{inc}").json()["history"]
    assert history[-1]["to"] == "acknowledged" and history[-1]["actor"] == "ana"
    # staff act as themselves only
    other = open_call(rig, "T1")
    assert staff.post(f"/api/v1/incidents/{other}/ack", {"staff": "ben"}).status_code == 403


def test_manager_reassigns_and_the_new_person_is_paged(manager: Client, staff: Client, rig: Rig) -> None:
    inc = open_call(rig)
    assert staff.post(f"/api/v1/incidents/{inc}/reassign", {"staff": "ben"}).status_code == 403
    r = manager.post(f"/api/v1/incidents/{inc}/reassign", {"staff": "ben"})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["paged"]] == ["ben"]
    assert rig.paged() == ["pgr-ana", "pgr-ben"]
    assert [m.body["why"] for m in rig.commands("alert_cancel", "pgr-ana")] == ["given to Ben"]
    assert manager.post(f"/api/v1/incidents/{inc}/reassign", {"staff": "nobody"}).status_code == 404


def test_resolve_with_the_record_then_follow_up(manager: Client, rig: Rig) -> None:
    inc = open_call(rig)
    assert manager.post(f"/api/v1/incidents/{inc}/resolve", {"action": "apology"}).status_code == 409  # not acked
    assert manager.post(f"/api/v1/incidents/{inc}/ack", {"staff": "ana"}).status_code == 200
    bad = manager.post(f"/api/v1/incidents/{inc}/resolve", {"action": "apology", "root_cause": "aliens"})
    assert bad.status_code == 422 and "root cause" in bad.json()["detail"]
    assert rig.store.incident(inc).state == "acknowledged"  # type: ignore[union-attr]  # nothing half done
    r = manager.post(f"/api/v1/incidents/{inc}/resolve", {"action": "replaced", "compensation": "free dessert",
                                                          "cost": 6.5, "root_cause": "kitchen_delay", "notes": "cold"})
    assert r.status_code == 200, r.text
    done = rig.store.incident(inc)
    assert done is not None and done.state == "resolved" and done.recovery_action == "replaced"
    assert (done.compensation, done.compensation_cost, done.root_cause, done.notes) == \
        ("free dessert", 6.5, "kitchen_delay", "cold")
    assert rig.feedback("btn-t12")[-1] == rbproto.RESOLVED
    assert manager.post(f"/api/v1/incidents/{inc}/follow-up", {"result": "satisfied"}).json()["state"] == "followed_up"
    assert rig.store.incident(inc).followup_result == "satisfied"  # type: ignore[union-attr]


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/api/v1/incidents/999/ack", {"staff": "ana"}, 404),
    ("/api/v1/incidents/0/ack", {}, 422),
    ("/api/v1/incidents/1/resolve", {"action": "x" * 500}, 422),
    ("/api/v1/incidents/1/record", {"cost": -1}, 422),
    ("/api/v1/incidents/1/follow-up", {"result": "delighted"}, 422),
    ("/api/v1/incidents/1/ack", {"staff": "ana", "extra": 1}, 422),
])
def test_bad_requests_are_4xx(manager: Client, rig: Rig, path: str, body: dict[str, Any], status: int) -> None:
    open_call(rig)
    assert manager.post(path, body).status_code == status


def test_live_events_carry_the_changed_card(server: WebServer, staff: Client, rig: Rig) -> None:
    got: list[dict[str, Any]] = []

    def listen() -> None:
        with staff.http.stream("GET", "/api/v1/events", timeout=10) as r:
            event = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "incident":
                    got.append(json.loads(line[6:]))
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    wait_until(lambda: server.web.hub.boards == 1, 5, "the board subscribed")
    inc = open_call(rig)
    t.join(10)
    assert got and got[0]["id"] == inc and got[0]["where"] == "T12" and got[0]["state"] in ("open", "paged")


def test_pages_render_for_each_role(manager: Client, staff: Client, rig: Rig) -> None:
    inc = open_call(rig)
    board = staff.get("/")
    assert board.status_code == 200 and f'id="inc-{inc}"' in board.text and "T12" in board.text
    assert staff.get("/reports").status_code == 403
    for path in ("/devices", "/staff", f"/incidents/{inc}", "/reports", "/reports/weekly"):
        r = manager.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    assert "btn-t12" in manager.get("/devices").text
    assert "Dining room" in manager.get("/staff").text


def test_html_login_and_resolve_form(server: WebServer, rig: Rig) -> None:
    inc = open_call(rig)
    http = httpx.Client(base_url=server.url, follow_redirects=False)
    form = http.get("/login")
    token = form.text.split('name="csrf" value="')[1].split('"')[0]
    r = http.post("/login", data={"username": STAFF, "password": PASSWORD, "csrf": "stale", "next": "/"})
    assert r.headers["location"].startswith("/login?error=")  # the form's own token is checked too
    r = http.post("/login", data={"username": STAFF, "password": PASSWORD, "csrf": token, "next": "//evil.example"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # never an open redirect
    page = http.get(f"/incidents/{inc}").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    assert http.post(f"/incidents/{inc}/ack", data={"csrf": csrf}).status_code == 303
    r = http.post(f"/incidents/{inc}/resolve", data={"csrf": csrf, "action": "apology", "root_cause": "other",
                                                    "cost": "2,50", "compensation": "coffee", "notes": ""})
    assert r.status_code == 303
    done = rig.store.incident(inc)
    assert done is not None and (done.state, done.root_cause, done.compensation_cost) == ("resolved", "other", 2.5)
    assert http.post(f"/incidents/{inc}/record", data={"csrf": "nope", "notes": "x"}).status_code == 403


@pytest.mark.parametrize("query", [
    "/reports?until=0001-01-01", "/reports/weekly?since=0001-01-01", "/reports?since=9999-12-24&until=9999-12-30",
    "/reports/weekly?since=9999-12-31", "/api/v1/reports?until=0001-01-03",
    "/api/v1/incidents?since=2026-02-01&until=2026-01-01"])
def test_a_period_off_the_calendar_is_bad_input(manager: Client, query: str) -> None:
    r = manager.get(query)
    assert r.status_code == 422, r.text[:200]
    assert ("outside the years" in r.text) or ("before it starts" in r.text)


def test_staff_record_only_the_incidents_they_are_on(staff: Client, manager: Client, rig: Rig) -> None:
    mine, other = open_call(rig), open_call(rig, "T1")
    assert staff.post(f"/api/v1/incidents/{mine}/ack", {}).status_code == 200
    assert manager.post(f"/api/v1/incidents/{other}/ack", {"staff": "ben"}).status_code == 200
    assert staff.post(f"/api/v1/incidents/{other}/record", {"notes": "not mine"}).status_code == 403
    assert staff.post(f"/api/v1/incidents/{other}/resolve", {"action": "apology"}).status_code == 403
    assert rig.store.incident(other).notes is None  # type: ignore[union-attr]
    assert staff.post(f"/api/v1/incidents/{mine}/record", {"notes": "cold soup"}).status_code == 200
    assert manager.post(f"/api/v1/incidents/{other}/record", {"notes": "ben was quick"}).status_code == 200
    assert (rig.store.incident(mine).notes, rig.store.incident(other).notes) == \
        ("cold soup", "ben was quick")  # type: ignore[union-attr]
