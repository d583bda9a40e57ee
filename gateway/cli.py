"""`redbutton`: the command line. Gateway commands live here; other packages add theirs through the
`redbutton.commands` entry-point group (each entry is a register(subparsers) function)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType

import rbproto

from .logs import FORMATS, JSON, TEXT, setup_logging
from .reload import VenueWatcher
from .service import Gateway
from .store import Store, StoreError, database_url
from .venue import VenueError, load_venue
from .web.server import parse_listen

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
log = logging.getLogger("redbutton")


def sigterm_as_interrupt() -> None:
    """Ctrl-C and `kill` take the same clean way out (finally blocks stop every child)."""

    def raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def wait_for_interrupt() -> None:
    """Block the main thread until SIGINT or SIGTERM raises KeyboardInterrupt. signal.pause() rather
    than an Event's wait: an interrupt landing inside Condition.wait can surface as "release
    unlocked lock" instead of KeyboardInterrupt; other handled signals (SIGHUP) just loop."""
    while True:
        signal.pause()


def serve(start: Callable[[], object], stop: Callable[[], None]) -> int:
    """Start a service and keep it running until SIGINT or SIGTERM, then stop it cleanly."""
    sigterm_as_interrupt()
    try:
        start()
        wait_for_interrupt()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    """The gateway and its dashboard; SIGHUP (and, with --watch, an edit of the file) reloads the
    venue in place."""
    from .integrations import Integrations
    from .web.server import dashboard

    venue = load_venue(args.venue)
    store = Store(args.db)
    gw = Gateway(venue, store, args.broker)
    try:
        integrations = Integrations(gw)
    except ValueError as e:
        store.close()
        raise VenueError(f"{args.venue}: {e}") from e
    watcher = VenueWatcher(args.venue, gw.reload, args.watch_interval, site=venue.site, counters=gw.counters)
    signal.signal(signal.SIGHUP, lambda _sig, _frame: watcher.trigger())
    web = None
    if args.http != "off":
        host, port = parse_listen(args.http)
        try:
            web = dashboard(gw, host, port, secure_cookies=args.secure_cookies)
        except OSError as e:
            store.close()
            raise StoreError(str(e)) from e
        if not store.accounts():
            log.warning("no dashboard account yet: add one with  redbutton account add NAME --role manager --db %s",
                        args.db)

    def start() -> None:
        gw.start()
        integrations.start()  # after the broker link is up: Home Assistant's configs are published at once
        watcher.start(poll=args.watch)
        if web is not None:
            web.start()

    def stop() -> None:
        if web is not None:
            web.stop()
        watcher.stop()
        gw.stop()
        integrations.stop()
        store.close()

    return serve(start, stop)


def listen_address(text: str) -> str:
    """--http: HOST:PORT, checked here so a typo is a usage error before anything starts."""
    if text != "off":
        try:
            parse_listen(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    return text


def cmd_account(args: argparse.Namespace) -> int:
    """Dashboard accounts, kept in the gateway's database."""
    from .clock import SystemClock
    from .metrics import Counters
    from .web.accounts import AccountError, Accounts

    store = Store(args.db)
    try:
        accounts = Accounts(store, SystemClock(), Counters())
        if args.account_command == "list":
            for name, role, staff, disabled in store.accounts():
                print("\t".join([name, role, staff or "-"] + (["disabled"] if disabled else [])))
            return 0
        if args.account_command == "disable":
            accounts.disable(args.name)
            print(f"{args.name}: disabled, sessions ended")
            return 0
        password = read_password(args.password_stdin)
        if args.account_command == "add":
            accounts.add(args.name, password, args.role, args.staff)
            print(f"{args.name}: {args.role} account added")
        else:
            accounts.set_password(args.name, password)
            print(f"{args.name}: password changed, sessions ended")
        return 0
    except AccountError as e:
        print(f"redbutton: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()


def read_password(from_stdin: bool) -> str:
    """From standard input (one line, for scripts), or asked twice at the terminal, never echoed."""
    import getpass

    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise StoreError("the two passwords differ; nothing changed")
    return first


def cmd_bridge(args: argparse.Namespace) -> int:
    """The serial bridge for an ESP-NOW base station: runs until SIGINT or SIGTERM."""
    from .serial_bridge import SerialBridge

    bridge = SerialBridge(load_venue(args.venue), args.broker, args.port, baud=args.baud)
    return serve(bridge.start, bridge.stop)


def cmd_venue_check(args: argparse.Namespace) -> int:
    v = load_venue(args.file)
    print(f"{args.file}: site {v.site!r} ({v.name}): {len(v.zones)} zones, {len(v.tables)} tables, "
          f"{len(v.staff)} staff, {len(v.devices)} devices: OK")
    return 0


def parse_field(text: str) -> tuple[str, int | str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, int(value) if value.lstrip("-").isdigit() else value


def cmd_sign(args: argparse.Namespace) -> int:
    """Print a signed message (and a mosquitto_pub line) for a device in the venue file."""
    venue = load_venue(args.venue)
    key = venue.key_for(args.device)
    if key is None:
        raise VenueError(f"{args.venue}: device {args.device!r} is not in [[devices]]")
    fields = rbproto.SCHEMA[args.type][1]
    body: dict[str, int | str] = {"ep": args.ep or int(time.time()), "seq": args.seq, "ts": int(time.time()),
                                  "kind": "complaint", "bat": 3900, "rssi": -60, "fw": "manual", "up": 0, "q": 0,
                                  "cv": 0, "on": 1, "age": 0, "hb": 300, "rebuzz": 30, "gest": "short=complaint",
                                  "acts": "apology",
                                  "inc": 0, "action": "apology", "lvl": 0, "table": "T0", "why": "manual",
                                  "state": rbproto.DELIVERED}
    body.update(dict(args.field))
    unknown = set(dict(args.field)) - set(fields)
    if unknown:
        raise VenueError(f"{args.type} has no field {', '.join(sorted(unknown))}; it has {', '.join(fields)}")
    body = {k: body[k] for k in fields}
    topic, payload = rbproto.encode(key, venue.site, args.device, args.type, body)
    if args.quiet:
        print(payload.decode())
    else:
        print(f"topic:   {topic}\npayload: {payload.decode()}\n")
        print(f"mosquitto_pub -h HOST -p PORT -q 1 -t '{topic}' -m '{payload.decode()}'")
    return 0


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def database(text: str) -> str:
    """--db: checked here, so a mistyped URL is a usage error (exit 2) before anything starts."""
    try:
        database_url(text)
    except StoreError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redbutton", description="Red Button service-recovery alert system")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--log-format", choices=FORMATS, default=TEXT,
                   help="text (default) or json: one object per line, for the journal and log shippers")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gateway", help="run the gateway")
    g.add_argument("--venue", required=True, type=Path)
    g.add_argument("--broker", default=DEFAULT_BROKER, help=f"broker URL (default {DEFAULT_BROKER})")
    g.add_argument("--db", default="redbutton.db", type=database, metavar="PATH_OR_URL",
                   help="where incidents are kept: a SQLite file (default redbutton.db) or sqlite:///PATH, "
                        "or PostgreSQL as postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    g.add_argument("--watch", action=argparse.BooleanOptionalAction, default=True,
                   help="reload the venue when its file changes (default on; SIGHUP reloads either way)")
    g.add_argument("--watch-interval", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="how often the venue file is checked (default 1)")
    g.add_argument("--http", default="127.0.0.1:8080", type=listen_address, metavar="HOST:PORT",
                   help="where the dashboard and API listen (default 127.0.0.1:8080), or off")
    g.add_argument("--secure-cookies", action="store_true",
                   help="mark session cookies Secure: set when the dashboard is served over HTTPS (a proxy)")
    g.set_defaults(func=cmd_gateway)

    a = sub.add_parser("account", help="dashboard accounts").add_subparsers(dest="account_command", required=True)
    for name, text in (("add", "add an account"), ("passwd", "set an account's password"),
                       ("disable", "disable an account and end its sessions"), ("list", "list the accounts")):
        ap = a.add_parser(name, help=text)
        if name != "list":
            ap.add_argument("name")
        if name == "add":
            ap.add_argument("--role", choices=("manager", "staff"), required=True)
            ap.add_argument("--staff", help="the venue's staff id this account acts as (staff accounts need one)")
        if name in ("add", "passwd"):
            ap.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        ap.add_argument("--db", default="redbutton.db", type=database, metavar="PATH_OR_URL",
                        help="the gateway's database (default redbutton.db)")
        ap.set_defaults(func=cmd_account)

    br = sub.add_parser("bridge", help="run the serial bridge of an ESP-NOW base station")
    br.add_argument("--venue", required=True, type=Path)
    br.add_argument("--broker", default=DEFAULT_BROKER, help=f"broker URL (default {DEFAULT_BROKER})")
    br.add_argument("--port", required=True, help="the base station's serial port: a device path or a pyserial URL")
    br.add_argument("--baud", type=int, default=115200, help="baud rate for a USB-UART base station (default 115200)")
    br.set_defaults(func=cmd_bridge)

    v = sub.add_parser("venue", help="venue file tools").add_subparsers(dest="venue_command", required=True)
    vc = v.add_parser("check", help="validate a venue file")
    vc.add_argument("file", type=Path)
    vc.set_defaults(func=cmd_venue_check)

    s = sub.add_parser("sign", help="print a signed device message, for mosquitto_pub")
    s.add_argument("--venue", required=True, type=Path)
    s.add_argument("--device", required=True)
    s.add_argument("--type", default="press", choices=[t for t, (d, _f) in rbproto.SCHEMA.items() if d == "evt"])
    s.add_argument("--ep", type=int, default=0, help="boot epoch (default: the Unix time)")
    s.add_argument("--seq", type=int, default=1)
    s.add_argument("--field", action="append", default=[], type=parse_field, metavar="NAME=VALUE")
    s.add_argument("-q", "--quiet", action="store_true", help="print the payload only")
    s.set_defaults(func=cmd_sign)

    for ep in entry_points(group="redbutton.commands"):
        ep.load()(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.log_format)
    as_json = args.log_format == JSON  # then stderr carries nothing but JSON lines, errors included
    try:
        return int(args.func(args))
    except (VenueError, StoreError, rbproto.ProtocolError, ConnectionError) as e:
        if as_json:
            log.error("%s", e)
        else:
            print(f"redbutton: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        if not as_json:
            raise
        log.exception("redbutton %s failed", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
