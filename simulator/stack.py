"""Broker, gateway and simulated devices started together in this process, and stopped together:
what `redbutton demo` and `redbutton live` run when no broker is given."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue

from .venue_sim import SimulatedVenue


@contextlib.contextmanager
def simulated_venue(venue: Venue, broker_url: str | None = None, db: str | None = None,
                    out: Callable[[str], None] = print,
                    echo: bool = False) -> Iterator[tuple[SimulatedVenue, Store | None, str]]:
    """The venue's devices, running; with no broker given, also mosquitto and a gateway (SQLite in a
    temporary folder unless `db` names one). -> (devices, the store to read incidents from, where).
    Everything started is stopped on the way out, devices first and the broker last."""
    with tempfile.TemporaryDirectory(prefix="rb-venue-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        store: Store | None = None
        if broker_url is None:
            broker = Mosquitto(work / "broker")
            stack.callback(broker.stop)
            broker.start()
            broker_url = broker.url
            out(f"broker   mosquitto on {broker.url}")
            store = Store(db or work / "venue.db")
            stack.callback(store.close)
            gw = Gateway(venue, store, broker.url).start()
            stack.callback(gw.stop)
            kept = f"SQLite {store.path}" if store.dialect == "sqlite" else f"PostgreSQL {store.url}"
            out(f"gateway  venue {venue.site!r} ({venue.name}), {kept}")
        elif db is not None:
            store = Store(db)
            stack.callback(store.close)
        sim = SimulatedVenue(venue, broker_url, work / "devices", echo=echo)
        stack.callback(sim.stop)
        sim.start()
        out(f"devices  {len(sim.buttons)} buttons, {len(sim.pagers)} pagers running the firmware")
        yield sim, store, f"broker {broker_url}"
