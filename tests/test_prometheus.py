"""The gateway's Prometheus metrics, read back with the client library's own parser: counters from a
real gateway's work (manual clock, real SQLite), devices by role and state, active incidents, and
response-time histograms fed by the store's watcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import rbproto
from gateway.prometheus import BUCKETS_S, GatewayMetrics, registry_for
from gateway.store import Incident, IncidentEvent
from gateway_rig import Rig, rules_doc

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: GatewayMetrics) -> tuple[set[str], Samples]:
    """(family names, {(sample name, labels): value}) of one scrape."""
    text = metrics.exposition().decode()
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def rig(venue_doc: dict[str, Any], tmp_path: Path) -> Any:
    r = Rig(rules_doc(venue_doc), tmp_path / "db.sqlite")
    yield r
    r.store.close()


@pytest.fixture
def metrics(rig: Rig) -> GatewayMetrics:
    m = GatewayMetrics(rig.gw)
    rig.store.watchers.append(m)
    return m


def test_the_gateways_counters_become_prometheus_counters(rig: Rig, metrics: GatewayMetrics) -> None:
    rig.press("T12")
    rig.send(rig.paged()[0], "ack", inc=1)
    topic = rbproto.topic(rig.venue.site, "btn-t1", "press")
    rig.gw.handle(topic, b"not json")
    rig.gw.handle(topic, b"[1]")
    rig.gw.handle("rb/v1/elsewhere/x", b"{}")
    rig.gw.counters.inc("webhook.sent", 3)
    names, samples = scrape(metrics)
    assert value(samples, "redbutton_dropped_messages_total", reason="malformed") == 2
    assert value(samples, "redbutton_dropped_messages_total", reason="bad_topic") == 1
    assert value(samples, "redbutton_messages_handled_total", type="press") == 1
    assert value(samples, "redbutton_messages_handled_total", type="ack") == 1
    assert value(samples, "redbutton_messages_received_total") == 5
    assert value(samples, "redbutton_pages_total") == 1
    assert value(samples, "redbutton_commands_sent_total", type="alert") == 1
    assert value(samples, "redbutton_webhook_sent_total") == 3
    assert value(samples, "redbutton_escalations_total") == 0, "a counter is there before it first counts"
    assert value(samples, "redbutton_unreached_total") == 0
    assert {"redbutton_dropped_messages", "redbutton_pages", "redbutton_devices", "redbutton_incidents_active",
            "redbutton_press_to_page_seconds", "process_cpu_seconds"} <= names


def test_devices_by_role_and_state(rig: Rig, metrics: GatewayMetrics) -> None:
    rig.online("pgr-ana", "btn-t12")
    rig.status("pgr-mia", rbproto.OFFLINE)
    _names, samples = scrape(metrics)
    roles = [d.role for d in rig.venue.devices.values()]
    assert value(samples, "redbutton_devices", role="pager", state="online") == 1
    assert value(samples, "redbutton_devices", role="pager", state="offline") == 1
    assert value(samples, "redbutton_devices", role="pager", state="unknown") == roles.count("pager") - 2
    assert value(samples, "redbutton_devices", role="button", state="online") == 1
    assert value(samples, "redbutton_devices", role="button", state="offline") == 0
    assert value(samples, "redbutton_devices", role="button", state="unknown") == roles.count("button") - 1


def test_active_incidents_by_state(rig: Rig, metrics: GatewayMetrics) -> None:
    rig.press("T12")
    rig.press("T1")
    rig.send(rig.alerts()[0][0], "ack", inc=rig.alerts()[0][1])
    _names, samples = scrape(metrics)
    assert value(samples, "redbutton_incidents_active", state="acknowledged") == 1
    assert value(samples, "redbutton_incidents_active", state="paged") == 1
    assert value(samples, "redbutton_incidents_active", state="open") == 0
    assert value(samples, "redbutton_incidents_active", state="unreached") == 0


def test_response_times_from_press_to_resolve(rig: Rig, metrics: GatewayMetrics) -> None:
    rig.press("T12")
    first = rig.paged()[0]
    rig.advance(31)  # not acknowledged within 30 s: the next level is paged (a page in the same state)
    assert len(rig.paged()) == 2
    rig.advance(4)
    rig.send(first, "ack", inc=1)  # 35 s after the first page
    rig.advance(600 - 1)
    rig.send(first, "resolve", inc=1, action="apology")
    _names, samples = scrape(metrics)

    def histogram(step: str) -> tuple[float, float, dict[float, float]]:
        base = f"redbutton_{step}_seconds"
        buckets = {float(dict(labels)["le"]): v for (name, labels), v in samples.items()
                   if name == base + "_bucket" and dict(labels)["origin"] == "press"}
        return (value(samples, base + "_count", origin="press"), value(samples, base + "_sum", origin="press"),
                buckets)

    count, total, buckets = histogram("press_to_page")
    assert (count, total) == (1, 0.0) and buckets[BUCKETS_S[0]] == 1
    count, total, buckets = histogram("page_to_ack")
    assert (count, total) == (1, 35.0), "measured from the first page; the escalation's page is no new start"
    assert buckets[30.0] == 0 and buckets[60.0] == 1
    count, total, buckets = histogram("ack_to_resolve")
    assert (count, total) == (1, 599.0)
    assert buckets[300.0] == 0 and buckets[600.0] == 1 and buckets[float("inf")] == 1


def test_only_the_transition_that_set_a_steps_time_is_measured(rig: Rig) -> None:
    t0 = 1_767_225_600.0
    inc = Incident(1, "T12", "terrace", "btn-t12", "complaint", "paged", 0, 1, t0, t0, t0 + 2, None, None, None,
                   None)
    metrics = GatewayMetrics(rig.gw, lookup=lambda _i: inc, process=False)
    metrics(IncidentEvent(1, t0 + 2, "open", "paged", "gateway", "paged ana"))
    metrics(IncidentEvent(1, t0 + 90, "unreached", "paged", "gateway", "paged ben"))  # paged again, later
    metrics(IncidentEvent(1, t0 + 2, "paged", "paged", "gateway", "recorded notes"))  # a note
    _names, samples = scrape(metrics)
    assert value(samples, "redbutton_press_to_page_seconds_count", origin="press") == 1
    assert value(samples, "redbutton_press_to_page_seconds_sum", origin="press") == 2.0


def test_a_failing_part_is_left_out_of_the_scrape_and_counted(rig: Rig, metrics: GatewayMetrics) -> None:
    rig.store.close()  # the database is gone
    names, samples = scrape(metrics)
    assert "redbutton_incidents_active" not in names
    assert "redbutton_devices" in names
    assert value(samples, "redbutton_prometheus_failed_total") == 1
    metrics(IncidentEvent(1, 0.0, "open", "paged", "gateway", "paged ana"))  # the watcher does not raise
    assert rig.gw.counters.get("prometheus.failed") == 2


def test_a_registry_of_its_own(rig: Rig) -> None:
    registry, watcher = registry_for(rig.gw)
    rig.store.watchers.append(watcher)
    rig.press("T12")
    again, _watcher = registry_for(rig.gw)  # a second one in the same process does not collide
    assert b"redbutton_press_to_page_seconds_count" in generate_latest(registry)
    assert b"redbutton_pages_total" in generate_latest(again)
    assert b"redbutton_" not in generate_latest(REGISTRY), "the library's global registry is left alone"
