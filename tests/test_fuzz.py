"""Fuzzing the ways bad input gets in: the codec, the gateway's message handler, the serial framing
and the serial bridge, and the venue file. Each test counts what it ran and says so at the end of
the run ("fuzz counts"); REDBUTTON_FUZZ_SEED replays a run and REDBUTTON_FUZZ_N scales it up.

The bulk runs from a seeded random.Random, because 100,000 hypothesis examples would not fit in
the time `make test` allows; hypothesis drives the same generators for a smaller number of
examples where shrinking a failure to its smallest input helps."""

from __future__ import annotations

import copy
import json
import logging
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fuzzing import (
    DEFAULT_N,
    KNOWN_REASONS,
    FuzzSummary,
    Refused,
    Stream,
    add_damage,
    build_stream,
    chunks,
    describe,
    dump,
    fmt,
    fuzz_n,
    fuzz_seed,
    mutate,
    mutate_doc,
    mutate_text,
    names_a_key,
    outcome,
    rand_body,
    rand_frame,
    rand_id,
    rand_json,
    rand_status,
    rand_topic,
    random_bytes,
    ref_decode,
    ref_decode_status,
    ref_sign,
    ref_split,
    ref_topic,
    scaled,
    toml_error_names_line,
    toml_text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from conftest import DEMO_VENUE, ROOT, demo_doc
from gateway import incidents
from gateway.broker import Mosquitto
from gateway.venue import Venue, VenueError, load_venue, parse_venue
from gateway_rig import Rig, rules_doc
from rbproto import air, frame
from waiting import wait_until

# pytest-timeout's 120 s per test, stretched for a long run (REDBUTTON_FUZZ_N above the default)
LONG_RUN = pytest.mark.timeout(max(120, 150 * fuzz_n() // DEFAULT_N))


@pytest.fixture(scope="session")
def fuzz_summary(pytestconfig: pytest.Config) -> FuzzSummary:
    out = ROOT / "test-output" / "fuzz.txt"
    if out.exists():
        out.unlink()
    summary = FuzzSummary(str(out))
    pytestconfig.pluginmanager.register(summary, "redbutton-fuzz-summary")
    return summary


# ---- the codec --------------------------------------------------------------------------------

SITES = ["demo", "a", "x" * 32, "cafe-1", "site_2"]
DEVICES = ["btn-t1", "pgr-ana", "b" * 32, "gateway", "dev_9"]


def codec_case(rng: random.Random, keys: dict[str, bytes]) -> tuple[str, str, bytes]:
    """(label, topic, payload) from the whole space: valid messages of every type, mutations of
    them, random bytes, random JSON, statuses, and wrong topics."""
    mtype = rng.choice(list(rbproto.SCHEMA))
    site, device = rng.choice(SITES), rng.choice(DEVICES)
    key = keys.get(device) or rng.randbytes(32)
    body = rand_body(rng, mtype)
    t, payload = rbproto.encode(key, site, device, mtype, body)
    r = rng.random()
    if r < 0.10:
        return "valid", t, payload
    if r < 0.60:
        others = [rbproto.topic(rng.choice(SITES), rng.choice(DEVICES), rng.choice(list(rbproto.SCHEMA))),
                  rbproto.status_topic(site, device)]
        m = mutate(rng, t, payload, key, others)
        return m.label, m.topic, m.payload
    if r < 0.75:
        return "random_bytes", rng.choice([t, rand_topic(rng, site, DEVICES)]), random_bytes(rng)
    if r < 0.85:  # the right field names with random values, sometimes signed with the right key
        obj: dict[str, Any] = {f: (rand_json(rng) if rng.random() < 0.3 else body[f]) for f in rbproto.SCHEMA[mtype][1]}
        obj["sig"] = ref_sign(key, t, mtype, obj) if rng.random() < 0.7 else rand_json(rng)
        return "random_json", t, dump(obj, rng)
    if r < 0.95:
        return "status", rng.choice([rbproto.status_topic(site, device)] * 4 + [t]), rand_status(rng)
    return "random_topic", rand_topic(rng, site, DEVICES), payload


def check_codec(t: str, payload: bytes, key_for: Callable[[str], bytes | None]) -> str:
    """Run rbproto on one input and hold every verdict against the reference's; -> the outcome."""
    want = outcome(lambda: ref_topic(t))
    got = outcome(lambda: rbproto.parse_topic(t))
    assert got == want, f"parse_topic: rbproto {got}, reference {want}"
    want = outcome(lambda: ref_decode(t, payload, key_for))
    got = outcome(lambda: rbproto.decode(t, payload, key_for))
    if got[0] == "ok":
        msg = got[1]
        got = ("ok", (msg.mtype, msg.body))
        assert (msg.site, msg.device) == rbproto.parse_topic(t)[:2]
    assert got == want, f"decode: rbproto {got}, reference {want}"
    result = "accepted" if got[0] == "ok" else str(got[1])
    assert got[0] == "ok" or got[1] in KNOWN_REASONS
    if want[0] == "refused" and want[1] == rbproto.BAD_TOPIC and got[0] == "refused":
        want_s = outcome(lambda: ref_decode_status(t, payload))
        got_s = outcome(lambda: rbproto.decode_status(t, payload))
        assert got_s == want_s, f"decode_status: rbproto {got_s}, reference {want_s}"
        if want_s[0] == "ok":
            result = "status"
    return result


@LONG_RUN
def test_fuzz_codec(fuzz_summary: FuzzSummary) -> None:
    """decode, decode_status and parse_topic on every input agree with the reference codec, and
    raise nothing but ProtocolError with a known reason."""
    seed, n = fuzz_seed(), fuzz_n()
    rng = random.Random(seed)
    keys = {d: rng.randbytes(32) for d in DEVICES[:-1]}  # the last one is an unknown device
    start = time.perf_counter()
    outcomes: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    for i in range(n):
        label, t, payload = codec_case(rng, keys)
        try:
            outcomes[check_codec(t, payload, keys.get)] += 1
        except Exception as e:
            raise AssertionError(f"codec fuzz input #{i} (REDBUTTON_FUZZ_SEED={seed}, {label}): {e!r}\n"
                                 f"topic={fmt(t)}\npayload={fmt(payload)}") from e
        labels[label] += 1
    if n >= 10_000:  # the valid paths ran too (a tiny REDBUTTON_FUZZ_N proves less)
        assert outcomes["accepted"] >= n // 20 and outcomes["status"] >= n // 50, outcomes
    fuzz_summary.add(f"fuzz codec: {n} payloads, 0 crashes, 0 disagreements with the reference, seed {seed}, "
                     f"{time.perf_counter() - start:.1f} s; outcomes: {describe(outcomes)}; "
                     f"inputs: {describe(labels)}")


@given(st.randoms(use_true_random=False))
@settings(max_examples=400, deadline=None)
def test_codec_mutations_shrink(rng: random.Random) -> None:
    """The same generator under hypothesis: a failure shrinks to a small input."""
    keys = {"btn-t1": b"k" * 32, "pgr-ana": b"p" * 32}
    _label, t, payload = codec_case(rng, keys)
    check_codec(t, payload, keys.get)


# ---- the gateway's message handler ------------------------------------------------------------

# Which role may send which event, as docs/protocol.md tables them (commands come from no device).
EVENT_ROLES = {"press": {"button"}, "cancel": {"button"}, "heartbeat": {"button", "pager"}, "duty": {"pager"},
               "ack": {"pager"}, "decline": {"pager"}, "resolve": {"pager"}}
FRONT_DROPS = frozenset({*KNOWN_REASONS, rbproto.REPLAYED, "wrong_role"})  # refused before any handler runs
STATUS_OK = ("status", "status_of_gateway")  # accepted statuses: counted as received, nothing else
WINDOW = 64
KINDS = ["complaint", "complaint", "complaint", "allergy", "help", "happy", "drink"]


class Window:
    """The replay rule of docs/protocol.md, kept as a set of numbers rather than bits."""

    def __init__(self) -> None:
        self.ep, self.top, self.seen = -1, -1, set[int]()

    def fresh(self, ep: int, seq: int) -> bool:
        if ep != self.ep:
            return ep > self.ep
        return seq > self.top or (self.top - seq < WINDOW and seq not in self.seen)

    def accept(self, ep: int, seq: int) -> None:
        if ep != self.ep:
            self.ep, self.top, self.seen = ep, seq, {seq}
            return
        self.top = max(self.top, seq)
        self.seen.add(seq)
        if len(self.seen) > 4 * WINDOW:
            self.seen = {s for s in self.seen if self.top - s < WINDOW}


class Tally(logging.Handler):
    """Counts the gateway's DROP lines, and any record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.drops = 0
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("DROP"):
            self.drops += 1
        if record.exc_info:
            self.tracebacks.append(record.getMessage())


class HandlerFuzz:
    """Drives Gateway.handle with valid traffic from the venue's own devices and every kind of bad
    input, predicting each message's fate from the reference codec and its own model of the replay
    windows, and checking the gateway's counters and database against the prediction."""

    def __init__(self, rig: Rig, db: Path, rng: random.Random) -> None:
        self.rig, self.gw, self.venue, self.rng = rig, rig.gw, rig.venue, rng
        self.site = self.venue.site
        self.probe = sqlite3.connect(db)  # a reader of its own: sees every commit the gateway makes
        self.devices = sorted(self.venue.devices)
        self.buttons = [d for d in self.devices if self.venue.devices[d].role == "button"]
        self.pagers = [d for d in self.devices if self.venue.devices[d].role == "pager"]
        self.model = {d: Window() for d in self.devices}
        self.ep = {d: 1 for d in self.devices}
        self.seq = {d: 0 for d in self.devices}
        self.skipped: dict[str, list[int]] = {d: [] for d in self.devices}
        self.presses: set[tuple[str, int, int]] = set()  # every press the gateway must have recorded
        self.sent: list[tuple[str, bytes]] = []  # recent valid messages, for replays and mutations
        self.alerted: dict[str, list[int]] = {p: [] for p in self.pagers}
        self.acked: list[tuple[str, int]] = []
        self.cv: dict[str, int] = {}
        self.seen_commands = 0
        self.outcomes: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()

    # ---- what goes in --------------------------------------------------------------------------

    def _next(self, device: str) -> tuple[int, int]:
        rng = self.rng
        r = rng.random()
        if r < 0.01:  # a reboot: a new epoch, numbers from 1
            self.ep[device] += 1
            self.seq[device] = 0
            self.skipped[device] = []
        elif r < 0.06 and self.skipped[device]:  # a late one from inside the window, out of order
            return self.ep[device], self.skipped[device].pop(rng.randrange(len(self.skipped[device])))
        elif r < 0.09:  # some numbers skipped: lost, or still on their way
            jump = rng.randint(2, 90)
            self.skipped[device] = [s for s in self.skipped[device] if self.seq[device] + jump - s < WINDOW]
            self.skipped[device] += list(range(self.seq[device] + 1, self.seq[device] + jump))[-8:]
            self.seq[device] += jump - 1
        self.seq[device] += 1
        return self.ep[device], self.seq[device]

    def _body(self, device: str, mtype: str) -> dict[str, int | str]:
        rng = self.rng
        ep, seq = self._next(device)
        now = int(self.rig.clock.now())
        body: dict[str, int | str] = {"ep": ep, "seq": seq,
                                      "ts": rng.choice([now, now, now - rng.randint(0, 600), 0, now + 10**6])}
        if mtype == "press":
            body.update(kind=rng.choice(KINDS), bat=rng.randint(3300, 4200))
        elif mtype == "cancel":
            body.update(bat=rng.randint(3300, 4200))
        elif mtype == "heartbeat":
            body.update(bat=rng.choice([3900, 3900, 3100]), rssi=-rng.randint(30, 90), fw="0.1.0",
                        up=rng.randint(0, 10**5), q=rng.randint(0, 3), cv=self.cv.get(device, rng.randint(0, 9)))
        elif mtype == "duty":
            body.update(on=rng.choice([1, 1, 1, 0]))
        elif mtype in ("ack", "decline"):
            mine = self.alerted[device]
            body.update(inc=rng.choice(mine) if mine and rng.random() < 0.8 else rng.randint(-2, self._last_inc() + 3))
        elif mtype == "resolve":
            mine = [inc for p, inc in self.acked if p == device]
            body.update(inc=rng.choice(mine) if mine and rng.random() < 0.8 else rng.randint(0, self._last_inc() + 3),
                        action=rng.choice([*self.venue.device_settings.recovery_actions, "x" * 48, "other thing"]))
        return body

    def _last_inc(self) -> int:
        return int(self.probe.execute("SELECT COALESCE(MAX(id), 0) FROM incidents").fetchone()[0])

    def valid(self) -> tuple[str, str, bytes]:
        rng = self.rng
        mtype = rng.choice(["press", "press", "press", "cancel", "heartbeat", "heartbeat", "duty", "ack", "ack", "ack",
                            "decline", "resolve", "resolve", "resolve"])
        device = rng.choice(self.pagers if "pager" in EVENT_ROLES[mtype] and mtype != "heartbeat" else
                            self.buttons if mtype in ("press", "cancel") else self.devices)
        t, payload = rbproto.encode(self.venue.devices[device].key, self.site, device, mtype, self._body(device, mtype))
        self.sent.append((t, payload))
        if len(self.sent) > 400:
            del self.sent[:200]
        return "valid_" + mtype, t, payload

    def status(self) -> tuple[str, str, bytes]:
        rng = self.rng
        device = rng.choice([*self.devices, "gateway", rand_id(rng)])
        if rng.random() < 0.7:
            state = rbproto.ONLINE if rng.random() < 0.85 else rbproto.OFFLINE
            return "status", rbproto.status_topic(self.site, device), rbproto.encode_status(state, "0.1.0", 1)
        return "bad_status", rbproto.status_topic(self.site, device), rand_status(rng)

    def hostile(self) -> tuple[str, str, bytes]:
        rng = self.rng
        r = rng.random()
        if r < 0.15 and self.sent:  # the same bytes again: QoS 1 re-delivery, or an attacker's replay
            return "replay", *rng.choice(self.sent)
        if r < 0.22 and self.sent:  # a used number, other content, correctly signed
            t, payload = rng.choice(self.sent)
            device, mtype = t.split("/")[3], t.split("/")[5]
            obj = {**json_obj(payload)}
            obj["ts"] = int(obj["ts"]) + 1
            obj.pop("sig")
            return "replay_new_content", *rbproto.encode(self.venue.devices[device].key, self.site, device, mtype, obj)
        if r < 0.60:
            if self.sent and rng.random() < 0.7:
                t, payload = rng.choice(self.sent)
            else:
                _l, t, payload = self.valid()
                self.sent.pop()
            device = t.split("/")[3]
            others = [rbproto.topic(s, d, m) for s, d, m in ((self.site, rng.choice(self.devices), t.split("/")[5]),
                                                             ("elsewhere", device, t.split("/")[5]),
                                                             (self.site, device, rng.choice(list(rbproto.SCHEMA))))]
            m = mutate(rng, t, payload, self.venue.devices[device].key, others)
            return "mutated_" + m.label, m.topic, m.payload
        if r < 0.72:  # signed by a real device of the venue, but not its to send, or not here
            device = rng.choice(self.devices)
            mtype = rng.choice(list(rbproto.SCHEMA))
            site = self.site if rng.random() < 0.7 else rng.choice(["elsewhere", "demo2", rand_id(rng)])
            body = rand_body(self.rng, mtype)
            self.seq[device] += 1  # a heartbeat from either role is no wrong role: the number is used
            body.update(ep=self.ep[device], seq=self.seq[device])
            return "wrong_role_or_site", *rbproto.encode(self.venue.devices[device].key, site, device, mtype, body)
        if r < 0.80:  # a device the venue does not know, well formed and signed
            mtype = rng.choice(list(EVENT_ROLES))
            device = rng.choice(["btn-t99", "pgr-zed", rand_id(rng)])
            return "unknown_device", *rbproto.encode(rng.randbytes(32), self.site, device, mtype,
                                                     rand_body(self.rng, mtype))
        if r < 0.92:
            return "random_bytes", rng.choice([rbproto.topic(self.site, rng.choice(self.devices),
                                                             rng.choice(list(EVENT_ROLES))),
                                               rand_topic(rng, self.site, self.devices)]), random_bytes(rng)
        return "random_json", rbproto.topic(self.site, rng.choice(self.devices), rng.choice(list(EVENT_ROLES))), \
            dump(rand_json(rng))

    def next_input(self) -> tuple[str, str, bytes]:
        r = self.rng.random()
        if r < 0.28:
            return self.valid()
        if r < 0.34:
            return self.status()
        return self.hostile()

    # ---- what must come out --------------------------------------------------------------------

    def expect(self, t: str, payload: bytes) -> str:
        """The counter this message must move (or a STATUS_OK outcome), from the documents alone."""
        try:
            site, device, mtype = ref_topic(t)
        except Refused:
            return "dropped.bad_topic"
        if site != self.site:
            return "dropped.bad_topic"
        if mtype == "status":
            try:
                ref_decode_status(t, payload)
            except Refused as e:
                return f"dropped.{e.reason}"
            if device == "gateway":
                return "status_of_gateway"
            return "status" if device in self.venue.devices else "dropped.unknown_device"
        try:
            mtype, body = ref_decode(t, payload, self.venue.key_for)
        except Refused as e:
            return f"dropped.{e.reason}"
        if self.venue.devices[device].role not in EVENT_ROLES.get(mtype, set()):
            return "dropped.wrong_role"
        ep, seq = body["ep"], body["seq"]
        if not self.model[device].fresh(ep, seq):
            return "duplicates" if mtype == "press" and (device, ep, seq) in self.presses else "dropped.replayed"
        self.model[device].accept(ep, seq)
        if mtype == "press":
            self.presses.add((device, ep, seq))
        return f"handled.{mtype}"

    def _windows(self) -> dict[str, tuple[int, int, int]]:
        return {d: (w.ep, w.top, w.bits) for d, w in self.gw.windows.items()}

    def _heard(self) -> dict[str, tuple[float | None, str | None]]:
        return {d: (h.last_seen, h.state) for d, h in self.gw.heard.items()}

    def step(self, label: str, t: str, payload: bytes) -> None:
        want = self.expect(t, payload)
        before = self.gw.counters.snapshot()
        version = self.probe.execute("PRAGMA data_version").fetchone()[0]
        windows, heard = self._windows(), self._heard()
        self.gw.handle(t, payload)
        after = self.gw.counters.snapshot()
        moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        assert moved.pop("received", 0) == 1, moved
        front = {k: v for k, v in moved.items()
                 if k.startswith("handled.") or k == "duplicates" or k.removeprefix("dropped.") in FRONT_DROPS}
        if not front:
            assert want in STATUS_OK, f"expected {want}, the gateway counted {moved}"
        else:
            assert front == {want: 1}, f"expected {want}, the gateway counted {moved}"
        if not want.startswith("handled.") and want not in STATUS_OK:
            # refused: nothing stored, no replay window moved, the device not even marked as heard
            assert self.probe.execute("PRAGMA data_version").fetchone()[0] == version, f"{want} changed the database"
            assert self._windows() == windows, f"{want} moved a replay window"
            assert self._heard() == heard, f"{want} marked a device as heard"
        self.outcomes[want] += 1
        self.labels[label] += 1
        for device, m in self.model.items():  # a mutation signed with a device's key moved it on:
            if m.ep > self.ep[device]:  # the device itself must move on too, or be replayed from now on
                if m.ep + 1 < 2**62:  # (at the very top the device is shut out for good: rightly so)
                    self.ep[device], self.seq[device], self.skipped[device] = m.ep + 1, 0, []
            elif m.ep == self.ep[device] and self.seq[device] < m.top < 2**62 - 100:
                self.seq[device] = m.top
        if want == "handled.ack":
            self.acked.append((t.split("/")[3], json_obj(payload)["inc"]))
            del self.acked[:-50]

    def follow_commands(self) -> None:
        """What the gateway told the pagers and buttons: which incidents a pager may answer, the
        config versions the devices should report."""
        for msg in self.rig.out.sent[self.seen_commands:]:
            if msg.mtype == "alert":
                self.alerted[msg.device] = [*self.alerted[msg.device][-20:], int(msg.body["inc"])]
            elif msg.mtype == "config":
                self.cv[msg.device] = int(msg.body["cv"])
        self.seen_commands = len(self.rig.out.sent)
        if self.seen_commands > 5000:
            del self.rig.out.sent[:]
            self.seen_commands = 0

    # ---- what must always hold -----------------------------------------------------------------

    def check_state(self) -> None:
        db = self.probe
        states = dict(db.execute("SELECT id, state FROM incidents").fetchall())
        assert set(states.values()) <= set(incidents.TRANSITIONS), set(states.values())
        last: dict[int, str | None] = {}
        for inc, frm, to in db.execute("SELECT incident_id, from_state, to_state FROM transitions ORDER BY id"):
            assert frm == last.get(inc), f"incident {inc}: history jumps from {last.get(inc)} to a step from {frm}"
            allowed = to == incidents.OPEN if frm is None else to == frm or to in incidents.TRANSITIONS[frm]
            assert allowed, f"incident {inc}: {frm} -> {to} is not in the lifecycle"
            last[inc] = to
        assert last == states, "an incident's state is not where its history ends"
        recorded = db.execute("SELECT device, ep, seq FROM presses").fetchall()
        assert len(recorded) == len(set(recorded)), "a press recorded twice"
        assert set(recorded) == self.presses, (
            f"presses recorded that were never validly sent: {sorted(set(recorded) - self.presses)[:5]}; "
            f"valid presses not recorded: {sorted(self.presses - set(recorded))[:5]}")
        stored = self.rig.store.load_replay()
        for device, w in self.gw.windows.items():
            model = self.model[device]
            assert (w.ep, w.top) == (model.ep, model.top), f"{device}: {w.ep}/{w.top}, model {model.ep}/{model.top}"
            assert not any(w.check(model.ep, s) for s in model.seen), f"{device}: a number accepted twice"
            if w.ep >= 0:
                assert stored.get(device) == (w.ep, w.top, w.bits), f"{device}: the stored window differs"
        c = self.gw.counters.snapshot()
        front = sum(v for k, v in c.items() if k.startswith("handled.") or k == "duplicates"
                    or k.removeprefix("dropped.") in FRONT_DROPS)
        statuses = self.outcomes["status"] + self.outcomes["status_of_gateway"]
        assert c["received"] == front + statuses, f"received {c['received']} != {front} + {statuses} statuses"


def json_obj(payload: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(payload)
    return obj


@pytest.fixture
def quiet_gateway_log() -> Iterator[Tally]:
    """The gateway's log, counted instead of kept: 100,000 DROP lines would fill pytest's capture."""
    tally = Tally()
    logger = logging.getLogger("redbutton.gateway")
    propagate, level = logger.propagate, logger.level
    logger.addHandler(tally)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    yield tally
    logger.removeHandler(tally)
    logger.propagate = propagate
    logger.setLevel(level)


@LONG_RUN
def test_fuzz_gateway_handler(tmp_path: Path, fuzz_summary: FuzzSummary, quiet_gateway_log: Tally) -> None:
    """Gateway.handle on a real SQLite file: nothing escapes, every message moves exactly the counter
    the documents say, only valid fresh messages from the right device change any state, and the
    incidents, presses and replay windows are consistent throughout."""
    seed, n = fuzz_seed(), fuzz_n()
    rng = random.Random(seed + 1)
    db = tmp_path / "fuzz.db"
    rig = Rig(rules_doc(demo_doc()), db)
    fz = HandlerFuzz(rig, db, rng)
    rig.online(*fz.pagers)
    fz.outcomes["status"] += len(fz.pagers)
    start = time.perf_counter()
    for i in range(n):
        label, t, payload = fz.next_input()
        try:
            fz.step(label, t, payload)
        except Exception as e:
            raise AssertionError(f"handler fuzz input #{i} (REDBUTTON_FUZZ_SEED={seed}, {label}): {e!r}\n"
                                 f"topic={fmt(t)}\npayload={fmt(payload)}") from e
        if i % 40 == 39:
            fz.follow_commands()
            rig.advance(rng.choice([0.5, 1, 2, 5, 10, 30, 61]))
        if i % 10_000 == 9_999:
            fz.check_state()
    fz.check_state()
    c = rig.gw.counters.snapshot()
    assert quiet_gateway_log.drops == sum(v for k, v in c.items() if k.startswith("dropped.")), "a drop not logged"
    assert not quiet_gateway_log.tracebacks, quiet_gateway_log.tracebacks[:3]
    incs = fz.probe.execute("SELECT state, COUNT(*) FROM incidents GROUP BY state").fetchall()
    if n >= 10_000:  # every path was reached (a tiny REDBUTTON_FUZZ_N proves less)
        for needed in ("handled.press", "handled.ack", "handled.resolve", "handled.cancel", "duplicates",
                       "dropped.replayed", "dropped.bad_signature", "dropped.wrong_role", "dropped.unknown_device"):
            assert fz.outcomes[needed] > 0, f"the fuzz never reached {needed}: {fz.outcomes}"
        reached = {row[0] for row in fz.probe.execute("SELECT DISTINCT to_state FROM transitions")}
        assert reached >= {incidents.PAGED, incidents.ACKNOWLEDGED, incidents.RESOLVED, incidents.FOLLOWED_UP,
                           incidents.CLOSED, incidents.CANCELLED, incidents.UNREACHED}, reached
    fuzz_summary.add(f"fuzz gateway handler: {n} (topic, payload) pairs, 0 crashes, 0 state corruptions, seed {seed}, "
                     f"{time.perf_counter() - start:.1f} s; {len(fz.presses)} valid presses recorded once each; "
                     f"incidents {dict(incs)}; outcomes: {describe(fz.outcomes)}; inputs: {describe(fz.labels)}")
    rig.store.close()
    fz.probe.close()


@given(st.randoms(use_true_random=False))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_handler_fuzz_shrinks(rng: random.Random) -> None:
    """The handler fuzz under hypothesis, a short run per example on a database of its own, so a
    failure shrinks to a short sequence of messages."""
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "h.db"
        rig = Rig(rules_doc(demo_doc()), db)
        fz = HandlerFuzz(rig, db, rng)
        logger = logging.getLogger("redbutton.gateway")
        level = logger.level
        logger.setLevel(logging.CRITICAL)  # hypothesis replays examples: keep their DROP lines out
        try:
            rig.online(*fz.pagers)
            fz.outcomes["status"] += len(fz.pagers)
            for i in range(60):
                fz.step(*fz.next_input())
                if i % 20 == 19:
                    fz.follow_commands()
                    rig.advance(rng.choice([1, 10, 61]))
            fz.check_state()
        finally:
            logger.setLevel(level)
            rig.store.close()
            fz.probe.close()

# ---- the serial framing and the bridge --------------------------------------------------------

def check_stream(rng: random.Random, data: bytes, must: list[tuple[int, Any, Any]]) -> tuple[list[Any], frame.Decoder]:
    """Feed one stream in reads of random size; the outcome must be what the framing documents,
    the same as fed at once, and hold every frame and line that followed a clean boundary."""
    d = frame.Decoder()
    got: list[Any] = []
    for piece in chunks(rng, data):
        got += d.feed(piece)
    want, errors = ref_split(data)
    assert got == want, "decoded stream differs from the reference"
    assert d.errors == dict(errors), f"damage counted {d.errors}, reference {dict(errors)}"
    assert d.frames == sum(1 for item in got if item[0] != frame.LOG)
    if rng.random() < 0.25:
        assert frame.Decoder().feed(data) == got, "the result depends on how the stream was cut into reads"
    lost = [item for item in must if item not in got]
    assert not lost, f"lost after a clean boundary (no resynchronisation): {fmt(repr(lost[0]))}"
    return got, d


@LONG_RUN
def test_fuzz_serial_framing(fuzz_summary: FuzzSummary) -> None:
    """Random streams of frames, log lines, noise, truncated, corrupted, oversized and unknown
    frames, cut into reads anywhere: the decoder resynchronises after every kind of damage, counts
    it, and agrees with a reference written from the framing's documentation."""
    seed = fuzz_seed()
    rng = random.Random(seed + 2)
    streams, total = scaled(2000), 0
    pieces: Counter[str] = Counter()
    sent = recovered = must = damage = 0
    start = time.perf_counter()
    for i in range(streams):
        if i % 10 == 0:  # pure noise, long
            data = rng.randbytes(rng.randint(1, 3000))
            s_must: list[Any] = []
        else:
            s = build_stream(rng, rng.randint(1, 40))
            data, s_must = bytes(s.data), s.must
            pieces.update(s.pieces)
            sent += len(s.frames)
        try:
            _got, d = check_stream(rng, data, s_must)
        except AssertionError as e:
            raise AssertionError(f"serial stream #{i} (REDBUTTON_FUZZ_SEED={seed}): {e}\n"
                                 f"stream={fmt(data, 600)}") from e
        total += len(data)
        recovered += d.frames
        must += sum(1 for item in s_must if item[0] != frame.LOG)
        damage += sum(d.errors.values())
    assert must > streams and damage > streams
    fuzz_summary.add(f"fuzz serial framing: {streams} streams, {total} bytes, fed in random reads, 0 crashes, "
                     f"seed {seed}, {time.perf_counter() - start:.1f} s; {sent} intact frames sent, {recovered} "
                     f"decoded, all {must} "
                     f"that followed a clean boundary recovered; {damage} damaged stretches counted; "
                     f"pieces: {describe(pieces)}")


@given(st.randoms(use_true_random=False), st.integers(1, 25))
@settings(max_examples=100, deadline=None)
def test_serial_streams_shrink(rng: random.Random, pieces: int) -> None:
    s = build_stream(rng, pieces)
    check_stream(rng, bytes(s.data), s.must)


def test_blank_line_before_a_frame_does_not_cost_the_frame() -> None:
    """Regression: a "\\n" alone (an empty print(), or a "\\n\\n" line end) at the start of a stretch
    used to be kept as the start of the next frame, which was then lost as garbage."""
    item = (frame.UP, b"\x01\x02\x03\x04\x05\x06", b"after a blank line")
    newline_first = (frame.UP, b"\x01\x02\x03\x04\x05\x06", b"\x07\x08\x00\x09")  # its COBS code byte is 10
    assert frame.encode(*newline_first)[0] == 10
    for before in (b"\n", b"line\n\n", b"line\n\n\n\n", frame.encode(*item) + b"\n"):
        for it in (item, newline_first):
            d = frame.Decoder()
            got = [x for x in d.feed(before + frame.encode(*it)) if x[0] != frame.LOG]
            assert got[-1] == it, (before, it)
            assert d.errors == {}, (before, d.errors)
    biggest = (frame.DOWN, bytes(6), bytes(frame.MAX_DATA))  # a newline and the longest frame still fit
    assert frame.Decoder().feed(b"\n" + frame.encode(*biggest)) == [biggest]


def bridge_message(rng: random.Random, venue: Venue) -> tuple[str, bytes, str]:
    """(topic, payload, what the bridge must do with it) for one message off the air."""
    devices = sorted(venue.devices)
    device = rng.choice(devices)
    key = venue.devices[device].key
    r = rng.random()
    if r < 0.45:
        mtype = rng.choice(list(EVENT_ROLES))
        t, payload = rbproto.encode(key, venue.site, device, mtype, rand_body(rng, mtype))
        if rng.random() < 0.2:  # not verified by the bridge: the gateway counts it, so it is passed on
            payload = payload[:-3] + b'0"}'
    elif r < 0.6:
        t, payload = rbproto.status_topic(venue.site, device), rand_status(rng)
    elif r < 0.7:
        mtype = rng.choice(list(rbproto.SCHEMA))
        site = rng.choice([venue.site, "elsewhere"])
        device = rng.choice([device, "btn-t99", rand_id(rng)])
        t, payload = rbproto.encode(key, site, device, mtype, rand_body(rng, mtype))
    elif r < 0.8:
        t, payload = rand_topic(rng, venue.site, devices), random_bytes(rng)[:600]
    else:
        t, payload = rbproto.topic(venue.site, device, "heartbeat"), rng.randbytes(rng.randint(0, 900))
    return t, payload, bridge_verdict(venue, t, payload)


def bridge_verdict(venue: Venue, t: str, payload: bytes) -> str:
    """"publish", or the serial.<reason> the bridge must count, from the documents."""
    try:
        site, device, mtype = ref_topic(t)
    except Refused:
        return "bad_topic"
    if site != venue.site:
        return "wrong_site"
    if device not in venue.devices:
        return "unknown_device"
    if mtype == "status":
        return "publish" if outcome(lambda: ref_decode_status(t, payload))[0] == "ok" else "bad_status"
    return "publish" if rbproto.SCHEMA[mtype][0] == rbproto.EVT else "bad_topic"


@LONG_RUN
def test_fuzz_serial_bridge(venue: Venue, broker: Mosquitto, fuzz_summary: FuzzSummary) -> None:
    """The serial bridge fed a long stream from a base station gone mad (messages of the venue's
    devices in ESP-NOW fragments between noise, broken frames, stray kinds and log text, cut into
    reads anywhere) publishes to a real broker exactly the messages that arrived whole and belong
    there, counts the rest, and never fails on a frame."""
    from gateway.serial_bridge import SerialBridge

    seed = fuzz_seed()
    rng = random.Random(seed + 3)
    s = Stream()
    messages: list[tuple[str, bytes, str, list[tuple[int, bytes, bytes]]]] = []
    other: Counter[str] = Counter()
    for msg_id in range(scaled(1500)):
        r = rng.random()
        if r < 0.45:
            t, payload, verdict = bridge_message(rng, venue)
            mac = rng.randbytes(6)  # one per message: no message id is ever taken for a re-send
            items = [(frame.UP, mac, p) for p in air.fragment(msg_id, air.join(t, payload))]
            messages.append((t, payload, verdict, items))
            for item in items:
                s.add("up_fragment", frame.encode(*item), item)
        elif r < 0.5:
            body = rng.choice([dump(rand_json(rng)), rng.randbytes(rng.randint(0, 60)), b'{"up":3}'])
            other["stats"] += 1
            s.add("stats", frame.encode(frame.STATS, rng.randbytes(6), body))
        elif r < 0.55:
            s.add("sent", frame.encode(frame.SENT, rng.randbytes(6), rng.randbytes(rng.randint(0, 5))))
        elif r < 0.58:
            s.add("down_from_base", frame.encode(frame.DOWN, rng.randbytes(6), b"x"))
        elif r < 0.62:  # a packet that is no air fragment at all
            s.add("bad_packet", frame.encode(*rand_frame(rng, (frame.UP,))))
        else:
            add_damage(rng, s)
    data = bytes(s.data)
    out, errors = ref_split(data)
    arrived = set(map(repr, out))
    published: Counter[tuple[str, bytes]] = Counter()
    refused: Counter[str] = Counter()
    for t, payload, verdict, items in messages:
        if all(repr(item) in arrived for item in items):
            if verdict == "publish":
                published[(t, payload)] += 1
            else:
                refused[verdict] += 1

    arrivals: list[tuple[str, bytes]] = []  # appended on the listener's thread

    def got() -> Counter[tuple[str, bytes]]:
        return Counter(list(arrivals))

    listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = lambda _c, _u, m: arrivals.append((m.topic, bytes(m.payload)))
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe(f"rb/v1/{venue.site}/#", qos=1)
    listener.loop_start()
    tally = Tally()
    logging.getLogger("redbutton.bridge").addHandler(tally)
    bridge = SerialBridge(venue, broker.url, "loop://")  # its port is never opened: the stream is fed here
    bridge.io.start()
    start = time.perf_counter()
    try:
        for piece in chunks(rng, data):
            bridge.feed(piece)
        c = bridge.counters
        wait_until(lambda: not published - got(), what="the messages that arrived whole, at the broker")
    finally:
        bridge.io.stop()
        listener.loop_stop()
        listener.disconnect()
        logging.getLogger("redbutton.bridge").removeHandler(tally)
    assert not tally.tracebacks, f"handling a frame failed: {tally.tracebacks[:3]}"
    assert c.get("up.published") == sum(published.values())
    missing = published - got()
    assert not missing, f"arrived whole but never published: {fmt(repr(list(missing)[:2]))}"
    for (t, payload), _n in (got() - published).items():  # the rest: statuses the bridge announced for a device
        assert t.endswith("/status") and rbproto.decode_status(t, payload)[2] == rbproto.ONLINE, (t, payload)
    for reason, n in errors.items():
        assert c.get(f"serial.{reason}") == n, f"serial.{reason}: {c.get(f'serial.{reason}')}, reference {n}"
    for reason, n in refused.items():
        assert c.get(f"serial.{reason}") >= n, f"serial.{reason}: {c.get(f'serial.{reason}')}, at least {n}"
    assert c.get("base.log_lines") == sum(1 for item in out if item[0] == frame.LOG)
    fuzz_summary.add(f"fuzz serial bridge: {len(data)} bytes in random reads, {len(messages)} messages in "
                     f"{s.pieces['up_fragment']} fragments, {sum(published.values())} arrived whole and were published "
                     f"to the broker, {sum(refused.values())} refused ({describe(refused)}); damage counted "
                     f"{dict(errors)}; 0 crashes, seed {seed}, {time.perf_counter() - start:.1f} s")


# ---- the venue file ---------------------------------------------------------------------------

VENUE_FILES = [DEMO_VENUE, ROOT / "examples" / "venue-reference.toml",
               ROOT / "simulator" / "scenarios" / "venues" / "rush.toml"]


def check_venue(load: Callable[[], Venue], source: str, doc: dict[str, Any] | None) -> str:
    """A loaded Venue, or a VenueError that names the file and then the key or the line at fault;
    anything else escapes. `doc` is the parsed document when the file is valid TOML."""
    try:
        venue = load()
    except VenueError as e:
        message = str(e)
        assert message.startswith(source + ": "), f"the error does not start with the file: {message!r}"
        rest = message[len(source) + 2:]
        if rest.startswith(("not valid TOML", "not UTF-8")):
            assert toml_error_names_line(rest), f"a syntax error without its line: {message!r}"
            return "syntax_error"
        assert doc is not None, f"a file that is not TOML, refused for its content: {message!r}"
        assert names_a_key(doc, rest), f"the error names no key of the file: {message!r}"
        return "error"
    assert isinstance(venue, Venue)
    return "loaded"


@LONG_RUN
def test_fuzz_venue_file(tmp_path: Path, fuzz_summary: FuzzSummary) -> None:
    """Venue files with keys deleted, types swapped, bad values, unknown keys, duplicates, deep
    nesting, and broken TOML or bytes: the loader returns a Venue or its own error naming the key
    or line, never a bare KeyError/TypeError/AttributeError or another exception."""
    seed = fuzz_seed()
    rng = random.Random(seed + 4)
    sources = [(p.name, p.read_text()) for p in VENUE_FILES]
    docs = [(name, tomllib.loads(text)) for name, text in sources] + [("rules", rules_doc(demo_doc()))]
    path = tmp_path / "venue.toml"
    outcomes: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    n = scaled(3000)
    start = time.perf_counter()
    for i in range(n):
        data: bytes | None = None
        doc: dict[str, Any] | None
        try:
            if rng.random() < 0.7:
                name, base = rng.choice(docs)
                doc = copy.deepcopy(base)
                label = "+".join(mutate_doc(rng, doc) for _ in range(rng.choice([1, 1, 1, 2, 3])))
                try:  # as a file a quarter of the time (the writer itself gives up on the deepest nesting)
                    data = toml_text(doc).encode("utf-8", "surrogatepass") if rng.random() < 0.25 else None
                except RecursionError:
                    data = None
                if data is None:
                    outcome_ = check_venue(partial(parse_venue, doc, "venue.toml"), "venue.toml", doc)
                else:
                    path.write_bytes(data)
                    outcome_ = check_venue(lambda: load_venue(path), str(path), parsed(data))
            else:
                name, text = rng.choice(sources)
                label, data = mutate_text(rng, text)
                path.write_bytes(data)
                outcome_ = check_venue(lambda: load_venue(path), str(path), parsed(data))
        except Exception as e:
            raise AssertionError(f"venue fuzz document #{i} (REDBUTTON_FUZZ_SEED={seed}, {name}, {label}): {e!r}\n"
                                 f"{'file=' + fmt(data, 2000) if data is not None else 'doc=' + fmt(repr(doc), 2000)}"
                                 ) from e
        outcomes[outcome_] += 1
        labels[label.split("+")[0]] += 1
    assert outcomes["loaded"] and outcomes["error"] and outcomes["syntax_error"], outcomes
    fuzz_summary.add(f"fuzz venue file: {n} documents, 0 crashes, every error names its key or line, "
                     f"seed {seed}, {time.perf_counter() - start:.1f} s; outcomes: {describe(outcomes)}; "
                     f"mutations: {describe(labels)}")


def parsed(data: bytes) -> dict[str, Any] | None:
    try:
        return tomllib.loads(data.decode())
    except (ValueError, RecursionError):
        return None


# ---- regressions: what the fuzzing found ------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_payload_not_in_utf8_is_malformed(encoding: str) -> None:
    """CPython's json.loads reads UTF-16 and UTF-32 bytes (MicroPython's does not), so the gateway
    accepted messages in encodings no device sends, against docs/protocol.md ("malformed: not
    UTF-8"). Now both interpreters refuse them alike."""
    key = b"k" * 32
    t, payload = rbproto.encode(key, "demo", "btn-t1", "press", {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint",
                                                                 "bat": 3900})
    status = bytes(rbproto.encode_status("online", "1", 1))
    with pytest.raises(rbproto.ProtocolError) as e:
        rbproto.decode(t, payload.decode().encode(encoding), lambda _d: key)
    assert e.value.reason == rbproto.MALFORMED
    with pytest.raises(rbproto.ProtocolError) as e:
        rbproto.decode_status(rbproto.status_topic("demo", "btn-t1"), status.decode().encode(encoding))
    assert e.value.reason == rbproto.MALFORMED


@pytest.mark.parametrize(("data", "names"), [
    (b'site = "demo"\nname = "Caf\xe9"\n', "not UTF-8 text: byte 0xe9 (at line 2, column 12)"),
    (b'site = "demo"\n\nx = ' + b"[" * 2000 + b"]" * 2000 + b"\n", "nested too deeply (at line 3)"),
    (b'site = "demo"\nx = ' + b"{a = " * 1000 + b"1" + b"}" * 1000 + b"\n", "nested too deeply (at line 2)"),
])
def test_venue_file_that_cannot_be_read_names_the_line(tmp_path: Path, data: bytes, names: str) -> None:
    """A file in Latin-1, or nested past the parser's recursion, raised UnicodeDecodeError or
    RecursionError out of load_venue instead of a VenueError."""
    path = tmp_path / "venue.toml"
    path.write_bytes(data)
    with pytest.raises(VenueError) as e:
        load_venue(path)
    assert str(e.value).startswith(f"{path}: ") and names in str(e.value)


@pytest.mark.parametrize(("change", "names"), [
    (lambda d: d["staff"][0].update(zones=[["terrace"]]), "staff[0].zones: zone ['terrace'] is not in [[zones]]"),
    (lambda d: d.update(noise={"manager_roles": [{"a": 1}]}), "noise.manager_roles[0]: no staff has role {'a': 1}"),
    (lambda d: d["staff"][2].update(role="boss"),
     "noise.manager_roles: not set, and no staff has the default role 'manager'"),
])
def test_venue_defects_found_by_fuzzing_are_named(change: Callable[[dict[str, Any]], None], names: str) -> None:
    """A list or table where an id belongs raised a bare TypeError (unhashable); a venue without a
    manager blamed noise.manager_roles[0], a key the file does not have."""
    doc = demo_doc()
    change(doc)
    with pytest.raises(VenueError) as e:
        parse_venue(doc, "venue.toml")
    assert names in str(e.value)


def test_staff_name_outside_the_wire_alphabet_does_not_break_an_ack(tmp_path: Path) -> None:
    """Found by reading what the handler fuzz reaches: the pager that takes an incident another one
    was paged for makes the gateway tell the other "taken by <name>"; with a name like "Zoë" encode
    refuses the command and ProtocolError escapes Gateway.handle after the incident was moved."""
    doc = rules_doc(demo_doc())
    for staff in doc["staff"]:
        staff["name"] = "Zoë " + staff["name"]
    rig = Rig(doc, tmp_path / "names.db")
    rig.online("pgr-ana", "pgr-ben", "pgr-mia", "pgr-flo")
    rig.press("T1")
    rig.advance(31)  # nobody acknowledged: the next level is paged too
    pager, inc, _lvl = rig.alerts()[-1]
    rig.send(pager, "ack", inc=inc)
    assert rig.gw.counters.get("handled.ack") == 1
    assert rig.commands("alert_cancel"), "the others paged were not told"


# ---- the codec on both interpreters -----------------------------------------------------------

def test_codec_fuzz_gives_the_same_verdicts_inside_micropython(fuzz_summary: FuzzSummary) -> None:
    """The same seeded cases (tests/firmware/codec_fuzz.py) through rbproto on CPython and inside
    the MicroPython WebAssembly port: neither raises anything but ProtocolError, and both accept
    exactly the same payloads, alike. MicroPython's json is laxer than CPython's (it reads leading
    zeros, a missing ':' or ',', unknown escapes; it refuses NaN), which the codec's canonical-form
    check evens out; reasons for refusing may still differ, and those differences are counted."""
    node = shutil.which("node")
    runner = ROOT / "tests" / "mpy" / "run_tests.mjs"
    wasm = ROOT / ".venv" / "node" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
    if node is None or not wasm.exists():
        pytest.fail("Node.js or the MicroPython WebAssembly port is missing; run `make setup`")
    sys.path.insert(0, str(ROOT / "tests" / "firmware"))
    try:
        import codec_fuzz  # type: ignore[import-not-found]  # MicroPython code, beside the device tests
    finally:
        sys.path.pop(0)
    start = time.perf_counter()
    proc = subprocess.run([node, str(runner), str(ROOT), str(ROOT / "tests" / "firmware" / "codec_fuzz.py")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    inside = [line.split(" ", 2)[2] for line in proc.stdout.splitlines() if line.startswith("V ")]
    outside = codec_fuzz.verdicts()
    assert len(inside) == len(outside) == codec_fuzz.N
    differ: Counter[str] = Counter()
    for i, (cpy, mpy) in enumerate(zip(outside, inside, strict=True)):
        assert not cpy.startswith("CRASH") and not mpy.startswith("CRASH"), (i, cpy, mpy)
        if cpy.startswith(("ok", "status")) or mpy.startswith(("ok", "status")):
            assert mpy == cpy, f"case {i}: CPython {cpy}, MicroPython {mpy}"
        elif mpy != cpy:
            differ[f"{cpy} on CPython, {mpy} on MicroPython"] += 1
    accepted = sum(1 for v in outside if v.startswith(("ok", "status")))
    fuzz_summary.add(f"fuzz codec on CPython and MicroPython: {codec_fuzz.N} cases (seed {codec_fuzz.SEED}), "
                     f"0 crashes on either, {accepted} accepted by both alike; "
                     f"differences: {describe(differ) or 'none'}; "
                     f"{time.perf_counter() - start:.1f} s")


@LONG_RUN
def test_fuzz_base_station_serial_input(fuzz_summary: FuzzSummary) -> None:
    """The base station's side of the line (firmware base_app, with the firmware tests' recording
    radio): a host stream of DOWN frames among noise, log text and broken frames, in reads of any
    size. Every DOWN frame that comes through is sent on the radio and reported back in a SENT
    frame, in order; anything else is ignored or counted, and nothing raises."""
    for folder in (ROOT / "firmware" / "lib", ROOT / "tests" / "firmware"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from base_app import BaseApp
    from clock import ManualClock
    from fakeradio import FakeRadio, FakeSerial  # type: ignore[import-not-found]

    seed = fuzz_seed()
    rng = random.Random(seed + 5)
    s = Stream()
    for _ in range(scaled(1500)):
        if rng.random() < 0.4:
            item = rand_frame(rng, (frame.DOWN,) * 6 + (frame.UP, frame.SENT, frame.STATS))
            s.add("frame", frame.encode(*item), item)
        else:
            add_damage(rng, s)
    data = bytes(s.data)
    want, errors = ref_split(data)
    downs = [(mac, packet) for kind, mac, packet in want if kind == frame.DOWN]
    radio, serial, clock = FakeRadio(), FakeSerial(), ManualClock()
    radio.active(True)
    log: list[str] = []
    app = BaseApp(radio, serial, clock, b"\x24\x6f\x28\x00\x00\x01", log=log.append, max_peers=20)
    app.start()
    start = time.perf_counter()
    for piece in chunks(rng, data):
        serial.feed(piece)
        app.tick()
        clock.advance(1)
    assert [(mac, packet) for mac, packet, _answer in radio.sent] == downs, "DOWN frames sent differ"
    back = [item for item in frame.Decoder().feed(bytes(serial.written)) if item[0] == frame.SENT]
    assert [(mac, body[1:]) for _k, mac, body in back] == [(mac, p[:frame.SENT_ECHO]) for mac, p in downs]
    assert app.down == len(downs) and app.ignored == len(want) - len(downs)  # text from the host too
    assert app.decoder.errors == dict(errors)
    fuzz_summary.add(f"fuzz base station serial input: {len(data)} bytes in random reads, {len(downs)} DOWN frames "
                     f"sent and reported, {app.ignored} other frames and text lines ignored, damage counted "
                     f"{dict(errors)}; 0 crashes, "
                     f"seed {seed}, {time.perf_counter() - start:.2f} s")
