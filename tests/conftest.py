"""Shared fixtures: a real mosquitto on a free loopback port, a venue per test, gateway, devices."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.broker import Mosquitto, free_port
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


class PostgresCluster:
    """A private PostgreSQL server for the test session: initdb into a temporary folder, pg_ctl start
    on a free loopback port with trust authentication, one database, and a fresh schema per test (its
    URL sets the search_path: CREATE DATABASE costs a quarter of a second here, a schema nothing).
    PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` user."""

    def __init__(self) -> None:
        found = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                       key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
        if not found:
            pytest.fail("the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/pg_ctl): "
                        "run `make setup`, it installs Debian's postgresql package")
        self.bin = Path(found[-1]).parent
        self.as_root = os.geteuid() == 0
        if self.as_root and not shutil.which("runuser"):
            pytest.fail("running as root needs runuser (util-linux) to start PostgreSQL as `postgres`")
        # Not under pytest's tmp_path: its parent is private to root, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="rb-postgres-"))
        if self.as_root:
            try:
                shutil.chown(self.dir, "postgres", "postgres")
            except LookupError:
                pytest.fail("there is no `postgres` system user: run `make setup`, it installs postgresql")
        self.data = self.dir / "data"
        self.port = 0
        self._admin: psycopg.Connection[Any] | None = None
        self._names = itertools.count(1)

    def run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, timeout=60)
        if done.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}{tail}")

    def start(self) -> PostgresCluster:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                 "--no-sync")
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = free_port()
            # fsync off: a test cluster that is thrown away needs no durability, only speed.
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options,
                         "-w", "-t", "30", "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE redbutton")
        self._connect_admin()
        return self

    def _connect_admin(self) -> None:
        self._admin = psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/redbutton", autocommit=True)
        self._admin.execute("SET lock_timeout = '10s'")  # a drop blocked by a test's open transaction fails

    def restart(self) -> None:
        """What a failover or a package upgrade does to every open connection."""
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-m", "fast", "-w", "restart")
        assert self._admin is not None
        self._admin.close()
        self._connect_admin()

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_schema(self) -> str:
        """A new empty schema; -> a URL whose connections see only it."""
        assert self._admin is not None
        name = f"t{next(self._names)}"
        self._admin.execute(f"CREATE SCHEMA {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/redbutton?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        assert self._admin is not None
        self._admin.execute(f"DROP SCHEMA {url.rsplit('%3D', 1)[1]} CASCADE")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """Started on first use only, so a run without PostgreSQL tests never starts it."""
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> Iterator[str]:
    """A store URL on the session's PostgreSQL cluster, in a schema of the test's own."""
    url = postgres.create_schema()
    yield url
    postgres.drop_schema(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL for each backend: a test taking it runs once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.db'}"
    return str(request.getfixturevalue("pg_url"))


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
