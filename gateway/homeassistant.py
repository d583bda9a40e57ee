"""Home Assistant MQTT discovery: the venue's buttons and pagers appear in Home Assistant by themselves.

Home Assistant reads retained JSON configs under `<prefix>/<component>/<node_id>/<object_id>/config`.
Battery, signal and availability come straight from what the devices already publish (their
heartbeat events and retained statuses, read with templates), so they cost the gateway nothing
per message. The one state the gateway adds is a table's "call open", retained under the gateway's
own part of the topic tree (docs/protocol.md, "Home Assistant"), published as a store watcher.
Publishing goes through the gateway's own MQTT client (a `publish` callable); a failure is logged
and counted (`homeassistant.failed`), never raised into the gateway."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any, Protocol

import rbproto

from . import incidents, supervision
from .metrics import Counters
from .store import JOINED, Incident, IncidentEvent
from .venue import BUTTON, Venue

log = logging.getLogger("redbutton.homeassistant")

MANUFACTURER = "Red Button"
MODELS = {"button": "Red Button table button", "pager": "Red Button wrist pager"}
ON, OFF = b"ON", b"OFF"
# A customer's call lights the table; a trouble, zone alert or "happy" feedback is not a call.
CALL_ORIGINS = frozenset({"press", "held"})
STATE_TEMPLATE = "{{ value_json.state }}"  # the status payload {"state":"online","fw":...,"ep":...}
ATTRIBUTES_TEMPLATE = ("{{ {'firmware': value_json.fw, 'uptime_s': value_json.up, 'queued': value_json.q, "
                       "'config_version': value_json.cv} | tojson }}")


class Publish(Protocol):
    def __call__(self, topic: str, payload: bytes, retain: bool = False) -> object: ...


class Lookup(Protocol):
    def __call__(self, inc_id: int, /) -> Incident | None: ...


def call_topic(site: str, table: str) -> str:
    """Retained ON/OFF: whether the table has a customer's call still wanting someone."""
    return f"{rbproto.ROOT}/{site}/gateway/table/{table}/call"


def _version() -> str:
    try:
        return metadata.version("redbutton")
    except metadata.PackageNotFoundError:
        return "unknown"


class HomeAssistant:
    """Discovery configs for every device of the venue, and the tables' "call open" state.

    Wiring: `ha = HomeAssistant(venue, io.publish, venue.integrations.discovery_prefix,
    lookup=store.incident)`, `store.watchers.append(ha)`, `ha.announce(store.active_incidents())`
    once connected; `retract()` when the venue turns discovery off."""

    def __init__(self, venue: Venue, publish: Publish, prefix: str = "homeassistant", *, lookup: Lookup,
                 counters: Counters | None = None) -> None:
        self.venue = venue
        self.publish = publish
        self.prefix = prefix.rstrip("/")
        self.lookup = lookup
        self.counters = counters or Counters()
        self.version = _version()
        self._lock = threading.Lock()
        self._calls: dict[str, bool] = {}  # table -> the call state last published

    # ---- discovery ---------------------------------------------------------------------------

    def configs(self) -> dict[str, dict[str, Any]]:
        """Config topic -> discovery config of every entity of the venue."""
        v = self.venue
        out: dict[str, dict[str, Any]] = {}
        for dev in v.devices.values():
            table = v.table_by_button.get(dev.id)
            staff = v.staff_by_pager.get(dev.id)
            if dev.role == BUTTON:
                name = f"Button {table.id}" if table else f"Button {dev.id}"
                area = v.zones[table.zone].name if table else None
            else:
                name = f"Pager {staff.name}" if staff else f"Pager {dev.id}"
                area = None
            device: dict[str, Any] = {"identifiers": [self._uid(dev.id)], "name": name, "model": MODELS[dev.role],
                                      "manufacturer": MANUFACTURER}
            if area:
                device["suggested_area"] = area
            own_status = [{"topic": rbproto.status_topic(v.site, dev.id), "value_template": STATE_TEMPLATE,
                           "payload_available": rbproto.ONLINE, "payload_not_available": rbproto.OFFLINE}]
            heartbeat = rbproto.topic(v.site, dev.id, "heartbeat")
            # A heartbeat-fed value is stale once the device has been silent as long as supervision allows.
            expire = round(supervision.window_s(v, dev.id))
            entities: list[tuple[str, str, dict[str, Any]]] = [
                ("sensor", "battery", {
                    "name": "Battery", "state_topic": heartbeat, "value_template": "{{ value_json.bat }}",
                    "device_class": "voltage", "unit_of_measurement": "mV", "state_class": "measurement",
                    "entity_category": "diagnostic", "expire_after": expire, "availability": own_status,
                    "json_attributes_topic": heartbeat, "json_attributes_template": ATTRIBUTES_TEMPLATE}),
                ("sensor", "signal", {
                    "name": "Signal", "state_topic": heartbeat, "value_template": "{{ value_json.rssi }}",
                    "device_class": "signal_strength", "unit_of_measurement": "dBm", "state_class": "measurement",
                    "entity_category": "diagnostic", "expire_after": expire, "availability": own_status}),
            ]
            if table is not None:
                entities.append(("binary_sensor", "call_open", {
                    "name": "Call open", "state_topic": call_topic(v.site, table.id), "payload_on": ON.decode(),
                    "payload_off": OFF.decode(), "device_class": "problem",
                    # the gateway publishes this state: when it is down, the state is not known
                    "availability": [{"topic": rbproto.status_topic(v.site, "gateway"),
                                      "value_template": STATE_TEMPLATE, "payload_available": rbproto.ONLINE,
                                      "payload_not_available": rbproto.OFFLINE}]}))
            if dev.role != BUTTON:
                # the pager says so at every connect and on each toggle (not retained: unknown until then)
                entities.append(("binary_sensor", "on_duty", {
                    "name": "On duty", "state_topic": rbproto.topic(v.site, dev.id, "duty"),
                    "value_template": "{{ 'ON' if value_json.on else 'OFF' }}", "payload_on": "ON",
                    "payload_off": "OFF", "availability": own_status}))
            for component, what, config in entities:
                topic = f"{self.prefix}/{component}/{v.site}_{dev.id}/{what}/config"
                out[topic] = {**config, "unique_id": f"{self._uid(dev.id)}_{what}", "device": device,
                              "origin": {"name": "Red Button gateway", "sw_version": self.version}}
        return out

    def _uid(self, device: str) -> str:
        return f"redbutton_{self.venue.site}_{device}"

    def announce(self, active: Iterable[Incident] = ()) -> None:
        """Publish every config (retained), then each table's call state from `active` (the store's
        active incidents): Home Assistant shows the venue as it is, not as it was last told."""
        for topic, config in self.configs().items():
            self._publish(topic, json.dumps(config, separators=(",", ":")).encode())
        calling = {i.table_id for i in active if i.origin in CALL_ORIGINS and i.state in incidents.ACTIVE}
        with self._lock:
            self._calls.clear()
        for table in self.venue.tables:
            self._set_call(table, table in calling)
        log.info("Home Assistant discovery announced under %s/ (%d devices)", self.prefix, len(self.venue.devices))

    def retract(self) -> None:
        """Empty retained configs remove the entities from Home Assistant; the call states go too."""
        for topic in self.configs():
            self._publish(topic, b"")
        for table in self.venue.tables:
            self._publish(call_topic(self.venue.site, table), b"")
        with self._lock:
            self._calls.clear()
        log.info("Home Assistant discovery retracted from %s/", self.prefix)

    def reload(self, venue: Venue, active: Iterable[Incident] = ()) -> None:
        """An edited venue: entities of devices and tables that left are removed, the rest announced."""
        gone_configs = set(self.configs())
        gone_tables = set(self.venue.tables)
        self.venue = venue
        for topic in gone_configs - set(self.configs()):
            self._publish(topic, b"")
        for table in gone_tables - set(venue.tables):
            self._publish(call_topic(venue.site, table), b"")
        self.announce(active)

    # ---- the watcher -------------------------------------------------------------------------

    def __call__(self, event: IncidentEvent) -> None:
        if event.old == event.new or event.new == JOINED:  # a note, a re-page, a repeat press: no change
            return
        try:
            inc = self.lookup(event.incident)
            if inc is None or inc.origin not in CALL_ORIGINS or inc.table_id not in self.venue.tables:
                return
            self._set_call(inc.table_id, inc.state in incidents.ACTIVE)
        except Exception as e:  # the dashboard of a smart home never stops a page
            self.counters.inc("homeassistant.failed")
            log.error("Home Assistant: call state for inc=%d not published: %s", event.incident, e,
                      extra={"inc": event.incident})

    def _set_call(self, table: str, on: bool) -> None:
        with self._lock:  # two threads changing one table: the last state published is the last one decided
            if self._calls.get(table) != on and self._publish(call_topic(self.venue.site, table), ON if on else OFF):
                self._calls[table] = on

    def _publish(self, topic: str, payload: bytes) -> bool:
        try:
            self.publish(topic, payload, retain=True)
            return True
        except Exception as e:
            self.counters.inc("homeassistant.failed")
            log.error("Home Assistant: publish to %s failed: %s", topic, e)
            return False

    def calls(self) -> Mapping[str, bool]:
        """Table -> the call state last published."""
        with self._lock:
            return dict(self._calls)
