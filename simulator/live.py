"""`redbutton live`: a full-screen view of a simulated venue that a person drives from the keyboard.

Buttons' LEDs, pagers' OLED screens, open incidents and the devices' log tail are drawn about ten
times a second straight from the in-process devices (no broker round trip), so what a customer and
a waiter would see is on one screen while you press tables and answer pagers. Drawing is a pure
function of a Snapshot, so a test renders a frame headless and reads it as text."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gateway.cli import sigterm_as_interrupt
from gateway.service import ZONE_PREFIX
from gateway.store import Incident, Store
from gateway.venue import Venue, load_venue

from .console import HELP, run_command
from .demo import DEFAULT_VENUE
from .venue_sim import SimulatedVenue

REFRESH_S = 0.1
LOG_TAIL = 12
MESSAGES = 6
INCIDENTS_EVERY_S = 0.5  # the store is shared with the gateway under one lock: read it less often
QUIT = ("quit", "exit", "q")
SCREEN_COLS = 16  # the pager's OLED: 128 px of an 8x8 font
KEYS_HELP = ("1-9 press a table · T12 press · cancel T12 · ack ana · decline ana · next ana · "
             "resolve ana apology · duty ana · quit")


@dataclass(frozen=True)
class ButtonView:
    key: str  # the number key that presses it, "" past the ninth table
    table: str
    zone: str
    device: str
    state: str
    colour: tuple[int, int, int]
    asleep: bool


@dataclass(frozen=True)
class PagerView:
    staff: str
    device: str
    screen: tuple[str, ...]
    buzzing: bool
    on_duty: bool | None  # None: never toggled, which the pager counts as on duty


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    paged: tuple[str, ...]  # staff paged and not answered yet: who the customer is waiting for


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame shows, copied out of the running devices and the store at one moment."""

    title: str
    where: str
    now: float
    buttons: tuple[ButtonView, ...]
    pagers: tuple[PagerView, ...]
    incidents: tuple[IncidentView, ...] | None  # None: no store to read (the gateway runs elsewhere)
    log: tuple[tuple[float, str, str], ...]  # (time, device, line), oldest first
    messages: tuple[str, ...]
    prompt: str


def table_keys(venue: Venue) -> dict[str, str]:
    """Number key -> table id, in the venue file's order; only nine keys exist."""
    return {str(i): t for i, t in enumerate(list(venue.tables)[:9], start=1)}


def open_incidents(store: Store, venue: Venue) -> list[IncidentView]:
    """The active incident of every table and every zone alert, oldest first, with who is paged."""
    found = (store.active_incident(t) for t in [*venue.tables, *(ZONE_PREFIX + z for z in venue.zones)])
    return [IncidentView(i, tuple(s for s, _pager, _lvl in store.outstanding_pages(i.id)))
            for i in sorted((i for i in found if i is not None), key=lambda i: i.id)]


class DeviceLog:
    """The merged tail of every device's log: each frame takes only the lines new since the last."""

    def __init__(self, sim: SimulatedVenue, keep: int = 200) -> None:
        self.sim = sim
        self.tail: deque[tuple[float, str, str]] = deque(maxlen=keep)
        self._seen = {d.id: 0 for d in sim.devices}

    def collect(self) -> tuple[tuple[float, str, str], ...]:
        new: list[tuple[float, str, str]] = []
        for d in self.sim.devices:
            lines = d.lines[self._seen[d.id]:]  # appended under the device's lock; a slice is a copy
            self._seen[d.id] += len(lines)
            new.extend((t, d.id, line) for t, line in lines)
        self.tail.extend(sorted(new))
        return tuple(self.tail)


class LiveConsole:
    """The command side of the view: what a typed line does, and what the view shows about it.

    `handle` is the one place a line is acted on (the keyboard loop runs it on a worker thread, since
    a press holds the button for 120 ms and a resolve walks the pick-list); the verbs are console.py's."""

    def __init__(self, sim: SimulatedVenue, store: Store | None, where: str = "") -> None:
        self.sim = sim
        self.store = store
        self.where = where
        self.keys = table_keys(sim.venue)
        self.log = DeviceLog(sim)
        self.messages: deque[str] = deque(maxlen=MESSAGES)
        self._said = threading.Lock()  # the worker and log records add messages while a frame copies them
        self.prompt = ""
        self._incidents: tuple[IncidentView, ...] | None = None
        self._incidents_at = 0.0

    def handle(self, line: str) -> bool:
        """Act on one line; False when it asks to quit."""
        words = line.split()
        if not words:
            return True
        if words[0] in QUIT:
            return False
        if len(words) == 1 and words[0] in self.keys:
            words = [self.keys[words[0]]]
        out = run_command(self.sim, " ".join(words))
        if out == HELP:
            out = f"? {line.strip()}: {KEYS_HELP}"
        self.note(*out.splitlines())
        self._incidents_at = 0.0  # the next frame reads the store again: the command may have changed it
        return True

    def note(self, *lines: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._said:
            self.messages.extend(f"{stamp} {line}" for line in lines)

    def incidents(self, now: float) -> tuple[IncidentView, ...] | None:
        if self.store is None:
            return None
        if self._incidents is None or now - self._incidents_at >= INCIDENTS_EVERY_S:
            self._incidents = tuple(open_incidents(self.store, self.sim.venue))
            self._incidents_at = now
        return self._incidents

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        venue = self.sim.venue
        key_of = {t: k for k, t in self.keys.items()}
        buttons = []
        for t in venue.tables.values():
            b = self.sim.button_at(t.id)
            buttons.append(ButtonView(key_of.get(t.id, ""), t.id, t.zone, b.id, b.state or "off",
                                      b.colour if b.hw is not None else (0, 0, 0), b.asleep))
        pagers = []
        for s in venue.staff.values():
            p = self.sim.pager_of(s.id)
            app = p.app
            playing = app is not None and bool(app.buzzer.playing)
            pagers.append(PagerView(s.id, p.id, tuple(p.screen), p.buzzing or playing,
                                    None if app is None else app.on_duty))
        with self._said:
            said = tuple(self.messages)
        return Snapshot(f"Red Button live · {venue.name} (site {venue.site})", self.where, now, tuple(buttons),
                        tuple(pagers), self.incidents(now), self.log.collect(), said, self.prompt)


def age(seconds: float) -> str:
    """0:42, 12:05, 1:02:03: the same short form the pager shows."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _led(colour: tuple[int, int, int]) -> Text:
    if colour == (0, 0, 0):
        return Text("○", style="grey50")
    r, g, b = colour
    return Text("●", style=f"rgb({r},{g},{b})")


def _buttons(snap: Snapshot) -> RenderableType:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("key", "table", "zone", "button", "LED", "state"):
        t.add_column(col, no_wrap=True)
    for b in snap.buttons:
        state = b.state + (" (asleep)" if b.asleep else "")
        t.add_row(b.key, Text(b.table, style="bold"), b.zone, b.device, _led(b.colour), state)
    return Panel(t, title="tables", border_style="cyan")


def _incidents(snap: Snapshot) -> RenderableType:
    if snap.incidents is None:
        return Panel(Text("no store here: the gateway runs elsewhere (give --db to read its incidents)",
                          style="grey50"), title="open incidents", border_style="magenta")
    t = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    for col in ("#", "where", "kind", "state", "who", "lvl", "age"):
        t.add_column(col, no_wrap=True)
    for view in snap.incidents:
        i = view.incident
        state_style = {"acknowledged": "green", "unreached": "bold red"}.get(i.state, "yellow")
        who = i.responder or ",".join(view.paged) or "-"
        t.add_row(str(i.id), i.table_id, i.kind, Text(i.state, style=state_style), who,
                  str(i.level), age(snap.now - i.received_at))
    body: RenderableType = t if snap.incidents else Text("none open", style="grey50")
    return Panel(body, title="open incidents", border_style="magenta")


def _pager(p: PagerView) -> RenderableType:
    """The pager as worn: a 16-column screen in a box, BUZZ under it while the motor runs."""
    rows = [f"{row:<{SCREEN_COLS}}"[:SCREEN_COLS] for row in p.screen] or [" " * SCREEN_COLS]
    screen = Text("\n".join(rows), style="bold bright_white on grey11")
    duty = "off duty" if p.on_duty is False else "on duty"
    sub = Text("BUZZ", style="bold white on red") if p.buzzing else Text(duty, style="grey50")
    return Panel(screen, title=f"{p.staff} · {p.device}", subtitle=sub, box=box.ROUNDED,
                 border_style="red" if p.buzzing else "white", width=SCREEN_COLS + 4)


def _log(snap: Snapshot) -> RenderableType:
    lines = Text()
    for t, dev, line in snap.log[-LOG_TAIL:]:
        ms = int(t * 1000) % 1000
        lines.append(f"{time.strftime('%H:%M:%S', time.localtime(t))}.{ms:03d} ", style="grey50")
        lines.append(f"{dev:<9} ", style="cyan")
        lines.append(line + "\n")
    return Panel(lines, title="device log", border_style="blue")


def render(snap: Snapshot) -> RenderableType:
    """One frame, from the snapshot alone (no device or store is touched here)."""
    head = Text(snap.title, style="bold")
    head.append(f"   {snap.where}   {time.strftime('%H:%M:%S', time.localtime(snap.now))}", style="grey50")
    top = Table.grid(expand=True, padding=(0, 1))
    top.add_column()
    top.add_column(ratio=1)
    top.add_row(_buttons(snap), _incidents(snap))
    pagers = Table.grid(padding=(0, 1))
    for _ in snap.pagers:
        pagers.add_column()
    pagers.add_row(*(_pager(p) for p in snap.pagers))
    said = Text("\n".join(snap.messages) or "type a command below", style="grey70")
    prompt = Text("> ", style="bold red")
    prompt.append(snap.prompt + "▏")
    return Group(head, top, Panel(pagers, title="pagers", border_style="white"), _log(snap),
                 Panel(said, title="you", border_style="grey50"), prompt, Text(KEYS_HELP, style="grey50"))


def frame_text(snap: Snapshot, width: int = 140) -> str:
    """A frame as plain text, as a terminal of `width` columns would show it (for tests and logs)."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(render(snap))
    return console.export_text()


class _UiLog(logging.Handler):
    """Log records go to the view's message panel while it owns the screen (stderr would tear it)."""

    def __init__(self, ui: LiveConsole) -> None:
        super().__init__(logging.WARNING)
        self.ui = ui

    def emit(self, record: logging.LogRecord) -> None:
        self.ui.note(f"{record.levelname.lower()}: {record.getMessage()}")


@contextlib.contextmanager
def _logs_to(ui: LiveConsole) -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [_UiLog(ui)]
    try:
        yield
    finally:
        root.handlers = saved


@contextlib.contextmanager
def _keyboard() -> Iterator[Callable[[float], str | None]]:
    """Keys one at a time without echo (Ctrl-C still interrupts); -> read(timeout): a key, "" on
    timeout, None at end of input. Without a terminal, whole lines are read as if typed."""
    if not sys.stdin.isatty():
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in sys.stdin:
                lines.put(line.rstrip("\n") + "\r")
            lines.put(None)

        threading.Thread(target=pump, name="live-stdin", daemon=True).start()

        def read_line(timeout: float) -> str | None:
            try:
                return lines.get(timeout=timeout)
            except queue.Empty:
                return ""

        yield read_line
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read_key(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return ""
        data = os.read(fd, 64).decode(errors="ignore")
        return data or None

    try:
        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def type_keys(ui: LiveConsole, keys: str, submit: Callable[[str], None]) -> bool:
    """Edit the prompt with typed keys; Enter submits the line, a number key on an empty line presses
    that table at once. False once `quit` is entered."""
    if keys.startswith("\x1b"):
        return True  # arrow and function keys: not used here
    for ch in keys:
        if ch in "\r\n":
            line, ui.prompt = ui.prompt.strip(), ""
            if line in QUIT:
                return False
            if line:
                submit(line)
        elif ch in "\x7f\b":
            ui.prompt = ui.prompt[:-1]
        elif ch == "\x15":  # Ctrl-U
            ui.prompt = ""
        elif ch.isdigit() and not ui.prompt and ch in ui.keys:
            submit(ch)
        elif ch.isprintable():
            ui.prompt += ch
    return True


def run_view(ui: LiveConsole) -> None:
    """Draw ~10 frames a second until `quit`, Ctrl-C or SIGTERM; commands run one at a time on a
    worker thread, so a slow one (resolve walks a pick-list) never freezes the screen."""
    todo: queue.Queue[str | None] = queue.Queue()

    def worker() -> None:
        while (line := todo.get()) is not None:
            try:
                ui.handle(line)
            except Exception as e:  # a command must never take the view down
                ui.note(f"{line}: {type(e).__name__}: {e}")

    runner = threading.Thread(target=worker, name="live-commands", daemon=True)
    runner.start()
    try:
        with _keyboard() as read, _logs_to(ui), \
                Live(render(ui.snapshot()), screen=True, auto_refresh=False, redirect_stderr=False) as live:
            while True:
                keys = read(REFRESH_S)
                if keys is None:  # end of piped input: keep showing until Ctrl-C
                    read = _forever
                elif keys and not type_keys(ui, keys, todo.put):
                    return
                live.update(render(ui.snapshot()), refresh=True)
    finally:
        todo.put(None)
        runner.join(2)
        if not sys.stdout.isatty():  # no screen to draw on: leave the last frame in the output instead
            print(frame_text(ui.snapshot()), flush=True)


def _forever(timeout: float) -> str:
    time.sleep(timeout)
    return ""


def run_live(venue_path: Path, broker_url: str | None, db: str | None, verbose: bool,
             out: Callable[[str], None] = print) -> int:
    from .stack import simulated_venue  # here: the gateway and its web framework, for this command only

    venue = load_venue(venue_path)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    sigterm_as_interrupt()
    try:
        with simulated_venue(venue, broker_url, db, out) as (sim, store, where):
            run_view(LiveConsole(sim, store, where))
    except KeyboardInterrupt:
        pass
    out("stopped: " + ("devices" if broker_url else "devices, gateway, broker"))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("live", help="a full-screen live view of a simulated venue you drive from the keyboard")
    p.add_argument("--venue", type=Path, default=DEFAULT_VENUE)
    p.add_argument("--broker", default=None,
                   help="attach the simulated devices to this broker (a gateway must run there); "
                        "default: start mosquitto and a gateway in this process")
    p.add_argument("--db", default=None, metavar="PATH_OR_URL",
                   help="the store to read open incidents from (with --broker: the gateway's own)")
    p.set_defaults(func=lambda a: run_live(a.venue, a.broker, a.db, a.verbose))


__all__ = ["LiveConsole", "Snapshot", "frame_text", "register", "render", "run_live", "type_keys"]
