"""The venue model: zones, tables and their buttons, staff and their pagers, device keys.

One venue file (TOML) is the single source of truth for who is paged for which table; the gateway,
the simulator and the CLI all load it through load_venue(), which names the key of every error."""

from __future__ import annotations

import json
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rbproto

BUTTON = "button"
PAGER = "pager"
ROLES = (BUTTON, PAGER)
GESTURES = ("short", "long", "double")
CANCEL = "cancel"  # the gesture action that cancels a call instead of making one


class VenueError(ValueError):
    """A venue file defect; the message starts with the file and the key at fault."""


@dataclass(frozen=True)
class Device:
    id: str
    role: str
    key: bytes


@dataclass(frozen=True)
class Zone:
    id: str
    name: str


@dataclass(frozen=True)
class Table:
    id: str
    zone: str
    button: str
    responder: str | None  # staff id paged first for this table


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    pager: str
    zones: tuple[str, ...]
    role: str
    on_duty: bool


@dataclass(frozen=True)
class DeviceSettings:
    """What the gateway sends devices in a `config` command: the venue's gesture map, the recovery
    actions a pager offers, heartbeat and re-buzz intervals."""

    gestures: dict[str, str] = field(default_factory=lambda: {"short": "complaint", "long": CANCEL,
                                                              "double": "happy"})
    recovery_actions: tuple[str, ...] = ("apology", "fixed", "replaced", "discount", "free_item")
    button_heartbeat_s: int = 300
    pager_heartbeat_s: int = 60
    rebuzz_s: int = 30

    def config(self, role: str) -> dict[str, int | str]:
        """The body of the `config` command for a device of `role`; `cv` changes with the content."""
        body: dict[str, int | str] = {
            "gest": ",".join(f"{g}={a}" for g, a in self.gestures.items()),
            "acts": ",".join(self.recovery_actions),
            "hb": self.button_heartbeat_s if role == BUTTON else self.pager_heartbeat_s,
            "rebuzz": self.rebuzz_s,
        }
        version = zlib.crc32(json.dumps(body, sort_keys=True).encode()) & 0x7FFFFFFF
        return {"cv": version or 1, **body}  # 0 means "no config yet" on the device


@dataclass(frozen=True)
class Venue:
    site: str
    name: str
    zones: dict[str, Zone]
    tables: dict[str, Table]
    staff: dict[str, Staff]
    devices: dict[str, Device]
    table_by_button: dict[str, Table] = field(default_factory=dict)
    staff_by_pager: dict[str, Staff] = field(default_factory=dict)
    device_settings: DeviceSettings = field(default_factory=DeviceSettings)

    def key_for(self, device: str) -> bytes | None:
        d = self.devices.get(device)
        return d.key if d else None


class _Reader:
    """Reads typed values out of the parsed TOML, naming the key path in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> VenueError:
        return VenueError(f"{self.source}: {where}: {problem}")

    def get(self, table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
            return default
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}.{key}" if where else key,
                            f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    def ident(self, table: dict[str, Any], key: str, where: str) -> str:
        value: str = self.get(table, key, str, where)
        if not rbproto.valid_id(value.lower()):
            raise self.fail(f"{where}.{key}", f"{value!r} is not 1-32 of a-z 0-9 _ -")
        return value

    def items(self, doc: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self.get(doc, key, list, "", [])
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise self.fail(f"{key}[{i}]", "expected a table")
            out.append((f"{key}[{i}]", row))
        return out


def parse_venue(doc: dict[str, Any], source: str = "<venue>") -> Venue:
    r = _Reader(source)
    site = r.ident(doc, "site", "")
    if not rbproto.valid_id(site):
        raise r.fail("site", f"{site!r} must be lower case")
    name = r.get(doc, "name", str, "", site)

    devices: dict[str, Device] = {}
    for where, row in r.items(doc, "devices"):
        dev_id = r.ident(row, "id", where)
        if not rbproto.valid_id(dev_id):
            raise r.fail(f"{where}.id", f"{dev_id!r} must be lower case")
        role = r.get(row, "role", str, where)
        if role not in ROLES:
            raise r.fail(f"{where}.role", f"{role!r} is not one of {', '.join(ROLES)}")
        key_hex = r.get(row, "key", str, where)
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise r.fail(f"{where}.key", "expected 64 hex digits (a 32-byte key)")
        if dev_id in devices:
            raise r.fail(f"{where}.id", f"device {dev_id!r} is listed twice")
        devices[dev_id] = Device(dev_id, role, key)

    zones: dict[str, Zone] = {}
    for where, row in r.items(doc, "zones"):
        zid = r.ident(row, "id", where)
        zones[zid] = Zone(zid, r.get(row, "name", str, where, zid))
    if not zones:
        raise r.fail("zones", "a venue needs at least one zone")

    def device_of_role(row: dict[str, Any], key: str, where: str, role: str) -> str:
        dev_id = r.ident(row, key, where)
        dev = devices.get(dev_id)
        if dev is None:
            raise r.fail(f"{where}.{key}", f"device {dev_id!r} is not in [[devices]]")
        if dev.role != role:
            raise r.fail(f"{where}.{key}", f"device {dev_id!r} is a {dev.role}, not a {role}")
        return dev_id

    staff: dict[str, Staff] = {}
    for where, row in r.items(doc, "staff"):
        sid = r.ident(row, "id", where)
        zone_ids = r.get(row, "zones", list, where)
        for z in zone_ids:
            if z not in zones:
                raise r.fail(f"{where}.zones", f"zone {z!r} is not in [[zones]]")
        staff[sid] = Staff(sid, r.get(row, "name", str, where, sid), device_of_role(row, "pager", where, PAGER),
                           tuple(zone_ids), r.get(row, "role", str, where, "server"),
                           r.get(row, "on_duty", bool, where, True))

    tables: dict[str, Table] = {}
    for where, row in r.items(doc, "tables"):
        tid = r.ident(row, "id", where)
        zone = r.get(row, "zone", str, where)
        if zone not in zones:
            raise r.fail(f"{where}.zone", f"zone {zone!r} is not in [[zones]]")
        responder = r.get(row, "responder", str, where, None)
        if responder is not None and responder not in staff:
            raise r.fail(f"{where}.responder", f"staff {responder!r} is not in [[staff]]")
        tables[tid] = Table(tid, zone, device_of_role(row, "button", where, BUTTON), responder)

    by_button: dict[str, Table] = {}
    for t in tables.values():
        if t.button in by_button:
            raise r.fail("tables", f"button {t.button!r} is on both {by_button[t.button].id} and {t.id}")
        by_button[t.button] = t
    by_pager: dict[str, Staff] = {}
    for s in staff.values():
        if s.pager in by_pager:
            raise r.fail("staff", f"pager {s.pager!r} is worn by both {by_pager[s.pager].id} and {s.id}")
        by_pager[s.pager] = s
    return Venue(site, name, zones, tables, staff, devices, by_button, by_pager, _device_settings(r, doc))


def _short_id(r: _Reader, value: object, where: str) -> str:
    if not isinstance(value, str) or not rbproto.valid_id(value) or len(value) > 24:
        raise r.fail(where, f"{value!r} is not 1-24 of a-z 0-9 _ -")
    return value


def _device_settings(r: _Reader, doc: dict[str, Any]) -> DeviceSettings:
    base = DeviceSettings()
    buttons = r.get(doc, "buttons", dict, "", {})
    pagers = r.get(doc, "pagers", dict, "", {})
    gestures = r.get(buttons, "gestures", dict, "buttons", base.gestures)
    for g, action in gestures.items():
        if g not in GESTURES:
            raise r.fail(f"buttons.gestures.{g}", f"not a gesture; use {', '.join(GESTURES)}")
        _short_id(r, action, f"buttons.gestures.{g}")
    actions = r.get(pagers, "recovery_actions", list, "pagers", list(base.recovery_actions))
    for i, a in enumerate(actions):
        _short_id(r, a, f"pagers.recovery_actions[{i}]")
    if not actions:
        raise r.fail("pagers.recovery_actions", "a pager needs at least one recovery action to resolve with")
    if len(",".join(actions)) > rbproto.MAX_LIST:
        raise r.fail("pagers.recovery_actions", f"longer than {rbproto.MAX_LIST} characters together")

    def interval(table: dict[str, Any], key: str, where: str, default: int, low: int) -> int:
        value: int = r.get(table, key, int, where, default)
        if not low <= value <= 86400:
            raise r.fail(f"{where}.{key}", f"{value} is outside {low}..86400 seconds")
        return value

    return DeviceSettings(
        gestures={g: gestures[g] for g in GESTURES if g in gestures},
        recovery_actions=tuple(actions),
        button_heartbeat_s=interval(buttons, "heartbeat_s", "buttons", base.button_heartbeat_s, 10),
        pager_heartbeat_s=interval(pagers, "heartbeat_s", "pagers", base.pager_heartbeat_s, 10),
        rebuzz_s=interval(pagers, "rebuzz_s", "pagers", base.rebuzz_s, 5),
    )


def load_venue(path: str | Path) -> Venue:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except OSError as e:
        raise VenueError(f"{p}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise VenueError(f"{p}: not valid TOML: {e}") from None
    return parse_venue(doc, str(p))
