"""Escalation accuracy with 10,000 open incidents: how late each ack timer fires against the deadline
stored on its incident's row.

10,000 paged incidents wait, each with its ack timer in incidents.deadline (bench/incidents.py).
1,000 of them are re-armed (Store.update, as Gateway._set_deadline does) to fall due one every
20 ms over 20 s, 50 escalations a second, a heavy rush; the other 9,000 stay an hour out, in the
same heap and the same tables. Then a gateway starts on that database as after a restart: the real
Scheduler on the system clock, the real MqttIO to a private mosquitto, the venue's 10,100 devices
supervised on every tick, its log at INFO to a file as in production. It restores the timers and
escalates each incident to its manager as the deadline comes. Lateness is the wall-clock time the
incident's first alert leaves the gateway (MqttIO.publish, stamped in the same process) minus the
deadline stored on its row. The gateway runs in this process so the stamp and the deadline share
one clock; nothing else runs here meanwhile."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt

from gateway import escalation
from gateway.logs import TextFormatter
from gateway.mqtt_io import MqttIO
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, parse_venue
from simulator.load import synthetic_doc

from . import profiling
from .incidents import build_open_incidents
from .rig import Context, Section, broker
from .stats import summarize_ms

LEAD_S = 1.5  # from re-arming to the first deadline: the gateway's construction and start fit in it


class StampingIO(MqttIO):
    """The gateway's own MQTT client, noting when each incident's first alert left."""

    def __init__(self, broker_url: str, venue: Venue, gateway: list[Gateway]) -> None:
        super().__init__(broker_url, venue.site, f"rb-gateway-{venue.site}", lambda t, p: gateway[0].handle(t, p))
        self.first_alert: dict[int, float] = {}

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        info = super().publish(topic, payload, retain)
        if topic.endswith("/cmd/alert"):
            self.first_alert.setdefault(int(json.loads(payload)["inc"]), time.time())
        return info


@contextmanager
def gateway_log(ctx: Context, name: str) -> Iterator[None]:
    """The gateway's log at INFO into a file while it runs in this process, as the CLI would log it:
    formatting and writing a line per page is part of what an escalation costs."""
    handler = logging.FileHandler(ctx.work / f"{name}.log")
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("redbutton")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
        handler.close()


def arm(store: Store, ids: list[int], first: float, every_s: float) -> dict[int, float]:
    """Move these incidents' ack timers to first, first + every_s, ...; -> incident -> deadline."""
    due = {}
    for i, inc in enumerate(ids):
        due[inc] = first + i * every_s
        store.update(inc, deadline=due[inc], deadline_kind=escalation.ACK)
    return due


def escalate(broker_url: str, venue: Venue, store: Store, due: dict[int, float],
             profile: profiling.Profile | None = None) -> tuple[dict[int, float], float]:
    """Start a gateway on the store, wait until every due incident was alerted again (or 30 s past the
    last deadline); -> incident -> time its first alert left, and the gateway's start in seconds."""
    holder: list[Gateway] = []
    io = StampingIO(broker_url, venue, holder)
    t0 = time.perf_counter()
    gw = Gateway(venue, store, broker_url, io=io)
    holder.append(gw)
    if profile is not None:
        prof = profile
        gw.scheduler.on_tick = lambda: prof.runcall(gw.tick)
    gw.start()
    started_s = time.perf_counter() - t0
    give_up = max(due.values()) + 30
    try:
        while not all(inc in io.first_alert for inc in due) and time.time() < give_up:
            time.sleep(0.05)
    finally:
        gw.stop()
    return dict(io.first_alert), started_s


def run(ctx: Context) -> Section:
    n, due_n, window_s = (300, 100, 1.0) if ctx.quick else (10_000, 1_000, 20.0)
    pagers = 10 if ctx.quick else 100
    venue = parse_venue(synthetic_doc(n, pagers, ctx.site("esc")), "<synthetic>")
    figures: dict[str, Any] = {"open_incidents": n, "due": due_n, "window_s": window_s,
                               "escalations_per_s_asked": round(due_n / window_s, 1)}
    with broker(ctx, "escalation") as b:
        store = Store(ctx.work / f"{venue.site}.db")
        try:
            t0 = time.perf_counter()
            ids = build_open_incidents(store, venue, n, time.time(), 3600)
            figures["build_s"] = round(time.perf_counter() - t0, 2)
            ctx.say(f"  {n} open incidents built in {figures['build_s']} s; {due_n} fall due over {window_s:g} s")
            due = arm(store, ids[:due_n], time.time() + LEAD_S, window_s / due_n)
            with gateway_log(ctx, "escalation"):
                fired, started_s = escalate(b.url, venue, store, due)
            late = [1000 * (fired[inc] - d) for inc, d in due.items() if inc in fired]
            s = summarize_ms(late)
            spread = [fired[inc] for inc in due if inc in fired]
            figures.update({
                "gateway_start_s": round(started_s, 3),
                "lateness": s.as_dict(),
                "earliest_ms": round(min(late), 3) if late else None,  # below 0: a timer fired early
                "missed": due_n - len(late),
                "escalations_per_s_done": round(len(spread) / (max(spread) - min(spread)), 1)
                if len(spread) > 1 and max(spread) > min(spread) else None,
            })
            ctx.say(f"  lateness p50 {s.p50_ms} p99 {s.p99_ms} max {s.max_ms} ms; missed {figures['missed']}")
            if ctx.profile:
                figures["profile"] = profile_run(ctx, b.url, venue, store, ids[due_n:due_n + due_n // 3],
                                                 window_s / 3)
        finally:
            store.close()
    return Section(figures, {"escalation lateness": late})


def profile_run(ctx: Context, broker_url: str, venue: Venue, store: Store, ids: list[int], window_s: float) -> str:
    """The same again for a third of the timers, the escalation thread under cProfile; the lateness
    of this run is not reported (the profiler slows it)."""
    prof = profiling.Profile()
    due = arm(store, ids, time.time() + LEAD_S, window_s / max(1, len(ids)))
    ctx.say(f"  profile: {len(ids)} more escalations over {window_s:.3g} s, the escalation thread under cProfile")
    with gateway_log(ctx, "escalation-profile"):
        fired, _started = escalate(broker_url, venue, store, due, prof)
    late = summarize_ms(1000 * (fired[inc] - d) for inc, d in due.items() if inc in fired)
    out = ctx.results / "profile-escalation.txt"
    stats = profiling.stats_of(prof)
    ticks = profiling.calls_of(stats, "gateway/service.py", "tick")
    head = [f"Gateway.tick on the escalation thread under cProfile: {len(ids)} ack timers due over {window_s:.3g} s "
            f"among {len(store.deadlines())} open incidents with timers, {len(venue.devices)} devices supervised.",
            f"Escalations: {len(fired)} of {len(due)}; ticks: {ticks}; lateness under the profiler p50 "
            f"{late.p50_ms} p99 {late.p99_ms} ms."]
    title = f"Where an escalation's time goes with {len(store.deadlines()):,} open incidents"
    profiling.write_summary(out, title, head, [profiling.part("Escalation thread: Gateway.tick", stats, len(fired),
                                                              "escalation")])
    return str(out.name)
