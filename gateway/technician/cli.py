"""`redbutton device ...`: the technician's commands for ESP32 boards on the bench.

Each subcommand is one `add_<name>(commands)` function listed in `register`; `command()` gives it
the shared error handling, so a failure is one line on stderr and an exit status, never a
traceback. This module is imported for every `redbutton` invocation: the work is imported lazily."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import EXIT_INTERRUPTED, EXIT_NO_ANSWER, EXIT_OK, EXIT_USAGE, DeviceError

Run = Callable[[argparse.Namespace], int]

EXIT_STATUS = ("exit status: 0 done; 1 no board found or answering (or --until timed out); "
               "2 a problem on this computer (options, files, permission, a port in use); 130 interrupted (Ctrl-C)")


def register(sub: Any) -> None:
    device = sub.add_parser("device", help="list, flash and watch ESP32 boards on USB",
                            description="Technician commands for the ESP32 boards on this computer's USB ports.",
                            epilog=EXIT_STATUS)
    commands = device.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    for add in (add_list, add_flash, add_provision, add_monitor, add_test):
        add(commands)


def command(commands: Any, name: str, run: Run, text: str) -> argparse.ArgumentParser:
    """A `device` subcommand whose errors become `redbutton: <message>` and an exit status."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text, epilog=EXIT_STATUS)
    parser.set_defaults(func=guarded(run))
    return parser


def guarded(run: Run) -> Run:
    def wrapper(args: argparse.Namespace) -> int:
        import serial

        try:
            return run(args)
        except DeviceError as e:
            return fail(args, str(e), e.exit_code)
        except KeyboardInterrupt:
            return fail(args, "interrupted", EXIT_INTERRUPTED)
        except BrokenPipeError:  # `redbutton device monitor ... | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except serial.SerialException as e:
            return fail(args, f"serial port: {e}", EXIT_NO_ANSWER)
        except OSError as e:
            return fail(args, f"{e.filename}: {e.strerror}" if e.filename else str(e), EXIT_USAGE)

    return wrapper


def fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "log_format", "text") == "json":
        logging.getLogger("redbutton").error("%s", message)
    else:
        print(f"redbutton: {message}", file=sys.stderr)
    return code


def positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    return parse


def pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"not a regular expression: {e}") from None


# --- list ----------------------------------------------------------------------------------------

def add_list(commands: Any) -> None:
    p = command(commands, "list", run_list, "serial ports that look like ESP32 boards (by USB VID:PID)")
    p.add_argument("--all", action="store_true", help="show every serial port, not only known ESP32 USB bridges")


def run_list(args: argparse.Namespace) -> int:
    from .ports import group_hint, serial_ports

    ports = serial_ports(everything=args.all)
    if not ports:
        raise DeviceError(
            ("no serial ports at all" if args.all else "no ESP32 board found on USB")
            + ". Check that the board is plugged in with a USB cable that carries data (many charging cables "
            "do not) and, in a VM or container, that the USB device is passed through; "
            + ("`dmesg` shows what the kernel saw" if args.all else "`redbutton device list --all` shows every port"),
            EXIT_NO_ANSWER)
    rows = [("PORT", "PROBABLY", "VID:PID", "SERIAL", "DESCRIPTION")]
    rows += [(p.device, p.kind or "-", p.usb_id, p.serial_number, p.description) for p in ports]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]).rstrip())
    for p in ports:
        if os.path.exists(p.device) and not os.access(p.device, os.R_OK | os.W_OK):
            print(f"note: {p.device} cannot be opened by you: {group_hint(p.device)}", file=sys.stderr)
    return EXIT_OK


# --- flash ---------------------------------------------------------------------------------------

def add_flash(commands: Any) -> None:
    from .flash import CACHE_ENV, CHIPS, MICROPYTHON_VERSION, ROLES

    p = command(commands, "flash", run_flash,
                "write MicroPython (esptool), then copy the role's firmware and packages (mpremote)")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyACM0 (see `device list`)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--firmware", type=Path, metavar="MICROPYTHON.bin",
                   help=f"the MicroPython image (default: the v{MICROPYTHON_VERSION} ESP32_GENERIC_C3 or _S3 image "
                        f"from ${CACHE_ENV}/micropython or ~/.cache/redbutton/micropython)")
    p.add_argument("--chip", choices=(*CHIPS, "auto"),
                   help="the board's chip (default: from the role's pin map; auto: esptool detects it)")
    p.add_argument("--baud", type=positive(int), default=460800, help="esptool's baud rate (default 460800)")
    p.add_argument("--skip-micropython", action="store_true",
                   help="keep the MicroPython on the board; only copy the firmware (a board running the app: "
                        "hold its main key at power-up for safe mode first)")
    p.add_argument("--skip-packages", action="store_true",
                   help="do not install the micropython-lib packages (mip needs internet on this computer)")
    p.add_argument("--timeout", type=positive(float), default=20.0, metavar="SECONDS",
                   help="how long MicroPython may take to answer after the reset (default 20)")


def run_flash(args: argparse.Namespace) -> int:
    from .flash import FlashOptions, flash

    opts = FlashOptions(args.port, args.role, args.firmware, args.chip, args.baud, args.skip_micropython,
                        args.skip_packages, args.timeout)
    try:
        flash(opts)
    except KeyboardInterrupt:
        raise DeviceError("interrupted: the board may be half-written; run the same command again",
                          EXIT_INTERRUPTED) from None
    print(f"flashed {args.role} on {args.port}: next `redbutton device provision --port {args.port} "
          f"--role {args.role} ...`")
    return EXIT_OK


# --- provision -----------------------------------------------------------------------------------

def add_provision(commands: Any) -> None:
    from .provision import ROLES

    p = command(commands, "provision", run_provision,
                "give a board its id, key and network, and register it in the venue file and the broker")
    p.add_argument("--role", required=True, choices=ROLES)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", help="write /config.json onto the board on this serial port (with mpremote)")
    target.add_argument("--out", type=Path, metavar="DIR",
                        help="write the board's files into this folder instead (a simulated board's flash)")
    p.add_argument("--venue", type=Path, help="the venue file to register the device in (not for a base station)")
    p.add_argument("--network", type=Path, metavar="FILE",
                   help="the venue's WiFi and broker, TOML (docs/technician.md, \"The network file\")")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--id", dest="device_id", help="the device id (default: btn-/pgr- and six random hex digits)")
    who.add_argument("--replace", metavar="ID",
                     help="give this existing device's id to the board, with a new key and broker password "
                          "(a swapped, lost or stolen device; a leaked key)")
    p.add_argument("--table", help="button: the table it goes on (a new table needs --zone)")
    p.add_argument("--zone", help="button: the zone of a table that --table creates")
    p.add_argument("--staff", help="pager: the staff member who wears it")
    p.add_argument("--ip", type=ip_address, help="a static address for the device (a wake then skips DHCP); "
                                                 "the network file gives netmask, gateway_ip and dns")
    p.add_argument("--broker-dir", type=Path, metavar="DIR",
                   help="the broker's passwd and acl files (default: broker/ beside the venue file)")
    p.add_argument("--broker-pid", type=int, metavar="PID",
                   help="send mosquitto SIGHUP afterwards, so it reads its files again")
    p.add_argument("--timeout", type=positive(float), default=20.0, metavar="SECONDS",
                   help="how long the board may take to answer (default 20)")


def run_provision(args: argparse.Namespace) -> int:
    from .provision import BASE, Network, Request, provision, reload_broker, write_to_board, write_to_folder

    if args.role != BASE and args.venue is None:
        raise DeviceError("--venue is needed: the device is registered in the venue file")
    venue = load_venue_for(args.venue) if args.venue is not None else None
    network = Network.load(args.network) if args.network is not None else None
    broker_dir = args.broker_dir or (args.venue.parent / "broker" if args.venue is not None else Path("broker"))
    req = Request(args.venue, args.role, network, broker_dir, args.device_id, args.replace, args.table, args.zone,
                  args.staff, args.ip)
    write = write_to_folder(args.out) if args.out is not None else write_to_board(args.port, args.timeout)
    done = provision(req, venue, write)
    where = str(args.out) if args.out is not None else args.port
    if not done.registered:
        print(f"base station on {where}: radio channel {done.config['espnow'].get('channel', 1)} written")
        return EXIT_OK
    place = (f" on table {args.table}" if args.table else f" worn by {args.staff}" if args.staff
             else " (on no table or staff member yet)")
    print(f"{done.device_id}: a {args.role}{place}; key and network written to {where}")
    print(f"  venue: {args.venue} {'given a new key' if args.replace else 'registered'} "
          f"(a running gateway reloads it by itself)")
    print(f"  broker: {'login and ' if done.config.get('mqtt_user') else ''}ACL in {broker_dir}")
    for retired in done.retired:
        print(f"  retired {retired}: no table or staff member uses it any more; its login is gone")
    if args.broker_pid is not None:
        reload_broker(args.broker_pid)
        print(f"  mosquitto (pid {args.broker_pid}) told to read its files again")
    else:
        print("  next: reload mosquitto so it reads its files again (systemctl reload mosquitto, or --broker-pid)")
    return EXIT_OK


def ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def load_venue_for(path: Path) -> Any:
    from ..venue import VenueError, load_venue

    try:
        return load_venue(path)
    except VenueError as e:
        raise DeviceError(str(e)) from None


# --- monitor -------------------------------------------------------------------------------------

def add_monitor(commands: Any) -> None:
    p = command(commands, "monitor", run_monitor,
                "print a board's serial log with local timestamps, optionally until a line matches")
    p.add_argument("--port", required=True, help="the board's serial port (a device path or a pyserial URL)")
    p.add_argument("--baud", type=positive(int), default=115200, help="baud rate (default 115200)")
    p.add_argument("--until", type=pattern, metavar="REGEX",
                   help="exit 0 once a line matches (re.search), e.g. '^READY'; exit 1 if --timeout passes first")
    p.add_argument("--timeout", type=positive(float), metavar="SECONDS",
                   help="stop after this long (default: run until Ctrl-C)")
    p.add_argument("--reset", action="store_true", help="reset the board first (EN through RTS, as esptool does)")


def run_monitor(args: argparse.Namespace) -> int:
    from .monitor import monitor

    return monitor(args.port, args.baud, args.until, args.timeout, args.reset)


# --- test ----------------------------------------------------------------------------------------

def add_test(commands: Any) -> None:
    p = command(commands, "test", run_test,
                "run the hardware-in-the-loop tests (tests/hil) on the board at --port, for its role")
    p.add_argument("--port", required=True, help="the board's serial port")
    p.add_argument("--venue", required=True, type=Path, help="the venue file the board is provisioned in")
    p.add_argument("--device", required=True, help="the board's device id")
    p.add_argument("--broker", required=True,
                   help="the broker the board uses, as a user that reads its events and sends it commands: "
                        "mqtt://gateway@HOST:PORT, password from $REDBUTTON_BROKER_PASSWORD(_FILE)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help="after --, passed to pytest as they are (-x, -k wake, --hil-wait 120)")


def run_test(args: argparse.Namespace) -> int:
    from .hil import run

    extra = [a for a in args.pytest_args if a != "--"]
    code = run(args.port, args.venue, args.device, args.broker, extra)
    if code != EXIT_OK:
        return fail(args, f"the hardware tests on {args.port} did not all pass (pytest exit {code})", EXIT_NO_ANSWER)
    return EXIT_OK
