"""The gateway service: verifies every device message and drives incidents from press to resolve.

Inbound messages arrive on the MQTT thread and are handled there one at a time, so the incident
logic needs no locks of its own. Every refused message is logged with its reason and counted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import rbproto

from . import incidents, router
from .clock import Clock, SystemClock
from .metrics import Counters
from .mqtt_io import MqttIO
from .store import Incident, Store
from .venue import BUTTON, PAGER, Venue

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
    incidents.CANCELLED: rbproto.CANCELLED,
}


def wait_s(inc: Incident, now: float) -> int:
    """Seconds the customer has waited: from the button's own press time (a press queued while the
    link was down keeps it), or from receipt when the button's clock looks unset or ahead."""
    start = inc.pressed_at if 0 < now - inc.pressed_at < 86400 else inc.received_at
    return max(0, int(now - start))


class Gateway:
    def __init__(self, venue: Venue, store: Store, broker_url: str, clock: Clock | None = None,
                 counters: Counters | None = None) -> None:
        self.venue = venue
        self.store = store
        self.clock = clock or SystemClock()
        self.counters = counters or Counters()
        self.windows = {d: rbproto.ReplayWindow(*s) for d, s in store.load_replay().items()}
        self.device_state: dict[str, str] = store.device_states()
        self.duty: dict[str, bool] = store.duty_toggles()
        self.epoch = store.next_gateway_epoch(self.clock.now())
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.io = MqttIO(broker_url, venue.site, f"rb-gateway-{venue.site}", self.handle)
        self._handlers: dict[str, Callable[[rbproto.Message], None]] = {
            "press": self.on_press,
            "cancel": self.on_cancel,
            "heartbeat": self.on_heartbeat,
            "duty": self.on_duty,
            "ack": self.on_ack,
            "decline": self.on_decline,
            "resolve": self.on_resolve,
        }

    def start(self) -> Gateway:
        self.io.start()
        log.info("gateway for %s up (command epoch %d)", self.venue.site, self.epoch)
        return self

    def stop(self) -> None:
        self.io.stop()

    # ---- inbound ---------------------------------------------------------------------------

    def _drop(self, reason: str, topic: str, detail: str = "") -> None:
        self.counters.inc(f"dropped.{reason}")
        log.warning("DROP reason=%s topic=%s %s", reason, topic[:120], detail[:120])

    def handle(self, topic: str, payload: bytes) -> None:
        """Entry point for every inbound message: validate, verify, dedupe, then dispatch."""
        self.counters.inc("received")
        try:
            site, device, mtype = rbproto.parse_topic(topic)
            if site != self.venue.site:
                raise rbproto.ProtocolError(rbproto.BAD_TOPIC, f"site {site}")
            if mtype == "status":
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
        window = self.windows.setdefault(device, rbproto.ReplayWindow())
        if not window.check(ep, seq):
            if mtype == "press" and self._answer_again(msg):
                return
            self._drop(rbproto.REPLAYED, topic, f"ep={ep} seq={seq}")
            return
        self._handlers[mtype](msg)
        window.accept(ep, seq)
        self.store.save_replay(device, window.ep, window.top, window.bits)
        self.counters.inc(f"handled.{mtype}")

    def _answer_again(self, msg: rbproto.Message) -> bool:
        """A press re-sent because its feedback was lost: answer again without recording it twice."""
        inc_id = self.store.press_incident(msg.device, msg.body["ep"], msg.body["seq"])
        inc = self.store.incident(inc_id) if inc_id is not None else None
        if inc is None:
            return False
        self.counters.inc("duplicates")
        self._feedback(inc.button, inc.id, FEEDBACK_FOR_STATE.get(inc.state, rbproto.DELIVERED))
        return True

    def on_status(self, topic: str, payload: bytes) -> None:
        _site, device, state, fw, ep = rbproto.decode_status(topic, payload)
        if device == "gateway":
            return
        if device not in self.venue.devices:
            raise rbproto.ProtocolError(rbproto.UNKNOWN_DEVICE, device)
        self.device_state[device] = state
        self.store.device_status(device, state, fw, ep, self.clock.now())
        log.info("DEVICE %s %s fw=%s ep=%d", device, state, fw, ep)
        if state == rbproto.ONLINE:
            self._send_config(device)

    def on_heartbeat(self, msg: rbproto.Message) -> None:
        b = msg.body
        self.device_state[msg.device] = rbproto.ONLINE
        self.store.device_heartbeat(msg.device, self.clock.now(), b["bat"], b["rssi"], b["fw"], b["q"], b["up"],
                                    b["cv"])
        if b["cv"] != self._config_for(msg.device)["cv"]:
            self._send_config(msg.device)

    def on_duty(self, msg: rbproto.Message) -> None:
        on = msg.body["on"] != 0
        self.duty[msg.device] = on
        self.store.device_duty(msg.device, on, self.clock.now())
        staff = self.venue.staff_by_pager.get(msg.device)
        log.info("DUTY %s %s (%s)", staff.id if staff else msg.device, "on" if on else "off", msg.device)

    def _config_for(self, device: str) -> dict[str, int | str]:
        return self.venue.device_settings.config(self.venue.devices[device].role)

    def _send_config(self, device: str) -> None:
        """The venue's settings for the device: its gesture map or recovery actions, intervals."""
        self._send(device, "config", self._config_for(device))

    def on_press(self, msg: rbproto.Message) -> None:
        table = self.venue.table_by_button.get(msg.device)
        if table is None:
            self._drop("unassigned_button", msg.device, "button is on no table")
            return
        now = self.clock.now()
        press = (msg.body["ep"], msg.body["seq"])
        kind = msg.body["kind"]
        active = self.store.active_incident(table.id)
        if active is not None:
            self.store.join_incident(active.id, msg.device, kind, now, press)
            log.info("JOIN inc=%d %s %s (press %d)", active.id, table.id, kind, active.presses + 1)
            self._feedback(msg.device, active.id, FEEDBACK_FOR_STATE[active.state])
            return
        inc_id = self.store.open_incident(self.venue.site, table.id, table.zone, msg.device, kind,
                                          float(msg.body["ts"]), now, press)
        log.info("INCIDENT %d opened %s %s", inc_id, table.id, kind)
        self._feedback(msg.device, inc_id, rbproto.DELIVERED)
        self._page(inc_id, level=0)

    def _page(self, inc_id: int, level: int) -> None:
        """Page the best candidate not yet paged for this incident, or raise the alarm."""
        inc = self._incident(inc_id)
        table = self.venue.tables[inc.table_id]
        now = self.clock.now()
        found = router.candidates(self.venue, table, self.device_state, exclude=self.store.paged_staff(inc_id),
                                  duty=self.duty)
        if not found:
            self.store.move(inc_id, incidents.UNREACHED, now, "gateway", "no responder available")
            log.error("ALARM inc=%d %s: nobody can be paged", inc_id, table.id)
            self.counters.inc("unreached")
            self._feedback(inc.button, inc_id, rbproto.ERROR)
            return
        staff = found[0]
        self._send(staff.pager, "alert", {"inc": inc_id, "table": table.id, "kind": inc.kind, "lvl": level,
                                          "age": wait_s(inc, now)})
        self.store.add_page(inc_id, staff.id, staff.pager, level, now)
        first = {"paged_at": now} if inc.paged_at is None else {}
        self.store.move(inc_id, incidents.PAGED, now, "gateway", f"paged {staff.id}", level=level, **first)
        log.info("PAGE inc=%d %s -> %s (%s) lvl=%d", inc_id, table.id, staff.id, staff.pager, level)

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
        staff = self.venue.staff_by_pager[msg.device]
        if inc.state != incidents.PAGED:
            self._send(msg.device, "alert_cancel", {"inc": inc.id, "why": f"already {inc.state}"})
            return
        now = self.clock.now()
        self.store.move(inc.id, incidents.ACKNOWLEDGED, now, staff.id, "ack", acked_at=now, responder=staff.id)
        log.info("ACK inc=%d by %s", inc.id, staff.id)
        self._feedback(inc.button, inc.id, rbproto.ACKNOWLEDGED)
        for pager in self.store.close_pages(inc.id, "taken"):
            self._send(pager, "alert_cancel", {"inc": inc.id, "why": f"taken by {staff.name}"[:48]})

    def on_decline(self, msg: rbproto.Message) -> None:
        inc = self._pager_incident(msg, "declined")
        if inc is None:
            return
        log.info("DECLINE inc=%d by %s", inc.id, msg.device)
        if inc.state == incidents.PAGED:
            self._page(inc.id, level=inc.level + 1)

    def on_resolve(self, msg: rbproto.Message) -> None:
        inc = self.store.incident(msg.body["inc"])
        staff = self.venue.staff_by_pager[msg.device]
        if inc is None or inc.state != incidents.ACKNOWLEDGED or inc.responder != staff.id:
            self._drop("not_responder", msg.device, f"resolve for incident {msg.body['inc']}")
            return
        now = self.clock.now()
        self.store.move(inc.id, incidents.RESOLVED, now, staff.id, "resolve", resolved_at=now,
                        recovery_action=msg.body["action"])
        log.info("RESOLVE inc=%d by %s: %s", inc.id, staff.id, msg.body["action"])
        self._feedback(inc.button, inc.id, rbproto.RESOLVED)

    def on_cancel(self, msg: rbproto.Message) -> None:
        table = self.venue.table_by_button.get(msg.device)
        inc = self.store.active_incident(table.id) if table else None
        if inc is None:
            log.info("CANCEL from %s with nothing open", msg.device)
            return
        self.store.move(inc.id, incidents.CANCELLED, self.clock.now(), msg.device, "customer cancelled")
        log.info("CANCEL inc=%d by the customer", inc.id)
        pagers = self.store.close_pages(inc.id, "cancelled")
        if inc.responder:
            pagers.append(self.venue.staff[inc.responder].pager)
        for pager in pagers:
            self._send(pager, "alert_cancel", {"inc": inc.id, "why": "customer cancelled"})
        self._feedback(inc.button, inc.id, rbproto.CANCELLED)

    # ---- outbound --------------------------------------------------------------------------

    def _send(self, device: str, mtype: str, fields: dict[str, int | str]) -> None:
        """Sign a command with the device's key and publish it (QoS 1)."""
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        body: dict[str, int | str] = {"ep": self.epoch, "seq": seq, "ts": int(self.clock.now()), **fields}
        topic, payload = rbproto.encode(self.venue.devices[device].key, self.venue.site, device, mtype, body)
        self.io.publish(topic, payload)
        self.counters.inc(f"sent.{mtype}")

    def _feedback(self, button: str, inc_id: int, state: str) -> None:
        self._send(button, "feedback", {"inc": inc_id, "state": state})
