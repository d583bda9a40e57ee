"""Service-recovery reports for managers: response times, escalation and recovery rates, root causes,
compensation, the CSV export and the charts the report pages show.

Pure functions over the incidents of a period (Store.incidents(since, until)) and the venue: no SQL
and no web code, so the weekly review's numbers are tested on a hand-made history. Response times
count customer calls only (origin press or held): a device trouble or a zone alert is the manager's
own work, and mixing them in would blur the customer's wait. Hours and weekdays are the venue's
local time (venue.tz), as the staff who worked the shift remember it."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from . import charts, incidents
from .service import FEEDBACK, HELD, PRESS, TROUBLE, ZONE
from .store import Incident
from .venue import Venue

CUSTOMER = frozenset({PRESS, HELD})
SATISFIED = "satisfied"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WORST = 5  # incidents on the weekly page's "longest waits" list
SLOWEST = 3  # zones and staff on its "slowest" lists
MAX_DAYS = 400  # the longest period one report covers: a year's review, not the whole database
UNSPECIFIED = "(unspecified)"  # a compensation cost recorded without saying what was given

# Spreadsheets run a cell that starts with one of these as a formula; staff type the notes.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

CSV_FIELDS = ("id", "table", "zone", "kind", "origin", "state", "pressed", "received", "paged", "acked",
              "resolved", "closed", "press_to_page_s", "page_to_ack_s", "ack_to_resolve_s", "press_to_ack_s",
              "responder", "level", "presses", "recovery_action", "compensation", "compensation_cost",
              "root_cause", "notes", "followup_result")


# ---- statistics --------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """'8.5 s', '42 s', '3 min 05 s', '1 h 02 min'; an en dash when there is nothing to measure."""
    if seconds is None:
        return "\u2013"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def rate_text(rate: float | None) -> str:
    return "\u2013" if rate is None else f"{rate * 100:.0f} %"


@dataclass(frozen=True)
class Stats:
    """How long something took over n incidents. p90 is by the nearest-rank method (the smallest
    value at least 90 % of the values are at or below): always a wait some customer really had,
    and with the few calls of one zone in one week it does not invent values between two calls."""

    n: int
    median_s: float | None
    p90_s: float | None

    @property
    def median_text(self) -> str:
        return duration_text(self.median_s)

    @property
    def p90_text(self) -> str:
        return duration_text(self.p90_s)


def stats(values: Iterable[float]) -> Stats:
    """Median (the mean of the middle two for an even count) and nearest-rank p90."""
    xs = sorted(values)
    if not xs:
        return Stats(0, None, None)
    p90 = xs[math.ceil(0.9 * len(xs)) - 1]
    return Stats(len(xs), round(statistics.median(xs), 3), p90)


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def ack_s(inc: Incident) -> float | None:
    """Press to acknowledgement, received_at -> acked_at: the customer's wait until someone is
    coming (what the button's light shows). received_at, not pressed_at, since it is the gateway's
    clock; the button's may be unset."""
    return _span(inc.received_at, inc.acked_at)


def resolve_s(inc: Incident) -> float | None:
    """Press to resolved, received_at -> resolved_at: the customer's whole wait for a fix."""
    return _span(inc.received_at, inc.resolved_at)


def wait_s(inc: Incident) -> float | None:
    """How long the customer waited for someone: until acknowledged, or (never acknowledged) until
    the call ended, e.g. the customer cancelled; None if it has not ended."""
    return _span(inc.received_at, inc.acked_at if inc.acked_at is not None else inc.closed_at)


# ---- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One row of a breakdown: time to acknowledge and to resolve of the calls in it."""

    key: str  # zone id, staff id, hour "00".."23", weekday "mon".."sun"
    label: str  # what a person reads: zone or staff name, "19:00", "Mon"
    ack: Stats
    resolve: Stats


@dataclass(frozen=True)
class Cause:
    """One bar of the root-cause Pareto."""

    tag: str
    count: int
    cumulative: float  # share of all tagged incidents in this row and those above it, 0..1


@dataclass(frozen=True)
class Compensation:
    text: str  # as first written; "Free dessert" and " free dessert" count together
    count: int
    cost: float


@dataclass(frozen=True)
class Waited:
    """A customer call on the "longest waits" list."""

    incident: Incident
    wait_s: float | None  # see wait_s(); None: never acknowledged and not ended
    acknowledged: bool
    received_text: str  # local time, e.g. "Tue 2024-06-04 19:40"
    responder_name: str | None  # the venue's name for the responder (their id if no longer in it)

    @property
    def wait_text(self) -> str:
        return "not acknowledged" if self.wait_s is None else duration_text(self.wait_s)


@dataclass(frozen=True)
class Report:
    venue_name: str
    site: str
    timezone: str
    since: float  # the period is [since, until), Unix times
    until: float
    total: int  # every incident received in the period
    customer_calls: int  # origin press or held
    device_troubles: int
    zone_alerts: int
    positive_feedback: int
    cancelled: int
    unreached: int  # incidents that went through `unreached` (or are in it, when not told which did)
    ack: Stats  # time to acknowledge (ack_s) of customer calls
    resolve: Stats  # time to resolve (resolve_s) of customer calls
    by_zone: tuple[Bucket, ...]  # the venue's zones in its order, then any others found
    by_staff: tuple[Bucket, ...]  # the responders, in the venue's order
    by_hour: tuple[Bucket, ...]  # 24 rows, 00 to 23, local time
    by_weekday: tuple[Bucket, ...]  # 7 rows, Monday first, local time
    paged: int  # customer calls that were paged
    escalated: int  # of those, the ones that went past level 0
    escalation_rate: float | None  # escalated / paged; None without a paged call
    followed_up: int  # incidents whose follow-up finished (followup_result set)
    satisfied: int
    recovery_rate: float | None  # satisfied / followed_up
    root_causes: tuple[Cause, ...]  # Pareto order: count descending, then tag
    compensation_count: int
    compensation_total: float
    compensation: tuple[Compensation, ...]  # cost descending, then count
    worst: tuple[Waited, ...]  # the WORST longest-waiting customer calls

    @property
    def escalation_rate_text(self) -> str:
        return rate_text(self.escalation_rate)

    @property
    def recovery_rate_text(self) -> str:
        return rate_text(self.recovery_rate)

    @property
    def slowest_zones(self) -> tuple[Bucket, ...]:
        return _slowest(self.by_zone)

    @property
    def slowest_staff(self) -> tuple[Bucket, ...]:
        return _slowest(self.by_staff)


def _slowest(rows: Sequence[Bucket]) -> tuple[Bucket, ...]:
    """By p90 time to acknowledge, then median: the tail is the customer who walks out."""
    measured = [r for r in rows if r.ack.p90_s is not None]
    measured.sort(key=lambda r: (-(r.ack.p90_s or 0.0), -(r.ack.median_s or 0.0), r.key))
    return tuple(measured[:SLOWEST])


def _bucket(key: str, label: str, calls: Sequence[Incident]) -> Bucket:
    return Bucket(key, label, stats(v for v in map(ack_s, calls) if v is not None),
                  stats(v for v in map(resolve_s, calls) if v is not None))


def _group(calls: Iterable[Incident], key: Callable[[Incident], str | None]) -> dict[str, list[Incident]]:
    out: dict[str, list[Incident]] = {}
    for inc in calls:
        k = key(inc)
        if k is not None:
            out.setdefault(k, []).append(inc)
    return out


def _by_names(groups: dict[str, list[Incident]], names: dict[str, str], every: bool) -> tuple[Bucket, ...]:
    """Rows in the venue's order (all of its names if `every`), then keys it no longer has."""
    keys = [k for k in names if every or k in groups] + sorted(set(groups) - set(names))
    return tuple(_bucket(k, names.get(k, k), groups.get(k, [])) for k in keys)


def _local(t: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, tz)


def local_text(t: float, tz: tzinfo) -> str:
    """'Tue 2024-06-04 19:40' in the venue's time; the weekday in English whatever the locale."""
    local = _local(t, tz)
    return f"{WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}"


def _by_hour(calls: Sequence[Incident], tz: tzinfo) -> tuple[Bucket, ...]:
    groups = _group(calls, lambda inc: f"{_local(inc.received_at, tz).hour:02d}")
    return tuple(_bucket(f"{h:02d}", f"{h:02d}:00", groups.get(f"{h:02d}", [])) for h in range(24))


def _by_weekday(calls: Sequence[Incident], tz: tzinfo) -> tuple[Bucket, ...]:
    groups = _group(calls, lambda inc: WEEKDAYS[_local(inc.received_at, tz).weekday()])
    return tuple(_bucket(day.lower(), day, groups.get(day, [])) for day in WEEKDAYS)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def pareto(tags: Iterable[str]) -> tuple[Cause, ...]:
    """Root-cause tags counted, most frequent first (ties by tag), with the cumulative share."""
    counts = sorted(Counter(tags).items(), key=lambda item: (-item[1], item[0]))
    total = sum(n for _tag, n in counts)
    out, running = [], 0
    for tag, n in counts:
        running += n
        out.append(Cause(tag, n, running / total))
    return tuple(out)


def _compensation_key(text: str) -> str:
    """Typed by staff at the end of a shift: case and spacing are not a different compensation."""
    return " ".join(text.split()).casefold()


def compensations(given: Iterable[Incident]) -> tuple[Compensation, ...]:
    """Compensation grouped by what was given, the costliest first."""
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    costs: dict[str, float] = {}
    for inc in given:
        text = " ".join((inc.compensation or "").split()) or UNSPECIFIED
        key = _compensation_key(text)
        names.setdefault(key, text)
        counts[key] += 1
        costs[key] = costs.get(key, 0.0) + (inc.compensation_cost or 0.0)
    rows = [Compensation(names[k], counts[k], round(costs[k], 2)) for k in names]
    return tuple(sorted(rows, key=lambda c: (-c.cost, -c.count, c.text.casefold())))


def _worst(calls: Sequence[Incident], venue: Venue) -> tuple[Waited, ...]:
    """The longest waits; a call never acknowledged and still not ended counts as the longest."""
    def rank(inc: Incident) -> tuple[float, float]:
        w = wait_s(inc)
        return -(math.inf if w is None else w), inc.received_at

    ranked = sorted(calls, key=rank)
    return tuple(Waited(inc, wait_s(inc), inc.acked_at is not None,
                        local_text(inc.received_at, venue.tz), _name(venue, inc.responder))
                 for inc in ranked[:WORST])


def _name(venue: Venue, staff_id: str | None) -> str | None:
    staff = venue.staff.get(staff_id) if staff_id else None
    return staff.name if staff else staff_id


def report(found: Iterable[Incident], venue: Venue, since: float, until: float,
           unreached_ids: Collection[int] | None = None) -> Report:
    """The report of the incidents received in [since, until) (others given are left out).
    `unreached_ids` (Store.ever_in(UNREACHED, ...)) counts calls that were unreached and then answered;
    without it only those still unreached count."""
    period = [inc for inc in found if since <= inc.received_at < until]
    calls = [inc for inc in period if inc.origin in CUSTOMER]
    tz = venue.tz
    paged = [inc for inc in calls if inc.paged_at is not None]
    followed = [inc for inc in period if inc.followup_result is not None]
    given = [inc for inc in period if inc.compensation is not None or inc.compensation_cost is not None]
    unreached = (sum(inc.id in unreached_ids for inc in period) if unreached_ids is not None
                 else sum(inc.state == incidents.UNREACHED for inc in period))
    overall = _bucket("", "", calls)
    return Report(
        venue_name=venue.name, site=venue.site, timezone=venue.timezone, since=since, until=until,
        total=len(period),
        customer_calls=len(calls),
        device_troubles=sum(inc.origin == TROUBLE for inc in period),
        zone_alerts=sum(inc.origin == ZONE for inc in period),
        positive_feedback=sum(inc.origin == FEEDBACK for inc in period),
        cancelled=sum(inc.state == incidents.CANCELLED for inc in period),
        unreached=unreached,
        ack=overall.ack,
        resolve=overall.resolve,
        by_zone=_by_names(_group(calls, lambda inc: inc.zone), {z.id: z.name for z in venue.zones.values()}, True),
        by_staff=_by_names(_group(calls, lambda inc: inc.responder),
                           {s.id: s.name for s in venue.staff.values()}, False),
        by_hour=_by_hour(calls, tz),
        by_weekday=_by_weekday(calls, tz),
        paged=len(paged),
        escalated=sum(inc.level > 0 for inc in paged),
        escalation_rate=_share(sum(inc.level > 0 for inc in paged), len(paged)),
        followed_up=len(followed),
        satisfied=sum(inc.followup_result == SATISFIED for inc in followed),
        recovery_rate=_share(sum(inc.followup_result == SATISFIED for inc in followed), len(followed)),
        root_causes=pareto(inc.root_cause for inc in period if inc.root_cause),
        compensation_count=len(given),
        compensation_total=round(sum(inc.compensation_cost or 0.0 for inc in given), 2),
        compensation=compensations(given),
        worst=_worst(calls, venue),
    )


def as_dict(r: Report) -> dict[str, Any]:
    """The report as JSON-ready data for the API: every field, nested records as objects."""
    return asdict(r)


# ---- periods -----------------------------------------------------------------------------------


def _midnight(day: date, tz: tzinfo) -> float:
    """Local midnight of a day as a Unix time; built from the date, so a DST change inside the
    period makes it 23 or 25 hours rather than shifting every boundary after it."""
    return datetime.combine(day, time(), tz).timestamp()


def day_of(t: float, tz: tzinfo) -> tuple[float, float]:
    """[00:00, next 00:00) of the local day holding t."""
    day = _local(t, tz).date()
    return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)


def week_of(t: float, tz: tzinfo) -> tuple[float, float]:
    """[Monday 00:00, next Monday 00:00) of the local week holding t: the review meeting's week."""
    return week_of_day(_local(t, tz).date(), tz)


def week_of_day(day: date, tz: tzinfo) -> tuple[float, float]:
    """The week holding a day the weekly summary's picker named; ValueError outside EARLIEST..LATEST."""
    monday = _check_day(day) - timedelta(days=day.weekday())
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)


def day_text(t: float, tz: tzinfo) -> str:
    """The local date of t, YYYY-MM-DD: what the period picker shows and sends."""
    return _local(t, tz).date().isoformat()


# The days a report may name: a typed year 1 or 9999 is bad input, not a date to compute with
# (a week or a "previous period" link from it would run off the calendar).
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


def _check_day(day: date) -> date:
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"{day} is outside the years a report covers ({EARLIEST.year} to {LATEST.year})")
    return day


def period(since: date | None, until: date | None, tz: tzinfo, now: float) -> tuple[float, float]:
    """The period picker's two days, both included, as [since, until): a manager who picks Monday to
    Sunday means Sunday too. Without `until`, up to today; without `since`, the 7 days up to
    `until`. ValueError for a period that ends before it starts, is longer than MAX_DAYS, or names
    a day outside EARLIEST..LATEST."""
    last = _check_day(until or _local(now, tz).date())
    first = _check_day(since or last - timedelta(days=6))
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"a report covers at most {MAX_DAYS} days, not {(last - first).days + 1}")
    return _midnight(first, tz), _midnight(last + timedelta(days=1), tz)


# ---- CSV export --------------------------------------------------------------------------------


def safe_cell(text: str) -> str:
    """A leading apostrophe on text a spreadsheet would run as a formula (notes are typed by staff;
    a CSV is opened in Excel by whoever is handed it)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _iso(t: float | None, tz: tzinfo) -> str:
    return "" if t is None else _local(t, tz).isoformat(timespec="milliseconds")


def _number(x: float | int | None) -> str:
    return "" if x is None else str(x)


def csv_row(inc: Incident, tz: tzinfo) -> list[str]:
    """One incident as the cells of CSV_FIELDS; times in ISO 8601 with the venue's offset."""
    d = inc.durations()
    text = [inc.table_id, inc.zone, inc.kind, inc.origin, inc.state]
    times = [_iso(t, tz) for t in (inc.pressed_at, inc.received_at, inc.paged_at, inc.acked_at, inc.resolved_at,
                                   inc.closed_at)]
    spans = [_number(d.get(k)) for k in ("press_to_page", "page_to_ack", "ack_to_resolve")] + [_number(ack_s(inc))]
    cost = "" if inc.compensation_cost is None else f"{inc.compensation_cost:.2f}"
    return [str(inc.id), *map(safe_cell, text), *times, *spans, safe_cell(inc.responder or ""), str(inc.level),
            str(inc.presses), safe_cell(inc.recovery_action or ""), safe_cell(inc.compensation or ""), cost,
            safe_cell(inc.root_cause or ""), safe_cell(inc.notes or ""), safe_cell(inc.followup_result or "")]


def csv_text(found: Iterable[Incident], venue: Venue) -> str:
    """Every incident as one CSV row (RFC 4180: quoted where needed, CRLF line ends), header first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    tz = venue.tz
    writer.writerows(csv_row(inc, tz) for inc in found)
    return out.getvalue()


# ---- charts ------------------------------------------------------------------------------------


def _medians(rows: Sequence[Bucket], measured_only: bool = True) -> list[charts.Item]:
    return [(r.label, r.ack.median_s) for r in rows if r.ack.n or not measured_only]


def charts_for(r: Report) -> dict[str, str]:
    """The SVG the report pages show, by name; each has the id "chart-<name with dashes>"."""
    title = "Time to acknowledge"
    return {
        "ack_by_zone": charts.hbar_chart(f"{title} by zone (median)", _medians(r.by_zone), fmt=duration_text,
                                         chart_id="chart-ack-by-zone"),
        "ack_by_staff": charts.hbar_chart(f"{title} by staff member (median)", _medians(r.by_staff),
                                          fmt=duration_text, chart_id="chart-ack-by-staff"),
        "ack_by_hour": charts.bar_chart(f"{title} by hour of day (median, seconds, {r.timezone})",
                                        [(row.key, row.ack.median_s) for row in r.by_hour], "s", decimals=0,
                                        chart_id="chart-ack-by-hour"),
        "ack_by_weekday": charts.bar_chart(f"{title} by weekday (median)", _medians(r.by_weekday, False),
                                           fmt=duration_text, chart_id="chart-ack-by-weekday"),
        "pareto": charts.pareto_chart("Root causes (Pareto)", [(c.tag, c.count) for c in r.root_causes],
                                      chart_id="chart-pareto"),
        "compensation": charts.hbar_chart("Compensation given by kind (cost)",
                                          [(c.text, c.cost) for c in r.compensation], decimals=2,
                                          chart_id="chart-compensation"),
    }
