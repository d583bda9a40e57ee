"""The gateway service: verifies every device message and drives incidents from press to follow-up.

Inbound messages arrive on the MQTT thread, timers fire on the escalation thread; one lock
serialises both, so the incident logic never sees two things at once. Every refused message is
logged with its reason and counted. The incident is stored before any page for it is published,
and every timer is a column of its row, so a restart (even `kill -9`) picks up where it stopped."""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy.exc import DBAPIError

import rbproto

from . import escalation, incidents, router, supervision
from .clock import Clock, StepWatch, SystemClock
from .escalation import Scheduler
from .firmware import reads_echo
from .intake import FairIntake
from .metrics import Counters
from .mqtt_io import MqttIO
from .noise import RateLimiter
from .shifts import on_duty
from .store import Incident, Store, StoreError
from .venue import BUTTON, PAGER, Staff, Venue

log = logging.getLogger("redbutton.gateway")

# Which role may send which event.
SENDER_ROLE = {"press": BUTTON, "cancel": BUTTON, "ack": PAGER, "decline": PAGER, "resolve": PAGER,
               "duty": PAGER}

# What a button shows for an incident in each state (answer to a joined or re-sent press).
FEEDBACK_FOR_STATE = {
    incidents.OPEN: rbproto.DELIVERED,
    incidents.PAGED: rbproto.DELIVERED,
    incidents.UNREACHED: rbproto.ERROR,
    incidents.ACKNOWLEDGED: rbproto.ACKNOWLEDGED,
    incidents.RESOLVED: rbproto.RESOLVED,
    incidents.FOLLOWED_UP: rbproto.RESOLVED,
    incidents.CLOSED: rbproto.RESOLVED,
    incidents.CANCELLED: rbproto.CANCELLED,
}

# Incident origins: a customer's press, a press held for a manager (rate limit), a device in
# trouble, a zone with too many complaints (those three go straight to the manager roles), and
# positive feedback (a "happy now" press with nothing to follow up: recorded, never paged).
PRESS, HELD, TROUBLE, ZONE, FEEDBACK = "press", "held", "trouble", "zone", "feedback"
ZONE_KIND = "zone_complaints"
ZONE_PREFIX = "zone:"  # a zone alert is filed under "zone:<id>", apart from any table's calls
FOLLOWUP_RESULTS = ("satisfied", "unsatisfied", "no_response")
MAX_LEVEL = 9  # the alert's `lvl` (urgency shown and buzzed on the pager) stops growing here
SUPERVISE_EVERY_S = 1.0  # device supervision runs at most this often, however many timers fall due
MAX_HELD = 10_000  # messages kept for the store to come back (a full disk); beyond it, the oldest go


class Publisher(Protocol):
    """Where the gateway's commands go: the broker (MqttIO), or a list in unit tests."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def publish(self, topic: str, payload: bytes, retain: bool = False) -> object: ...
    def flush(self) -> None: ...


def wire_text(text: str) -> str:
    """Free text (a staff member's name) in what a device's screen and the wire take: printable
    ASCII without quotes or backslashes, accents dropped (Zoë -> Zoe), at most MAX_STR characters."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in plain)[:rbproto.MAX_STR]


def wait_s(inc: Incident, now: float) -> int:
    """Seconds the customer has waited: from the button's own press time (a press queued while the
    link was down keeps it), or from receipt when the button's clock looks unset or ahead."""
    start = inc.pressed_at if 0 < now - inc.pressed_at < 86400 else inc.received_at
    return max(0, int(now - start))


class Gateway:
    def __init__(self, venue: Venue, store: Store, broker_url: str, clock: Clock | None = None,
                 counters: Counters | None = None, io: Publisher | None = None) -> None:
        self.venue = venue
        self.store = store
        self.clock = clock or SystemClock()
        self.counters = counters or Counters()
        self._lock = threading.RLock()
        self.windows = {d: rbproto.ReplayWindow(*s) for d, s in store.load_replay().items()}
        registry = store.devices()
        self.heard: dict[str, supervision.Heard] = {
            d: supervision.Heard(_float(r.get("last_seen")), str(r["state"]), _int(r.get("battery_mv")),
                                 str(r["fw"]) if r.get("fw") is not None else None)
            for d, r in registry.items()}
        self.troubles: dict[str, tuple[str, int]] = {
            d: (str(r["trouble"]), int(str(r["trouble_incident"]))) for d, r in registry.items()
            if r.get("trouble") and r.get("trouble_incident") is not None}
        self.duty_toggles: dict[str, tuple[bool, float]] = store.duty_toggles()
        self.clock_offset: dict[str, float] = {}  # device -> our clock minus its clock, from heartbeats
        self.steps = StepWatch()
        self.epoch = store.next_gateway_epoch(self.clock.now())
        self.started_at = self.clock.now()
        self.limiter = RateLimiter(venue.rules.rate_limit_presses, venue.rules.rate_limit_window_s)
        self.scheduler = Scheduler(self.clock, self.tick)
        restored = store.deadlines()
        self.scheduler.load(restored)
        self._restored = len(restored)
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._outbox: list[tuple[str, bytes]] | None = None  # commands of the change being made
        self._supervised_at: float | None = None
        self.held: dict[tuple[str, bytes], float] = {}  # messages the store refused, retried each tick
        self.store_error: str | None = None  # why the store refused the last write, while it does
        self.reload_listeners: list[Callable[[Venue], None]] = []  # integrations that follow the venue
        self.intake = FairIntake(self.handle, self.counters)
        self.io: Publisher = io or MqttIO(broker_url, venue.site, f"rb-gateway-{venue.site}", self.receive,
                                          counters=self.counters)
        self._handlers: dict[str, Callable[[rbproto.Message], None]] = {
            "press": self.on_press,
            "cancel": self.on_cancel,
            "heartbeat": self.on_heartbeat,
            "duty": self.on_duty,
            "ack": self.on_ack,
            "decline": self.on_decline,
            "resolve": self.on_resolve,
        }

    def now(self) -> float:
        """Wall time, for what is recorded. A jump of the wall clock against the monotonic one
        first moves every timer and silence window with it, so they keep measuring real time: set
        forward an hour, nothing has been silent for an hour; set back, no escalation waits an hour."""
        with self._lock:
            wall = self.clock.now()
            step = self.steps.observe(wall, self.clock.monotonic())
            if step:
                self._clock_jumped(step)
            return wall

    def _clock_jumped(self, step: float) -> None:
        self.counters.inc("clock.jumps")
        for h in self.heard.values():
            if h.last_seen is not None:
                h.last_seen += step
        self.clock_offset = {d: off + step for d, off in self.clock_offset.items()}
        self.limiter.shift(step)
        self.started_at += step
        if self._supervised_at is not None:
            self._supervised_at += step
        try:
            moved = self.store.shift_deadlines(step)
        except (DBAPIError, StoreError) as e:  # rows and heap keep their times: due as the wall clock says
            log.error("STORE FAILED (%s): CLOCK JUMPED %+.1f s, timers not moved with it", self._store_refused(e), step)
            return
        self.scheduler.shift(step)  # only with the rows: an entry ahead of its row would be taken as stale
        log.warning("CLOCK JUMPED %+.1f s: %d timers and every silence window moved with it", step, moved)

    @property
    def device_state(self) -> dict[str, str]:
        """Device -> online / offline, as its status (last will) and its messages last said."""
        return {d: h.state for d, h in self.heard.items() if h.state is not None}

    @property
    def duty(self) -> dict[str, bool]:
        """Pager -> the wearer's own on/off-duty toggle, where one was set."""
        return {p: on for p, (on, _at) in self.duty_toggles.items()}

    def start(self) -> Gateway:
        self.intake.start()
        self.io.start()
        self.tick(self.now())  # deadlines that passed while the gateway was down, first
        self.scheduler.start()
        log.info("gateway for %s up (command epoch %d, %d timers restored)", self.venue.site, self.epoch,
                 self._restored)
        return self

    def stop(self) -> None:
        self.scheduler.stop()
        self.intake.stop()
        self.io.stop()

    def reload(self, venue: Venue) -> None:
        """Swap in an edited venue file; open incidents, timers and device state carry on."""
        if venue.site != self.venue.site:
            raise ValueError(f"the venue's site changed from {self.venue.site!r} to {venue.site!r}; restart instead")
        with self._lock:
            self.venue = venue
            self.limiter.limit = venue.rules.rate_limit_presses
            self.limiter.window_s = venue.rules.rate_limit_window_s
        for listener in list(self.reload_listeners):
            try:
                listener(venue)
            except Exception:  # an integration never keeps the new venue out
                log.exception("after reload: %r failed", listener)
        log.debug("venue in force: %d tables, %d staff, %d devices", len(venue.tables), len(venue.staff),
                  len(venue.devices))

    # ---- inbound ---------------------------------------------------------------------------

    def _drop(self, reason: str, topic: str, detail: str = "") -> None:
        self.counters.inc(f"dropped.{reason}")
        log.warning("DROP reason=%s topic=%s %s", reason, topic[:120], detail[:120])

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One change (a message, a tick, a dashboard action) under the lock and in one store
        transaction; its commands are published after the commit, so nothing is announced that
        the store does not hold. Reentrant: a nested change is part of the outer one."""
        with self._lock:
            if self._outbox is not None:
                yield
                return
            self._outbox = []
            try:
                with self.store.batch():
                    yield
                out = self._outbox
            finally:
                self._outbox = None
            for topic, payload in out:
                self.io.publish(topic, payload)
            if out:
                self.io.flush()

    def receive(self, topic: str, payload: bytes) -> None:
        """From the broker: a venue device over its rate waits its turn (intake.py); the rest is
        handled now."""
        parts = topic.split("/", 4)
        device = parts[3] if len(parts) > 4 else ""
        if device in self.venue.devices:
            self.intake.receive(device, topic, payload)
        else:
            self.handle(topic, payload)

    def handle(self, topic: str, payload: bytes) -> None:
        """Entry point for every inbound message: validate, verify, dedupe, then dispatch. A message
        the store cannot take (a full disk) is held and retried, never dropped."""
        self.counters.inc("received")
        with self._lock:
            now = self.now()
            if self.held:
                self._retry_held()
            if self.held or not self._handled(topic, payload):  # held ones first: the order stays
                self._hold(topic, payload, now)
            elif self.store_error is not None:
                self._store_back()

    def _handled(self, topic: str, payload: bytes) -> bool:
        """Handle; False if the store refused it (then nothing of it was stored or sent)."""
        try:
            self._handle(topic, payload)
        except (DBAPIError, StoreError) as e:
            self._store_refused(e)
            return False
        return True

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            site, device, mtype = rbproto.parse_topic(topic)
            if site != self.venue.site:
                raise rbproto.ProtocolError(rbproto.BAD_TOPIC, f"site {site}")
            if mtype == "status":
                with self._atomic():
                    self.on_status(topic, payload)
                return
            msg = rbproto.decode(topic, payload, self.venue.key_for)
        except rbproto.ProtocolError as e:
            self._drop(e.reason, topic, e.detail)
            return
        role = self.venue.devices[device].role
        if SENDER_ROLE.get(mtype, role) != role or mtype not in self._handlers:
            self._drop("wrong_role", topic, f"{device} is a {role}")
            return
        ep, seq = msg.body["ep"], msg.body["seq"]
        window = self.windows.get(device) or rbproto.ReplayWindow()
        if not window.check(ep, seq):
            with self._atomic():
                answered = mtype == "press" and self._answer_again(msg)
            if not answered:
                self._drop(rbproto.REPLAYED, topic, f"ep={ep} seq={seq}")
            return
        seen = rbproto.ReplayWindow(window.ep, window.top, window.bits)
        seen.accept(ep, seq)
        with self._atomic():
            self._heard(device, self.now())
            self._handlers[mtype](msg)
            self.store.save_replay(device, seen.ep, seen.top, seen.bits)
        self.windows[device] = seen  # only once stored: a message lost with the transaction is new again
        self.counters.inc(f"handled.{mtype}")

    def _store_refused(self, e: Exception) -> str:
        """Count a write the store refused (disk full, I/O error); -> its reason. The first of an
        outage also counts as an outage: the alarm /metrics and the dashboard show."""
        reason = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
        self.counters.inc("store.failed")
        if self.store_error is None:
            self.counters.inc("store.outages")
        self.store_error = reason
        return reason

    def _hold(self, topic: str, payload: bytes, now: float) -> None:
        """Keep a message the store could not take for the next tick, after any held before it."""
        if (topic, payload) in self.held:
            return  # the same message again (a QoS 1 redelivery): held once
        if len(self.held) >= MAX_HELD:
            del self.held[next(iter(self.held))]
            self.counters.inc("store.held_lost")
            log.critical("STORE FAILED and %d messages are held: the oldest is lost", MAX_HELD)
        self.held[(topic, payload)] = now
        log.error("STORE FAILED (%s): %s held for retry, %d waiting", self.store_error, topic[:120], len(self.held))

    def _retry_held(self) -> None:
        """Messages the store refused, oldest first, until it refuses again."""
        for topic, payload in list(self.held):
            if not self._handled(topic, payload):
                return
            del self.held[(topic, payload)]
            self.counters.inc("store.retried")
        if self.store_error is not None:
            self._store_back()

    def _store_back(self) -> None:
        log.warning("STORE back after %s: every held message is stored", self.store_error)
        self.counters.inc("store.recovered")
        self.store_error = None

    def _heard(self, device: str, now: float, state: str | None = None) -> None:
        h = self.heard.setdefault(device, supervision.Heard())
        h.last_seen = now
        if state is not None:
            h.state = state
        elif h.state == rbproto.OFFLINE:
            h.state = rbproto.ONLINE  # it talks, so it is back, whatever its last will said

    def _answer_again(self, msg: rbproto.Message) -> bool:
        """A press re-sent because its feedback was lost (or delivered twice by QoS 1): answer again
        without recording it twice."""
        inc_id = self.store.press_incident(msg.device, msg.body["ep"], msg.body["seq"])
        inc = self.store.incident(inc_id) if inc_id is not None else None
        if inc is None:
            return False
        self.counters.inc("duplicates")
        self._feedback(msg.device, inc.id, FEEDBACK_FOR_STATE.get(inc.state, rbproto.DELIVERED),
                       (msg.body["ep"], msg.body["seq"]))
        return True

    def on_status(self, topic: str, payload: bytes) -> None:
        _site, device, state, fw, ep = rbproto.decode_status(topic, payload)
        if device == "gateway":
            return
        if device not in self.venue.devices:
            raise rbproto.ProtocolError(rbproto.UNKNOWN_DEVICE, device)
        now = self.now()
        self._heard(device, now, state)
        self.heard[device].fw = fw
        self.store.device_status(device, state, fw, ep, now)
        log.info("DEVICE %s %s fw=%s ep=%d", device, state, fw, ep, extra={"device": device})
        if state == rbproto.ONLINE:
            self._send_config(device)
            self._realert_pager(device, now)

    def _realert_pager(self, pager: str, now: float) -> None:
        """A pager that comes back (a reboot, a reconnect) may have lost its screen, or alerts sent
        while it was away: its unanswered alerts are sent again, and the calls its wearer is on (a
        repeat press raised their urgency meanwhile). A pager that kept them ignores a repeat of the
        same level; an ack of a call its wearer is already on is dropped (not_paged) and changes nothing."""
        wearer = self.venue.staff_by_pager.get(pager)
        mine = self.store.taken_by(wearer.id) if wearer is not None else []
        paged = [inc for inc in map(self.store.incident, self.store.paged_incidents(pager))
                 if inc is not None and inc.state == incidents.PAGED]
        for inc in paged + mine:
            self._alert(pager, inc, min(inc.level + inc.urgency, MAX_LEVEL), now)
            log.info("REALERT inc=%d %s -> %s (back online)", inc.id, inc.table_id, pager,
                     extra={"inc": inc.id, "device": pager})

    def on_heartbeat(self, msg: rbproto.Message) -> None:
        b = msg.body
        # A heartbeat is sent the moment it is made: how far the device's clock is off from ours.
        self.clock_offset[msg.device] = self.now() - b["ts"]
        self.heard[msg.device].battery_mv = b["bat"]
        self.heard[msg.device].fw = b["fw"]
        self.store.device_heartbeat(msg.device, self.now(), b["bat"], b["rssi"], b["fw"], b["q"], b["up"],
                                    b["cv"])
        if b["cv"] != self._config_for(msg.device)["cv"]:
            self._send_config(msg.device)

    def on_duty(self, msg: rbproto.Message) -> None:
        on = msg.body["on"] != 0
        now = self.now()
        self.duty_toggles[msg.device] = (on, now)
        self.store.device_duty(msg.device, on, now)
        staff = self.venue.staff_by_pager.get(msg.device)
        log.info("DUTY %s %s (%s)", staff.id if staff else msg.device, "on" if on else "off", msg.device,
                 extra={"device": msg.device, "staff": staff.id if staff else None})

    def _config_for(self, device: str) -> dict[str, int | str]:
        return self.venue.device_settings.config(self.venue.devices[device].role)

    def _send_config(self, device: str) -> None:
        """The venue's settings for the device: its gesture map or recovery actions, intervals."""
        self._send(device, "config", self._config_for(device))

    # ---- presses ---------------------------------------------------------------------------

    def on_press(self, msg: rbproto.Message) -> None:
        table = self.venue.table_by_button.get(msg.device)
        if table is None:
            self._drop("unassigned_button", msg.device, "button is on no table")
            return
        press = (msg.body["ep"], msg.body["seq"])
        if self.store.press_incident(msg.device, *press) is not None:  # redelivered after a crash
            self._answer_again(msg)
            return
        now = self.now()
        kind = msg.body["kind"]
        if kind in self.venue.rules.quiet_kinds:
            self._feedback_press(msg, table.id, table.zone, kind, press, now)
            return
        flagged = self.limiter.press(msg.device, now)
        active = self.store.active_incident(table.id)
        if active is not None:
            self._join(active, msg, kind, press, now, flagged)
            return
        origin = HELD if flagged else PRESS
        cause = f"press {kind}" + (": held for a manager, the button is pressed too often" if flagged else "")
        inc_id = self.store.open_incident(self.venue.site, table.id, table.zone, msg.device, kind,
                                          self._press_time(msg, now), now, press, origin, cause)
        log.info("INCIDENT %d opened %s %s%s", inc_id, table.id, kind, " (held)" if flagged else "",
                 extra={"inc": inc_id, "table": table.id})
        if flagged:
            self.counters.inc("held")
        self._feedback(msg.device, inc_id, rbproto.DELIVERED, press)
        self._escalate(inc_id, 0)
        if not flagged:
            self._aggregate(table.zone, now)

    def _press_time(self, msg: rbproto.Message, now: float) -> float:
        """When the customer pressed, on our clock: the button's own time of the press (a press that
        waited in its outbox keeps it), corrected by how far its clock was off at its last heartbeat;
        never later than now."""
        return min(now, float(msg.body["ts"]) + self.clock_offset.get(msg.device, 0.0))

    def _join(self, inc: Incident, msg: rbproto.Message, kind: str, press: tuple[int, int], now: float,
              flagged: bool) -> None:
        """A repeat press at a table with an open incident: counted, and the people paged for it (or
        the one on it) are alerted again; nobody new is paged for it. A button pressed too often
        alerts nobody again: the incident is held for a manager instead."""
        self.store.join_incident(inc.id, msg.device, kind, now, press)
        self.counters.inc("joined")
        log.info("JOIN inc=%d %s %s (press %d)", inc.id, inc.table_id, kind, inc.presses + 1,
                 extra={"inc": inc.id, "table": inc.table_id})
        self._feedback(msg.device, inc.id, FEEDBACK_FOR_STATE[inc.state], press)
        if not flagged:
            self._realert(self._incident(inc.id))
        elif inc.origin == PRESS:
            self._hold_open(inc, now)

    def _hold_open(self, inc: Incident, now: float) -> None:
        """The button of an open incident is pressed too often: from now on the incident is a
        manager's, who is paged unless someone is already on it; the staff paged so far may still
        take it."""
        rules = self.venue.rules
        self.store.update(inc.id, origin=HELD)
        self.store.note(inc.id, now, "gateway", f"held for a manager: the button was pressed more than "
                        f"{rules.rate_limit_presses} times within {rules.rate_limit_window_s:.0f} s")
        self.counters.inc("held")
        log.warning("HELD inc=%d %s: its button is pressed too often; its presses are recorded and alert "
                    "nobody again, a manager takes it", inc.id, inc.table_id,
                    extra={"inc": inc.id, "table": inc.table_id})
        if inc.state in (incidents.OPEN, incidents.PAGED, incidents.UNREACHED):
            self._escalate(inc.id, 0)

    def _feedback_press(self, msg: rbproto.Message, table_id: str, zone: str, kind: str, press: tuple[int, int],
                        now: float) -> None:
        """A "happy now" press: the follow-up of the table's last resolved incident if one is open
        (satisfied), else positive feedback of its own. Nobody is paged for it."""
        inc = self.store.awaiting_followup(table_id)
        if inc is not None:
            self.store.record_press(inc.id, msg.device, kind, now, press)
            self.store.move(inc.id, incidents.FOLLOWED_UP, now, msg.device, f"{kind} press after resolve",
                            followup_result="satisfied", deadline=None, deadline_kind=None)
            log.info("FOLLOW-UP inc=%d %s satisfied", inc.id, table_id, extra={"inc": inc.id, "table": table_id})
            self.counters.inc("followup.satisfied")
            self._feedback(msg.device, inc.id, rbproto.RESOLVED, press)
            return
        inc_id = self.store.open_incident(self.venue.site, table_id, zone, msg.device, kind,
                                          self._press_time(msg, now), now, press, FEEDBACK, f"press {kind}: feedback")
        self.store.move(inc_id, incidents.CLOSED, now, "gateway", "positive feedback, nobody paged", closed_at=now)
        log.info("FEEDBACK %s at %s recorded (inc %d)", kind, table_id, inc_id, extra={"inc": inc_id})
        self._feedback(msg.device, inc_id, rbproto.RESOLVED, press)

    def _aggregate(self, zone: str, now: float) -> None:
        """At least K complaints in a zone within W: the manager hears of the zone as a whole, once
        while the alert is open."""
        rules = self.venue.rules
        n = self.store.recent_incidents(zone, now - rules.aggregate_window_s)
        if n < rules.aggregate_complaints or self.store.active_incident(ZONE_PREFIX + zone) is not None:
            return
        inc_id = self.store.open_incident(self.venue.site, ZONE_PREFIX + zone, zone, "gateway", ZONE_KIND, now, now,
                                          None, ZONE,
                                          f"{n} complaints within {rules.aggregate_window_s:.0f} s")
        log.warning("ZONE %s: %d complaints within %.0f s (inc %d)", zone, n, rules.aggregate_window_s, inc_id,
                    extra={"inc": inc_id})
        self.counters.inc("zone_alerts")
        self._escalate(inc_id, 0)

    # ---- paging and escalation ---------------------------------------------------------------

    def _levels(self, inc: Incident) -> tuple[str, ...]:
        if inc.origin in (HELD, TROUBLE, ZONE):
            return self.venue.rules.manager_roles
        return self.venue.policy(inc.kind).levels

    def staff_on_duty(self, staff: Staff, now: float) -> bool:
        """On duty now, by shift or by the wearer's own toggle on the pager."""
        return on_duty(staff.shifts, staff.on_duty, self.duty_toggles.get(staff.pager), now, self.venue.tz)

    def _available(self, staff: Staff, now: float) -> bool:
        """On duty (shift or toggle), and a pager that is neither offline nor silent too long."""
        if not self.staff_on_duty(staff, now):
            return False
        h = self.heard.get(staff.pager)
        if h is None or h.last_seen is None:
            return True
        return h.state != rbproto.OFFLINE and now - h.last_seen <= supervision.window_s(self.venue, staff.pager)

    def _zone_of(self, inc: Incident) -> str:
        return inc.zone if inc.zone in self.venue.zones else next(iter(self.venue.zones))

    def _escalate(self, inc_id: int, level: int) -> None:
        """Page the best candidate from `level` up: the next person of the same level first, then the
        next level. Nobody left: wait for those still paged, or raise the alarm (unreached)."""
        inc = self._incident(inc_id)
        now = self.now()
        levels = self._levels(inc)
        policy = self.venue.policy(inc.kind)
        table = self.venue.tables.get(inc.table_id)
        exclude = self.store.paged_staff(inc_id)
        busy = self.store.busy()
        online = supervision.Online(self.heard)
        for lvl in range(level, len(levels)):
            found = router.candidates(self.venue, self._zone_of(inc), levels[lvl],
                                      lambda s: self._available(s, now), exclude, busy,
                                      table.responder if table else None, online)
            if found:
                self._page(inc, found[0], lvl, now)
                last = lvl == len(levels) - 1
                self._set_deadline(inc_id, now + (policy.repeat_s if last else policy.ack_timeout_s),
                                   escalation.REPEAT if last else escalation.ACK)
                return
        if self.store.outstanding_pages(inc_id):
            self._set_deadline(inc_id, now + policy.repeat_s, escalation.REPEAT)
            return
        if inc.state != incidents.UNREACHED:
            self.store.move(inc_id, incidents.UNREACHED, now, "gateway", "no responder available")
            log.error("ALARM inc=%d %s: nobody can be paged", inc_id, inc.table_id,
                      extra={"inc": inc_id, "table": inc.table_id})
            self.counters.inc("unreached")
            if inc.origin in (PRESS, HELD):
                self._feedback(inc.button, inc_id, rbproto.ERROR)
        self._set_deadline(inc_id, now + policy.repeat_s, escalation.RETRY)

    def _page(self, inc: Incident, staff: Staff, level: int, now: float) -> None:
        self._alert(staff.pager, inc, min(level + inc.urgency, MAX_LEVEL), now)
        self.store.add_page(inc.id, staff.id, staff.pager, level, now)
        first = {"paged_at": now} if inc.paged_at is None else {}
        self.store.move(inc.id, incidents.PAGED, now, "gateway", f"paged {staff.id}", level=level, **first)
        self.counters.inc("pages")
        log.info("PAGE inc=%d %s -> %s (%s) lvl=%d", inc.id, inc.table_id, staff.id, staff.pager, level,
                 extra={"inc": inc.id, "table": inc.table_id, "staff": staff.id})
        if inc.state == incidents.UNREACHED and inc.origin in (PRESS, HELD):
            self._feedback(inc.button, inc.id, rbproto.DELIVERED)  # someone came on duty: heard after all

    def where(self, inc: Incident) -> str:
        """What the pager shows as the place: the table, or for a device trouble the table of the
        button (or the wearer of the pager), for a zone alert the zone."""
        if inc.origin == TROUBLE:
            table = self.venue.table_by_button.get(inc.button)
            staff = self.venue.staff_by_pager.get(inc.button)
            return table.id if table else (staff.id if staff else inc.button)
        if inc.origin == ZONE:
            return inc.zone
        return inc.table_id

    def _alert(self, pager: str, inc: Incident, lvl: int, now: float) -> None:
        self._send(pager, "alert", {"inc": inc.id, "table": self.where(inc)[:rbproto.MAX_STR],
                                    "kind": inc.kind[:rbproto.MAX_STR], "lvl": lvl, "age": wait_s(inc, now)})

    def _realert(self, inc: Incident) -> None:
        """Alert again, at the incident's present urgency, everyone paged and not yet answering; or
        the responder of an acknowledged incident. Callers raise the urgency first: the pager buzzes
        harder for a higher level and ignores a repeat of the same one."""
        now = self.now()
        lvl = min(inc.level + inc.urgency, MAX_LEVEL)
        if inc.state == incidents.ACKNOWLEDGED:
            if inc.responder in self.venue.staff:
                self._alert(self.venue.staff[inc.responder].pager, inc, lvl, now)
            return
        for _staff, pager, _level in self.store.outstanding_pages(inc.id):
            self._alert(pager, inc, lvl, now)

    def _more_urgent(self, inc: Incident) -> Incident:
        self.store.update(inc.id, urgency=inc.urgency + 1)
        return self._incident(inc.id)

    def _set_deadline(self, inc_id: int, at: float | None, kind: str | None) -> None:
        self.store.update(inc_id, deadline=at, deadline_kind=kind)
        if at is not None:
            self.scheduler.schedule(at, inc_id)

    def tick(self, now: float | None = None) -> None:
        """Everything due: held messages, escalation timers, then device supervision (at most every
        SUPERVISE_EVERY_S). The scheduler thread calls it; tests call it after moving a manual clock."""
        with self._lock:
            now = self.now() if now is None else now
            if self.held:
                self._retry_held()
            due = self.scheduler.due(now)
            for k, inc_id in enumerate(due):
                try:
                    with self._atomic():
                        inc = self.store.incident(inc_id)
                        if inc is not None and inc.deadline is not None and inc.deadline <= now:
                            self._on_deadline(inc, now)  # else a stale heap entry: the timer moved
                except (DBAPIError, StoreError) as e:
                    # The timers stay in their rows: looked at again at the next beat.
                    log.error("STORE FAILED (%s): %d timers wait for the next tick", self._store_refused(e),
                              len(due) - k)
                    for later in due[k:]:
                        self.scheduler.schedule(now + SUPERVISE_EVERY_S, later)
                    return
            last = self._supervised_at
            if last is None or not 0 <= now - last < SUPERVISE_EVERY_S:
                try:
                    with self._atomic():
                        self.supervise(now)
                except (DBAPIError, StoreError) as e:
                    log.error("STORE FAILED (%s): device supervision waits for the next tick", self._store_refused(e))
                    return
                self._supervised_at = now
            if self.store_error is not None and not self.held:
                self._store_back()

    def _on_deadline(self, inc: Incident, now: float) -> None:
        kind = inc.deadline_kind
        self.store.update(inc.id, deadline=None, deadline_kind=None)
        extra = {"inc": inc.id, "table": inc.table_id}
        if kind == escalation.ACK and inc.state == incidents.PAGED:
            log.info("ESCALATE inc=%d %s: not acknowledged within %.0f s", inc.id, inc.table_id,
                     self.venue.policy(inc.kind).ack_timeout_s, extra=extra)
            self.counters.inc("escalations")
            self._escalate(inc.id, inc.level + 1)
        elif kind == escalation.REPEAT and inc.state == incidents.PAGED:
            log.info("REPEAT inc=%d %s: still not acknowledged", inc.id, inc.table_id, extra=extra)
            self._realert(self._more_urgent(inc))
            self._escalate(inc.id, inc.level)  # someone new on duty at this level is paged too
        elif kind == escalation.RETRY and inc.state == incidents.UNREACHED:
            self._escalate(inc.id, 0)
        elif kind == escalation.RESOLVE and inc.state == incidents.ACKNOWLEDGED:
            log.info("REMIND inc=%d %s: acknowledged but not resolved", inc.id, inc.table_id, extra=extra)
            self.counters.inc("reminders")
            self._realert(self._more_urgent(inc))
            self._set_deadline(inc.id, now + self.venue.policy(inc.kind).resolve_timeout_s, escalation.RESOLVE)
        elif kind == escalation.FOLLOWUP and inc.state == incidents.RESOLVED:
            self.store.move(inc.id, incidents.CLOSED, now, "gateway", "follow-up window closed", closed_at=now,
                            followup_result="no_response")
            self.counters.inc("followup.no_response")

    # ---- answers from pagers -------------------------------------------------------------------

    def _incident(self, inc_id: int) -> Incident:
        inc = self.store.incident(inc_id)
        if inc is None:
            raise LookupError(f"no incident {inc_id}")
        return inc

    def _pager_incident(self, msg: rbproto.Message, outcome: str) -> Incident | None:
        """The incident a pager answers, if that pager has an outstanding page for it."""
        inc = self.store.incident(msg.body["inc"])
        if inc is None or not self.store.close_pages(inc.id, outcome, pager=msg.device):
            self._drop("not_paged", msg.device, f"{msg.mtype} for incident {msg.body['inc']}")
            return None
        return inc

    def on_ack(self, msg: rbproto.Message) -> None:
        inc = self._pager_incident(msg, "acked")
        if inc is None:
            return
        who, name = self._wearer(msg.device)
        if inc.state != incidents.PAGED:
            self._send(msg.device, "alert_cancel", {"inc": inc.id, "why": f"already {inc.state}"})
            return
        self._take(inc, who, name, who, "ack")

    def _take(self, inc: Incident, who: str, name: str, actor: str, cause: str) -> None:
        """`who` is on it: acknowledged, the resolve timer runs, the customer's button says someone is
        coming, and everyone else paged for it is told who took it."""
        now = self.now()
        self.store.move(inc.id, incidents.ACKNOWLEDGED, now, actor, cause, acked_at=inc.acked_at or now, responder=who)
        self._set_deadline(inc.id, now + self.venue.policy(inc.kind).resolve_timeout_s, escalation.RESOLVE)
        log.info("ACK inc=%d by %s%s", inc.id, who, "" if actor == who else f" (entered by {actor})",
                 extra={"inc": inc.id, "staff": who})
        self.counters.inc("acks")
        if inc.origin in (PRESS, HELD):
            self._feedback(inc.button, inc.id, rbproto.ACKNOWLEDGED)
        for pager in self.store.close_pages(inc.id, "taken"):
            self._send(pager, "alert_cancel", {"inc": inc.id, "why": wire_text(f"taken by {name}")})

    # ---- actions from the dashboard -----------------------------------------------------------

    def acknowledge(self, inc_id: int, staff_id: str, actor: str) -> None:
        """Someone says from the dashboard that `staff_id` is on it (their own ack, or a manager's
        entry for them): as if that person had acknowledged on their pager."""
        with self._atomic():
            inc = self._incident(inc_id)
            staff = self._staff(staff_id)
            if inc.state not in (incidents.OPEN, incidents.PAGED, incidents.UNREACHED):
                raise incidents.TransitionError(f"incident {inc_id} is {inc.state}, not waiting for anyone")
            self._take(inc, staff.id, staff.name, actor, "ack from the dashboard")

    def reassign(self, inc_id: int, staff_id: str, actor: str) -> None:
        """Page `staff_id` for the incident instead of whoever has it: the others' pagers are told
        it went elsewhere; the new person must acknowledge like any page."""
        with self._atomic():
            inc = self._incident(inc_id)
            staff = self._staff(staff_id)
            if inc.state not in incidents.ACTIVE:
                raise incidents.TransitionError(f"incident {inc_id} is {inc.state}, nothing to reassign")
            now = self.now()
            told = self.store.close_pages(inc.id, "reassigned")
            if inc.responder in self.venue.staff:
                told.append(self.venue.staff[inc.responder].pager)
            for pager in told:
                if pager != staff.pager:
                    self._send(pager, "alert_cancel", {"inc": inc.id, "why": wire_text(f"given to {staff.name}")})
            if inc.state == incidents.ACKNOWLEDGED:
                self.store.update(inc.id, responder=None)
                inc = self._incident(inc.id)
            self.store.note(inc.id, now, actor, f"reassigned to {staff.id}")
            log.info("REASSIGN inc=%d to %s by %s", inc.id, staff.id, actor, extra={"inc": inc.id, "staff": staff.id})
            self.counters.inc("reassigned")
            self._page(inc, staff, inc.level, now)
            self._set_deadline(inc.id, now + self.venue.policy(inc.kind).ack_timeout_s, escalation.ACK)

    def follow_up(self, inc_id: int, result: str, actor: str) -> None:
        """The follow-up's result as staff found it at the table (satisfied or not)."""
        if result not in FOLLOWUP_RESULTS:
            raise ValueError(f"a follow-up result is one of {', '.join(FOLLOWUP_RESULTS)}, not {result!r}")
        with self._atomic():
            inc = self._incident(inc_id)
            if inc.state != incidents.RESOLVED:
                raise incidents.TransitionError(f"incident {inc_id} is {inc.state}: only a resolved one is followed up")
            self.store.move(inc.id, incidents.FOLLOWED_UP, self.now(), actor, f"follow-up: {result}",
                            followup_result=result, deadline=None, deadline_kind=None)
            self.counters.inc(f"followup.{result}")

    def _staff(self, staff_id: str) -> Staff:
        staff = self.venue.staff.get(staff_id)
        if staff is None:
            raise LookupError(f"no staff member {staff_id!r} in the venue")
        return staff

    def _wearer(self, pager: str) -> tuple[str, str]:
        """(staff id, name) of whoever wears the pager; the pager's id if a reload took them out."""
        staff = self.venue.staff_by_pager.get(pager)
        return (staff.id, staff.name) if staff else (pager, pager)

    def on_decline(self, msg: rbproto.Message) -> None:
        inc = self._pager_incident(msg, "declined")
        if inc is None:
            return
        log.info("DECLINE inc=%d by %s", inc.id, msg.device, extra={"inc": inc.id, "device": msg.device})
        self.counters.inc("declines")
        if inc.state == incidents.PAGED:
            self._escalate(inc.id, inc.level)

    def on_resolve(self, msg: rbproto.Message) -> None:
        inc = self.store.incident(msg.body["inc"])
        who, _name = self._wearer(msg.device)
        if inc is None or inc.state != incidents.ACKNOWLEDGED or inc.responder != who:
            self._drop("not_responder", msg.device, f"resolve for incident {msg.body['inc']}")
            return
        self.resolve(inc.id, who, msg.body["action"])

    def resolve(self, inc_id: int, actor: str, action: str) -> None:
        """Resolve with a recovery action; the follow-up window opens (a "happy now" press at the
        table within it counts as satisfied)."""
        with self._atomic():
            inc = self._incident(inc_id)
            now = self.now()
            due = now + self.venue.rules.followup_s if inc.origin in (PRESS, HELD) else None
            self.store.move(inc.id, incidents.RESOLVED, now, actor, "resolve", resolved_at=now, resolved_by=actor,
                            recovery_action=action, followup_due=due)
            self._set_deadline(inc.id, due, escalation.FOLLOWUP if due is not None else None)
            log.info("RESOLVE inc=%d by %s: %s", inc.id, actor, action, extra={"inc": inc.id, "staff": actor})
            if due is not None:
                self._feedback(inc.button, inc.id, rbproto.RESOLVED)

    def record(self, inc_id: int, actor: str, compensation: str | None = None, cost: float | None = None,
               root_cause: str | None = None, notes: str | None = None) -> None:
        """The rest of the service-recovery record: compensation and its cost, root cause, notes."""
        if root_cause is not None and root_cause not in self.venue.root_causes:
            known = ", ".join(self.venue.root_causes)
            raise ValueError(f"{root_cause!r} is not one of the venue's root causes: {known}")
        if cost is not None and cost < 0:
            raise ValueError("a compensation cost is not negative")
        with self._atomic():
            self._incident(inc_id)
            columns = {k: v for k, v in (("compensation", compensation), ("compensation_cost", cost),
                                         ("root_cause", root_cause), ("notes", notes)) if v is not None}
            self.store.update(inc_id, **columns)
            self.store.note(inc_id, self.now(), actor, "recorded " + ", ".join(sorted(columns)))

    def on_cancel(self, msg: rbproto.Message) -> None:
        table = self.venue.table_by_button.get(msg.device)
        inc = self.store.active_incident(table.id) if table else None
        if inc is None:
            log.info("CANCEL from %s with nothing open", msg.device, extra={"device": msg.device})
            return
        now = self.now()
        self.store.move(inc.id, incidents.CANCELLED, now, msg.device, "customer cancelled", deadline=None,
                        deadline_kind=None, closed_at=now)
        log.info("CANCEL inc=%d by the customer", inc.id, extra={"inc": inc.id, "table": inc.table_id})
        pagers = self.store.close_pages(inc.id, "cancelled")
        if inc.responder and inc.responder in self.venue.staff:
            pagers.append(self.venue.staff[inc.responder].pager)  # acknowledged: the responder is told
        for pager in pagers:
            self._send(pager, "alert_cancel", {"inc": inc.id, "why": "customer cancelled"})
        self._feedback(inc.button, inc.id, rbproto.CANCELLED)

    # ---- device supervision ----------------------------------------------------------------

    def supervise(self, now: float) -> None:
        """Raise a trouble incident for each device newly in trouble, close the ones that recovered."""
        found = supervision.troubles(self.venue, self.heard, now, self.started_at)
        for device, (kind, inc_id) in list(self.troubles.items()):
            if found.get(device) != kind:
                self._trouble_over(device, kind, inc_id, now)
        for device, kind in found.items():
            if device not in self.troubles:
                self._trouble(device, kind, now)

    def _trouble(self, device: str, kind: str, now: float) -> None:
        table = self.venue.table_by_button.get(device)
        staff = self.venue.staff_by_pager.get(device)
        where = table.id if table else (staff.id if staff else device)
        zone = table.zone if table else (staff.zones[0] if staff and staff.zones else next(iter(self.venue.zones)))
        # filed under the device, not the table: a customer's call at that table stays its own incident
        inc_id = self.store.open_incident(self.venue.site, device, zone, device, kind, now, now, None, TROUBLE,
                                          f"{device} at {where}: {kind}")
        if kind in supervision.URGENT:
            self.store.update(inc_id, urgency=2)
        self.troubles[device] = (kind, inc_id)
        self.store.device_trouble(device, kind, inc_id)
        log.error("TROUBLE %s %s at %s (inc %d)", device, kind, where, inc_id, extra={"inc": inc_id, "device": device})
        self.counters.inc(f"trouble.{kind}")
        self._escalate(inc_id, 0)

    def _trouble_over(self, device: str, kind: str, inc_id: int, now: float) -> None:
        del self.troubles[device]
        self.store.device_trouble(device, None, None)
        inc = self.store.incident(inc_id)
        log.info("RECOVERED %s (%s, inc %d)", device, kind, inc_id, extra={"inc": inc_id, "device": device})
        if inc is None or inc.state not in incidents.ACTIVE:
            return
        if inc.state != incidents.ACKNOWLEDGED:
            for pager in self.store.close_pages(inc_id, "cancelled"):
                self._send(pager, "alert_cancel", {"inc": inc_id, "why": "device recovered"})
            self.store.move(inc_id, incidents.CANCELLED, now, "gateway", "device recovered by itself",
                            deadline=None, deadline_kind=None, closed_at=now)
        else:
            self.resolve(inc_id, "gateway", "recovered")

    # ---- outbound --------------------------------------------------------------------------

    def _send(self, device: str, mtype: str, fields: dict[str, int | str]) -> None:
        """Sign a command with the device's key and publish it (QoS 1)."""
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        body: dict[str, int | str] = {"ep": self.epoch, "seq": seq, "ts": int(self.now()), **fields}
        topic, payload = rbproto.encode(self.venue.devices[device].key, self.venue.site, device, mtype, body)
        if self._outbox is not None:
            self._outbox.append((topic, payload))
        else:
            self.io.publish(topic, payload)
        self.counters.inc(f"sent.{mtype}")

    def _feedback(self, button: str, inc_id: int, state: str, press: tuple[int, int] | None = None) -> None:
        """What the button shows. `press`: the (ep, seq) of the press this answers, None for news of
        the incident. Firmware that reads it gets it back as pep/pseq (NO_PRESS for news), and
        takes only its own press's echo as the answer; older firmware would refuse the fields, so
        it gets none (docs/protocol.md, "Answers to a press")."""
        if button in self.venue.devices:
            fields: dict[str, int | str] = {"inc": inc_id, "state": state}
            heard = self.heard.get(button)
            if reads_echo(heard.fw if heard else None):
                fields["pep"], fields["pseq"] = press or (rbproto.NO_PRESS, rbproto.NO_PRESS)
            self._send(button, "feedback", fields)


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int) else None
