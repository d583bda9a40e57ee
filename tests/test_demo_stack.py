"""The stack `redbutton demo` and `redbutton live` run: its gateway follows its broker's log, as
`redbutton gateway --broker-log` does, so the demo's /metrics shows what the broker refused.

The demo's mosquitto lets anonymous clients in and has no ACL or TLS listener, so it refuses
nothing by itself. The test therefore writes a refused login into that broker's own log file, in
the words mosquitto 2.0 uses (tests/test_access.py has the real broker refuse real logins), and
reads it back from the demo's real /metrics."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.venue import Venue
from simulator.stack import simulated_venue
from waiting import wait_until

REFUSED_LOGIN = ("1767225600: New connection from 127.0.0.1:38949 on port 1883.\n"
                 "1767225600: Client <unknown> disconnected, not authorised.\n")


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_demo_counts_a_login_its_broker_refused_on_metrics(venue: Venue) -> None:
    said: list[str] = []
    with simulated_venue(venue, out=said.append, web=True) as (_sim, store, _where):
        assert store is not None and store.path is not None
        url = next(m.group(1) for line in said if (m := re.match(r"dashboard (http://\S+)", line)))
        assert metrics(url).get("redbutton_broker_refused_connect_total", 0) == 0
        log_file = Path(store.path).parent / "broker" / "mosquitto.log"  # the demo broker's log_dest
        with log_file.open("a") as f:
            f.write(REFUSED_LOGIN)
        wait_until(lambda: metrics(url).get("redbutton_broker_refused_connect_total") == 1,
                   what="the refused login on the demo's /metrics")
