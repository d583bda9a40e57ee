"""Virtual devices: the firmware's own board wiring and apps, on host shims, each on its own thread.

A VirtualButton is pressed by driving its button pin, as a finger would; a VirtualPager is read
from its OLED shim and vibration motor pin. Every firmware log line is kept with its time, so a
test or the demo can wait for a marker such as `ALERT inc=1 shown`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.venue import Venue

from . import shims
from .shims import espnow, framebuf, machine

shims.install()

import board  # noqa: E402  (firmware modules: importable only once the shims are installed)
import button_app  # noqa: E402
import clock  # noqa: E402
import pager_app  # noqa: E402
import pager_screen  # noqa: E402
import runner  # noqa: E402

from .hostlink import HostLink  # noqa: E402
from .logbook import LogBook  # noqa: E402

PIN_MAPS = Path(__file__).resolve().parents[1] / "hardware" / "pins"
LOOP_MS = 2  # the board loops every 10 ms; the simulator is quicker so latency figures stay honest


def pinmap(role: str) -> dict[str, Any]:
    """The pin map a device of `role` is flashed with (hardware/pins/<role>.json)."""
    return dict(board.load_pins(str(PIN_MAPS / f"{role}.json")))


def device_config(venue: Venue, device_id: str, broker_url: str) -> dict[str, Any]:
    """The config.json a provisioned device would carry, built from the venue file."""
    return {"site": venue.site, "device": device_id, "key": venue.devices[device_id].key.hex(),
            "role": venue.devices[device_id].role, "broker_url": broker_url}


def broker_url_of(cfg: dict[str, Any]) -> str:
    """The simulator's `broker_url`, or the URL a provisioned config.json names the way a board reads
    it (`broker_host`, `broker_port`, `broker_tls`), so a board's own config runs unchanged."""
    if "broker_url" in cfg:
        return str(cfg["broker_url"])
    tls = bool(cfg.get("broker_tls"))
    port = cfg.get("broker_port", 8883 if tls else 1883)
    return f"{'mqtts' if tls else 'mqtt'}://{cfg['broker_host']}:{port}"


class VirtualDevice(LogBook):
    """One simulated board. A role with `make_app` (the firmware's own) boots through the firmware's
    runner.run on this device's thread, from files in its own flash folder (config.json, pins.json,
    epoch, outbox, venue settings), so deep sleep, wake and reboot follow the board's code path."""

    role = ""
    make_app: Any = None  # the firmware's make_app(boot), set by each role

    def __init__(self, cfg: dict[str, Any], state_dir: Path, echo: bool = False, flash: Path | None = None) -> None:
        super().__init__(cfg["device"], echo)
        self.cfg = cfg
        self.id: str = cfg["device"]
        self.clock = clock.SystemClock()
        self.flash = flash or state_dir / self.id
        self.flash.mkdir(parents=True, exist_ok=True)
        if flash is None:  # a flash folder given is a provisioned board's: its files stay as they are
            (self.flash / "config.json").write_text(json.dumps(cfg))
        if self.role and (flash is None or not (self.flash / "pins.json").exists()):
            (self.flash / "pins.json").write_text(json.dumps(pinmap(self.role)))
        self.awake_ms: int | None = None  # overrides the config's awake_ms (a button's 8 s slows tests down)
        self.console: Callable[[str], None] | None = None  # where the board's print() goes besides the log
        self.chip = machine.Chip()
        self.link_up = True  # False: this device's radio is out (fault injection)
        self.delay_ms = 0  # fault injection: latency added to each message, both ways
        self.loss = 0.0  # fault injection: the share of publish attempts that fail
        self.skew_s = 0  # fault injection: how far the board's wall clock is off (its RTC drifted or was never set)
        self.boots = 0
        self.asleep = False
        self._stop = threading.Event()
        self._reboot = threading.Event()
        self._on_broker = threading.Event()  # set at the first connection to the broker
        self._thread: threading.Thread | None = None
        self.app: Any = None
        self.hw: Any = None
        self.msgr: Any = None
        self.link: Any = None

    @staticmethod
    def from_flash(flash: Path, echo: bool = False) -> VirtualDevice:
        """The board whose flash folder already holds its config.json (as provisioning writes it for
        a real board), of the role that config names."""
        cfg = json.loads((flash / "config.json").read_text())
        roles: dict[str, type[VirtualDevice]] = {"button": VirtualButton, "pager": VirtualPager}
        if cfg.get("role") not in roles:
            raise ValueError(f"role {cfg.get('role')!r} is not one of {', '.join(roles)}")
        return roles[cfg["role"]](cfg, flash.parent, echo, flash=flash)

    def start(self, timeout: float = 10.0) -> VirtualDevice:
        """Power the board on; returns once its firmware is READY."""
        seen = len(self.lines)
        self._thread = threading.Thread(target=self._run, name=self.id, daemon=True)
        self._thread.start()
        if self.wait_for(r"^(READY|SAFE MODE)", timeout, since=seen) is None:
            raise TimeoutError(f"{self.id} did not boot within {timeout} s")
        return self

    def _run(self) -> None:
        machine.bind(self.chip)
        while not self._stop.is_set():
            try:
                runner.run(self.role, self._boot, root=f"{self.flash}/", link_factory=self._make_link,
                           loop_ms=LOOP_MS, log=self.log, running=self._running)
            except machine.DeepSleep as sleep:
                self._sleep(sleep.ms)
                if self._reboot.is_set():
                    self._reboot.clear()
                    self.asleep = False
                    self._power_cycle()
                continue
            except Exception as e:  # on the board the REPL would take over and the watchdog reset it
                self.log(f"CRASH {type(e).__name__}: {e}; the watchdog resets the board")
                if self._stop.wait(1.0):
                    return
                self._power_cycle(machine.WDT_RESET)
                continue
            if not self._reboot.is_set():
                return  # stopped, or safe mode
            self._reboot.clear()
            self._power_cycle()

    def _running(self) -> bool:
        return not (self._stop.is_set() or self._reboot.is_set())

    def _boot(self, boot: Any) -> Any:
        if self.awake_ms is not None:
            boot.cfg["awake_ms"] = self.awake_ms
        app = type(self).make_app(boot)
        self.app, self.hw, self.msgr = app, boot.hw, boot.msgr
        self._skew(boot.clock)
        self.boots += 1
        return app

    def _make_link(self, cfg: dict[str, Any], clk: Any, status: Any, log: Any) -> Any:
        if cfg.get("link") == "espnow":
            self.link = runner.make_link(cfg, clk, status, log)
        else:
            if cfg.get("broker_tls"):  # the CA file, relative on the board, is in this board's flash folder
                cfg = dict(cfg, broker_ca=str(self.flash / cfg.get("broker_ca", "ca.der")))
            self.link = HostLink(cfg, broker_url_of(cfg), status)
            self.link.on_up = lambda: self.log("LINK up")  # what the board's mqtt_link prints on connecting
            self.link.up = self.link_up
            self.link.delay_ms, self.link.loss = self.delay_ms, self.loss
        return self.link

    def _skew(self, clk: Any) -> None:
        """The firmware reads wall time only through its clock's epoch_s (press times, boot epochs):
        shadowing that one method on this board's clock object skews this board alone."""
        if self.skew_s:
            clk.epoch_s = lambda: int(time.time()) + self.skew_s
        elif "epoch_s" in vars(clk):
            del clk.epoch_s

    def _sleep(self, ms: int) -> None:
        """Deep sleep: the radio is off until the wake pin is pulled low or the timer runs out."""
        self.asleep = True
        self.log(f"(asleep for up to {ms} ms)")
        deadline = time.monotonic() + ms / 1000
        woke_by_pin = False
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._reboot.is_set():
                return  # the reset button: the board boots afresh, not from deep sleep
            if any(pin.value() == 0 for pin in self.chip.wake_pins):
                woke_by_pin = True
                break
            time.sleep(0.002)
        self.chip.reset_cause = machine.DEEPSLEEP_RESET
        self.chip.wake_reason = machine.EXT0_WAKE if woke_by_pin else machine.TIMER_WAKE
        self.asleep = False

    def _power_cycle(self, cause: int = machine.HARD_RESET) -> None:
        if self.link is not None:
            self.link.stop()
        self.chip.reset_cause = cause
        self.chip.rtc_memory = b""  # RTC memory does not survive a reset

    def reboot(self, timeout: float = 10.0) -> None:
        """Press the reset button: the firmware boots again from flash (a new boot epoch)."""
        seen = len(self.lines)
        self._reboot.set()
        if self.wait_for(r"^READY", timeout, since=seen) is None:
            raise TimeoutError(f"{self.id} did not come back within {timeout} s")

    def set_link(self, up: bool) -> None:
        """Fault injection: the device's radio loses (or regains) the venue network, or goes off
        the air when it talks ESP-NOW to a base station."""
        self.link_up = up
        if isinstance(self.link, HostLink):
            self.link.up = up
        radio = espnow.radio_of(self.chip)
        if radio is not None:
            radio.sim_up = up

    def set_delay(self, ms: int) -> None:
        """Fault injection: a congested or distant access point adds `ms` each way."""
        self.delay_ms = ms
        if isinstance(self.link, HostLink):
            self.link.delay_ms = ms

    def set_loss(self, share: float) -> None:
        """Fault injection: this share of the board's publish attempts fails (its outbox retries)."""
        self.loss = share
        if isinstance(self.link, HostLink):
            self.link.loss = share

    def set_skew(self, seconds: int) -> None:
        """Fault injection: the board's wall clock is `seconds` off from the gateway's."""
        self.skew_s = seconds
        if self.app is not None:
            self._skew(self.app.clock)

    def power_off(self) -> None:
        """Fault injection: the board dies (battery out): no goodbye, the broker's last will says so."""
        self._stop.set()
        if isinstance(self.link, HostLink):
            self.link.kill()
        if self._thread is not None:
            self._thread.join(2)
        self.link = None

    def power_on(self, timeout: float = 10.0) -> None:
        """Power back on after power_off(): a cold boot, nothing left in RTC memory."""
        self._stop.clear()
        self.chip.reset_cause = machine.PWRON_RESET
        self.chip.rtc_memory = b""
        self.start(timeout)

    @property
    def powered(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self.link is not None:
            self.link.stop()

    def press(self, hold_ms: int = 120) -> None:
        """A finger on the device's button for hold_ms (1,500 ms or more is a long press)."""
        self.hw.button_pin.sim_level(0)
        time.sleep(hold_ms / 1000)
        self.hw.button_pin.sim_level(1)

    def log(self, line: str) -> None:
        super().log(line)
        if self.console is not None:
            self.console(line)
        if line == "LINK up":  # the firmware's own word, over either radio: latched, since a button
            self._on_broker.set()  # on ESP-NOW may be asleep again before anyone looks at its link

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once the device has been on the broker since it started: a button may already be
        back in deep sleep, its link down, by the time this looks."""
        deadline = time.monotonic() + timeout
        while not (self._on_broker.is_set() or (self.link is not None and self.link.is_up())):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True



class VirtualButton(VirtualDevice):
    role = "button"
    make_app = staticmethod(button_app.make_app)

    @property
    def state(self) -> str:
        return str(self.app.state) if self.app is not None else ""

    @property
    def colour(self) -> tuple[int, int, int]:
        return tuple(self.hw._np.shown[0])

    @property
    def battery_mv(self) -> int:
        return int(self.hw.battery())

    def set_battery(self, mv: int) -> None:
        """Fault injection: the cell runs down (the ADC sees it through the board's 1:2 divider)."""
        self.chip.battery_uv = mv * 500


class VirtualPager(VirtualDevice):
    """A wrist pager on its board: keys A (`press`, `press_a`) and B (`press_b`), the OLED read
    back from the pixels of its last frame (`screen`), the vibration motor (`buzzing`)."""

    role = "pager"
    make_app = staticmethod(pager_app.make_app)
    SETTLE_S = 0.12  # after a key is let go: the debounced release and a loop pass
    LONG_A_MS = pager_app.A_LONG_MS + 200  # a hold of key A that surely counts as long: decline
    LONG_B_MS = pager_app.B_LONG_MS + 300  # ... of key B: duty

    @property
    def screen(self) -> list[str]:
        """The OLED's text rows top to bottom, as the wearer reads them: the 8x8 font, "·" for the
        separator dot, B0-B4 for the battery gauge, "?" for anything else; blank rows left out."""
        if self.hw is None:
            return []
        panel = self.hw.oled.panel()
        rows = (framebuf.read_row(panel, y, pager_screen.COLS, _SCREEN_ICONS) for y in pager_screen.ROWS_Y)
        return [row for row in rows if row]

    @property
    def buzzing(self) -> bool:
        return self.hw is not None and self.hw._motor.value() == 1

    def press_a(self, hold_ms: int = 120) -> None:
        """Key A: short acknowledges (or, on an acknowledged alert, opens the pick-list); 1,500 ms
        or more declines."""
        self.press(hold_ms)

    def press_b(self, hold_ms: int = 120) -> None:
        """Key B: short selects the next alert or action; 2,000 ms or more toggles duty."""
        self.hw.button_b_pin.sim_level(0)
        time.sleep(hold_ms / 1000)
        self.hw.button_b_pin.sim_level(1)

    def _key(self, press: Any, hold_ms: int = 120) -> None:
        press(hold_ms)
        time.sleep(self.SETTLE_S)

    def duty(self) -> None:
        """Hold key B: on duty / off duty."""
        self._key(self.press_b, self.LONG_B_MS)

    def resolve(self, action: str, timeout: float = 10.0) -> str | None:
        """Resolve an acknowledged alert with `action` as the wearer would: B until an acknowledged
        alert is on top, A for the pick-list, B down to the action, A. None when done (the log says
        whether it was sent), else why it could not be done."""
        app = self.app
        if app is None:
            return "the pager is not running"
        if action not in app.choices():
            return f"{action!r} is not one of the venue's actions: {', '.join(app.choices())}"
        for _ in range(len(app.alerts)):
            top = app.selected()
            if top is not None and top.acked:
                break
            self._key(self.press_b)
        top = app.selected()
        if top is None or not top.acked:
            return "no acknowledged alert to resolve"
        seen = app.clock.diff(app.clock.ms(), top.acked_at)
        if seen < pager_app.REACTION_MS:  # a press right after the ack is taken for a double press
            time.sleep((pager_app.REACTION_MS - seen) / 1000 + 0.05)
        self._key(self.press_a)
        deadline = time.monotonic() + timeout
        while app.mode != pager_app.PICK:
            if time.monotonic() > deadline:
                return "the pick-list did not open"
            time.sleep(0.01)
        for _ in range(len(app.choices())):
            if app.choices()[app.pick_i] == action:
                break
            self._key(self.press_b)
        self._key(self.press_a)
        return None


def _battery_icon(bars: int) -> framebuf.Drawer:
    return lambda fb, x, y, c: pager_screen.battery(fb, x, y, bars, c)


# The shapes pager_screen draws besides text, named for read_row.
_SCREEN_ICONS: list[tuple[str, int, framebuf.Drawer]] = [("·", 1, pager_screen.dot)] + [
    (f"B{n}", 2, _battery_icon(n)) for n in range(pager_screen.BATTERY_BARS + 1)]
