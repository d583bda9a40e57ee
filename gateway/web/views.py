"""What the dashboard shows, computed from the gateway's venue, store and device registry: the same
dicts feed the HTML pages, the JSON API and the live board's pushed updates."""

from __future__ import annotations

import datetime
from typing import Any

from .. import incidents, reports, supervision
from ..service import Gateway, wait_s
from ..store import Incident
from ..venue import BUTTON

# Card colour by how much of the kind's acknowledge timeout the customer has waited.
AGE_BANDS = ((0.5, "fresh"), (1.0, "waiting"), (2.0, "late"))
OLDEST = "overdue"


def age_band(age_s: float, ack_timeout_s: float) -> str:
    share = age_s / max(ack_timeout_s, 1.0)
    return next((name for limit, name in AGE_BANDS if share < limit), OLDEST)


def staff_name(gw: Gateway, staff_id: str | None) -> str | None:
    if staff_id is None:
        return None
    s = gw.venue.staff.get(staff_id)
    return s.name if s else staff_id


def card(gw: Gateway, inc: Incident, paged: list[str], now: float) -> dict[str, Any]:
    """One incident as the board shows it: where, what, how long, who is paged or on it."""
    policy = gw.venue.policy(inc.kind)
    zone = gw.venue.zones.get(inc.zone)
    age = wait_s(inc, now)
    return {
        "id": inc.id,
        "where": gw.where(inc),
        "table": inc.table_id,
        "zone": inc.zone,
        "zone_name": zone.name if zone else inc.zone,
        "kind": inc.kind,
        "origin": inc.origin,
        "state": inc.state,
        "active": inc.state in incidents.ACTIVE,
        "level": inc.level,
        "urgency": inc.urgency,
        "presses": inc.presses,
        "received_at": inc.received_at,
        "waited_since": now - age,
        "age_s": age,
        "ack_timeout_s": policy.ack_timeout_s,
        "band": age_band(age, policy.ack_timeout_s),
        "paged": [{"id": s, "name": staff_name(gw, s)} for s in paged],
        "responder": inc.responder,
        "responder_name": staff_name(gw, inc.responder),
        "recovery_action": inc.recovery_action,
    }


def board(gw: Gateway, now: float) -> list[dict[str, Any]]:
    """Every active incident, most urgent first: unreached, then by level, urgency and age."""
    paged = gw.store.outstanding()
    cards = [card(gw, inc, paged.get(inc.id, []), now) for inc in gw.store.active_incidents()]
    order = {incidents.UNREACHED: 0, incidents.OPEN: 1, incidents.PAGED: 1, incidents.ACKNOWLEDGED: 2}
    cards.sort(key=lambda c: (order.get(c["state"], 3), -c["level"] - c["urgency"], c["waited_since"]))
    return cards


def incident_card(gw: Gateway, inc_id: int, now: float) -> dict[str, Any] | None:
    inc = gw.store.incident(inc_id)
    if inc is None:
        return None
    active = inc.state in incidents.ACTIVE
    return card(gw, inc, [s for s, _pager, _level in gw.store.outstanding_pages(inc_id)] if active else [], now)


def detail(gw: Gateway, inc: Incident, now: float) -> dict[str, Any]:
    """The whole service-recovery record of one incident, with its history and pages."""
    pages = gw.store.pages(inc.id)
    waiting = [s for s, _pager, _level, _at, outcome in pages if outcome is None] if inc.state in incidents.ACTIVE \
        else []
    tz = gw.venue.tz
    return {
        **card(gw, inc, waiting, now),
        "pressed_at": inc.pressed_at,
        "paged_at": inc.paged_at,
        "acked_at": inc.acked_at,
        "resolved_at": inc.resolved_at,
        "closed_at": inc.closed_at,
        "durations": inc.durations(),
        "compensation": inc.compensation,
        "compensation_cost": inc.compensation_cost,
        "root_cause": inc.root_cause,
        "notes": inc.notes,
        "followup_due": inc.followup_due,
        "followup_result": inc.followup_result,
        "history": [{"at": at, "when": local(at, tz), "from": old, "to": new, "actor": actor, "cause": cause}
                    for at, old, new, actor, cause in gw.store.transitions(inc.id)],
        "pages": [{"staff": s, "name": staff_name(gw, s), "pager": p, "level": lvl, "at": at, "when": local(at, tz),
                   "outcome": outcome} for s, p, lvl, at, outcome in pages],
    }


def local(t: float | None, tz: datetime.tzinfo) -> str:
    if t is None:
        return ""
    return datetime.datetime.fromtimestamp(t, tz).strftime("%a %d %b %H:%M:%S")


def devices(gw: Gateway, now: float) -> list[dict[str, Any]]:
    """Every device of the venue with what the registry knows of it, troubled ones first."""
    registry = gw.store.devices()
    venue = gw.venue
    out = []
    for d in venue.devices.values():
        row = registry.get(d.id, {})
        table = venue.table_by_button.get(d.id)
        staff = venue.staff_by_pager.get(d.id)
        last_seen = row.get("last_seen")
        battery = row.get("battery_mv")
        out.append({
            "id": d.id,
            "role": d.role,
            "where": table.id if table else (staff.name if staff else ""),
            "state": row.get("state") or "unknown",
            "last_seen": last_seen,
            "seen_ago_s": round(now - last_seen) if isinstance(last_seen, (int, float)) else None,
            "battery_mv": battery,
            "low_battery": isinstance(battery, int) and battery < venue.rules.low_battery_mv,
            "rssi": row.get("rssi"),
            "fw": row.get("fw"),
            "queued": row.get("queued"),
            "uptime_s": row.get("uptime_s"),
            "trouble": row.get("trouble"),
            "trouble_incident": row.get("trouble_incident"),
            "heartbeat_window_s": supervision.window_s(venue, d.id),
        })
    out.sort(key=lambda r: (r["trouble"] is None, r["role"] != BUTTON, r["id"]))
    return out


def staff(gw: Gateway, now: float) -> list[dict[str, Any]]:
    """Staff with their zones, role, shifts and whether they are on duty and reachable now."""
    venue = gw.venue
    busy = gw.store.busy()
    states = gw.device_state
    return [{
        "id": s.id,
        "name": s.name,
        "role": s.role,
        "pager": s.pager,
        "pager_state": states.get(s.pager, "unknown"),
        "zones": [venue.zones[z].name if z in venue.zones else z for z in s.zones],
        "zone_ids": list(s.zones),
        "on_duty": gw.staff_on_duty(s, now),
        "duty_toggle": gw.duty.get(s.pager),
        "shifts": [shift_text(sh.days, sh.start_min, sh.end_min) for sh in s.shifts],
        "busy": busy.get(s.id, 0),
    } for s in venue.staff.values()]


def shift_text(days: tuple[str, ...], start_min: int, end_min: int) -> str:
    return f"{','.join(days)} {start_min // 60:02d}:{start_min % 60:02d}-{end_min // 60:02d}:{end_min % 60:02d}"


def floor(gw: Gateway) -> list[dict[str, Any]]:
    """The venue by zone: its tables (with their buttons and first responders) and who covers it."""
    venue = gw.venue
    return [{
        "id": z.id,
        "name": z.name,
        "tables": [{"id": t.id, "button": t.button, "responder": staff_name(gw, t.responder)}
                   for t in venue.tables.values() if t.zone == z.id],
        "staff": [s.name for s in venue.staff.values() if z.id in s.zones],
    } for z in venue.zones.values()]


def period_report(gw: Gateway, since: float, until: float) -> reports.Report:
    """The service-recovery report of [since, until), calls once unreached counted as such."""
    return reports.report(gw.store.incidents(since, until), gw.venue, since, until,
                          unreached_ids=gw.store.ever_in(incidents.UNREACHED, since, until))
