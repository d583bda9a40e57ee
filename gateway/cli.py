"""`redbutton`: the command line. Gateway commands live here; other packages add theirs through the
`redbutton.commands` entry-point group (each entry is a register(subparsers) function)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType

import rbproto

from .logs import FORMATS, JSON, TEXT, setup_logging
from .mqtt_io import CA_ENV, BrokerUrlError, parse_broker_url, uses_tls
from .store import Store, StoreError, database_url
from .venue import VenueError, load_venue

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
    # Here, not at the top: the web framework and the gateway take most of a second to import, and
    # a technician's `device list` or `broker config` needs neither.
    from .integrations import Integrations
    from .reload import VenueWatcher
    from .service import Gateway
    from .web.server import dashboard, parse_listen

    check_broker_ca(args)
    venue = load_venue(args.venue)
    if args.broker_ca is not None:
        # The gateway's MQTT link reads the CA where it reads the password file: the environment.
        os.environ[CA_ENV] = str(args.broker_ca)
    store = Store(args.db)
    try:
        gw = Gateway(venue, store, args.broker)
    except BrokerUrlError:
        store.close()
        raise
    try:
        integrations = Integrations(gw)
    except ValueError as e:
        store.close()
        raise VenueError(f"{args.venue}: {e}") from e
    watcher = VenueWatcher(args.venue, gw.reload, args.watch_interval, site=venue.site, counters=gw.counters)
    broker_log = None
    if args.broker_log is not None:
        from .broker_access import acl_text
        from .broker_log import BrokerLogFollower

        # The ACL is written from the venue (provisioning keeps the file so): the one in force is the venue's.
        broker_log = BrokerLogFollower(args.broker_log, gw.counters, lambda: acl_text(gw.venue))
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
        if broker_log is not None:
            broker_log.start()  # first: a refused login while the gateway connects is counted too
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
        if broker_log is not None:
            broker_log.stop()
        store.close()

    return serve(start, stop)


def listen_address(text: str) -> str:
    """--http: HOST:PORT, checked here so a typo is a usage error before anything starts."""
    if text != "off":
        from .web.server import parse_listen

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

    check_broker_ca(args)
    bridge = SerialBridge(load_venue(args.venue), args.broker, args.port, baud=args.baud, broker_ca=args.broker_ca)
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


def broker_dir(args: argparse.Namespace) -> Path:
    """--out, or broker/ beside the venue file: where `device provision` keeps the logins by default."""
    return Path(args.out) if args.out is not None else args.venue.parent / "broker"


def cmd_broker(args: argparse.Namespace) -> int:
    """`redbutton broker ...`: the venue's mosquitto config, certificates and service passwords.
    Every failure is one line and exit status 2."""
    from .broker_access import BrokerAccessError
    from .broker_config import BrokerConfigError
    from .tls import TlsError

    try:
        for line in BROKER_COMMANDS[args.broker_command](args):
            print(line)
        return 0
    except (BrokerConfigError, TlsError, BrokerAccessError) as e:
        raise VenueError(str(e)) from e
    except OSError as e:
        raise VenueError(f"{e.filename}: {e.strerror}" if e.filename else str(e)) from e


def broker_config(args: argparse.Namespace) -> list[str]:
    from .broker_config import VenueBroker, default_user, report, write_venue_broker

    opts = VenueBroker(load_venue(args.venue), args.venue, broker_dir(args), args.host, args.port, args.bind,
                       args.plain_port, args.demo, args.user or default_user(), args.audit)
    return report(opts, write_venue_broker(opts))


def broker_rotate_cert(args: argparse.Namespace) -> list[str]:
    from .tls import BrokerTls, broker_hosts, issue_broker_cert, not_after

    out = broker_dir(args)
    hosts = args.host or broker_hosts(BrokerTls.in_folder(out))
    files = issue_broker_cert(out, load_venue(args.venue).site, hosts)
    return [f"{files.cert}: a new key and certificate from the same venue CA, for {', '.join(hosts)}, until "
            f"{not_after(files.cert):%Y-%m-%d}; devices need nothing new",
            "next: reload mosquitto (systemctl reload mosquitto): it reads the certificate again"]


def broker_rotate_ca(args: argparse.Namespace) -> list[str]:
    from .tls import BrokerTls, broker_hosts, finish_ca_rotation, rotate_ca

    out = broker_dir(args)
    if args.finish:
        finish_ca_rotation(out)
        return [f"{out}: the broker no longer sends the cross certificate; a device with the old ca.der is refused",
                "next: reload mosquitto (systemctl reload mosquitto)"]
    files = rotate_ca(out, load_venue(args.venue).site, args.host or broker_hosts(BrokerTls.in_folder(out)))
    return [f"{files.ca_der}: a new venue CA; the broker's certificate is issued from it and sent with the cross "
            "certificate, so devices with the old or the new ca.der both get in",
            "next: reload mosquitto; re-provision every device (its network file's broker_ca names the new ca.der); "
            "then `redbutton broker rotate-ca --finish`"]


def broker_rotate_password(args: argparse.Namespace) -> list[str]:
    from .broker_access import SERVICE_USERS, BrokerAccess, new_password, write_private

    if args.user not in SERVICE_USERS:
        raise VenueError(f"{args.user}: only the service users ({', '.join(SERVICE_USERS)}) are rotated here; a "
                         f"device's password is on its board: `redbutton device provision --replace {args.user}`")
    access = BrokerAccess(broker_dir(args))
    password = new_password()
    access.set_password(args.user, password)
    write_private(access.password_file(args.user), (password + "\n").encode())
    return [f"{args.user}: a new broker password, in {access.password_file(args.user)}",
            f"next: reload mosquitto, then restart the {args.user} (it reads the file at start)"]


BROKER_COMMANDS = {"config": broker_config, "rotate-cert": broker_rotate_cert, "rotate-ca": broker_rotate_ca,
                   "rotate-password": broker_rotate_password}


def broker_url(text: str) -> str:
    """--broker: checked here, so a mistyped URL is a usage error (exit 2) before anything starts."""
    try:
        parse_broker_url(text)
    except BrokerUrlError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def add_broker_options(p: argparse.ArgumentParser) -> None:
    """--broker and --broker-ca, the same for the gateway and the bridge."""
    p.add_argument("--broker", default=DEFAULT_BROKER, type=broker_url,
                   help=f"broker URL: mqtt://[USER@]HOST:PORT, or mqtts://... for TLS (default {DEFAULT_BROKER}); "
                        "the password from $REDBUTTON_BROKER_PASSWORD_FILE or $REDBUTTON_BROKER_PASSWORD")
    p.add_argument("--broker-ca", type=Path, metavar="PEM",
                   help=f"for mqtts://: the CA the broker's certificate must chain to, the venue CA (ca.pem in the "
                        f"broker's folder); default ${CA_ENV}, else the system's CAs")


def check_broker_ca(args: argparse.Namespace) -> None:
    """A CA given for a plain URL would give a false sense of TLS: say so instead of ignoring it."""
    if args.broker_ca is not None and not uses_tls(args.broker):
        raise BrokerUrlError("--broker-ca is for a TLS broker: give --broker as mqtts://HOST:PORT")


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
    add_broker_options(g)
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
    g.add_argument("--broker-log", type=Path, metavar="PATH",
                   help="mosquitto's log file (log_dest file): logins it refused, publishes its ACL denied and TLS "
                        "failures become log lines and counters (/metrics); see docs/security.md")
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
    add_broker_options(br)
    br.add_argument("--port", required=True, help="the base station's serial port: a device path or a pyserial URL")
    br.add_argument("--baud", type=int, default=115200, help="baud rate for a USB-UART base station (default 115200)")
    br.set_defaults(func=cmd_bridge)

    add_broker_commands(sub)

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


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {text!r}")
    return value


def add_broker_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("broker", help="the venue's mosquitto: config, certificates, service passwords",
                       description="The venue's broker, made from the venue file (docs/security.md).")
    commands = b.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text)
        p.add_argument("--venue", required=True, type=Path)
        p.add_argument("--out", type=Path, metavar="DIR",
                       help="the broker's folder (default: broker/ beside the venue file, as for device provision)")
        p.set_defaults(func=cmd_broker)
        return p

    c = command("config", "write mosquitto.conf, the logins, the ACL and the venue CA; keeps what exists")
    c.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                   help="a name or address devices reach the broker by, for its certificate (repeat for each); "
                        "needed when the certificate is made")
    c.add_argument("--port", type=port_number, default=8883, help="the TLS listener for devices (default 8883)")
    c.add_argument("--bind", metavar="ADDRESS", help="the TLS listener's address (default: every interface)")
    c.add_argument("--plain-port", type=port_number, metavar="PORT",
                   help="also a plain listener on 127.0.0.1, for this host's gateway and bridge (e.g. 1883)")
    c.add_argument("--user", help="the account mosquitto runs as (default: yours; as root, mosquitto)")
    c.add_argument("--demo", action="store_true",
                   help="let anonymous clients in: for a demo only, never on a venue's network")
    c.add_argument("--audit", action=argparse.BooleanOptionalAction, default=True,
                   help="log at debug level, the only one where mosquitto names denied publishes (default on)")

    r = command("rotate-cert", "a new broker key and certificate from the same venue CA (devices need nothing)")
    r.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                   help="the names and addresses for the certificate (default: those of the current one)")

    a = command("rotate-ca", "a new venue CA, cross-signed by the old one so every device keeps connecting")
    a.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                   help="the names and addresses for the certificate (default: those of the current one)")
    a.add_argument("--finish", action="store_true",
                   help="every device has the new ca.der: stop trusting the old CA")

    w = command("rotate-password", "a new broker password for the gateway or the bridge")
    w.add_argument("user", help="gateway or bridge")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.log_format)
    as_json = args.log_format == JSON  # then stderr carries nothing but JSON lines, errors included
    try:
        return int(args.func(args))
    except (VenueError, StoreError, rbproto.ProtocolError, ConnectionError, BrokerUrlError) as e:
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
