"""The venue model: zones, tables and their buttons, staff and their pagers, device keys.

One venue file (TOML) is the single source of truth for who is paged for which table; the gateway,
the simulator and the CLI all load it through load_venue(), which names the key of every error."""

from __future__ import annotations

import json
import os
import re
import tomllib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import rbproto

from . import incidents
from .shifts import DAYS, Shift, parse_hhmm

BUTTON = "button"
PAGER = "pager"
ROLES = (BUTTON, PAGER)
GESTURES = ("short", "long", "double")
CANCEL = "cancel"  # the gesture action that cancels a call instead of making one
ROOT_CAUSES = ("kitchen_delay", "wrong_order", "food_quality", "service", "billing", "cleanliness", "other")
# What a webhook may be told of: an incident reaching a state, or a repeat press joining it (the
# store's JOINED; spelled out here so the venue model does not import the database layer).
INCIDENT_STATES = tuple(incidents.TRANSITIONS)
WEBHOOK_EVENTS = (*INCIDENT_STATES, "joined")


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
    on_duty: bool  # without shifts: on duty unless the pager says otherwise
    shifts: tuple[Shift, ...] = ()


@dataclass(frozen=True)
class Policy:
    """How an incident of one kind escalates. Level n pages on-duty staff of role levels[n] who cover
    the table's zone; the last level is repeated every repeat_s until someone acknowledges."""

    ack_timeout_s: float = 30
    levels: tuple[str, ...] = ("server", "floor_manager", "manager")
    repeat_s: float = 60
    resolve_timeout_s: float = 600


@dataclass(frozen=True)
class Rules:
    """Noise control, follow-up and device supervision."""

    quiet_kinds: tuple[str, ...] = ("happy",)  # recorded as feedback, never paged
    rate_limit_presses: int = 5  # more presses than this from one button within the window: held
    rate_limit_window_s: float = 120
    aggregate_complaints: int = 3  # this many incidents in a zone within the window: manager alerted
    aggregate_window_s: float = 600
    manager_roles: tuple[str, ...] = ("manager",)  # who gets held presses, zone and trouble alerts
    followup_s: float = 600  # after resolve: a "happy" press within this counts as satisfied
    low_battery_mv: int = 3450
    silent_after: float = 2.5  # heartbeat intervals without a word: the device is in trouble


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
class Integrations:
    """Ties to other systems, every one off unless the venue file turns it on: Home Assistant MQTT
    discovery, and a webhook told of incident changes. The secret stays out of repr (and so out of
    logs and tracebacks)."""

    home_assistant: bool = False
    discovery_prefix: str = "homeassistant"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_env: str | None = None  # the environment variable holding the secret
    webhook_events: tuple[str, ...] = INCIDENT_STATES  # every state change; "joined" on request

    def secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The webhook's signing secret, read from the environment when the file names a variable.
        Read when the webhook is built, not when the file is parsed, so `venue check` and the
        simulator need no secret; an unset variable is an error rather than unsigned deliveries."""
        if self.webhook_secret_env is None:
            return self.webhook_secret
        value = (os.environ if environ is None else environ).get(self.webhook_secret_env)
        if not value:
            raise ValueError(f"integrations.webhook_secret_env: the environment variable {self.webhook_secret_env} "
                             "is not set (or empty); the webhook would go out unsigned")
        return value


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
    timezone: str = "UTC"
    policies: dict[str, Policy] = field(default_factory=dict)  # kind -> policy; "" is the default
    root_causes: tuple[str, ...] = ROOT_CAUSES
    rules: Rules = field(default_factory=Rules)
    integrations: Integrations = field(default_factory=Integrations)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def policy(self, kind: str) -> Policy:
        return self.policies.get(kind) or self.policies.get("") or Policy()

    def key_for(self, device: str) -> bytes | None:
        d = self.devices.get(device)
        return d.key if d else None


# Tables whose keys are the venue's own names (gestures, kinds), not keys this parser knows.
_FREE_KEYS = ("buttons.gestures",)
_NAMED_TABLES = ("escalation.kinds",)


def _shape(path: str) -> str:
    """A key path with list indexes and the venue's own names taken out: staff[3].shifts[0].days ->
    staff[].shifts[].days, escalation.kinds.allergy.levels -> escalation.kinds.*.levels."""
    out = re.sub(r"\[\d+\]", "[]", path)
    for named in _NAMED_TABLES:
        if out.startswith(named + "."):
            rest = out[len(named) + 1:].split(".", 1)
            out = f"{named}.*" + (f".{rest[1]}" if len(rest) > 1 else "")
    return out


def _keys(value: Any, path: str = "") -> dict[str, str]:
    """Every key path of the parsed file, shaped as _shape does -> the first real path of that shape."""
    out: dict[str, str] = {}
    if isinstance(value, dict) and path not in _FREE_KEYS:
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if path not in _NAMED_TABLES:  # a kind's own name is not a key
                out.setdefault(_shape(sub), sub)
            for shape, real in _keys(v, sub).items():
                out.setdefault(shape, real)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            for shape, real in _keys(v, f"{path}[{i}]").items():
                out.setdefault(shape, real)
    return out


class _Reader:
    """Reads typed values out of the parsed TOML, naming the key path in every error, and notes
    every key it was asked for: a key in the file that nobody asked for is a typo to report."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.asked: set[str] = set()

    def fail(self, where: str, problem: str) -> VenueError:
        return VenueError(f"{self.source}: {where}: {problem}")

    def get(self, table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
            default: Any = ...) -> Any:
        self.asked.add(_shape(f"{where}.{key}" if where else key))
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (int in kinds and isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{where}.{key}" if where else key, f"expected {names}, got {type(value).__name__}")
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
    return parse_venue_with(_Reader(source), doc)


def parse_venue_with(r: _Reader, doc: dict[str, Any]) -> Venue:
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
            if not isinstance(z, str) or z not in zones:
                raise r.fail(f"{where}.zones", f"zone {z!r} is not in [[zones]]")
        staff[sid] = Staff(sid, r.get(row, "name", str, where, sid), device_of_role(row, "pager", where, PAGER),
                           tuple(zone_ids), _short_id(r, r.get(row, "role", str, where, "server"), f"{where}.role"),
                           r.get(row, "on_duty", bool, where, True), _shifts(r, row, where))

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
    timezone = r.get(doc, "timezone", str, "", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("timezone", f"{timezone!r} is not a time zone (e.g. Europe/Berlin)") from None
    roles = {s.role for s in staff.values()}
    policies = _policies(r, doc, roles)
    for kind, pol in policies.items():
        for i, role in enumerate(pol.levels):
            if role not in roles:
                where = "escalation" + (f".kinds.{kind}" if kind else "")
                raise r.fail(f"{where}.levels[{i}]", f"no staff has role {role!r} (roles: {', '.join(sorted(roles))})")
    recovery = r.get(doc, "recovery", dict, "", {})
    root_causes = tuple(_short_id(r, c, f"recovery.root_causes[{i}]")
                        for i, c in enumerate(r.get(recovery, "root_causes", list, "recovery", list(ROOT_CAUSES))))
    venue = Venue(site, name, zones, tables, staff, devices, by_button, by_pager, _device_settings(r, doc),
                  timezone, policies, root_causes, _rules(r, doc, recovery, roles), _integrations(r, doc))
    present = _keys(doc)
    unknown = sorted(present[shape] for shape in set(present) - r.asked)
    if unknown:
        raise r.fail(unknown[0], "unknown key" + (f" (and {', '.join(unknown[1:4])})" if len(unknown) > 1 else "")
                     + "; docs/gateway.md lists every key")
    return venue


def known_keys(doc: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(keys the parser reads, keys the file has), shaped: for checking that an example is complete."""
    r = _Reader("<venue>")
    parse_venue_with(r, doc)
    return r.asked, set(_keys(doc))


def _seconds(r: _Reader, table: dict[str, Any], key: str, where: str, default: float, low: float = 1) -> float:
    value = r.get(table, key, (int, float), where, default)
    if not low <= value <= 7 * 86400:
        raise r.fail(f"{where}.{key}", f"{value} is outside {low}..{7 * 86400} seconds")
    return float(value)


def _shifts(r: _Reader, row: dict[str, Any], where: str) -> tuple[Shift, ...]:
    out = []
    for i, sh in enumerate(r.get(row, "shifts", list, where, [])):
        at = f"{where}.shifts[{i}]"
        if not isinstance(sh, dict):
            raise r.fail(at, "expected a table like { days = [\"mon\"], start = \"11:00\", end = \"23:00\" }")
        days = r.get(sh, "days", list, at)
        for d in days:
            if d not in DAYS:
                raise r.fail(f"{at}.days", f"{d!r} is not one of {', '.join(DAYS)}")
        times = []
        for key in ("start", "end"):
            try:
                times.append(parse_hhmm(r.get(sh, key, str, at)))
            except ValueError as e:
                raise r.fail(f"{at}.{key}", str(e)) from None
        out.append(Shift(tuple(days), times[0], times[1]))
    return tuple(out)


def _policy(r: _Reader, table: dict[str, Any], where: str, base: Policy) -> Policy:
    levels = r.get(table, "levels", list, where, list(base.levels))
    if not levels and "levels" in table:
        raise r.fail(f"{where}.levels", "at least one level (a staff role) is needed")
    for i, role in enumerate(levels):
        _short_id(r, role, f"{where}.levels[{i}]")
    return Policy(_seconds(r, table, "ack_timeout_s", where, base.ack_timeout_s), tuple(levels),
                  _seconds(r, table, "repeat_s", where, base.repeat_s, 5),
                  _seconds(r, table, "resolve_timeout_s", where, base.resolve_timeout_s, 10))


def _policies(r: _Reader, doc: dict[str, Any], roles: set[str]) -> dict[str, Policy]:
    esc = r.get(doc, "escalation", dict, "", {})
    # without levels in the file: the usual ladder, as far as the venue has those roles
    ladder = tuple(role for role in Policy().levels if role in roles) or tuple(sorted(roles))
    default = _policy(r, {k: v for k, v in esc.items() if k != "kinds"}, "escalation", Policy(levels=ladder))
    out = {"": default}
    for kind, table in r.get(esc, "kinds", dict, "escalation", {}).items():
        _short_id(r, kind, f"escalation.kinds.{kind}")
        if not isinstance(table, dict):
            raise r.fail(f"escalation.kinds.{kind}", "expected a table")
        out[kind] = _policy(r, table, f"escalation.kinds.{kind}", default)
    return out


def _rules(r: _Reader, doc: dict[str, Any], recovery: dict[str, Any], roles: set[str]) -> Rules:
    base = Rules()
    noise = r.get(doc, "noise", dict, "", {})
    sup = r.get(doc, "supervision", dict, "", {})
    managers = r.get(noise, "manager_roles", list, "noise", list(base.manager_roles))
    for i, role in enumerate(managers):
        if not isinstance(role, str) or role not in roles:
            if "manager_roles" not in noise:  # the default: name what the file lacks, not a key it lacks
                raise r.fail("noise.manager_roles", f"not set, and no staff has the default role {role!r}: give "
                             "someone that role, or set it to roles the venue has")
            raise r.fail(f"noise.manager_roles[{i}]", f"no staff has role {role!r}")
    quiet = r.get(noise, "quiet_kinds", list, "noise", list(base.quiet_kinds))

    def count(table: dict[str, Any], key: str, where: str, default: int) -> int:
        value: int = r.get(table, key, int, where, default)
        if value < 1:
            raise r.fail(f"{where}.{key}", "must be at least 1")
        return value

    return Rules(
        quiet_kinds=tuple(_short_id(r, k, f"noise.quiet_kinds[{i}]") for i, k in enumerate(quiet)),
        rate_limit_presses=count(noise, "rate_limit_presses", "noise", base.rate_limit_presses),
        rate_limit_window_s=_seconds(r, noise, "rate_limit_window_s", "noise", base.rate_limit_window_s),
        aggregate_complaints=count(noise, "aggregate_complaints", "noise", base.aggregate_complaints),
        aggregate_window_s=_seconds(r, noise, "aggregate_window_s", "noise", base.aggregate_window_s),
        manager_roles=tuple(managers),
        followup_s=_seconds(r, recovery, "followup_s", "recovery", base.followup_s),
        low_battery_mv=count(sup, "low_battery_mv", "supervision", base.low_battery_mv),
        silent_after=_seconds(r, sup, "silent_after", "supervision", base.silent_after),
    )


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


_PREFIX = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _integrations(r: _Reader, doc: dict[str, Any]) -> Integrations:
    base = Integrations()
    where = "integrations"
    table = r.get(doc, where, dict, "", {})
    prefix = r.get(table, "discovery_prefix", str, where, base.discovery_prefix)
    if not _PREFIX.fullmatch(prefix):
        raise r.fail(f"{where}.discovery_prefix", f"{prefix!r} is not an MQTT topic prefix of a-z A-Z 0-9 _ - and /")
    url = r.get(table, "webhook_url", str, where, None)
    if url is not None:
        _check_url(r, url, f"{where}.webhook_url")
    # webhook_secret is read only when it is there: the reference example shows the recommended
    # webhook_secret_env and mentions the literal in a comment, rather than putting a secret in a file.
    secret = r.get(table, "webhook_secret", str, where) if "webhook_secret" in table else None
    env = r.get(table, "webhook_secret_env", str, where, None)
    if secret is not None and env is not None:
        raise r.fail(f"{where}.webhook_secret", "give webhook_secret or webhook_secret_env, not both")
    if secret == "":
        raise r.fail(f"{where}.webhook_secret", "empty; leave it out to send unsigned")
    if env is not None and not _ENV_NAME.fullmatch(env):
        raise r.fail(f"{where}.webhook_secret_env", f"{env!r} is not an environment variable name")
    events = r.get(table, "webhook_events", list, where, list(base.webhook_events))
    for i, e in enumerate(events):
        if e not in WEBHOOK_EVENTS:
            raise r.fail(f"{where}.webhook_events[{i}]", f"{e!r} is not one of {', '.join(WEBHOOK_EVENTS)}")
    if not events:
        raise r.fail(f"{where}.webhook_events", "at least one event; leave webhook_url out to send none")
    return Integrations(
        home_assistant=r.get(table, "home_assistant", bool, where, base.home_assistant),
        discovery_prefix=prefix,
        webhook_url=url,
        webhook_secret=secret,
        webhook_secret_env=env,
        webhook_events=tuple(dict.fromkeys(events)),
    )


def _check_url(r: _Reader, url: str, where: str) -> None:
    """An absolute http(s) URL with a host: caught here rather than at the first delivery."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as e:
        raise r.fail(where, f"{url!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.fail(where, f"{url!r} is not an http:// or https:// URL with a host")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise r.fail(where, "a URL has no spaces or control characters")


def load_venue(path: str | Path) -> Venue:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise VenueError(f"{p}: cannot read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _line_column(data[:e.start].decode("utf-8", "replace"))
        raise VenueError(f"{p}: not UTF-8 text: byte 0x{data[e.start]:02x} (at line {line}, column {column}); "
                         "TOML files are UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise VenueError(f"{p}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise VenueError(f"{p}: not valid TOML for a venue: arrays or tables nested too deeply "
                         f"(at line {_deepest_line(text)})") from None
    return parse_venue(doc, str(p))


def _line_column(before: str) -> tuple[int, int]:
    """Line and column (from 1) of the character after `before`."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _deepest_line(text: str) -> int:
    """The line where brackets and braces nest deepest (quotes and comments roughly skipped): where
    to look when a file is nested too deeply to parse."""
    depth = deepest = 0
    line = at = 1
    quote = ""
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
            quote = ""  # (a multi-line string is not followed: the answer is rough anyway)
        elif quote:
            if c == quote[0] and text[i - 1] != "\\":
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            quote = "#"  # a comment runs to the end of the line
        elif c in "[{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, line
        elif c in "]}":
            depth -= 1
    return at
