"""Hardware-in-the-loop tests: the same test files against a simulated board or a real one.

Simulated (the default, part of `make test`): a real mosquitto, a real gateway on the demo venue
(its own site id) and, per role, the firmware on a simulated board behind a serial console
(simulator/serial_console.py). pytest-embedded's serial service opens that console's pty as it
opens a board's port: this conftest hands it over as the `port` fixture, with the `serial`
service, for every test marked with a role.

Real: given `--port`, the board there, the venue file, the device id and the broker the board
uses (docs/simulator.md has the command line). Only the tests of the device's role are kept.
The hands are then the technician's, told on the terminal what to do, and a reset goes through
the serial line."""

from __future__ import annotations

import contextlib
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import VenueError, load_venue, parse_venue

from .rig import Board, BrokerWatch, ConsoleHands, HumanHands

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("button", "pager")
SIM_DEVICES = {"button": "btn-t12", "pager": "pgr-ana"}  # T12's button, and Ana who answers for T12
SIM_SITE = "hil-sim"
SIM_AWAKE_MS = 1000  # a button sleeps 1 s after its last activity instead of 8
REAL_BOOT_S = 30.0  # reset, WiFi join (DHCP) and broker connection of a board
REAL_KEY = pytest.StashKey[Board]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("redbutton-hil", "hardware-in-the-loop tests against a real board (with --port)")
    g.addoption("--hil-venue", type=Path, help="the venue file the board is provisioned from")
    g.addoption("--hil-device", help="the board's device id in the venue file")
    g.addoption("--hil-broker", help="the broker the board uses, as the tests reach it, with a user allowed to "
                                     "read its events and send it commands: mqtt://gateway@HOST:1883 (password in "
                                     "$REDBUTTON_BROKER_PASSWORD or the file $REDBUTTON_BROKER_PASSWORD_FILE names)")
    g.addoption("--hil-ca", help="the venue CA (PEM) for an mqtts:// broker")
    g.addoption("--hil-hands", choices=("human", "console"), default="human",
                help="who acts on the board: the technician (default), or commands typed on the console of a "
                     "simulated board (`redbutton sim device`)")
    g.addoption("--hil-wait", type=float, default=60.0, metavar="SECONDS",
                help="how long the technician has for each action (default 60)")
    g.addoption("--hil-min-free", type=int, default=32768, metavar="BYTES",
                help="the least free heap the firmware may report at READY (default 32768)")


def pytest_configure(config: pytest.Config) -> None:
    for role in ROLES:
        config.addinivalue_line("markers", f"{role}: a hardware-in-the-loop test of a {role}")
    port = config.getoption("port", None)
    if port:
        config.stash[REAL_KEY] = real_board(config, str(port))


def real_board(config: pytest.Config, port: str) -> Board:
    """The board named on the command line, checked against the venue file before anything runs."""
    missing = [o for o in ("--hil-venue", "--hil-device", "--hil-broker")
               if not config.getoption(o.lstrip("-").replace("-", "_"))]
    if missing:
        raise pytest.UsageError(f"a board on --port also needs {', '.join(missing)}")
    try:
        venue = load_venue(config.getoption("hil_venue"))
    except (OSError, VenueError) as e:
        raise pytest.UsageError(f"--hil-venue: {e}") from e
    device = config.getoption("hil_device")
    dev = venue.devices.get(device)
    if dev is None or dev.role not in ROLES:
        raise pytest.UsageError(f"--hil-device: {device!r} is not a button or pager of {venue.site}")
    return Board(dev.role, device, venue.site, dev.key, config.getoption("hil_broker"), port, REAL_BOOT_S,
                 config.getoption("hil_min_free"))


def role_of(node: pytest.Item) -> str | None:
    roles = [r for r in ROLES if node.get_closest_marker(r)]
    if len(roles) > 1:
        raise pytest.UsageError(f"{node.nodeid} is marked for {' and '.join(roles)}: one board per test")
    return roles[0] if roles else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a real board, only the tests of its role (the runner also selects them with -m)."""
    real = config.stash.get(REAL_KEY, None)
    if real is None:
        return
    here = Path(__file__).parent
    kept = [i for i in items if here not in i.path.parents or role_of(i) == real.role]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="package")
def boards(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Board]]:
    """role -> the board its tests run on: the real one, or a simulated one per role, each behind a
    serial console, with a broker and a gateway, for as long as this folder's tests run."""
    real = request.config.stash.get(REAL_KEY, None)
    if real is not None:
        yield {real.role: real}
        return
    from simulator.devices import VirtualButton, VirtualPager, device_config
    from simulator.serial_console import SerialConsole

    broker = request.getfixturevalue("broker")
    doc = tomllib.loads((ROOT / "examples" / "demo-venue.toml").read_text())
    doc["site"] = SIM_SITE
    venue = parse_venue(doc)
    work = tmp_path_factory.mktemp("hil")
    with contextlib.ExitStack() as stack:
        store = Store(work / "incidents.db")
        stack.callback(store.close)
        stack.callback(Gateway(venue, store, broker.url).start().stop)
        found: dict[str, Board] = {}
        for role, device in SIM_DEVICES.items():
            kind = VirtualButton if role == "button" else VirtualPager
            dev = kind(device_config(venue, device, broker.url), work / "flash")
            dev.awake_ms = SIM_AWAKE_MS
            console = SerialConsole(dev)
            stack.callback(console.stop)
            console.start()
            # The host has no MicroPython heap: the simulated firmware reports free=0 (docs/firmware.md
            # has the heap measured inside real MicroPython), so the floor here is 0.
            found[role] = Board(role, device, venue.site, venue.devices[device].key, broker.url, console.port,
                                boot_s=10.0, min_free=0)
        yield found


@pytest.fixture
def board(request: pytest.FixtureRequest, boards: dict[str, Board]) -> Board:
    role = role_of(request.node)
    if role is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses a board but has no role marker ({', '.join(ROLES)})")
    return boards[role]


# pytest-embedded's own fixtures, given values here: a test with a role gets its board's port and
# the serial service; any other test gets what the command line says.

@pytest.fixture
def port(request: pytest.FixtureRequest) -> str | None:
    if role_of(request.node) is None:
        given = request.config.getoption("port", None)
        return str(given) if given else None
    return str(request.getfixturevalue("board").port)


@pytest.fixture
def embedded_services(request: pytest.FixtureRequest) -> str | None:
    if role_of(request.node) is None:
        return request.config.getoption("embedded_services", None) or None
    return "serial"


@pytest.fixture(scope="session")
def session_root_logdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The board logs pytest-embedded keeps, under pytest's own temporary folder (kept for the
    last three runs) rather than piling up in /tmp."""
    return str(tmp_path_factory.getbasetemp())


@pytest.fixture
def hands(request: pytest.FixtureRequest, dut: object, board: Board) -> ConsoleHands | HumanHands:
    real = request.config.stash.get(REAL_KEY, None) is not None
    if not real or request.config.getoption("hil_hands") == "console":
        return ConsoleHands(dut)
    return HumanHands(dut, board.role, technician_prompt(request.config), request.config.getoption("hil_wait"))


def technician_prompt(config: pytest.Config) -> Callable[[str], None]:
    """Print on the terminal even while pytest captures the test's output."""
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def say(text: str) -> None:
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(f">>> {text}", yellow=True, bold=True)
            else:
                print(f">>> {text}", file=sys.__stderr__, flush=True)

    return say


@pytest.fixture
def broker_watch(request: pytest.FixtureRequest, board: Board) -> Iterator[BrokerWatch]:
    watch = BrokerWatch(board, request.config.getoption("hil_ca", None))
    yield watch
    watch.close()
