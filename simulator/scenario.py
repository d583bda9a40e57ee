"""Scenario engine: plays a TOML timeline of presses, pager answers and faults against a simulated
venue, and checks expectations about pagers, buttons and the incident store.

Time is real: a scenario keeps its timeline short (seconds) and says so in its venue overrides
(ack timeouts of a few seconds), rather than scaling the clocks of the firmware and the gateway;
see docs/simulator.md. Expectations are polled while the timeline runs ("by t+5 s pager pgr-ben
shows T12"); the checks without a deadline (zero lost presses, response figures) run at the end,
each given `settle_s` to come true. Nothing is mocked: a self-contained run starts its own mosquitto
and a real gateway process on its own SQLite file."""

from __future__ import annotations

import contextlib
import random
import re
import statistics
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.broker import Mosquitto
from gateway.store import Incident, Store
from gateway.venue import Venue, parse_venue

from .devices import VirtualButton, VirtualDevice, VirtualPager
from .faults import FAULTS, GatewayProcess, Plant
from .people import Crowd, Habits, StaffMember
from .venue_sim import SimulatedVenue

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEFAULT_VENUE = ROOT / "examples" / "demo-venue.toml"
POLL_S = 0.025
PRESS_LINE = re.compile(r"^PRESS seq=(\d+) kind=")
GESTURES = {"press": [120], "long_press": [1700], "double_press": [100, 100]}  # holds, with a 100 ms gap
KEYS = ("ack", "decline", "resolve")
TOP_KEYS = {"name", "about", "venue", "self_contained", "duration_s", "settle_s", "venue_overrides", "people",
            "crowd", "timeline", "expect"}


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message names the key at fault."""


@dataclass
class Step:
    at: float
    do: str
    args: dict[str, Any]


@dataclass
class Expectation:
    check: str
    args: dict[str, Any]
    by: float | None  # None: checked at the end
    after: float = 0.0
    met_at: float | None = None
    detail: str = ""

    def describe(self) -> str:
        named = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.check} {named}".strip()


@dataclass
class Scenario:
    path: Path
    name: str
    about: str
    venue_path: Path
    self_contained: bool
    duration_s: float
    settle_s: float
    overrides: dict[str, Any]
    people: dict[str, Any] | None
    crowd: dict[str, Any] | None
    steps: list[Step]
    expects: list[Expectation]


def load_scenario(path: Path) -> Scenario:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    steps = []
    for i, row in enumerate(doc.get("timeline", [])):
        row = dict(row)
        if "at" not in row or "do" not in row:
            raise ScenarioError(f"{path}: timeline[{i}] needs `at` and `do`")
        do = row.pop("do")
        if do not in GESTURES and do not in KEYS and do not in FAULTS:
            raise ScenarioError(f"{path}: timeline[{i}].do: unknown action {do!r}")
        steps.append(Step(float(row.pop("at")), do, row))
    expects = []
    for i, row in enumerate(doc.get("expect", [])):
        row = dict(row)
        check = row.pop("check", None)
        if check not in CHECKS:
            raise ScenarioError(f"{path}: expect[{i}].check: {check!r} is not one of {', '.join(CHECKS)}")
        by = row.pop("by", None)
        expects.append(Expectation(check, row, None if by is None else float(by), float(row.pop("after", 0.0))))
    venue_rel = doc.get("venue")
    return Scenario(
        path=path, name=str(doc.get("name", path.stem)), about=str(doc.get("about", "")),
        venue_path=(path.parent / venue_rel).resolve() if venue_rel else DEFAULT_VENUE,
        self_contained=bool(doc.get("self_contained", True)), duration_s=float(doc.get("duration_s", 5.0)),
        settle_s=float(doc.get("settle_s", 10.0)), overrides=dict(doc.get("venue_overrides", {})),
        people=doc.get("people"), crowd=doc.get("crowd"), steps=sorted(steps, key=lambda s: s.at), expects=expects)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` deep-merged into a copy of `base` (tables merge, anything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {type(v).__name__}")


def dump_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for a venue file: values, nested tables, arrays of tables (the gateway process
    reads the merged venue from disk, as it would in production)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", dump_toml(v, f"{prefix}{k}.")]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for row in v:
                lines += ["", f"[[{prefix}{k}]]", dump_toml(row, f"{prefix}{k}.")]
    return "\n".join(lines).strip() + "\n"


class Records:
    """The incident store as a report reads it, through the store module, opened for each look so
    it sees what the gateway (another process) has written since."""

    def __init__(self, db: Path | None) -> None:
        self.db = db

    @contextlib.contextmanager
    def store(self) -> Iterator[Store | None]:
        """The store, or None while the gateway has not created it yet."""
        if self.db is None:
            raise RuntimeError("checks on the incident store need a self-contained run or --db")
        if not self.db.exists():
            yield None
            return
        store = Store(self.db)
        try:
            yield store
        finally:
            store.close()

    def incidents(self) -> list[Incident]:
        with self.store() as s:
            return s.incidents() if s else []

    def presses(self) -> list[tuple[str, int, int, int]]:
        with self.store() as s:
            return s.press_log() if s else []

    def paged(self, table_id: str) -> set[str]:
        with self.store() as s:
            if s is None:
                return set()
            return {staff for inc in s.incidents() if inc.table_id == table_id for staff in s.paged_staff(inc.id)}


@dataclass
class Figures:
    """Press -> human acknowledgement, over incidents opened by customers' presses."""

    presses_sent: int = 0
    presses_stored: int = 0
    incidents: int = 0
    acked: int = 0
    presses_reached: int = 0
    ack_s: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float | None:
        if not self.ack_s:
            return None
        if len(self.ack_s) == 1:
            return self.ack_s[0]
        return statistics.quantiles(self.ack_s, n=100, method="inclusive")[int(q) - 1]

    @staticmethod
    def _s(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f} s"

    def summary(self) -> str:
        p50, p95 = self.pct(50), self.pct(95)
        share = self.presses_reached / self.presses_stored if self.presses_stored else 0.0
        return (f"presses sent {self.presses_sent}, stored {self.presses_stored}; incidents {self.incidents}, "
                f"acknowledged by a person {self.acked}; press->ack p50 {self._s(p50)} p95 {self._s(p95)}; "
                f"presses that reached a person {share:.0%}")


class Run:
    def __init__(self, scenario: Scenario, venue: Venue, plant: Plant, records: Records,
                 out: Callable[[str], None]) -> None:
        self.sc = scenario
        self.venue = venue
        self.plant = plant
        self.sim = plant.sim
        self.records = records
        self.out = out
        self.t0 = time.monotonic()
        self.people: list[StaffMember] = []
        self.crowd: Crowd | None = None
        self.errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, what: str) -> None:
        self.out(f"  t+{self.now():6.2f} s  {what}")

    # ---- people ------------------------------------------------------------------------------

    def start_people(self) -> None:
        cfg = dict(self.sc.people or {})
        if not cfg:
            return
        rng = random.Random(int(cfg.pop("seed", 1)))
        per_staff = cfg.pop("staff", {})
        ignoring_share = float(cfg.pop("ignoring_share", 0.0))
        only = cfg.pop("only", None)
        base = Habits(**cfg)
        staff = [s for s in sorted(self.venue.staff) if only is None or s in only]
        ignoring = set(rng.sample(staff, round(len(staff) * ignoring_share)))
        for s in staff:
            habits = Habits(**{**base.__dict__, **per_staff.get(s, {})})
            if s in ignoring:
                habits.ignore = 1.0
            self.people.append(StaffMember(s, self.sim.pager_of(s), habits, random.Random(rng.random()),
                                           log=lambda m: self.say(m)))
        if ignoring:
            self.say(f"people: {', '.join(sorted(ignoring))} ignore their pagers")
        for p in self.people:
            p.start()

    def start_crowd(self) -> None:
        c = self.sc.crowd
        if not c:
            return
        tables = c.get("tables") or sorted(self.venue.tables)
        buttons = [self.sim.button_at(t) for t in tables]
        self.crowd = Crowd(buttons, float(c["rate_per_min"]), float(c["for_s"]), random.Random(int(c.get("seed", 2))),
                           log=self.say)
        self.crowd.start()
        self.say(f"customers press at {c['rate_per_min']}/min on {len(tables)} tables for {c['for_s']} s")

    # ---- timeline ----------------------------------------------------------------------------

    def act(self, step: Step) -> None:
        try:
            if step.do in GESTURES:
                button = self.plant.device(step.args)
                threading.Thread(target=self._gesture, args=(button, GESTURES[step.do]), daemon=True).start()
                self.say(f"{step.do} on {button.id}")
            elif step.do in KEYS:
                pager = self.plant.device(step.args)
                threading.Thread(target=self._key, args=(pager, step.do, step.args), daemon=True).start()
                self.say(f"{step.do} on {pager.id}")
            else:
                self.say(self.plant.apply(step.do, step.args))
        except Exception as e:
            self.errors.append(f"t+{step.at} {step.do}: {e}")
            self.say(f"could not {step.do}: {e}")

    @staticmethod
    def _gesture(button: VirtualDevice, holds: list[int]) -> None:
        for i, hold in enumerate(holds):
            if i:
                time.sleep(0.1)
            button.press(hold)

    @staticmethod
    def _key(pager: VirtualDevice, what: str, args: dict[str, Any]) -> None:
        assert isinstance(pager, VirtualPager)
        if what == "ack":
            pager.press_a()
        elif what == "decline":
            pager.press_a(pager.LONG_A_MS)
        else:
            pager.resolve(args.get("action") or pager.app.choices()[0])

    def play(self) -> None:
        self.start_people()
        self.start_crowd()
        pending = [e for e in self.sc.expects if e.by is not None]
        steps = list(self.sc.steps)
        last_by = max([e.by for e in pending if e.by is not None], default=0.0)
        end = max(self.sc.duration_s, last_by)
        while self.now() < end:
            while steps and steps[0].at <= self.now():
                self.act(steps.pop(0))
            for e in pending:
                if e.met_at is None and e.by is not None and e.after <= self.now() <= e.by:
                    ok, e.detail = self.evaluate(e)
                    if ok:
                        e.met_at = self.now()
            if not steps and all(e.met_at is not None for e in pending) and self.now() >= self.sc.duration_s:
                break
            time.sleep(POLL_S)
        for step in steps:
            self.act(step)
        if self.crowd is not None:
            self.crowd.stop()

    def settle(self) -> None:
        """End checks: each may take up to settle_s to come true (queued presses still on their way)."""
        deadline = time.monotonic() + self.sc.settle_s
        for e in (e for e in self.sc.expects if e.by is None):
            while True:
                ok, e.detail = self.evaluate(e)
                if ok:
                    e.met_at = self.now()
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        for p in self.people:
            p.stop()

    # ---- checks ------------------------------------------------------------------------------

    def evaluate(self, e: Expectation) -> tuple[bool, str]:
        try:
            return CHECKS[e.check](self, e.args)
        except Exception as ex:
            return False, f"{type(ex).__name__}: {ex}"

    def figures(self) -> Figures:
        f = Figures()
        for b in self.sim.buttons.values():
            f.presses_sent += sum(1 for _t, line in list(b.lines) if PRESS_LINE.match(line))
        presses = self.records.presses()
        f.presses_stored = len(presses)
        per_incident = Counter(inc for _d, _ep, _seq, inc in presses)
        for inc in self.records.incidents():
            if inc.origin not in ("press", "held"):
                continue
            f.incidents += 1
            if inc.acked_at is not None and inc.responder:
                f.acked += 1
                f.presses_reached += per_incident[inc.id]
                f.ack_s.append(inc.acked_at - inc.received_at)
        return f


def _device(run: Run, args: dict[str, Any]) -> VirtualDevice:
    return run.plant.device({k: v for k, v in args.items() if k in ("device", "table", "staff")})


def check_pager_shows(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    pager = _device(run, a)
    assert isinstance(pager, VirtualPager)
    screen = pager.screen
    return any(a["text"] in row for row in screen), f"{pager.id} screen: {' | '.join(screen) or '(blank)'}"


def check_button_shows(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    button = _device(run, a)
    assert isinstance(button, VirtualButton)
    return button.state == a["state"], f"{button.id} shows {button.state or '(nothing)'}"


def check_log(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    dev = _device(run, a)
    rx = re.compile(a["pattern"])
    hits = [line for _t, line in list(dev.lines) if rx.search(line)]
    want = int(a.get("count", 1))
    return len(hits) >= want, f"{dev.id} logged {len(hits)} line(s) matching {a['pattern']!r}, wanted {want}"


INCIDENT_FIELDS = ("table", "state", "responder", "origin", "kind")


def check_incident(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    rows = run.records.incidents()
    want = {k: a[k] for k in INCIDENT_FIELDS if k in a}
    for r in rows:
        got = {"table": r.table_id, "state": r.state, "responder": r.responder, "origin": r.origin, "kind": r.kind}
        if (all(got[k] == v for k, v in want.items()) and r.level >= int(a.get("min_level", 0))
                and r.presses >= int(a.get("min_presses", 0)) and a.get("button", r.button) == r.button):
            return True, f"incident {r.id}"
    seen = "; ".join(f"{r.id} {r.table_id} {r.kind} {r.origin} {r.state} by {r.responder} "
                     f"lvl {r.level} presses {r.presses}" for r in rows[-5:])
    return False, f"incidents: {seen or 'none'}"


def check_paged(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    paged = sorted(run.records.paged(a["table"]))
    return a["staff"] in paged, f"paged for {a['table']}: {', '.join(paged) or 'nobody'}"


def check_no_lost_presses(run: Run, _a: dict[str, Any]) -> tuple[bool, str]:
    f = run.figures()
    return (f.presses_sent == f.presses_stored and f.presses_sent > 0,
            f"presses sent (button logs) {f.presses_sent}, recorded in the store {f.presses_stored}")


def check_response(run: Run, a: dict[str, Any]) -> tuple[bool, str]:
    f = run.figures()
    p95 = f.pct(95)
    share = f.presses_reached / f.presses_stored if f.presses_stored else 0.0
    ok = (p95 is not None and p95 <= float(a.get("p95_max_s", 45)) and share >= float(a.get("reached_min", 1.0))
          and f.presses_stored == f.presses_sent)
    return ok, f.summary()


CHECKS: dict[str, Callable[[Run, dict[str, Any]], tuple[bool, str]]] = {
    "pager_shows": check_pager_shows, "button_shows": check_button_shows, "log": check_log,
    "incident": check_incident, "paged": check_paged, "no_lost_presses": check_no_lost_presses,
    "response": check_response,
}


@dataclass
class Outcome:
    name: str
    passed: bool
    failures: list[str]
    figures: Figures


def run_scenario(path: Path, broker_url: str | None = None, venue_path: Path | None = None, db: Path | None = None,
                 self_contained: bool | None = None, out: Callable[[str], None] = print,
                 echo: bool = False) -> Outcome:
    """Play one scenario file and check its expectations."""
    sc = load_scenario(path)
    own = sc.self_contained if self_contained is None else self_contained
    if not own and broker_url is None:
        raise ScenarioError(f"{path}: not self-contained, so it needs --broker (and a gateway running there)")
    doc = tomllib.loads((venue_path or sc.venue_path).read_text())
    doc = merge(doc, sc.overrides)
    venue = parse_venue(doc, str(sc.venue_path))
    out(f"scenario {sc.name}: {sc.about}".rstrip(": "))
    with tempfile.TemporaryDirectory(prefix="rb-scenario-") as tmp:
        work = Path(tmp)
        broker: Mosquitto | None = None
        gateway: GatewayProcess | None = None
        sim: SimulatedVenue | None = None
        run: Run | None = None
        try:
            if own:
                broker = Mosquitto(work / "broker").start()
                broker_url = broker.url
                (work / "venue.toml").write_text(dump_toml(doc))
                db = work / "incidents.db"
                gateway = GatewayProcess(work / "venue.toml", broker_url, db)
                gateway.start()
            elif sc.overrides:
                out("  note: venue overrides apply to the simulated devices only; the running gateway keeps its file")
            assert broker_url is not None
            sim = SimulatedVenue(venue, broker_url, work / "devices", echo=echo).start(timeout=30)
            run = Run(sc, venue, Plant(sim, broker, gateway), Records(db), out)
            run.play()
            run.settle()
            failures = [f"t+{e.by if e.by is not None else 'end'} {e.describe()}: {e.detail}"
                        for e in sc.expects if e.met_at is None] + run.errors
            for e in sc.expects:
                when = f"t+{e.met_at:.2f} s" if e.met_at is not None else "FAILED"
                out(f"  {'PASS' if e.met_at is not None else 'FAIL'} {when:>10}  {e.describe()}: {e.detail}")
            figures = run.figures()
            out(f"  figures: {figures.summary()}")
            return Outcome(sc.name, not failures, failures, figures)
        finally:
            if run is not None:
                for p in run.people:
                    p.stop()
            if sim is not None:
                sim.stop()
            if gateway is not None:
                gateway.stop()
            if broker is not None:
                broker.stop()


def shipped() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml"))
