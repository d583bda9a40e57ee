"""A gateway on a manual clock for rule tests: real venue model, real SQLite, real signing; devices
talk to it through its own entry point (handle) and its commands are collected as it signs them,
so every rule is checked without a broker and without sleeping. The same rules run over a real
mosquitto in the integration tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import rbproto
from gateway.clock import ManualClock
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, parse_venue

FLO_KEY = "5" * 64


def rules_doc(base: dict[str, Any]) -> dict[str, Any]:
    """The demo venue with a floor manager, and an escalation ladder server -> floor_manager -> manager."""
    doc = copy.deepcopy(base)
    doc["devices"].append({"id": "pgr-flo", "role": "pager", "key": FLO_KEY})
    doc["staff"].append({"id": "flo", "name": "Flo", "pager": "pgr-flo", "zones": ["dining", "terrace"],
                         "role": "floor_manager"})
    doc["escalation"] = {"ack_timeout_s": 30, "levels": ["server", "floor_manager", "manager"], "repeat_s": 60,
                         "resolve_timeout_s": 600, "kinds": {"allergy": {"ack_timeout_s": 10}}}
    doc["noise"] = {"rate_limit_presses": 3, "rate_limit_window_s": 120, "aggregate_complaints": 3,
                    "aggregate_window_s": 600}
    doc["recovery"] = {"followup_s": 900, "root_causes": ["kitchen_delay", "wrong_order", "other"]}
    return doc


class Commands:
    """The gateway's output port in these tests: every command it publishes, decoded and verified."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.sent: list[rbproto.Message] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.sent.append(rbproto.decode(topic, payload, self.venue.key_for))

    def flush(self) -> None:
        pass  # every command is in `sent` the moment it is published


class Rig:
    def __init__(self, doc: dict[str, Any], db: Path, clock: ManualClock | None = None) -> None:
        self.venue = parse_venue(doc)
        self.clock = clock or ManualClock()
        self.store = Store(db)
        self.out = Commands(self.venue)
        self.gw = Gateway(self.venue, self.store, "mqtt://unused", clock=self.clock, io=self.out)
        self.seq: dict[str, int] = {}
        self.ep = 1

    def restart(self) -> Rig:
        """A new gateway process on the same database (what `kill -9` and a restart leave)."""
        again = Rig.__new__(Rig)
        again.venue, again.clock, again.store, again.seq, again.ep = self.venue, self.clock, self.store, self.seq, 2
        again.out = Commands(self.venue)
        again.gw = Gateway(self.venue, self.store, "mqtt://unused", clock=self.clock, io=again.out)
        return again

    def send(self, device: str, mtype: str, **fields: int | str) -> None:
        self.seq[device] = self.seq.get(device, 0) + 1
        body: dict[str, int | str] = {"ep": self.ep, "seq": self.seq[device], "ts": int(self.clock.now())}
        body.update(fields)
        topic, payload = rbproto.encode(self.venue.devices[device].key, self.venue.site, device, mtype, body)
        self.gw.handle(topic, payload)

    def status(self, device: str, state: str, fw: str = "0.1.0") -> None:
        topic = rbproto.status_topic(self.venue.site, device)
        self.gw.handle(topic, rbproto.encode_status(state, fw, 1))

    def online(self, *devices: str, fw: str = "0.1.0") -> None:
        """Their retained online status; `fw` the firmware version they report (0.1.0 reads no
        press echo in feedback, 0.2.0 on does)."""
        for d in devices:
            self.status(d, rbproto.ONLINE, fw)

    def press(self, table: str, kind: str = "complaint") -> None:
        self.send(self.venue.tables[table].button, "press", kind=kind, bat=3900)

    def heartbeat(self, device: str, bat: int = 3900) -> None:
        self.send(device, "heartbeat", bat=bat, rssi=-60, fw="0.1.0", up=1, q=0, cv=0)

    def advance(self, seconds: float) -> None:
        """Time passes; the escalation engine runs as its thread would."""
        self.clock.advance(seconds)
        self.gw.tick()

    def commands(self, mtype: str, device: str | None = None) -> list[rbproto.Message]:
        return [m for m in self.out.sent if m.mtype == mtype and (device is None or m.device == device)]

    def alerts(self) -> list[tuple[str, int, int]]:
        """(pager, incident, lvl) of every alert so far, in order."""
        return [(m.device, m.body["inc"], m.body["lvl"]) for m in self.commands("alert")]

    def paged(self) -> list[str]:
        return [pager for pager, _inc, _lvl in self.alerts()]

    def feedback(self, button: str) -> list[str]:
        return [str(m.body["state"]) for m in self.commands("feedback", button)]
