"""The floor: plain QoS 1 round trips on a private mosquitto, with nothing else running.

- one hop: publisher -> broker -> subscriber, with a press's and an alert's payload size;
- two hops: publisher -> broker -> relay process (bench.relay, the gateway's MQTT client doing no
  work) -> broker -> subscriber: the shape of press -> gateway -> pager without the gateway's work.

The probes publish one message every 5 ms (one in flight, as presses are at idle) from the load
generator's own selector threads, so the clients are driven exactly as the light devices are."""

from __future__ import annotations

import time
from typing import Any

from simulator.load import Worker

from .rig import Context, RelayProcess, RoundTrip, Section, broker, message_sizes
from .stats import summarize_ms

INTERVAL_S = 0.005
CURVES = {"one_hop_press": "quiet broker: one hop, press size", "one_hop_alert": "quiet broker: one hop, alert size",
          "two_hop_press": "quiet broker: two hops via relay"}


def run(ctx: Context) -> Section:
    n = 100 if ctx.quick else 1000
    sizes = message_sizes()
    figures: dict[str, Any] = {"payload_bytes": sizes, "interval_ms": INTERVAL_S * 1000, "samples_each": n}
    curves: dict[str, list[float]] = {}
    with broker(ctx, "baseline") as b:
        relay = RelayProcess(ctx, b.url, "bench/relay/in", "bench/relay/out")
        workers = [Worker("load-bench-pub", 1), Worker("load-bench-sub", 2)]
        for w in workers:
            w.start()
        try:
            for name, send, recv, size in (("one_hop_press", "bench/one/press", "bench/one/press", sizes["press"]),
                                           ("one_hop_alert", "bench/one/alert", "bench/one/alert", sizes["alert"]),
                                           ("two_hop_press", "bench/relay/in", "bench/relay/out", sizes["press"])):
                probe = RoundTrip(b.url, send, recv, workers[0], workers[1], size, name)
                probe.connect()
                probe.warm_up()
                probe.start(INTERVAL_S, limit=n)
                if not probe.done.wait(n * INTERVAL_S + 30):
                    ctx.say(f"  {name}: only {len(probe.samples)} of {n} came back")
                probe.stop()
                time.sleep(0.05)  # nothing of this probe is in flight when the next one starts
                samples = [rtt * 1000 for _sent, rtt in probe.samples]
                s = summarize_ms(samples)
                figures[name] = {**s.as_dict(), "lost": probe.sent - len(samples)}
                curves[CURVES[name]] = samples
                ctx.say(f"  {name:<14} {size:>4} B  p50 {s.p50_ms} ms  p99 {s.p99_ms} ms  max {s.max_ms} ms")
        finally:
            for w in workers:
                w.call(w.disconnect_all)
            for w in workers:
                w.stop()
            relay.stop()
    return Section(figures, curves)
