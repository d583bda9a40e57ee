"""Storage: incidents, their transitions, pages, device registry and replay windows, in SQLite (WAL).

The one module that speaks SQL. Schema changes are migrations appended to MIGRATIONS; the database
records how many it has applied in PRAGMA user_version."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import incidents

MIGRATIONS: list[str] = [
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        table_id TEXT NOT NULL,
        zone TEXT NOT NULL,
        button TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        level INTEGER NOT NULL DEFAULT 0,
        presses INTEGER NOT NULL DEFAULT 1,
        pressed_at REAL NOT NULL,      -- the button's clock: when the customer pressed
        received_at REAL NOT NULL,     -- the gateway's clock from here on
        paged_at REAL,
        acked_at REAL,
        resolved_at REAL,
        closed_at REAL,
        responder TEXT,
        recovery_action TEXT,
        compensation TEXT,
        compensation_cost REAL,
        root_cause TEXT,
        notes TEXT,
        followup_due REAL,
        followup_result TEXT
    );
    CREATE INDEX incidents_active ON incidents (table_id, state);
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        cause TEXT NOT NULL
    );
    CREATE INDEX transitions_incident ON transitions (incident_id);
    CREATE TABLE pages (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        staff TEXT NOT NULL,
        pager TEXT NOT NULL,
        level INTEGER NOT NULL,
        at REAL NOT NULL,
        outcome TEXT                   -- acked, declined, cancelled, or NULL while outstanding
    );
    CREATE INDEX pages_incident ON pages (incident_id);
    CREATE TABLE presses (
        device TEXT NOT NULL,
        ep INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (device, ep, seq)
    );
    CREATE TABLE replay (
        device TEXT PRIMARY KEY,
        ep INTEGER NOT NULL,
        top INTEGER NOT NULL,
        bits TEXT NOT NULL             -- hex: the window is 64 bits, wider than SQLite's signed int
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL DEFAULT 'unknown',
        fw TEXT,
        ep INTEGER,
        last_seen REAL,
        battery_mv INTEGER,
        rssi INTEGER
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE devices ADD COLUMN on_duty INTEGER;   -- a pager's own toggle; NULL: never said
    ALTER TABLE devices ADD COLUMN config_version INTEGER;
    ALTER TABLE devices ADD COLUMN queued INTEGER;
    ALTER TABLE devices ADD COLUMN uptime_s INTEGER;
    """,
    """
    ALTER TABLE incidents ADD COLUMN origin TEXT NOT NULL DEFAULT 'press';  -- press, held, trouble, zone
    ALTER TABLE incidents ADD COLUMN urgency INTEGER NOT NULL DEFAULT 0;    -- repeat presses, re-alerts
    ALTER TABLE incidents ADD COLUMN deadline REAL;                        -- the next timer, or NULL
    ALTER TABLE incidents ADD COLUMN deadline_kind TEXT;                   -- ack, repeat, retry, resolve, followup
    ALTER TABLE incidents ADD COLUMN resolved_by TEXT;
    CREATE INDEX incidents_deadline ON incidents (deadline) WHERE deadline IS NOT NULL;
    ALTER TABLE devices ADD COLUMN duty_at REAL;                          -- when the wearer toggled
    ALTER TABLE devices ADD COLUMN trouble TEXT;                          -- what is wrong, or NULL
    ALTER TABLE devices ADD COLUMN trouble_incident INTEGER;
    """,
]


@dataclass(frozen=True)
class Incident:
    id: int
    table_id: str
    zone: str
    button: str
    kind: str
    state: str
    level: int
    presses: int
    pressed_at: float
    received_at: float
    paged_at: float | None
    acked_at: float | None
    resolved_at: float | None
    responder: str | None
    recovery_action: str | None
    origin: str = "press"
    urgency: int = 0
    deadline: float | None = None
    deadline_kind: str | None = None
    followup_due: float | None = None
    followup_result: str | None = None
    compensation: str | None = None
    compensation_cost: float | None = None
    root_cause: str | None = None
    notes: str | None = None
    closed_at: float | None = None


    def durations(self) -> dict[str, float]:
        """Press -> page, page -> ack and ack -> resolve in seconds, for the steps that happened."""
        out = {}
        for name, start, end in (("press_to_page", self.received_at, self.paged_at),
                                 ("page_to_ack", self.paged_at, self.acked_at),
                                 ("ack_to_resolve", self.acked_at, self.resolved_at)):
            if start is not None and end is not None:
                out[name] = round(end - start, 3)
        return out


_INCIDENT_COLUMNS = ", ".join(Incident.__dataclass_fields__)


class Store:
    """Thread-safe: the MQTT thread writes, the CLI and tests read, one lock serialises them."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        self.db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: all of it is stored, or none of it."""
        with self._lock:
            self.db.execute("BEGIN")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def migrate(self) -> None:
        with self._lock:
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self.db.executescript(f"BEGIN; {script}; PRAGMA user_version = {i}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ---- meta ------------------------------------------------------------------------------

    def next_gateway_epoch(self, now: float) -> int:
        """A boot epoch for the gateway's commands that only ever grows, even if the clock is set
        back: max(previous + 1, now)."""
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'gateway_epoch'").fetchone()
            ep = max(int(row[0]) + 1 if row else 1, int(now))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('gateway_epoch', ?)", (str(ep),))
            return ep

    # ---- replay windows --------------------------------------------------------------------

    def load_replay(self) -> dict[str, tuple[int, int, int]]:
        with self._lock:
            rows = self.db.execute("SELECT device, ep, top, bits FROM replay").fetchall()
        return {d: (ep, top, int(bits, 16)) for d, ep, top, bits in rows}

    def save_replay(self, device: str, ep: int, top: int, bits: int) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO replay VALUES (?, ?, ?, ?)", (device, ep, top, f"{bits:x}"))

    # ---- incidents -------------------------------------------------------------------------

    def _transition(self, inc_id: int, at: float, old: str | None, new: str, actor: str, cause: str) -> None:
        self.db.execute("INSERT INTO transitions (incident_id, at, from_state, to_state, actor, cause) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (inc_id, at, old, new, actor, cause))

    def open_incident(self, site: str, table_id: str, zone: str, button: str, kind: str,
                      pressed_at: float, at: float, press: tuple[int, int] | None, origin: str = "press",
                      cause: str = "") -> int:
        """Record a new incident and the press that opened it (if a press did), in one transaction."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO incidents (site, table_id, zone, button, kind, state, pressed_at, received_at, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (site, table_id, zone, button, kind, incidents.OPEN, pressed_at, at, origin))
            inc_id = int(cur.lastrowid or 0)
            self._transition(inc_id, at, None, incidents.OPEN, button, cause or f"press {kind}")
            if press is not None:
                db.execute("INSERT INTO presses VALUES (?, ?, ?, ?, ?, ?)", (button, *press, inc_id, kind, at))
            return inc_id

    def join_incident(self, inc_id: int, button: str, kind: str, at: float, press: tuple[int, int]) -> None:
        """A repeat press at a table with an active incident: counted and more urgent, not a new one."""
        with self._tx() as db:
            db.execute("UPDATE incidents SET presses = presses + 1, urgency = urgency + 1 WHERE id = ?", (inc_id,))
            db.execute("INSERT INTO presses VALUES (?, ?, ?, ?, ?, ?)", (button, *press, inc_id, kind, at))

    def record_press(self, inc_id: int, button: str, kind: str, at: float, press: tuple[int, int]) -> None:
        """A press that answers an incident (a "happy now" after it was resolved), kept with it."""
        with self._lock:
            self.db.execute("INSERT INTO presses VALUES (?, ?, ?, ?, ?, ?)", (button, *press, inc_id, kind, at))

    def note(self, inc_id: int, at: float, actor: str, cause: str) -> None:
        """A line in the incident's history that does not change its state (who recorded what)."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM incidents WHERE id = ?", (inc_id,)).fetchone()
            if row is None:
                raise incidents.TransitionError(f"no incident {inc_id}")
            self._transition(inc_id, at, row[0], row[0], actor, cause)

    def update(self, inc_id: int, **columns: object) -> None:
        """Change columns of an incident that are not its state (deadline, urgency, notes, ...)."""
        sets = ", ".join(f"{c} = ?" for c in columns)
        with self._lock:
            self.db.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (*columns.values(), inc_id))

    def deadlines(self) -> list[tuple[float, int]]:
        """(deadline, incident id) of every incident with a timer running: restored at start."""
        with self._lock:
            return [(float(d), int(i)) for d, i in
                    self.db.execute("SELECT deadline, id FROM incidents WHERE deadline IS NOT NULL")]

    def outstanding_pages(self, inc_id: int) -> list[tuple[str, str, int]]:
        """(staff, pager, level) of the pages of an incident nobody has answered yet."""
        with self._lock:
            return list(self.db.execute(
                "SELECT staff, pager, level FROM pages WHERE incident_id = ? AND outcome IS NULL ORDER BY id",
                (inc_id,)))

    def declined_staff(self, inc_id: int) -> set[str]:
        with self._lock:
            return {r[0] for r in self.db.execute(
                "SELECT staff FROM pages WHERE incident_id = ? AND outcome = 'declined'", (inc_id,))}

    def busy(self) -> dict[str, int]:
        """Staff id -> active incidents they hold or are paged for: routing picks the least busy."""
        marks = ", ".join("?" * len(incidents.ACTIVE))
        with self._lock:
            rows = self.db.execute(
                "SELECT staff, COUNT(DISTINCT incident_id) FROM ("
                "  SELECT p.staff, p.incident_id FROM pages p JOIN incidents i ON i.id = p.incident_id"
                f"  WHERE p.outcome IS NULL AND i.state IN ({marks})"
                "  UNION SELECT i.responder, i.id FROM incidents i"
                f"  WHERE i.responder IS NOT NULL AND i.state IN ({marks})"
                ") GROUP BY staff", (*incidents.ACTIVE, *incidents.ACTIVE)).fetchall()
        return {str(s): int(n) for s, n in rows}

    def recent_incidents(self, zone: str, since: float, origin: str = "press") -> int:
        """How many incidents of `origin` the zone has had since `since` (the aggregate rule)."""
        with self._lock:
            row = self.db.execute("SELECT COUNT(*) FROM incidents WHERE zone = ? AND origin = ? AND received_at >= ?",
                                  (zone, origin, since)).fetchone()
        return int(row[0])

    def awaiting_followup(self, table_id: str) -> Incident | None:
        """The table's latest resolved incident whose follow-up is still open."""
        with self._lock:
            row = self.db.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE table_id = ? AND state = ? "
                "AND deadline_kind = 'followup' ORDER BY id DESC LIMIT 1", (table_id, incidents.RESOLVED)).fetchone()
        return Incident(*row) if row else None

    def move(self, inc_id: int, new: str, at: float, actor: str, cause: str, **columns: object) -> None:
        """Change an incident's state (checked against the lifecycle) and record the transition."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM incidents WHERE id = ?", (inc_id,)).fetchone()
            if row is None:
                raise incidents.TransitionError(f"no incident {inc_id}")
            incidents.check(row[0], new)
            sets = ", ".join(f"{c} = ?" for c in ("state", *columns))
            db.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (new, *columns.values(), inc_id))
            self._transition(inc_id, at, row[0], new, actor, cause)

    def add_page(self, inc_id: int, staff: str, pager: str, level: int, at: float) -> None:
        with self._lock:
            self.db.execute("INSERT INTO pages (incident_id, staff, pager, level, at) VALUES (?, ?, ?, ?, ?)",
                            (inc_id, staff, pager, level, at))

    def close_pages(self, inc_id: int, outcome: str, pager: str | None = None) -> list[str]:
        """Mark outstanding pages of an incident (or of one pager) with an outcome; -> their pagers."""
        with self._lock:
            where = "incident_id = ? AND outcome IS NULL" + (" AND pager = ?" if pager else "")
            args: tuple[object, ...] = (inc_id, pager) if pager else (inc_id,)
            pagers = [r[0] for r in self.db.execute(f"SELECT pager FROM pages WHERE {where}", args)]
            self.db.execute(f"UPDATE pages SET outcome = ? WHERE {where}", (outcome, *args))
            return pagers

    def paged_staff(self, inc_id: int) -> set[str]:
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT staff FROM pages WHERE incident_id = ?", (inc_id,))}

    def incident(self, inc_id: int) -> Incident | None:
        with self._lock:
            row = self.db.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (inc_id,)).fetchone()
        return Incident(*row) if row else None

    def active_incident(self, table_id: str) -> Incident | None:
        marks = ", ".join("?" * len(incidents.ACTIVE))
        with self._lock:
            row = self.db.execute(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE table_id = ? AND state IN ({marks}) "
                "ORDER BY id DESC LIMIT 1", (table_id, *incidents.ACTIVE)).fetchone()
        return Incident(*row) if row else None

    def press_incident(self, device: str, ep: int, seq: int) -> int | None:
        """The incident a press was recorded in, to answer a re-sent press again."""
        with self._lock:
            row = self.db.execute("SELECT incident_id FROM presses WHERE device = ? AND ep = ? AND seq = ?",
                                  (device, ep, seq)).fetchone()
        return int(row[0]) if row else None

    def transitions(self, inc_id: int) -> list[tuple[float, str | None, str, str, str]]:
        with self._lock:
            return list(self.db.execute(
                "SELECT at, from_state, to_state, actor, cause FROM transitions WHERE incident_id = ? ORDER BY id",
                (inc_id,)))

    # ---- device registry -------------------------------------------------------------------

    def _upsert_device(self, device: str, **columns: object) -> None:
        names = ", ".join(columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        with self._lock:
            self.db.execute(f"INSERT INTO devices (id, {names}) VALUES (?{', ?' * len(columns)}) "
                            f"ON CONFLICT (id) DO UPDATE SET {updates}", (device, *columns.values()))

    def device_status(self, device: str, state: str, fw: str, ep: int, at: float) -> None:
        self._upsert_device(device, state=state, fw=fw, ep=ep, last_seen=at)

    def device_heartbeat(self, device: str, at: float, battery_mv: int, rssi: int, fw: str, queued: int = 0,
                         uptime_s: int = 0, config_version: int = 0) -> None:
        """A heartbeat proves the device is online, whatever its last status said."""
        self._upsert_device(device, state="online", fw=fw, last_seen=at, battery_mv=battery_mv, rssi=rssi,
                            queued=queued, uptime_s=uptime_s, config_version=config_version)

    def device_duty(self, device: str, on_duty: bool, at: float) -> None:
        self._upsert_device(device, on_duty=int(on_duty), duty_at=at, last_seen=at)

    def duty_toggles(self) -> dict[str, tuple[bool, float]]:
        """Pagers whose wearer has set duty on or off themselves: (on, when)."""
        with self._lock:
            rows = self.db.execute("SELECT id, on_duty, duty_at FROM devices WHERE on_duty IS NOT NULL").fetchall()
        return {d: (bool(v), float(at or 0)) for d, v, at in rows}

    def device_seen(self, device: str, at: float) -> None:
        self._upsert_device(device, last_seen=at)

    def device_trouble(self, device: str, trouble: str | None, inc_id: int | None) -> None:
        self._upsert_device(device, trouble=trouble, trouble_incident=inc_id)

    def devices(self) -> dict[str, dict[str, object]]:
        """The registry: device id -> its row (state, fw, last_seen, battery_mv, rssi, trouble, ...)."""
        with self._lock:
            cur = self.db.execute("SELECT * FROM devices")
            names = [c[0] for c in cur.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

    def device_states(self) -> dict[str, str]:
        with self._lock:
            return dict(self.db.execute("SELECT id, state FROM devices").fetchall())
