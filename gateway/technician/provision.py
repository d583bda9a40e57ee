"""`redbutton device provision`: give a board its identity and let the venue know it.

One step for the technician, four places kept in agreement: the board's `/config.json` (its id,
HMAC key, network and broker login), the venue file (the device under [[devices]], and on its
table or staff member), the broker's password file (its own login) and ACL (its own topics). The
board is written first: when no board answers, nothing has been registered. The venue file is
edited with tomlkit, so its comments and layout stay as the venue wrote them, and the result is
checked by the gateway's own parser before it is saved. A running gateway picks the change up
from the file; mosquitto re-reads its files on SIGHUP.

`--replace ID` is the same for a board that takes over an id (a dead button swapped, a stolen
pager, a leaked key): a new key and password, so the old board can no longer sign or log in."""

from __future__ import annotations

import json
import os
import secrets
import signal
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

import rbproto

from ..broker_access import BrokerAccess, new_password
from ..venue import BUTTON, PAGER, Venue, VenueError, parse_venue
from . import DeviceError

BASE = "base"
ROLES = (BUTTON, PAGER, BASE)
ID_PREFIX = {BUTTON: "btn", PAGER: "pgr"}
KEY_BYTES = 32
LINKS = ("mqtt", "espnow")

# What a network file may hold: the keys of the device's config.json they become.
NETWORK_KEYS: dict[str, type] = {
    "link": str, "wifi_ssid": str, "wifi_password": str, "broker_host": str, "broker_port": int,
    "broker_tls": bool, "broker_ca": str, "espnow": dict, "netmask": str, "gateway_ip": str, "dns": str,
    "awake_ms": int,
}


@dataclass(frozen=True)
class Network:
    """How the venue's devices reach the broker (`--network FILE`, TOML): one file per venue, so a
    bag of boards is provisioned one short command each. `broker_ca` is a DER file on the host,
    relative to the network file, copied onto the board as `ca.der`."""

    settings: dict[str, Any]
    ca: Path | None = None

    @classmethod
    def load(cls, path: Path) -> Network:
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as e:
            raise DeviceError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise DeviceError(f"{path}: not valid TOML: {e}") from None
        for key, value in doc.items():
            want = NETWORK_KEYS.get(key)
            if want is None:
                raise DeviceError(f"{path}: unknown key {key!r} (known: {', '.join(NETWORK_KEYS)})")
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise DeviceError(f"{path}: {key} must be a {want.__name__}")
        link = doc.setdefault("link", "mqtt")
        if link not in LINKS:
            raise DeviceError(f"{path}: link must be one of {', '.join(LINKS)}, not {link!r}")
        need = ("wifi_ssid", "wifi_password", "broker_host") if link == "mqtt" else ("espnow",)
        missing = [k for k in need if k not in doc]
        if missing:
            raise DeviceError(f"{path}: a {link} network needs {', '.join(missing)}")
        if link == "espnow":
            mac = str(doc["espnow"].get("base_mac", ""))
            if len(mac) != 12 or any(c not in "0123456789abcdef" for c in mac):
                raise DeviceError(f"{path}: espnow.base_mac must be 12 lower-case hex digits (the base station's MAC)")
        ca = None
        if doc.get("broker_tls"):
            if "broker_ca" not in doc:
                raise DeviceError(f"{path}: broker_tls needs broker_ca, the venue CA as a DER file")
            ca = (path.parent / doc["broker_ca"]).resolve()
            if not ca.is_file():
                raise DeviceError(f"{path}: broker_ca {ca} does not exist (the venue CA's ca.der)")
            doc["broker_ca"] = "ca.der"
            doc.setdefault("broker_port", 8883)
        elif link == "mqtt":
            doc.setdefault("broker_port", 1883)
        return cls(doc, ca)


@dataclass
class Request:
    venue_path: Path
    role: str
    network: Network | None
    broker_dir: Path
    device_id: str | None = None
    replace: str | None = None
    table: str | None = None
    zone: str | None = None
    staff: str | None = None
    ip: str | None = None  # a static address for this device (the network file has the netmask and the rest)


@dataclass
class Outcome:
    device_id: str
    config: dict[str, Any]
    files: dict[str, bytes]  # path on the board -> content
    retired: list[str] = field(default_factory=list)  # devices no longer in the venue, logins removed
    registered: bool = False


def _read_doc(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text())
    except OSError as e:
        raise DeviceError(f"{path}: cannot read: {e.strerror}") from None
    except tomlkit.exceptions.ParseError as e:
        raise DeviceError(f"{path}: not valid TOML: {e}") from None


def _rows(doc: tomlkit.TOMLDocument, name: str) -> AoT:
    rows = doc.get(name)
    if rows is None:
        rows = tomlkit.aot()
        doc[name] = rows
    if not isinstance(rows, AoT):
        raise DeviceError(f"{name} must be an array of tables ([[{name}]])")
    return rows


def _find(rows: AoT, ident: str) -> Table | None:
    for row in rows:
        if row.get("id") == ident:
            return row  # type: ignore[no-any-return]  # tomlkit types an AoT's items loosely
    return None


def _referenced(doc: tomlkit.TOMLDocument) -> set[str]:
    return ({str(t.get("button")) for t in doc.get("tables", [])}
            | {str(s.get("pager")) for s in doc.get("staff", [])})


def new_device_id(role: str, taken: set[str]) -> str:
    while True:
        ident = f"{ID_PREFIX[role]}-{secrets.token_hex(3)}"
        if ident not in taken:
            return ident


def plan(req: Request, venue: Venue) -> tuple[str, tomlkit.TOMLDocument, list[str], bytes]:
    """The device id, the edited venue document, the devices it retires and the new key; nothing
    written yet."""
    doc = _read_doc(req.venue_path)
    devices = _rows(doc, "devices")
    if req.replace is not None:
        old = venue.devices.get(req.replace)
        if old is None:
            raise DeviceError(f"--replace {req.replace}: no such device in {req.venue_path}")
        if old.role != req.role:
            raise DeviceError(f"--replace {req.replace}: that device is a {old.role}, not a {req.role}")
        ident = req.replace
    elif req.device_id is not None:
        ident = req.device_id
        if not rbproto.valid_id(ident):
            raise DeviceError(f"--id {ident!r}: use lower-case letters, digits, - and _ (at most 32)")
        if ident in venue.devices:
            raise DeviceError(f"{ident} is already in {req.venue_path}; to give it to a new board "
                              f"(a swap, or a new key) use --replace {ident}")
    else:
        ident = new_device_id(req.role, set(venue.devices))
    key = secrets.token_bytes(KEY_BYTES)
    row = _find(devices, ident)
    if row is None:
        devices.append({"id": ident, "role": req.role, "key": key.hex()})
    else:
        row["key"] = key.hex()
    before = _referenced(doc)
    if req.table is not None:
        _place_on_table(doc, req, ident, venue)
    if req.staff is not None:
        person = _find(_rows(doc, "staff"), req.staff)
        if person is None:
            raise DeviceError(f"--staff {req.staff}: no such staff member in {req.venue_path}")
        person["pager"] = ident
    retired = sorted(d for d in before - _referenced(doc) if d != ident)
    for d in retired:
        for i, r in enumerate(devices):
            if r.get("id") == d:
                del devices[i]
                break
    try:
        parse_venue(tomllib.loads(tomlkit.dumps(doc)), str(req.venue_path))
    except VenueError as e:
        raise DeviceError(f"the venue would not be valid: {e}") from None
    return ident, doc, retired, key


def _place_on_table(doc: tomlkit.TOMLDocument, req: Request, ident: str, venue: Venue) -> None:
    tables = _rows(doc, "tables")
    table = _find(tables, str(req.table))
    if table is not None:
        if req.zone is not None and req.zone != table.get("zone"):
            raise DeviceError(f"--table {req.table} is in zone {table.get('zone')}, not {req.zone}")
        table["button"] = ident
        return
    if req.zone is None:
        raise DeviceError(f"--table {req.table}: no such table in {req.venue_path}; add --zone to create it "
                          f"(zones: {', '.join(venue.zones)})")
    if req.zone not in venue.zones:
        raise DeviceError(f"--zone {req.zone}: no such zone (zones: {', '.join(venue.zones)})")
    tables.append({"id": req.table, "zone": req.zone, "button": ident})


def board_config(role: str, site: str, ident: str, key: bytes, mqtt_password: str, network: Network | None
                 ) -> dict[str, Any]:
    """The board's /config.json (docs/firmware.md, "Config keys")."""
    settings = dict(network.settings) if network else {}
    if role == BASE:
        return {"role": BASE, "espnow": settings.get("espnow", {"channel": 1})}
    cfg: dict[str, Any] = {"role": role, "site": site, "device": ident, "key": key.hex()}
    cfg.update(settings)
    if cfg.get("link", "mqtt") == "mqtt":
        cfg["mqtt_user"] = ident
        cfg["mqtt_password"] = mqtt_password
    return cfg


def _save_venue(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """In one step, keeping the file's mode: the gateway watching it never reads half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(tomlkit.dumps(doc))
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


Writer = Callable[[dict[str, bytes]], None]


def provision(req: Request, venue: Venue | None, write: Writer) -> Outcome:
    """Plan, write the board (through `write`), then register: venue file, broker password, ACL."""
    if req.role == BASE:
        cfg = board_config(BASE, "", "", b"", "", req.network)
        files = {"config.json": json.dumps(cfg).encode()}
        write(files)
        return Outcome("base", cfg, files)
    if req.role == PAGER and req.table is not None:
        raise DeviceError("--table is for buttons; a pager goes to a staff member (--staff)")
    if req.role == BUTTON and req.staff is not None:
        raise DeviceError("--staff is for pagers; a button goes on a table (--table)")
    if req.network is None:
        raise DeviceError("--network FILE is needed: the venue WiFi and broker every device uses")
    if venue is None:
        raise DeviceError("--venue is needed: the device is registered in the venue file")
    ident, doc, retired, key = plan(req, venue)
    password = new_password()
    cfg = board_config(req.role, venue.site, ident, key, password, req.network)
    if req.ip is not None:
        missing = [k for k in ("netmask", "gateway_ip", "dns") if k not in cfg]
        if missing:
            raise DeviceError(f"--ip needs {', '.join(missing)} in the network file")
        cfg["ip"] = req.ip
    files = {"config.json": json.dumps(cfg).encode()}
    if req.network.ca is not None:
        files["ca.der"] = req.network.ca.read_bytes()
    write(files)
    _save_venue(req.venue_path, doc)
    new_venue = parse_venue(tomllib.loads(tomlkit.dumps(doc)), str(req.venue_path))
    access = BrokerAccess(req.broker_dir)
    access.ensure_service_users()
    if cfg.get("link", "mqtt") == "mqtt":
        access.set_password(ident, password)
    else:
        access.remove(ident)  # an ESP-NOW device speaks to the broker only through the bridge
    access.sync(new_venue)
    return Outcome(ident, cfg, files, retired, registered=True)


def write_to_board(port: str, timeout: float) -> Writer:
    """Onto the board with mpremote, then a reset so it boots with its new identity."""

    def write(files: dict[str, bytes]) -> None:
        from .flash import mpremote, run_tool, write_files

        write_files(port, files, timeout, what="the device's config")
        # Best effort: should the reset not go through, the next power-up reads the config anyway.
        run_tool(mpremote(port, "reset"), idle_timeout=timeout)

    return write


def reload_broker(pid: int) -> None:
    """SIGHUP: mosquitto reads its password file and ACL again."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise DeviceError(f"--broker-pid {pid}: no such process; reload mosquitto by hand "
                          "(systemctl reload mosquitto)") from None
    except PermissionError:
        raise DeviceError(f"--broker-pid {pid}: not allowed to signal it; run `sudo systemctl reload mosquitto`"
                          ) from None


def write_to_folder(folder: Path) -> Writer:
    """The board's flash as a folder: a simulated board's, or files to copy by hand."""

    def write(files: dict[str, bytes]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (folder / name).write_bytes(content)
            if name == "config.json":
                (folder / name).chmod(0o600)

    return write
