"""Prometheus metrics of one gateway, in a registry of its own (never the library's global one, so
two gateways in one process, or the tests, never share a number).

What the gateway already counts is read at scrape time: the Counters snapshot, the devices heard
online or offline, the active incidents by state. Response times are histograms fed by a store
watcher on the transitions that end each step (press -> page, page -> ack, ack -> resolve), with
the same durations as the incident's own record (Incident.durations). Serve
`generate_latest(metrics.registry)` (or `metrics.exposition()`) as text/plain at /metrics."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

import rbproto

from . import incidents
from .intake import FairIntake
from .metrics import Counters
from .store import Incident, IncidentEvent, Store
from .supervision import Heard
from .venue import ROLES, Venue

log = logging.getLogger("redbutton.prometheus")

NAMESPACE = "redbutton"
# From milliseconds (press -> page on the venue's network) to an hour (ack -> resolve of a bad night).
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

# Counters whose name is "<prefix>.<value>": one family, the value as a label.
LABELLED: dict[str, tuple[str, str, str]] = {
    "dropped": ("dropped_messages", "reason", "Messages refused and dropped, by reason (the DROP lines of the log)."),
    "handled": ("messages_handled", "type", "Device messages accepted and handled, by type (press, ack, ...)."),
    "sent": ("commands_sent", "type", "Commands published to devices, by type."),
    "trouble": ("device_troubles", "kind", "Device trouble incidents raised, by kind."),
    "followup": ("followups", "result", "Follow-ups of resolved incidents, by result."),
}
# Plain counters -> (metric name, help); shown as 0 before they first count, so rate() works from
# the start. Any other counter is exported as redbutton_<its name>_total.
PLAIN: dict[str, tuple[str, str]] = {
    "received": ("messages_received", "MQTT messages received on the site's event and status topics."),
    "pages": ("pages", "Pages sent: an alert to a pager for an incident."),
    "acks": ("acks", "Incidents acknowledged."),
    "escalations": ("escalations", "Ack timeouts that paged the next level."),
    "declines": ("declines", "Pages declined on a pager."),
    "reminders": ("reminders", "Responders reminded of an incident acknowledged but not resolved."),
    "unreached": ("unreached", "Incidents nobody could be paged for (the alarm)."),
    "joined": ("presses_joined", "Repeat presses that joined an open incident."),
    "held": ("presses_held", "Presses held for a manager (a button pressed too often)."),
    "duplicates": ("presses_duplicate", "Presses delivered again and answered without a second incident."),
    "zone_alerts": ("zone_alerts", "Zones with too many complaints, alerted to a manager."),
    "intake.slowed": ("devices_slowed", "Times a device sent faster than any real one and its messages waited "
                      "their turn (a flood)."),
    "intake.queued": ("messages_queued", "Messages of flooding devices that waited their turn."),
    "clock.jumps": ("clock_jumps", "Jumps of the wall clock; timers and silence windows moved with them."),
}
# Which transition ends which step: (the incident's column it sets, the step in Incident.durations).
STEPS: dict[str, tuple[str, str]] = {
    incidents.PAGED: ("paged_at", "press_to_page"),
    incidents.ACKNOWLEDGED: ("acked_at", "page_to_ack"),
    incidents.RESOLVED: ("resolved_at", "ack_to_resolve"),
}
DEVICE_STATES = (rbproto.ONLINE, rbproto.OFFLINE, "unknown")


class Source(Protocol):
    """What the metrics read of a gateway (gateway.service.Gateway is one)."""

    @property
    def counters(self) -> Counters: ...
    @property
    def heard(self) -> Mapping[str, Heard]: ...
    @property
    def venue(self) -> Venue: ...
    @property
    def store(self) -> Store: ...
    @property
    def store_error(self) -> str | None: ...
    @property
    def held(self) -> Mapping[tuple[str, bytes], float]: ...

    @property
    def intake(self) -> FairIntake: ...


def metric_name(counter: str) -> str:
    """A counter's name as a Prometheus metric name: redbutton_<name, . and - as _>."""
    return f"{NAMESPACE}_" + re.sub(r"[^a-zA-Z0-9_]", "_", counter)


class _GatewayCollector:
    """Reads the gateway's state at each scrape; a part that cannot be read is left out and logged,
    never an error for the whole scrape."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        active = self._active()  # first: a failure to read it is counted in this very scrape
        yield from self._counters(self.source.counters.snapshot())
        yield self._devices()
        yield from self._store()
        if active is not None:
            yield active

    def _counters(self, snapshot: Mapping[str, int]) -> Iterable[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for prefix, (name, label, doc) in LABELLED.items():
            families[prefix] = CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=[label])
        for counter, (name, doc) in PLAIN.items():
            families[counter] = CounterMetricFamily(f"{NAMESPACE}_{name}", doc, value=snapshot.get(counter, 0))
        taken = {f.name for f in families.values()}
        for counter, value in sorted(snapshot.items()):
            prefix, dot, rest = counter.partition(".")
            if dot and prefix in LABELLED:
                families[prefix].add_metric([rest], value)
            elif counter not in PLAIN:
                name = metric_name(counter)
                if name in taken:  # two counters that read the same once sanitised: keep the first
                    continue
                taken.add(name)
                families[counter] = CounterMetricFamily(name, f"The gateway's {counter} counter.", value=value)
        return families.values()

    def _devices(self) -> Metric:
        venue, heard = self.source.venue, self.source.heard
        count = {(role, state): 0 for role in ROLES for state in DEVICE_STATES}
        for dev in venue.devices.values():
            h = heard.get(dev.id)
            state = h.state if h is not None and h.state in (rbproto.ONLINE, rbproto.OFFLINE) else "unknown"
            count[(dev.role, state or "unknown")] += 1
        g = GaugeMetricFamily(f"{NAMESPACE}_devices", "Devices of the venue by role and by what their status "
                              "last said (unknown: not heard since the gateway started).", labels=["role", "state"])
        for (role, state), n in count.items():
            g.add_metric([role, state], n)
        return g

    def _store(self) -> Iterable[Metric]:
        """The alarm for a store that refuses writes (a full disk): alert on store_ok == 0."""
        yield GaugeMetricFamily(f"{NAMESPACE}_store_ok", "1 while the database takes writes, 0 while it "
                                "refuses them (device messages are held and retried).",
                                value=int(self.source.store_error is None))
        yield GaugeMetricFamily(f"{NAMESPACE}_messages_held", "Device messages held until the database takes "
                                "writes again.", value=len(self.source.held))
        yield GaugeMetricFamily(f"{NAMESPACE}_messages_waiting", "Messages of flooding devices waiting their "
                                "turn.", value=self.source.intake.queued())

    def _active(self) -> Metric | None:
        try:
            found = self.source.store.active_incidents()
        except Exception as e:
            self.source.counters.inc("prometheus.failed")
            log.error("metrics: active incidents not read: %s", e)
            return None
        count = dict.fromkeys(sorted(incidents.ACTIVE), 0)
        for inc in found:
            count[inc.state] = count.get(inc.state, 0) + 1
        g = GaugeMetricFamily(f"{NAMESPACE}_incidents_active", "Incidents still wanting someone, by state.",
                              labels=["state"])
        for state, n in count.items():
            g.add_metric([state], n)
        return g


class GatewayMetrics:
    """The registry and the watcher that feeds its histograms.

    Wiring: `metrics = GatewayMetrics(gateway)`, `gateway.store.watchers.append(metrics)`; the web
    route serves `metrics.exposition()`."""

    def __init__(self, source: Source, lookup: Callable[[int], Incident | None] | None = None,
                 process: bool = True) -> None:
        self.source = source
        self.lookup = lookup or source.store.incident
        self.registry = CollectorRegistry()
        self.registry.register(_GatewayCollector(source))
        if process:  # the gateway's own memory, CPU and open files, where the platform has /proc
            ProcessCollector(registry=self.registry)
        self.steps = {
            step: Histogram(f"{NAMESPACE}_{step}_seconds", doc, ["origin"], buckets=BUCKETS_S, registry=self.registry)
            for step, doc in (
                ("press_to_page", "From receiving a press (or raising an alert) to its first page."),
                ("page_to_ack", "From the first page to the acknowledgement."),
                ("ack_to_resolve", "From the acknowledgement to the resolve."),
            )}

    def __call__(self, event: IncidentEvent) -> None:
        step = STEPS.get(event.new)
        if step is None or event.old == event.new:
            return
        column, name = step
        try:
            inc = self.lookup(event.incident)
            end = getattr(inc, column, None) if inc is not None else None
            # Only the transition that set the step's time counts: not a page after an unreached
            # spell that follows an earlier page, nor a second ack after a reassignment.
            if inc is None or end is None or abs(end - event.at) > 1e-6:
                return
            seconds = inc.durations().get(name)
            if seconds is not None:
                self.steps[name].labels(origin=inc.origin).observe(max(0.0, seconds))
        except Exception as e:
            self.source.counters.inc("prometheus.failed")
            log.error("metrics: inc=%d %s not measured: %s", event.incident, event.new, e,
                      extra={"inc": event.incident})

    def exposition(self) -> bytes:
        """The Prometheus text format (content type prometheus_client.CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)


def registry_for(gateway: Source) -> tuple[CollectorRegistry, Callable[[IncidentEvent], None]]:
    """(the gateway's registry, the watcher to add to its store's watchers)."""
    metrics = GatewayMetrics(gateway)
    return metrics.registry, metrics
