"""The store on both of its databases: each test here runs on SQLite and on a real PostgreSQL (the
session's private cluster, a fresh schema per test); then every rule test of test_rules.py runs
again with its gateway storing into PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
import test_rules
from sqlalchemy import create_engine, text
from test_rules import rig  # noqa: F401  (the fixture the rule tests take)

import gateway_rig
from conftest import DEMO_VENUE, PostgresCluster
from gateway import cli, incidents
from gateway.broker import free_port
from gateway.store import MIGRATIONS, Store, StoreError, database_url

T0 = 1_780_000_000.123456  # a Unix time with microseconds: PostgreSQL's REAL would round it to 128 s


def open_press(s: Store, table: str = "T1", seq: int = 1, at: float = T0) -> int:
    return s.open_incident("demo", table, "dining", f"btn-{table.lower()}", "complaint", at - 1, at, (7, seq))


@pytest.fixture
def s(db_url: str) -> Any:
    store = Store(db_url)
    yield store
    store.close()


def test_migrations_are_recorded_and_running_them_again_changes_nothing(db_url: str) -> None:
    first = Store(db_url)
    assert first.schema_version() == len(MIGRATIONS)
    inc = open_press(first)
    first.close()
    again = Store(db_url)  # a restart: nothing to apply, nothing lost
    assert again.schema_version() == len(MIGRATIONS)
    assert again.incident(inc) is not None
    again.close()


def test_a_migration_that_fails_is_not_applied_at_all(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each migration is one transaction, DDL included: a failure leaves the previous version whole."""
    Store(db_url).close()
    broken = "ALTER TABLE devices ADD COLUMN firmware_channel TEXT; ALTER TABLE nowhere ADD COLUMN x TEXT"
    monkeypatch.setattr("gateway.store.MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        Store(db_url)
    monkeypatch.undo()
    s = Store(db_url)
    assert s.schema_version() == len(MIGRATIONS)
    s.device_seen("btn-t1", T0)
    assert "firmware_channel" not in s.devices()["btn-t1"]
    s.close()


def test_times_keep_their_microseconds_and_epochs_their_64_bits(s: Store) -> None:
    inc = open_press(s)
    i = s.incident(inc)
    assert i is not None and (i.pressed_at, i.received_at) == (T0 - 1, T0)
    s.save_replay("btn-t1", 4_102_444_800, 2**40, 2**64 - 1)  # an epoch past 2038, every window bit set
    assert s.load_replay() == {"btn-t1": (4_102_444_800, 2**40, 2**64 - 1)}
    s.save_replay("btn-t1", 5, 6, 1)  # replaced, not added
    assert s.load_replay() == {"btn-t1": (5, 6, 1)}


def test_a_repeat_press_joins_and_a_duplicate_press_changes_nothing(s: Store) -> None:
    inc = open_press(s)
    s.join_incident(inc, "btn-t1", "complaint", T0 + 1, (7, 2))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        s.join_incident(inc, "btn-t1", "complaint", T0 + 2, (7, 2))  # the same press again
    i = s.incident(inc)
    assert i is not None and (i.presses, i.urgency) == (2, 1)  # the failed join was rolled back whole
    assert s.press_incident("btn-t1", 7, 2) == inc
    assert s.press_incident("btn-t1", 7, 3) is None


def test_the_press_log_and_the_incident_list_read_back_what_was_recorded(s: Store) -> None:
    first = open_press(s, "T1", seq=1)
    s.join_incident(first, "btn-t1", "complaint", T0 + 1, (7, 2))
    second = open_press(s, "T2", seq=3, at=T0 + 2)
    assert s.press_log() == [("btn-t1", 7, 1, first), ("btn-t1", 7, 2, first), ("btn-t2", 7, 3, second)]
    assert [(i.id, i.table_id, i.presses) for i in s.incidents()] == [(first, "T1", 2), (second, "T2", 1)]


def test_opening_is_all_or_nothing(s: Store) -> None:
    first = open_press(s, "T1", seq=1)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        # the press is already recorded: no incident may be left behind
        s.open_incident("demo", "T2", "dining", "btn-t1", "complaint", T0, T0, (7, 1))
    assert s.active_incident("T2") is None
    assert s.recent_incidents("dining", 0) == 1
    assert open_press(s, "T2", seq=2) > first


def test_move_follows_the_lifecycle_and_records_every_transition(s: Store) -> None:
    inc = open_press(s)
    s.move(inc, incidents.PAGED, T0 + 1, "gateway", "paged ana", level=1, paged_at=T0 + 1)
    s.move(inc, incidents.ACKNOWLEDGED, T0 + 2, "ana", "ack", acked_at=T0 + 2, responder="ana")
    with pytest.raises(incidents.TransitionError):
        s.move(inc, incidents.OPEN, T0 + 3, "gateway", "back")
    with pytest.raises(incidents.TransitionError):
        s.move(999, incidents.PAGED, T0 + 3, "gateway", "nothing there")
    s.note(inc, T0 + 4, "mia", "recorded notes")
    i = s.incident(inc)
    assert i is not None
    assert (i.state, i.level, i.responder) == (incidents.ACKNOWLEDGED, 1, "ana")
    assert i.durations() == {"press_to_page": 1.0, "page_to_ack": 1.0}
    assert s.transitions(inc) == [
        (T0, None, "open", "btn-t1", "press complaint"),
        (T0 + 1, "open", "paged", "gateway", "paged ana"),
        (T0 + 2, "paged", "acknowledged", "ana", "ack"),
        (T0 + 4, "acknowledged", "acknowledged", "mia", "recorded notes"),
    ]
    with pytest.raises(incidents.TransitionError):
        s.note(999, T0, "mia", "no such incident")


def test_pages_are_answered_declined_and_counted_as_busy(s: Store) -> None:
    a, b = open_press(s, "T1", 1), open_press(s, "T2", 2)
    s.add_page(a, "ana", "pgr-ana", 0, T0)
    s.add_page(a, "ben", "pgr-ben", 0, T0)
    s.add_page(b, "ana", "pgr-ana", 0, T0)
    assert s.outstanding_pages(a) == [("ana", "pgr-ana", 0), ("ben", "pgr-ben", 0)]
    assert s.busy() == {"ana": 2, "ben": 1}
    assert s.close_pages(a, "declined", pager="pgr-ben") == ["pgr-ben"]
    assert s.declined_staff(a) == {"ben"}
    assert s.close_pages(a, "taken") == ["pgr-ana"]
    assert s.outstanding_pages(a) == []
    assert s.paged_staff(a) == {"ana", "ben"}
    s.move(b, incidents.PAGED, T0, "gateway", "paged ana")
    s.move(b, incidents.ACKNOWLEDGED, T0, "ana", "ack", responder="ana")
    s.close_pages(b, "acked")
    assert s.busy() == {"ana": 1}  # she holds b; a has no page outstanding
    s.move(b, incidents.RESOLVED, T0, "ana", "resolve")
    assert s.busy() == {}


def test_deadlines_follow_ups_and_the_zone_count(s: Store) -> None:
    inc = open_press(s)
    s.update(inc, deadline=T0 + 30, deadline_kind="ack")
    assert s.deadlines() == [(T0 + 30, inc)]
    s.move(inc, incidents.PAGED, T0, "gateway", "paged ana")
    s.move(inc, incidents.ACKNOWLEDGED, T0, "ana", "ack")
    s.move(inc, incidents.RESOLVED, T0, "ana", "resolve", deadline=T0 + 900, deadline_kind="followup")
    followup = s.awaiting_followup("T1")
    assert followup is not None and followup.id == inc and followup.deadline == T0 + 900
    s.update(inc, deadline=None, deadline_kind=None, compensation_cost=12.5, notes="dessert")
    assert s.deadlines() == [] and s.awaiting_followup("T1") is None
    assert s.recent_incidents("dining", T0 - 1) == 1
    assert s.recent_incidents("dining", T0 + 1) == 0
    assert s.recent_incidents("dining", 0, origin="trouble") == 0
    assert s.active_incident("T1") is None  # resolved is not active


def test_the_device_registry_and_duty_toggles(s: Store) -> None:
    s.device_status("pgr-ana", "offline", "0.1.0", 3, T0)
    s.device_heartbeat("pgr-ana", T0 + 1, 3900, -60, "0.1.1", queued=2, uptime_s=50, config_version=4)
    s.device_duty("pgr-ana", False, T0 + 2)
    s.device_trouble("pgr-ana", "low_battery", 9)
    s.device_seen("btn-t1", T0 + 3)
    ana = s.devices()["pgr-ana"]
    assert {k: ana[k] for k in ("state", "fw", "ep", "last_seen", "battery_mv", "rssi", "queued", "uptime_s",
                                "config_version", "on_duty", "duty_at", "trouble", "trouble_incident")} == {
        "state": "online", "fw": "0.1.1", "ep": 3, "last_seen": T0 + 2, "battery_mv": 3900, "rssi": -60, "queued": 2,
        "uptime_s": 50, "config_version": 4, "on_duty": 0, "duty_at": T0 + 2, "trouble": "low_battery",
        "trouble_incident": 9}
    assert s.device_states() == {"pgr-ana": "online", "btn-t1": "unknown"}
    assert s.duty_toggles() == {"pgr-ana": (False, T0 + 2)}
    s.device_trouble("pgr-ana", None, None)
    assert s.devices()["pgr-ana"]["trouble"] is None


def test_the_gateway_epoch_only_grows(s: Store) -> None:
    first = s.next_gateway_epoch(2_000_000_000)
    assert first == 2_000_000_000
    assert s.next_gateway_epoch(1_000_000_000) == first + 1  # the clock went back


def test_two_threads_writing_at_once_lose_nothing(s: Store) -> None:
    """The MQTT thread and the escalation thread share one store."""
    ids: list[int] = []

    def write(table: str, first: int) -> None:
        for seq in range(first, first + 100):
            inc = open_press(s, table, seq)
            s.add_page(inc, "ana", "pgr-ana", 0, T0)
            s.move(inc, incidents.PAGED, T0, "gateway", "paged ana")
            ids.append(inc)

    threads = [threading.Thread(target=write, args=(f"T{n}", n * 1000)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200
    assert s.busy() == {"ana": 200}


def test_a_bad_column_name_never_reaches_the_database(s: Store) -> None:
    inc = open_press(s)
    with pytest.raises(ValueError, match="not a column name"):
        s.update(inc, **{"notes = 'x'; --": 1})


def test_a_closed_store_says_so(db_url: str) -> None:
    """Not a silent reconnect by the pool behind a gateway that was stopped."""
    s = Store(db_url)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.incident(1)


# ---- URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["redbutton.db", "/var/lib/redbutton/x.db", "sqlite:///x.db", "sqlite:////abs/x.db"])
def test_a_path_or_a_sqlite_url_means_sqlite(target: str) -> None:
    assert database_url(target).drivername == "sqlite+pysqlite"


@pytest.mark.parametrize("target", ["postgresql://u:p@db.example:5433/chain", "postgresql+psycopg://u@h/chain"])
def test_a_postgresql_url_uses_psycopg_3(target: str) -> None:
    assert database_url(target).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("target", ["", "mysql://u@h/db", "postgresql+psycopg2://u@h/db", "sqlite://",
                                    "sqlite:///:memory:", "postgresql://u@h:notaport/db"])
def test_anything_else_is_refused_before_anything_is_opened(target: str) -> None:
    with pytest.raises(StoreError):
        database_url(target)


@pytest.mark.parametrize("target", ["mysql://u@h/db", "postgresql://u@h:notaport/db", "sqlite://"])
def test_gateway_db_with_a_bad_url_is_a_usage_error(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["gateway", "--venue", str(DEMO_VENUE), "--db", target])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --db:" in err and "Traceback" not in err, err


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot open the database .*127\.0\.0\.1"):
        Store(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2")


def test_gateway_with_an_unreachable_database_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    assert cli.main(["gateway", "--venue", str(DEMO_VENUE), "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redbutton: cannot open the database") and "Traceback" not in err, err


def test_a_sqlite_store_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'x.db'}")
    assert s.path == str(tmp_path / "x.db")  # readers of their own open the file
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # foreign keys are enforced
        s.add_page(42, "ana", "pgr-ana", 0, T0)
    s.close()
    with create_engine(f"sqlite:///{tmp_path / 'x.db'}").connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_postgresql_restart_loses_no_write(postgres: PostgresCluster, pg_url: str) -> None:
    """The pooled connection died with the server; the next write gets a fresh one, not an error."""
    s = Store(pg_url)
    inc = open_press(s)
    postgres.restart()
    s.add_page(inc, "ana", "pgr-ana", 0, T0)
    assert s.outstanding_pages(inc) == [("ana", "pgr-ana", 0)]
    s.close()


def test_postgresql_gets_64_bit_integers_and_double_precision_times(pg_url: str) -> None:
    Store(pg_url).close()
    with create_engine(database_url(pg_url)).connect() as conn:
        types = dict(conn.execute(text("SELECT column_name, data_type FROM information_schema.columns "
                                       "WHERE table_schema = current_schema() AND table_name = 'incidents'")).all())
    assert types["id"] == types["presses"] == "bigint"
    assert types["pressed_at"] == types["deadline"] == "double precision"


# ---- every rule test again, on PostgreSQL --------------------------------------------------------
# The functions of test_rules.py, collected here under a name of their own; their Rig opens its
# store through gateway_rig.Store, which the fixture below points at a fresh PostgreSQL schema.

globals().update({f"{name}_on_postgresql": fn for name, fn in vars(test_rules).items() if name.startswith("test_")})


@pytest.fixture(autouse=True)
def _rigs_store_in_postgresql(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.function.__module__ != test_rules.__name__:
        yield
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    urls: dict[str, str] = {}  # one schema per file a test's rigs asked for

    def open_store(db: Path | str) -> Store:
        if str(db) not in urls:
            urls[str(db)] = cluster.create_schema()
        return Store(urls[str(db)])

    monkeypatch.setattr(gateway_rig, "Store", open_store)
    yield
    assert urls, "the rule test opened no store through gateway_rig.Store: it did not run on PostgreSQL"
    for url in urls.values():
        cluster.drop_schema(url)
