"""The store on SQLite: migrations (and adopting a file from before schema_version), the lifecycle it
enforces, and the gateway epoch. tests/test_store_backends.py runs the store on both databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy.exc

from gateway import incidents, store
from gateway.store import Store


def test_migrations_apply_once_and_record_the_version(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    Store(path).close()
    Store(path).close()  # re-opening applies nothing twice
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(len(store.MIGRATIONS),)]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_migrated_by_pragma_user_version_is_adopted(tmp_path: Path) -> None:
    """What the store before schema_version left: two migrations applied, counted in user_version."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for script in store.MIGRATIONS[:2]:
        db.executescript(";".join(store.statements(script, "sqlite")))
    db.execute("INSERT INTO devices (id, state, on_duty) VALUES ('pgr-ana', 'online', 1)")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    s = Store(path)  # applies the third migration only: the first two would fail on existing tables
    assert s.schema_version() == len(store.MIGRATIONS)
    assert s.devices()["pgr-ana"]["on_duty"] == 1
    s.device_duty("pgr-ana", False, 5.0)  # a column of the third migration
    assert s.duty_toggles() == {"pgr-ana": (False, 5.0)}


def test_an_illegal_transition_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path / "x.db")
    inc = s.open_incident("demo", "T1", "dining", "btn-t1", "complaint", 1.0, 2.0, (1, 1))
    s.move(inc, incidents.CANCELLED, 3.0, "btn-t1", "customer cancelled")
    with pytest.raises(incidents.TransitionError):
        s.move(inc, incidents.PAGED, 4.0, "gateway", "late page")
    assert s.incident(inc).state == incidents.CANCELLED  # type: ignore[union-attr]
    assert [t[2] for t in s.transitions(inc)] == ["open", "cancelled"]


def test_gateway_epoch_grows_even_when_the_clock_goes_back(tmp_path: Path) -> None:
    s = Store(tmp_path / "x.db")
    first = s.next_gateway_epoch(2_000_000_000)
    assert s.next_gateway_epoch(1_000_000_000) == first + 1


def test_a_press_is_recorded_once(tmp_path: Path) -> None:
    s = Store(tmp_path / "x.db")
    inc = s.open_incident("demo", "T1", "dining", "btn-t1", "complaint", 1.0, 2.0, (1, 1))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        s.join_incident(inc, "btn-t1", "complaint", 3.0, (1, 1))
    assert s.incident(inc).presses == 1  # type: ignore[union-attr]
    assert s.press_incident("btn-t1", 1, 1) == inc


def test_a_heartbeat_marks_a_device_online_as_the_gateway_does(tmp_path: Path) -> None:
    """The gateway reloads device states from here at start: they must match what it acted on."""
    s = Store(tmp_path / "x.db")
    s.device_status("pgr-ana", "offline", "0.1.0", 3, 1.0)
    s.device_heartbeat("pgr-ana", 2.0, 3900, -60, "0.1.0")
    assert s.device_states() == {"pgr-ana": "online"}
    s.device_status("pgr-ana", "offline", "0.1.0", 3, 3.0)
    assert s.device_states() == {"pgr-ana": "offline"}
