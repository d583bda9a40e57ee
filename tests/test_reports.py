"""The managers' reports on a small hand-made week in Berlin: every number below is worked out by hand
from the history, so a change in how a median, a rate or a local hour is counted shows up here. The
incidents go through a real SQLite store; the page templates are rendered with a stand-in base.html,
so these tests need no web app."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, StrictUndefined

from gateway import charts, incidents, reports
from gateway.service import FEEDBACK, TROUBLE, ZONE
from gateway.store import Store
from gateway.venue import Venue, load_venue

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "gateway" / "web" / "templates"
BERLIN = ZoneInfo("Europe/Berlin")
SVG = "{http://www.w3.org/2000/svg}"
BUTTONS = {"T1": "btn-t1", "T12": "btn-t12"}
EVIL_NOTE = '=HYPERLINK("http://evil.example","click")'
QUOTED_NOTE = 'said: "cold",\nthen left'


def at(day: int, hh: int, mm: int = 0, ss: int = 0, month: int = 6) -> float:
    """A wall-clock time in Berlin in 2024 (June: UTC+2)."""
    return datetime(2024, month, day, hh, mm, ss, tzinfo=BERLIN).timestamp()


WEEK = (at(3, 0), at(10, 0))  # Monday 3 June to Monday 10 June 2024, Berlin


@pytest.fixture(scope="module")
def venue() -> Venue:
    return load_venue(ROOT / "examples" / "venue-reference.toml")


def call(store: Store, received: float, table: str, zone: str, *, page: float | None = None, level: int = 0,
         ack: float | None = None, responder: str | None = None, resolve: float | None = None,
         followup: str | None = None, unreached: float | None = None, cancel: float | None = None,
         origin: str = "press", kind: str = "complaint", **record: object) -> int:
    """An incident through the store's own lifecycle; the step times are seconds after `received`."""
    inc = store.open_incident("bistro", table, zone, BUTTONS.get(table, "gateway"), kind, received - 0.4, received,
                              None, origin)
    if unreached is not None:
        store.move(inc, incidents.UNREACHED, received + unreached, "gateway", "no responder available")
    if page is not None:
        store.move(inc, incidents.PAGED, received + page, "gateway", "paged", level=level, paged_at=received + page)
    if ack is not None:
        assert responder is not None
        store.move(inc, incidents.ACKNOWLEDGED, received + ack, responder, "ack", acked_at=received + ack,
                   responder=responder)
    if resolve is not None:
        store.move(inc, incidents.RESOLVED, received + resolve, str(responder), "resolve",
                   resolved_at=received + resolve, recovery_action="apology")
    if followup == "satisfied":
        store.move(inc, incidents.FOLLOWED_UP, received + (resolve or 0) + 60, "btn", "happy",
                   followup_result=followup)
    elif followup is not None:
        store.move(inc, incidents.CLOSED, received + (resolve or 0) + 900, "gateway", "follow-up window closed",
                   followup_result=followup, closed_at=received + (resolve or 0) + 900)
    if cancel is not None:
        store.move(inc, incidents.CANCELLED, received + cancel, "btn", "customer cancelled",
                   closed_at=received + cancel)
    if record:
        store.update(inc, **record)
    return inc


@pytest.fixture
def week(store: Store) -> dict[str, int]:
    """Seven customer calls, a device trouble, a zone alert and a happy press; two calls just outside.

    call  local time       zone     ack  by   level resolve follow-up     root cause     compensation
    c0    Mon 01:30        dining    30  ana  0      60    -             -              -
    c1    Mon 12:00        dining    10  ana  0     100    satisfied     kitchen_delay  Free dessert 6.50
    c2    Mon 12:30        terrace   20  ana  0     200    no_response   kitchen_delay  -
    c3    Mon 19:00        dining    40  flo  1     300    satisfied     wrong_order    " free  dessert" 4.00
    c4    Tue 19:15        terrace   90  mia  2     400    satisfied     service        Drinks on the house 10
    c5    Tue 19:40        dining   300  ana  0     360    satisfied     kitchen_delay  -   (unreached first)
    c6    Sun 23:30        terrace    -  -    0       -    -             -              -   (cancelled at 60 s)
    c0 is Sunday 23:30 in UTC: the hour and weekday buckets must use Berlin time."""
    ids = {
        "c0": call(store, at(3, 1, 30), "T1", "dining", page=2, ack=30, responder="ana", resolve=60),
        "c1": call(store, at(3, 12), "T1", "dining", page=2, ack=10, responder="ana", resolve=100,
                   followup="satisfied", root_cause="kitchen_delay", compensation="Free dessert",
                   compensation_cost=6.5),
        "c2": call(store, at(3, 12, 30), "T12", "terrace", page=2, ack=20, responder="ana", resolve=200,
                   followup="no_response", root_cause="kitchen_delay", notes=QUOTED_NOTE),
        "c3": call(store, at(3, 19), "T1", "dining", page=2, level=1, ack=40, responder="flo", resolve=300,
                   followup="satisfied", root_cause="wrong_order", compensation=" free  dessert",
                   compensation_cost=4.0),
        "c4": call(store, at(4, 19, 15), "T12", "terrace", page=2, level=2, ack=90, responder="mia", resolve=400,
                   followup="satisfied", root_cause="service", compensation="Drinks on the house",
                   compensation_cost=10.0, notes=EVIL_NOTE),
        "c5": call(store, at(4, 19, 40), "T1", "dining", unreached=1, page=240, ack=300, responder="ana",
                   resolve=360, followup="satisfied", root_cause="kitchen_delay", notes="+1 dessert <b>bold</b>"),
        "c6": call(store, at(9, 23, 30), "T12", "terrace", page=5, cancel=60),
        # not customer calls: a slow trouble acknowledgement must not move any response time
        "trouble": call(store, at(5, 10), "T1", "dining", page=1, ack=1000, responder="mia", resolve=1100,
                        origin=TROUBLE, kind="low_battery"),
        "zone": call(store, at(4, 19, 41), "zone:dining", "dining", page=1, origin=ZONE, kind="zone_complaints"),
        "feedback": call(store, at(6, 13), "T12", "terrace", origin=FEEDBACK, kind="happy"),
    }
    store.move(ids["feedback"], incidents.CLOSED, at(6, 13), "gateway", "positive feedback", closed_at=at(6, 13))
    # just outside the week, each acknowledged fast enough to pull the median down if counted
    call(store, at(2, 23, 59, 59), "T1", "dining", page=1, ack=5, responder="ana")
    call(store, at(10, 0), "T1", "dining", page=1, ack=5, responder="ana")
    return ids


@pytest.fixture
def rep(store: Store, week: dict[str, int], venue: Venue) -> reports.Report:
    found = store.incidents(*WEEK)
    return reports.report(found, venue, *WEEK, unreached_ids=store.ever_in("unreached", *WEEK))


# ---- statistics --------------------------------------------------------------------------------


def test_stats_median_and_nearest_rank_p90() -> None:
    assert reports.stats([]) == reports.Stats(0, None, None)
    assert reports.stats([5.0]) == reports.Stats(1, 5.0, 5.0)
    assert reports.stats([3.0, 1.0, 2.0]) == reports.Stats(3, 2.0, 3.0)
    # 1..10: the median is between 5 and 6; nearest rank gives 9 where linear interpolation gives 9.1
    assert reports.stats(float(x) for x in range(10, 0, -1)) == reports.Stats(10, 5.5, 9.0)
    assert reports.stats([10.0] * 9 + [500.0]) == reports.Stats(10, 10.0, 10.0)
    assert reports.stats([10.0] * 8 + [500.0] * 2).p90_s == 500.0


@pytest.mark.parametrize(("seconds", "text"), [(None, "\u2013"), (4.25, "4.2 s"), (35.0, "35 s"), (59.6, "1 min 00 s"),
                                                (300.0, "5 min 00 s"), (3725.0, "1 h 02 min")])
def test_duration_text(seconds: float | None, text: str) -> None:
    assert reports.duration_text(seconds) == text


# ---- the report --------------------------------------------------------------------------------


def test_counts_of_the_week(rep: reports.Report, week: dict[str, int]) -> None:
    assert (rep.total, rep.customer_calls, rep.device_troubles, rep.zone_alerts, rep.positive_feedback,
            rep.cancelled, rep.unreached) == (10, 7, 1, 1, 1, 1, 1)
    assert (rep.venue_name, rep.timezone, rep.since, rep.until) == ("Bistro Reference", "Europe/Berlin", *WEEK)


def test_unreached_counts_calls_answered_later_only_when_told_which(store: Store, week: dict[str, int],
                                                                   venue: Venue) -> None:
    found = store.incidents(*WEEK)
    assert store.ever_in("unreached", *WEEK) == {week["c5"]}
    assert reports.report(found, venue, *WEEK).unreached == 0  # c5 was answered: its state no longer says


def test_times_to_acknowledge_and_resolve_are_customer_calls_only(rep: reports.Report) -> None:
    assert rep.ack == reports.Stats(6, 35.0, 300.0)  # 10 20 30 40 90 300; the trouble's 1000 s left out
    assert rep.resolve == reports.Stats(6, 250.0, 400.0)  # 60 100 200 300 360 400


def test_by_zone_and_by_staff(rep: reports.Report) -> None:
    zones = {b.key: (b.label, b.ack, b.resolve) for b in rep.by_zone}
    assert list(zones) == ["dining", "terrace"]  # the venue's order
    assert zones["dining"] == ("Dining room", reports.Stats(4, 35.0, 300.0), reports.Stats(4, 200.0, 360.0))
    assert zones["terrace"] == ("Terrace", reports.Stats(2, 55.0, 90.0), reports.Stats(2, 300.0, 400.0))
    staff = {b.key: (b.label, b.ack) for b in rep.by_staff}
    assert staff == {"ana": ("Ana", reports.Stats(4, 25.0, 300.0)), "flo": ("Flo", reports.Stats(1, 40.0, 40.0)),
                     "mia": ("Mia", reports.Stats(1, 90.0, 90.0))}
    assert [b.key for b in rep.slowest_zones] == ["dining", "terrace"]
    assert [b.key for b in rep.slowest_staff] == ["ana", "mia", "flo"]


def test_hours_and_weekdays_are_the_venues_local_time(rep: reports.Report) -> None:
    hours = {b.key: b.ack for b in rep.by_hour}
    assert list(hours) == [f"{h:02d}" for h in range(24)]
    assert {h: s for h, s in hours.items() if s.n} == {"01": reports.Stats(1, 30.0, 30.0),
                                                       "12": reports.Stats(2, 15.0, 20.0),
                                                       "19": reports.Stats(3, 90.0, 300.0)}
    days = {b.key: (b.label, b.ack, b.resolve) for b in rep.by_weekday}
    assert list(days) == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert days["mon"] == ("Mon", reports.Stats(4, 25.0, 40.0), reports.Stats(4, 150.0, 300.0))
    assert days["tue"] == ("Tue", reports.Stats(2, 195.0, 300.0), reports.Stats(2, 380.0, 400.0))
    assert days["sun"][1] == reports.Stats(0, None, None)  # c6 was never acknowledged; c0 is Monday here


def test_escalation_and_recovery_rates(rep: reports.Report) -> None:
    assert (rep.escalated, rep.paged, rep.escalation_rate) == (2, 7, 2 / 7)
    assert (rep.satisfied, rep.followed_up, rep.recovery_rate) == (4, 5, 0.8)
    assert (rep.escalation_rate_text, rep.recovery_rate_text) == ("29 %", "80 %")


def test_root_causes_as_a_pareto(rep: reports.Report) -> None:
    assert [(c.tag, c.count, c.cumulative) for c in rep.root_causes] == [
        ("kitchen_delay", 3, pytest.approx(0.6)), ("service", 1, pytest.approx(0.8)), ("wrong_order", 1, 1.0)]


def test_compensation_is_grouped_whatever_the_case_and_spacing(rep: reports.Report) -> None:
    assert (rep.compensation_count, rep.compensation_total) == (3, 20.5)
    assert rep.compensation == (reports.Compensation("Free dessert", 2, 10.5),
                                reports.Compensation("Drinks on the house", 1, 10.0))


def test_worst_waits(rep: reports.Report, week: dict[str, int]) -> None:
    assert [(w.incident.id, w.wait_s, w.acknowledged) for w in rep.worst] == [
        (week["c5"], 300.0, True), (week["c4"], 90.0, True), (week["c6"], 60.0, False), (week["c3"], 40.0, True),
        (week["c0"], 30.0, True)]
    assert (rep.worst[0].received_text, rep.worst[0].responder_name) == ("Tue 2024-06-04 19:40", "Ana")


def test_incidents_outside_the_period_are_left_out(store: Store, week: dict[str, int], venue: Venue) -> None:
    everything = store.incidents()
    assert len(everything) == 12
    assert reports.report(everything, venue, *WEEK) == reports.report(store.incidents(*WEEK), venue, *WEEK)


def test_an_empty_period(venue: Venue) -> None:
    rep = reports.report([], venue, *WEEK)
    assert (rep.total, rep.ack, rep.escalation_rate, rep.recovery_rate, rep.root_causes, rep.worst) == (
        0, reports.Stats(0, None, None), None, None, (), ())
    assert [b.key for b in rep.by_zone] == ["dining", "terrace"] and rep.by_staff == ()
    for svg in reports.charts_for(rep).values():
        assert charts.NO_DATA in _texts(ET.fromstring(svg))


def test_as_dict_is_json(rep: reports.Report) -> None:
    data = json.loads(json.dumps(reports.as_dict(rep)))
    assert data["ack"] == {"n": 6, "median_s": 35.0, "p90_s": 300.0}
    assert data["root_causes"][0] == {"tag": "kitchen_delay", "count": 3, "cumulative": 0.6}


# ---- periods -----------------------------------------------------------------------------------


def test_week_and_day_in_the_venues_time_zone() -> None:
    assert reports.week_of(at(5, 12), BERLIN) == WEEK
    assert reports.week_of(at(3, 0), BERLIN) == WEEK  # Monday 00:00 opens its own week
    assert reports.week_of(at(2, 23, 59, 59), BERLIN)[1] == WEEK[0]
    assert reports.day_of(at(5, 0, 30), BERLIN) == (at(5, 0), at(6, 0))
    start, end = reports.week_of(at(27, 12, month=3), BERLIN)  # clocks go forward on Sunday 31 March
    assert (start, end - start) == (at(25, 0, month=3), 7 * 86400 - 3600)
    assert reports.day_of(at(27, 12, month=10), BERLIN)[1] - reports.day_of(at(27, 12, month=10), BERLIN)[0] == 90000


def test_period_from_the_picker() -> None:
    assert reports.period(date(2024, 6, 3), date(2024, 6, 9), BERLIN, 0.0) == WEEK  # both days included
    assert reports.period(None, None, BERLIN, at(9, 18)) == WEEK  # the 7 days up to today
    assert reports.day_text(WEEK[1] - 1, BERLIN) == "2024-06-09"
    with pytest.raises(ValueError, match="before it starts"):
        reports.period(date(2024, 6, 9), date(2024, 6, 3), BERLIN, 0.0)
    with pytest.raises(ValueError, match="at most"):
        reports.period(date(2001, 1, 1), date(2024, 12, 31), BERLIN, 0.0)
    with pytest.raises(ValueError, match="outside the years"):
        reports.period(None, date(1, 1, 3), BERLIN, 0.0)  # a week before year 1 does not exist
    with pytest.raises(ValueError, match="outside the years"):
        reports.week_of_day(date(9999, 12, 31), BERLIN)


# ---- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_injection_guard(start: str) -> None:
    assert reports.safe_cell(start + "1+1") == "'" + start + "1+1"
    assert reports.safe_cell("a" + start) == "a" + start


def test_csv_round_trip(store: Store, week: dict[str, int], venue: Venue) -> None:
    rows = list(csv.reader(io.StringIO(reports.csv_text(store.incidents(*WEEK), venue), newline="")))
    assert tuple(rows[0]) == reports.CSV_FIELDS
    by_id = {int(r[0]): dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert len(rows) == 11 and set(by_id) == set(week.values())
    c0 = by_id[week["c0"]]
    assert (c0["table"], c0["zone"], c0["origin"], c0["state"], c0["responder"], c0["level"]) == (
        "T1", "dining", "press", "resolved", "ana", "0")
    assert (c0["received"], c0["paged"], c0["acked"]) == (
        "2024-06-03T01:30:00.000+02:00", "2024-06-03T01:30:02.000+02:00", "2024-06-03T01:30:30.000+02:00")
    assert (c0["press_to_page_s"], c0["page_to_ack_s"], c0["ack_to_resolve_s"], c0["press_to_ack_s"]) == (
        "2.0", "28.0", "30.0", "30.0")
    assert (c0["resolved"], c0["closed"], c0["notes"], c0["compensation_cost"]) == (
        "2024-06-03T01:31:00.000+02:00", "", "", "")
    c1 = by_id[week["c1"]]
    assert (c1["compensation"], c1["compensation_cost"], c1["root_cause"], c1["followup_result"]) == (
        "Free dessert", "6.50", "kitchen_delay", "satisfied")
    assert by_id[week["c2"]]["notes"] == QUOTED_NOTE  # quotes, comma and newline survive
    assert by_id[week["c4"]]["notes"] == "'" + EVIL_NOTE
    assert by_id[week["c5"]]["notes"] == "'+1 dessert <b>bold</b>"
    assert by_id[week["c6"]]["acked"] == "" and by_id[week["c6"]]["state"] == "cancelled"


# ---- charts ------------------------------------------------------------------------------------


def _texts(root: ET.Element) -> str:
    return " ".join("".join(root.itertext()).split())


def test_the_pages_charts_are_accessible_svg(rep: reports.Report) -> None:
    found = reports.charts_for(rep)
    assert set(found) == {"ack_by_zone", "ack_by_staff", "ack_by_hour", "ack_by_weekday", "pareto", "compensation"}
    for name, svg in found.items():
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img", name
        assert root.get("id") == "chart-" + name.replace("_", "-")
        assert root[0].tag == f"{SVG}title" and root[0].text
        assert len(root.get("viewBox", "").split()) == 4 and root.get("width") is None  # scales with the page
    zones = ET.fromstring(found["ack_by_zone"])
    assert [t.text for t in zones.iter(f"{SVG}text") if t.get("class") == "label"] == ["Dining room", "Terrace"]
    assert [t.text for t in zones.iter(f"{SVG}text") if t.get("class") == "value"] == ["35 s", "55 s"]
    assert zones.findtext(f"{SVG}desc") == "Dining room: 35 s; Terrace: 55 s"  # read out by screen readers


def test_chart_labels_are_escaped() -> None:
    label, title = "<script>alert(1)</script>", 'Tom & "Jerry" <b>'
    for svg in (charts.hbar_chart(title, [(label, 3.0), ("x", 1.0)], "s"),
                charts.bar_chart(title, [(label, 3.0), ("x", None)], "s"),
                charts.pareto_chart(title, [(label, 3), ("x", 1)]),
                charts.no_data(title)):
        root = ET.fromstring(svg)  # well-formed: nothing unescaped broke the markup
        assert "<script>" not in svg and not list(root.iter(f"{SVG}script"))
        assert root[0].text == title
        if "No data" not in svg:
            # the bar's tooltip has the whole label, even where the axis shows it cut short
            assert any((t.text or "").startswith(label + ":") for t in root.iter(f"{SVG}title"))


def test_an_empty_chart_says_so() -> None:
    for svg in (charts.hbar_chart("t", []), charts.bar_chart("t", [("a", None)]), charts.pareto_chart("t", [("a", 0)])):
        assert charts.NO_DATA in _texts(ET.fromstring(svg))


def test_pareto_chart_draws_the_cumulative_line_to_100_percent() -> None:
    root = ET.fromstring(charts.pareto_chart("Root causes", [("b", 1), ("a", 3)], chart_id="p"))
    bars = [g for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert [g.find(f"{SVG}title").text for g in bars] == [  # type: ignore[union-attr]
        "a: 3, 75 % cumulative", "b: 1, 100 % cumulative"]
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{SVG}polyline").get("points", "").split()]  # type: ignore[union-attr]
    mark = root.find(f"{SVG}g[@class='threshold']")
    assert mark is not None and "80 %" in _texts(mark)
    ys = [p[1] for p in points]
    assert len(points) == 2 and ys[0] > ys[1]  # rises to the top: 100 % at the last bar
    assert float(mark.find(f"{SVG}line").get("y1", "0")) > ys[1]  # type: ignore[union-attr]


# ---- pages -------------------------------------------------------------------------------------

STAND_IN_BASE = """<!doctype html><html><head><title>{% block title %}{% endblock %}</title>
{% block head %}{% endblock %}</head>
<body><nav>chrome</nav><main>{% block content %}{% endblock %}</main></body></html>"""


class Page(HTMLParser):
    """The elements of a rendered page in order, each with its attributes and its text."""

    VOID = {"input", "br", "meta", "link", "img", "hr", "col", "source", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "text": []}
        self.elements.append(el)
        if tag not in self.VOID:
            self._open.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": []})

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()["tag"] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["text"].append(data)

    def id(self, ident: str) -> dict[str, Any]:
        found = [el for el in self.elements if el["attrs"].get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    def text(self, ident: str) -> str:
        return " ".join("".join(self.id(ident)["text"]).split())

    def value(self, ident: str) -> float:
        return float(self.id(ident)["attrs"]["data-value"])

    def rows(self, cls: str, attr: str) -> list[str]:
        return [el["attrs"][attr] for el in self.elements if cls in (el["attrs"].get("class") or "").split()]


def render(name: str, rep: reports.Report) -> str:
    env = Environment(loader=ChoiceLoader([DictLoader({"base.html": STAND_IN_BASE}), FileSystemLoader(TEMPLATES)]),
                      autoescape=True, undefined=StrictUndefined)
    return env.get_template(name).render(
        report=rep, charts=reports.charts_for(rep), since_text="2024-06-03", until_text="2024-06-09",
        csv_url="/api/v1/reports.csv?since=2024-06-03&until=2024-06-09",
        prev_url="/reports?since=2024-05-27&until=2024-06-02", next_url="/reports?since=2024-06-10&until=2024-06-16")


def _headline(page: Page) -> None:
    assert (page.value("ack-median"), page.text("ack-median")) == (35.0, "35 s")
    assert (page.value("ack-p90"), page.text("ack-p90")) == (300.0, "5 min 00 s")
    assert page.value("escalation-rate") == pytest.approx(2 / 7) and page.text("escalation-rate") == "29 %"
    assert (page.value("recovery-rate"), page.text("recovery-rate")) == (0.8, "80 %")
    assert (page.value("unreached"), page.value("compensation-total")) == (1, 20.5)
    assert page.rows("root-cause", "data-cause") == ["kitchen_delay", "service", "wrong_order"]
    assert [float(c) for c in page.rows("root-cause", "data-cumulative")] == pytest.approx([0.6, 0.8, 1.0])
    assert page.rows("compensation", "data-text") == ["Free dessert", "Drinks on the house"]
    assert page.id("csv-link")["attrs"]["href"] == "/api/v1/reports.csv?since=2024-06-03&until=2024-06-09"
    assert page.id("chart-pareto")["tag"] == "svg"


def test_reports_page(rep: reports.Report) -> None:
    html = render("reports.html", rep)
    assert "<nav>chrome</nav>" in html
    page = Page(html)
    _headline(page)
    form = page.id("period-form")["attrs"]
    assert form["method"] == "get"
    inputs = {el["attrs"]["name"]: el["attrs"] for el in page.elements if el["tag"] == "input"}
    assert {n: (a["type"], a["value"]) for n, a in inputs.items()} == {"since": ("date", "2024-06-03"),
                                                                        "until": ("date", "2024-06-09")}
    zone_rows = [el["attrs"] for el in page.elements if el["tag"] == "tr" and "data-key" in el["attrs"]]
    assert [(r["data-key"], r["data-ack-median"], r["data-ack-p90"]) for r in zone_rows[:2]] == [
        ("dining", "35.0", "300.0"), ("terrace", "55.0", "90.0")]
    hours = [el for el in page.elements if el["attrs"].get("id") == "by-hour"]
    assert hours
    hour_keys = [el["attrs"]["data-key"] for el in page.elements[page.elements.index(hours[0]):]
                 if el["tag"] == "tr" and "data-key" in el["attrs"]][:3]
    assert hour_keys == ["01", "12", "19"]  # only hours with calls; 01, not 23 (UTC)
    assert page.id("weekly-link")["attrs"]["href"] == "/reports/weekly"
    for ident in ("prev-link", "next-link"):
        assert page.id(ident)["attrs"]["href"].startswith("/reports?since=")


def test_weekly_page(rep: reports.Report, week: dict[str, int]) -> None:
    html = render("weekly.html", rep)
    page = Page(html)
    _headline(page)
    assert "@media print" in html and "page-break-inside: avoid" in html
    assert [int(i) for i in page.rows("worst", "data-incident")] == [week[c] for c in ("c5", "c4", "c6", "c3", "c0")]
    slow = [el["attrs"]["data-key"] for el in page.elements if "slow" in (el["attrs"].get("class") or "").split()]
    assert slow == ["dining", "terrace", "ana", "mia", "flo"]
    assert "+1 dessert &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html  # staff notes escaped


def test_pages_of_an_empty_week(venue: Venue) -> None:
    rep = reports.report([], venue, *WEEK)
    for name in ("reports.html", "weekly.html"):
        page = Page(render(name, rep))
        assert (page.id("ack-median")["attrs"]["data-value"], page.text("ack-median")) == ("", "\u2013")
        assert page.text("recovery-rate") == "\u2013"
        assert page.rows("root-cause", "data-cause") == []
