"""Shared fixtures: a real mosquitto on a free loopback port, a venue per test, gateway, devices."""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, parse_venue

ROOT = Path(__file__).resolve().parents[1]
DEMO_VENUE = ROOT / "examples" / "demo-venue.toml"
_sites = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("broker")) as b:
        yield b


def demo_doc() -> dict[str, Any]:
    return tomllib.loads(DEMO_VENUE.read_text())


@pytest.fixture
def venue_doc() -> dict[str, Any]:
    """The demo venue under a site id of its own, so tests sharing the broker never mix."""
    doc = demo_doc()
    doc["site"] = f"t{next(_sites)}"
    return doc


@pytest.fixture
def venue(venue_doc: dict[str, Any]) -> Venue:
    return parse_venue(venue_doc)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "incidents.db")
    yield s
    s.close()


@pytest.fixture
def gateway(venue: Venue, store: Store, broker: Mosquitto) -> Iterator[Gateway]:
    gw = Gateway(venue, store, broker.url).start()
    yield gw
    gw.stop()


@pytest.fixture
def sim(venue: Venue, broker: Mosquitto, gateway: Gateway, tmp_path: Path) -> Iterator[Any]:
    from simulator.venue_sim import SimulatedVenue

    s = SimulatedVenue(venue, broker.url, tmp_path / "devices").start()
    yield s
    s.stop()
