"""Broker, gateway and simulated devices started together in this process, and stopped together:
what `redbutton demo` and `redbutton live` run when no broker is given. The gateway follows its
broker's log as `redbutton gateway --broker-log` does, so what the broker refuses on its own shows
in the gateway's log and on /metrics here too."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gateway.broker import Mosquitto
from gateway.integrations import Integrations
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue
from gateway.web.server import WebServer, dashboard

from .venue_sim import SimulatedVenue

DASHBOARD_PORT = 8080  # the demo's dashboard, when free; any free port otherwise


def start_dashboard(gw: Gateway, out: Callable[[str], None], port: int = DASHBOARD_PORT) -> WebServer:
    """The gateway's dashboard on loopback, with a manager login made up for this run (printed)."""
    try:
        server = dashboard(gw, "127.0.0.1", port)
    except OSError:
        server = dashboard(gw, "127.0.0.1", 0)
    manager = next((s for s in gw.venue.staff.values() if s.role in gw.venue.rules.manager_roles), None)
    password = secrets.token_urlsafe(9)
    name = manager.id if manager else "manager"
    server.web.accounts.add(name, password, "manager", manager.id if manager else None)
    server.start()
    out(f"dashboard {server.url}  login: {name} / {password}")
    return server


@contextlib.contextmanager
def simulated_venue(venue: Venue, broker_url: str | None = None, db: str | None = None,
                    out: Callable[[str], None] = print, echo: bool = False,
                    web: bool = False) -> Iterator[tuple[SimulatedVenue, Store | None, str]]:
    """The venue's devices, running; with no broker given, also mosquitto and a gateway (SQLite in a
    temporary folder unless `db` names one), and with `web` its dashboard. -> (devices, the store
    to read incidents from, where). Everything started is stopped on the way out, devices first
    and the broker last."""
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
            gw = Gateway(venue, store, broker.url)
            integrations = Integrations(gw)
            # Started first, so a refusal while the gateway connects counts too. No ACL to check
            # subscriptions against: this broker lets anonymous clients read everything.
            stack.callback(broker.follow(gw.counters).stop)
            gw.start()
            stack.callback(gw.stop)
            stack.callback(integrations.start().stop)
            kept = f"SQLite {store.path}" if store.dialect == "sqlite" else f"PostgreSQL {store.url}"
            out(f"gateway  venue {venue.site!r} ({venue.name}), {kept}")
            if web:
                stack.callback(start_dashboard(gw, out).stop)
        elif db is not None:
            store = Store(db)
            stack.callback(store.close)
        sim = SimulatedVenue(venue, broker_url, work / "devices", echo=echo)
        stack.callback(sim.stop)
        sim.start()
        out(f"devices  {len(sim.buttons)} buttons, {len(sim.pagers)} pagers running the firmware")
        yield sim, store, f"broker {broker_url}"
