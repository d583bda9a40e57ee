"""Chaos under load: hundreds of light buttons pressing (simulator/load.py) against a real mosquitto, a
real gateway and its SQLite file, while something breaks: the broker is killed, the gateway is
killed, the disk fills up, one device floods, the clock jumps. Each case ends with presses sent =
presses recorded: every (button, epoch, seq) that was pressed is a row of the store's presses table,
and none is there twice or counted twice in an incident.

The figures of each case (sent, recorded, how long the fault lasted, how long until every press
made before the repair was recorded, the run's time) are printed as one line per case in the
terminal summary and written as JSON to chaos-figures.json in pytest's base temporary folder.

A fault lasts until the load has pressed a given number of times against it (not a number of
seconds), and every wait is for a condition. The buttons here send a press again when no answer
comes within RESEND_S, as the firmware's button does (after 5 s there; shorter here to keep the run
short): that is what carries a press the broker acknowledged and then lost across a broker kill."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway import incidents
from gateway.broker import Mosquitto
from gateway.clock import ManualClock
from gateway.mqtt_io import parse_broker_url
from gateway.service import HELD, PRESS, Gateway
from gateway.store import Store
from gateway.venue import Venue, parse_venue
from gateway_rig import Rig, rules_doc
from simulator.faults import Flooder, GatewayProcess, kill_broker
from simulator.load import LoadRun, Options, Report, figures, recorded_presses, synthetic_doc, venue_toml
from waiting import wait_until

BUTTONS, PAGERS = 300, 30
RATE = 40.0  # presses per second, all buttons together
SECONDS = 8.0  # of pressing; a case runs for about this plus start and drain
RESEND_S = 2.0
WARM = 40  # presses recorded before the fault: the load is flowing
AGAINST = 40  # presses made while the fault lasts
FLOOD_PRESSES = 3000
FLOOD_LIMIT = 20  # the venue holds a button pressed more often than this in a minute
GARBAGE_EVERY = 10  # the flooder sends four kinds of garbage after every 10th press
FLOODER = "btn-1"
EVERYONE = ("pgr-ana", "pgr-ben", "pgr-flo", "pgr-mia")
HOUR = 3600.0

CASES: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def chaos_figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the module: one line per case in the terminal summary, all of it as JSON."""
    yield
    if not CASES:
        return
    path = tmp_path_factory.getbasetemp() / "chaos-figures.json"
    path.write_text(json.dumps(CASES, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_sep("-", "chaos figures")
        for case in CASES:
            reporter.write_line(summary(case))
        reporter.write_line(f"(as JSON in {path})")


def summary(case: dict[str, Any]) -> str:
    outage = "" if case["outage_s"] is None else f", fault {case['outage_s']:.2f} s"
    recovery = "" if case["recovery_s"] is None else f", all recorded {case['recovery_s']:.2f} s after the repair"
    return (f"chaos {case['case']:<12} sent {case['sent']:>5} recorded {case['recorded']:>5} lost {case['lost']} "
            f"twice {case['twice']}{outage}{recovery}, run {case['runtime_s']:.1f} s {case['notes']}")


@dataclass
class Case:
    """The figures of one case, as the closing note quotes them."""

    case: str
    started: float = field(default_factory=time.perf_counter)
    sent: int = 0
    recorded: int = 0
    lost: int = 0
    twice: int = 0
    outage_s: float | None = None
    recovery_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def done(self) -> None:
        row = {k: v for k, v in asdict(self).items() if k != "started"}
        row["runtime_s"] = round(time.perf_counter() - self.started, 2)
        for k in ("outage_s", "recovery_s"):
            if row[k] is not None:
                row[k] = round(row[k], 3)
        CASES.append(row)
        print(summary(row))


# ---- the load and its ground truth ----------------------------------------------------------------

class ChaosRun(LoadRun):
    """A LoadRun whose drain also waits for every button to have its presses answered and for an
    alert after each press (a press that joins an acknowledged incident re-alerts its responder;
    one published while the broker had lost the pager's subscription is sent again when the pager
    is back online)."""

    def _drained(self, r: Report, recorded: dict[tuple[str, int, int], int] | None) -> bool:
        sent = r.presses_sent
        return (r.presses_published == sent and r.answered == sent and recorded is not None
                and len(recorded) >= sent and r.alerted == sent
                and not any(b.unanswered for b in self.buttons))

    def recorded(self) -> dict[tuple[str, int, int], int]:
        assert self.db_path is not None
        return recorded_presses(self.db_path, self.epoch, {b.id for b in self.buttons})

    def pressed_since(self, t: float) -> int:
        with self.tally.lock:
            return sum(1 for at in self.tally.pressed.values() if at >= t)


def poll(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.025) -> Any:
    """wait_until for a condition that reads the store (a few ms each): looked at every `every` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return value


def warm(run: ChaosRun) -> None:
    poll(lambda: len(run.recorded()) >= WARM, 20, f"{WARM} presses recorded before the fault")


def against(run: ChaosRun, since: float, what: str) -> None:
    """The fault lasts until the buttons have pressed AGAINST times into it."""
    poll(lambda: run.pressed_since(since) >= AGAINST, 20, f"{AGAINST} presses made {what}")


def all_recorded_since(run: ChaosRun, repaired: float, timeout: float = 30.0) -> float:
    """Seconds from the repair until every press made before it is in the store."""
    with run.tally.lock:
        due = {k for k, at in run.tally.pressed.items() if at <= repaired}
    try:
        poll(lambda: due <= run.recorded().keys(), timeout, f"the {len(due)} presses made before the repair recorded")
    except AssertionError as e:
        missing = sorted(due - run.recorded().keys())
        waiting = {b.id: b.unanswered for b in run.buttons if b.unanswered}
        raise AssertionError(f"{e}: {len(missing)} missing {missing[:5]}; buttons with presses unanswered: "
                             f"{dict(list(waiting.items())[:5])}; device counts {run.tally.counts}") from None
    return time.perf_counter() - repaired


def options(**kw: Any) -> Options:
    base: dict[str, Any] = {"seconds": SECONDS, "rate": RATE, "ack_after": 0.5, "resolve_after": 1.0, "drain_s": 30.0,
                            "resend_s": RESEND_S}
    return Options(**{**base, **kw})


def ground_truth(case: Case, run: ChaosRun, report: Report, db: Path) -> dict[tuple[str, int, int], int]:
    """Presses sent = presses recorded, each once: the assertions every case ends with."""
    with run.tally.lock:
        pressed = dict(run.tally.pressed)
    store = Store(db)
    try:
        log = store.press_log()
        every = store.incidents()
    finally:
        store.close()
    keys = [(d, ep, seq) for d, ep, seq, _inc in log]
    mine = {(d, ep, seq): inc for d, ep, seq, inc in log if ep == run.epoch and d in {b.id for b in run.buttons}}
    case.sent, case.recorded = report.presses_sent, len(mine)
    case.lost = len(set(pressed) - set(mine))
    case.twice = len(keys) - len(set(keys))
    assert report.presses_published == report.presses_sent == len(pressed) > 0, "every press acknowledged by the broker"
    assert not set(pressed) - set(mine), f"presses lost: {sorted(set(pressed) - set(mine))[:10]}"
    assert not set(mine) - set(pressed), "recorded presses nobody made"
    assert case.twice == 0, "a press recorded twice"
    # Counted once too: an incident's press count is the number of its rows, and no table has two
    # customer incidents open at once (a press delivered again after a crash joins, never reopens).
    rows = Counter(inc for _d, _ep, _seq, inc in log)
    for inc in every:
        if inc.origin in (PRESS, HELD):
            assert inc.presses == rows[inc.id], f"incident {inc.id} counts {inc.presses} presses, has {rows[inc.id]}"
    open_at = Counter(inc.table_id for inc in every if inc.origin in (PRESS, HELD) and inc.state in incidents.ACTIVE)
    assert max(open_at.values(), default=0) <= 1, f"tables with two open incidents: {open_at.most_common(3)}"
    assert report.answered == report.presses_sent, "every press answered on its button"
    return mine


def every_incident_alerted(run: ChaosRun, recorded: dict[tuple[str, int, int], int]) -> None:
    with run.tally.lock:
        alerted = set(run.tally.alerts)
    missing = set(recorded.values()) - alerted
    assert not missing, f"incidents that reached no pager: {sorted(missing)[:10]}"


@dataclass
class Plant:
    broker: Mosquitto
    gateway: GatewayProcess
    db: Path
    venue: Venue


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Plant]]:
    """start(venue document) -> a broker of the test's own and a `redbutton gateway` process on that
    venue (written as a file) and a SQLite file."""
    made: list[Plant] = []

    def start(doc: dict[str, Any]) -> Plant:
        venue_file = tmp_path / "venue.toml"
        venue_file.write_text(venue_toml(doc))
        broker = Mosquitto(tmp_path / "broker").start()
        gateway = GatewayProcess(venue_file, broker.url, tmp_path / "incidents.db")
        made.append(Plant(broker, gateway, tmp_path / "incidents.db", parse_venue(doc)))
        gateway.start()
        return made[-1]

    yield start
    for p in made:
        p.gateway.stop()
        p.broker.stop()


@contextmanager
def told(gw: GatewayProcess, broker: Mosquitto | None = None) -> Iterator[None]:
    """A wait that fails says what the gateway (and the broker) logged last."""
    try:
        yield
    except AssertionError as e:
        tail = "".join(gw.lines[-15:])
        if broker is not None and (broker.dir / "mosquitto.log").exists():
            tail += "mosquitto:\n" + "\n".join((broker.dir / "mosquitto.log").read_text().splitlines()[-10:])
        raise AssertionError(f"{e}\nthe gateway's last lines:\n{tail}") from None


def gateway_sane(gw: GatewayProcess) -> None:
    """Nothing crashed: every line JSON, no handler failed, no traceback."""
    assert gw.not_json == 0, "".join(gw.lines[-20:])
    failed = [line for line in gw.lines if "handler failed" in line or "Traceback" in line]
    assert not failed, failed[:3]


# ---- 1. broker killed --------------------------------------------------------------------------

def test_broker_killed_under_load_loses_no_press(plant: Callable[[dict[str, Any]], Plant]) -> None:
    """SIGKILL mosquitto mid-load and start it again on its port. It wrote no persistence file, so
    it comes back without the gateway's session and subscription: presses that reach it before the
    gateway has subscribed again are acknowledged and dropped. The buttons' outboxes (paho's, for
    what the broker had not acknowledged) and their re-send of an unanswered press carry them."""
    case = Case("broker-kill")
    p = plant(synthetic_doc(BUTTONS, PAGERS, "chaosbk"))
    run = ChaosRun(p.venue, p.broker.url, options(), str(p.db))

    def kill(_run: LoadRun) -> None:
        warm(run)
        t0 = time.perf_counter()
        kill_broker(p.broker)
        poll(lambda: run.tally.get("disconnects") >= len(run.devices), 10, "every device to see the broker go")
        against(run, t0, "while the broker is dead")
        # Dead long enough for every client to back off (the devices twice, the gateway's paho once):
        # they come back in a scramble, many devices before the gateway has subscribed again.
        poll(lambda: run.tally.get("reconnect_failed") >= 2 * len(run.devices), 20, "the devices' reconnects to fail")
        p.broker.start()
        back = time.perf_counter()
        case.outage_s = back - t0
        with told(p.gateway, p.broker):
            case.recovery_s = all_recorded_since(run, back)

    report = run.run(out=lambda _line: None, during=kill)
    recorded = ground_truth(case, run, report, p.db)
    every_incident_alerted(run, recorded)
    assert report.alerted == report.presses_sent, "each press reached a pager after it"
    # No alert waits for a timer: one lost with the pagers' subscriptions is sent again when each
    # pager is back (within the outage and the recovery), not at the next reminder.
    assert report.latency.max_ms is not None and case.outage_s is not None and case.recovery_s is not None
    assert report.latency.max_ms <= 1000 * (case.outage_s + case.recovery_s + 5)
    gateway_sane(p.gateway)
    case.notes = {"reconnects": run.tally.get("reconnects"), "resent": run.tally.get("presses_resent"),
                  "press_to_alert_p99_ms": report.latency.p99_ms}
    case.done()


# ---- 2. gateway killed ---------------------------------------------------------------------------

def test_gateway_killed_under_load_loses_no_press_and_restores_its_timers(
        plant: Callable[[dict[str, Any]], Plant]) -> None:
    """kill -9 the gateway mid-load, presses go on into its persistent session at the broker, start
    it again: every press recorded once, every timer that was in the store restored, a new epoch."""
    case = Case("gateway-kill")
    p = plant(synthetic_doc(BUTTONS, PAGERS, "chaosgk"))
    run = ChaosRun(p.venue, p.broker.url, options(), str(p.db))
    first_epoch = p.gateway.epoch
    timers: list[tuple[float, int]] = []

    def kill(_run: LoadRun) -> None:
        warm(run)
        t0 = time.perf_counter()
        p.gateway.kill()
        store = Store(p.db)
        try:
            timers.extend(store.deadlines())  # what the dead gateway left: the restart must restore all of it
        finally:
            store.close()
        against(run, t0, "while the gateway is dead")
        p.gateway.start()
        up = time.perf_counter()
        case.outage_s = up - t0
        with told(p.gateway):
            case.recovery_s = all_recorded_since(run, up)

    report = run.run(out=lambda _line: None, during=kill)
    ground_truth(case, run, report, p.db)
    assert report.alerted == report.presses_sent, "every press reached a pager after it"
    assert timers and p.gateway.restored == len(timers), f"{p.gateway.restored} of {len(timers)} timers restored"
    assert p.gateway.epoch > first_epoch
    assert run.tally.get("device_drops") == 0, "no device refused a command of the new epoch"
    gateway_sane(p.gateway)
    case.notes = {"timers_restored": p.gateway.restored,
                  "redelivered_answered": int(p.gateway.metrics().get("redbutton_presses_duplicate_total", 0)),
                  "press_to_alert_p99_ms": report.latency.p99_ms}
    case.done()


# ---- 3. the disk fills up ----------------------------------------------------------------------------

def test_disk_full_under_load_raises_the_alarm_and_loses_no_press(plant: Callable[[dict[str, Any]], Plant]) -> None:
    """The gateway's disk fills up mid-load (its file-size limit drops to one byte, so SQLite's next
    write fails as on a full disk; the gateway process is left running). Each message it cannot
    store is held and retried, with an ERROR line saying STORE and the store.failed counter (the
    alarm on /metrics); a button's re-send of a held press is not taken for a replay. Once there is
    room again every press is recorded, once."""
    case = Case("disk-full")
    p = plant(synthetic_doc(BUTTONS, PAGERS, "chaosdf"))
    run = ChaosRun(p.venue, p.broker.url, options(), str(p.db))
    during_outage: dict[str, float] = {}

    def fill(_run: LoadRun) -> None:
        warm(run)
        mark = len(p.gateway.records)
        t0 = time.perf_counter()
        p.gateway.disk_full()
        against(run, t0, "while the disk is full")
        # ... and until buttons have sent unanswered presses again: a held press comes twice
        poll(lambda: run.tally.get("presses_resent") >= 10, 10, "buttons re-sending presses held unanswered")
        alarm = poll(lambda: (m := p.gateway.metrics()).get("redbutton_store_failed_total", 0) >= 1
                     and m.get("redbutton_messages_held", 0) >= 1 and m, 10, "the store's alarm on /metrics")
        during_outage.update(alarm)
        errors = [r for r in p.gateway.records[mark:] if r.get("level") == "ERROR" and "STORE" in str(r.get("msg"))]
        assert errors, "an ERROR line saying STORE while the disk is full"
        p.gateway.disk_room()
        room = time.perf_counter()
        case.outage_s = room - t0
        with told(p.gateway):
            case.recovery_s = all_recorded_since(run, room)

    report = run.run(out=lambda _line: None, during=fill)
    ground_truth(case, run, report, p.db)
    assert report.alerted == report.presses_sent, "every press reached a pager after it"
    assert during_outage["redbutton_store_ok"] == 0, "store_ok is 0 while the disk is full"
    after = p.gateway.metrics()
    assert after["redbutton_store_ok"] == 1 and after["redbutton_messages_held"] == 0
    assert after.get("redbutton_store_recovered_total", 0) >= 1
    assert after["redbutton_store_failed_total"] >= during_outage["redbutton_store_failed_total"]
    gateway_sane(p.gateway)
    case.notes = {"store_failed": int(after["redbutton_store_failed_total"]),
                  "held_at_most": int(during_outage["redbutton_messages_held"]),
                  "retried": int(after.get("redbutton_store_retried_total", 0)),
                  "resent": run.tally.get("presses_resent"), "press_to_alert_p99_ms": report.latency.p99_ms}
    case.done()


# ---- 4. one device floods ----------------------------------------------------------------------------

@dataclass
class Flood:
    """What one flood did, for the tests that look at it from different sides."""

    run: ChaosRun
    report: Report
    plant: Plant
    case: Case
    flood_presses: list[tuple[str, int, int, int]]  # the flooder's rows in the store
    others_during: list[float]  # press -> first alert (s) of the other buttons' presses during the flood
    others_ingest: list[tuple[float, float]]  # (press -> alert, flood delivered -> alert) of those made before
    # the broker had delivered the whole flood to a bystander client
    ingest_s: float  # from the first flood press until the bystander had the last of it: the transport's share
    flood_alerts: dict[int, int]  # the flooder's incidents -> alerts pagers received for each
    drained_s: float  # from the first flood press until the gateway had recorded all of them
    garbage: int
    metrics: dict[str, float]


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flood]:
    """One button's key in a rogue client: FLOOD_PRESSES signed presses as fast as it can, with
    garbage among them, while the other buttons press as usual. The venue holds a button for a
    manager past 20 presses a minute."""
    case = Case("flood")
    tmp = tmp_path_factory.mktemp("flood")
    doc = synthetic_doc(BUTTONS, PAGERS, "chaosfl")
    doc["noise"] = {"rate_limit_presses": FLOOD_LIMIT, "rate_limit_window_s": 60}
    venue_file = tmp / "venue.toml"
    venue_file.write_text(venue_toml(doc))
    broker = Mosquitto(tmp / "broker").start()
    gateway = GatewayProcess(venue_file, broker.url, tmp / "incidents.db")
    p = Plant(broker, gateway, tmp / "incidents.db", parse_venue(doc))
    try:
        gateway.start()
        run = ChaosRun(p.venue, broker.url, options(), str(p.db))
        run.buttons = [b for b in run.buttons if b.id != FLOODER]  # the rogue client has its key
        window: list[float] = []
        garbage = 0
        bystander = Bystander(parse_broker_url(broker.url), f"rb/v1/{p.venue.site}/{FLOODER}/evt/#")

        def flooded() -> list[tuple[str, int, int, int]] | None:
            store = Store(p.db)
            try:
                rows = [r for r in store.press_log() if r[0] == FLOODER]
            finally:
                store.close()
            return rows if len(rows) >= FLOOD_PRESSES else None

        def rogue(_run: LoadRun) -> None:
            nonlocal garbage
            warm(run)
            flooder = Flooder(p.venue, FLOODER, parse_broker_url(broker.url), int(time.time()))
            try:
                window.append(time.perf_counter())
                for info in flooder.flood(FLOOD_PRESSES, GARBAGE_EVERY):
                    info.wait_for_publish(30)
                garbage = flooder.garbage
            finally:
                flooder.close()
            poll(flooded, 60, f"the gateway to record the {FLOOD_PRESSES} presses of the flood", every=0.1)
            window.append(time.perf_counter())
            case.outage_s = window[1] - window[0]

        try:
            report = run.run(out=lambda _line: None, during=rogue)
        finally:
            bystander.close()
        ingested = max(bystander.times)
        rows = flooded() or []
        recorded = run.recorded()
        with run.tally.lock:
            pressed = dict(run.tally.pressed)
            alerts = {k: sorted(v) for k, v in run.tally.alerts.items()}
        others_during, others_ingest = [], []
        for key, at in pressed.items():
            times = alerts.get(recorded.get(key, -1), [])
            i = bisect_left(times, at)
            if ingested < at <= window[1] and i < len(times):
                others_during.append(times[i] - at)
            elif window[0] <= at <= ingested and i < len(times):
                others_ingest.append((times[i] - at, times[i] - ingested))
        flood_incidents = {inc for _d, _ep, _seq, inc in rows}
        per_incident = {i: len(alerts.get(i, [])) for i in flood_incidents}
        yield Flood(run, report, p, case, rows, others_during, others_ingest, ingested - window[0], per_incident,
                    window[1] - window[0], garbage, gateway.metrics())
    finally:
        gateway.stop()
        broker.stop()


def test_a_flooding_device_neither_crashes_the_gateway_nor_loses_anyone_s_press(flood: Flood) -> None:
    f = flood
    ground_truth(f.case, f.run, f.report, f.plant.db)
    assert f.report.alerted == f.report.presses_sent, "every other press reached a pager after it"
    keys = {(d, ep, seq) for d, ep, seq, _inc in f.flood_presses}
    assert len(keys) == len(f.flood_presses) == FLOOD_PRESSES, "the flood's own presses: each recorded, once"
    rounds = FLOOD_PRESSES // GARBAGE_EVERY
    m = f.metrics
    assert m['redbutton_dropped_messages_total{reason="malformed"}'] >= rounds
    assert m['redbutton_dropped_messages_total{reason="oversized"}'] >= rounds
    assert (m.get('redbutton_dropped_messages_total{reason="bad_signature"}', 0)
            + m.get('redbutton_dropped_messages_total{reason="bad_field"}', 0)) >= rounds
    assert m["redbutton_presses_duplicate_total"] >= rounds, "a replayed press is answered, not recorded again"
    # Bounded by the flood: no other press waited much longer than the gateway took to work through
    # it (its alerts and feedbacks queue behind the flood's own too), none was starved.
    assert f.others_during and max(f.others_during) <= 2 * f.drained_s + 2.0
    assert f.plant.gateway.proc is not None and f.plant.gateway.proc.poll() is None, "the gateway is still running"
    gateway_sane(f.plant.gateway)
    during = figures(f.others_during)
    f.case.recovery_s = None
    f.case.notes = {"flood_presses": FLOOD_PRESSES, "garbage": f.garbage, "flood_drained_s": round(f.drained_s, 2),
                    "others_during_flood_p50_ms": during.p50_ms, "others_during_flood_p99_ms": during.p99_ms,
                    "others_during_flood_max_ms": during.max_ms, "broker_delivered_flood_s": round(f.ingest_s, 2),
                    "others_while_delivered_max_ms": round(1000 * max((w for w, _a in f.others_ingest), default=0), 1),
                    "alerts_for_flooder": sum(f.flood_alerts.values()),
                    "held": int(m.get("redbutton_presses_held_total", 0))}
    f.case.done()


def test_a_flooding_device_is_held_for_a_manager_without_an_alert_storm(flood: Flood) -> None:
    """Its first presses are a customer's (up to the venue's limit, each alerting again); past the
    limit the incident is a manager's (one page) and no press alerts anyone again. Each call it
    makes after a manager resolved that one is held from the start: one page to a manager."""
    held = flood.metrics.get("redbutton_presses_held_total", 0)
    assert held >= 1, "the flooding button's calls are held for a manager (noise.rate_limit_presses)"
    first, *later = sorted(flood.flood_alerts)
    assert flood.flood_alerts[first] <= FLOOD_LIMIT + 1, f"{flood.flood_alerts[first]} alerts for the first call"
    assert all(flood.flood_alerts[i] <= 1 for i in later), f"alerts per later call: {flood.flood_alerts}"
    assert flood.metrics["redbutton_devices_slowed_total"] >= 1, "the flooder waited its turn"


def test_a_flooding_device_does_not_delay_the_other_tables(flood: Flood) -> None:
    """While the gateway works through the flood (seconds), the other tables' calls go first. While
    the broker itself still delivers the flood, nothing can: no call waits much past that."""
    during = figures(flood.others_during)
    assert flood.others_during and during.p99_ms is not None
    assert during.p99_ms <= 250, f"other tables' press -> alert p99 while the flood waits its turn: {during.p99_ms} ms"
    late = [after for _wait, after in flood.others_ingest]
    assert not late or max(late) <= 0.25, f"calls made while the broker delivered the flood, alerted after it: {late}"


class Bystander:
    """A plain MQTT client on the flooder's topics: when the broker had delivered the flood to a
    client doing nothing with it, the baseline for what the gateway could do."""

    def __init__(self, broker: tuple[str, int], topic: str) -> None:
        self.times: list[float] = [0.0]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bystander-{os.getpid()}")
        self.client.on_message = lambda _c, _u, _m: self.times.append(time.perf_counter())
        self.client.connect(*broker)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- 5. the clock jumps ------------------------------------------------------------------------------

class JumpingClock(ManualClock):
    """The host's clocks with real time going on underneath: jump() sets the wall clock off (NTP
    stepping a clock that was wrong, someone's `date -s`), advance() is time passing on both. The
    gateway runs in this process on it: the machine's own clock cannot be set here."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def now(self) -> float:
        return time.time() + self.t

    def monotonic(self) -> float:
        return time.monotonic() + self.mono


FIRED = re.compile(r"^(ESCALATE|REPEAT|REMIND) inc=(\d+)")


def test_clock_jumps_under_load_lose_no_press_and_never_move_the_epoch_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under load the gateway's clock jumps an hour forward, then two back (an hour behind), twenty
    buttons' clocks jump an hour either way, and the gateway restarts with its clock an hour behind.
    No press is lost or counted twice; each timer fires at most once for the jump (nothing would be
    due in real time: the run is shorter than any timeout); the restarted gateway's command epoch
    is above the last one although its clock is an hour behind, so the devices take its commands."""
    case = Case("clock-jump")
    doc = synthetic_doc(BUTTONS, PAGERS, "chaoscj")
    venue = parse_venue(doc)
    clock = JumpingClock()
    counted: dict[str, dict[str, int]] = {}
    epochs: list[int] = []
    with Mosquitto(tmp_path / "broker") as broker:
        store = Store(tmp_path / "incidents.db")
        gws = [Gateway(venue, store, broker.url, clock=clock).start()]
        try:
            run = ChaosRun(venue, broker.url, options(), store.path, gws[0])

            def settled(since: float) -> bool:
                """Presses made since `since` recorded, and no timer overdue."""
                next_at = gws[-1].scheduler.next_at()
                return (run.pressed_since(since) >= AGAINST and all_recorded_now(run, since)
                        and (next_at is None or next_at > clock.now()))

            def jumps(_run: LoadRun) -> None:
                warm(run)
                t0 = time.perf_counter()
                clock.jump(HOUR)
                poll(lambda: settled(t0), 20, "the gateway to work through an hour forward")
                counted["forward"] = gws[-1].counters.snapshot()
                t1 = time.perf_counter()
                clock.jump(-2 * HOUR)
                for b in run.buttons[:10]:
                    b.clock.skew_s = HOUR
                for b in run.buttons[10:20]:
                    b.clock.skew_s = -HOUR
                poll(lambda: settled(t1), 20, "the gateway to work on an hour behind")
                counted["back"] = gws[-1].counters.snapshot()
                gws[-1].stop()
                gws.append(Gateway(venue, store, broker.url, clock=clock).start())
                run.gateway = gws[-1]
                up = time.perf_counter()
                epochs.extend((gws[0].epoch, gws[1].epoch, int(clock.now())))
                case.outage_s = up - t0
                case.recovery_s = all_recorded_since(run, up)

            with caplog.at_level(logging.INFO, logger="redbutton.gateway"):
                report = run.run(out=lambda _line: None, during=jumps)
        finally:
            gws[-1].stop()
            store.close()
    ground_truth(case, run, report, tmp_path / "incidents.db")
    first, second, clock_at_restart = epochs
    assert second > first > clock_at_restart, "the command epoch grows though the clock went back"
    assert run.tally.get("device_drops") == 0, "no device refused a command of the restarted gateway"
    fired = Counter((m.group(1), int(m.group(2))) for r in caplog.records if (m := FIRED.match(r.getMessage())))
    twice = {k: n for k, n in fired.items() if n > 1}
    assert not twice, f"timers that fired more than once for one jump: {twice}"
    fwd = counted["forward"]
    case.notes = {"escalations": fwd.get("escalations", 0), "reminders": fwd.get("reminders", 0),
                  "followups_closed": fwd.get("followup.no_response", 0),
                  "troubles": sum(v for k, v in fwd.items() if k.startswith("trouble.")),
                  "unreached": fwd.get("unreached", 0), "presses_not_alerted": report.presses_sent - report.alerted,
                  "epochs": [first, second],
                  "press_to_alert_p99_ms": report.latency.p99_ms}
    case.done()


def all_recorded_now(run: ChaosRun, since: float) -> bool:
    with run.tally.lock:
        due = {k for k, at in run.tally.pressed.items() if at >= since}
    return due <= run.recorded().keys()


@pytest.fixture
def jump_rig(venue_doc: dict[str, Any], tmp_path: Path) -> Iterator[Rig]:
    """The rule rig (gateway_rig) on a jumping wall clock, every pager online."""
    rig = Rig(rules_doc(venue_doc), tmp_path / "jump.db", clock=JumpingClock())
    rig.online(*EVERYONE)
    yield rig
    rig.gw.stop()


def test_a_jump_forward_fires_no_timer_and_they_fire_later_in_deadline_order(
        jump_rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Timers measure real time: set an hour forward, nothing is due; when their time has really
    passed they fire, in deadline order, each once."""
    rig = jump_rig
    for table in ("T14", "T12", "T1"):  # three ack timers, 30 s each, set 2 s apart in this order
        rig.press(table)
        rig.advance(2)
    order = {inc.table_id: inc.id for inc in rig.store.incidents()}
    with caplog.at_level(logging.INFO, logger="redbutton.gateway"):
        rig.clock.jump(HOUR)
        rig.gw.tick()
        assert not [r for r in caplog.records if FIRED.match(r.getMessage())], "a jump is not time passing"
        assert rig.gw.counters.get("clock.jumps") == 1
        assert any(r.getMessage().startswith("CLOCK JUMPED +3600.0 s: 3 timers") for r in caplog.records)
        rig.advance(30)
    fired = [int(m.group(2)) for r in caplog.records if (m := FIRED.match(r.getMessage()))]
    assert fired == [order["T14"], order["T12"], order["T1"]]


def test_a_jump_forward_is_not_an_hour_of_silence(jump_rig: Rig) -> None:
    rig = jump_rig
    for device in rig.venue.devices:
        rig.heartbeat(device)
    rig.clock.jump(HOUR)
    rig.advance(1)
    troubles = {k: v for k, v in rig.gw.counters.snapshot().items() if k.startswith("trouble.")}
    assert not troubles, f"trouble incidents raised by the jump: {troubles}"
    rig.press("T12")
    inc = rig.store.active_incident("T12")
    assert inc is not None and inc.state == incidents.PAGED, "the call reaches someone"


def test_a_jump_back_does_not_hold_an_escalation_for_an_hour(venue_doc: dict[str, Any], tmp_path: Path) -> None:
    doc = rules_doc(venue_doc)
    doc["escalation"]["ack_timeout_s"] = 1
    rig = Rig(doc, tmp_path / "back.db", clock=JumpingClock())
    rig.online(*EVERYONE)
    rig.gw.start()  # the scheduler's own thread: real time passes
    try:
        rig.press("T12")
        assert rig.paged() == ["pgr-ana"]
        rig.clock.jump(-HOUR)
        wait_until(lambda: "pgr-flo" in rig.paged(), timeout=3, what="the escalation 1 s after the page")
    finally:
        rig.gw.stop()
