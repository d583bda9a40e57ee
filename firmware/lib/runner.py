# Boot sequence and main loop shared by every role's main.py.
#
# The simulator runs this same function on its shims, so the boot path (safe mode, epoch or
# deep-sleep resume, watchdog, sleep) is exercised without a board.
import gc
import json

import board
import device
import machine
from clock import SystemClock
from settings import Settings

LOOP_MS = 10
WDT_MS = 30000  # longer than the slowest blocking step: a WiFi join (15 s) or an MQTT connect
SAFE_HOLD_MS = 2000  # main key held this long at power-up: skip the app, keep the REPL


class Boot:
    """What a role's make_app(boot) gets: config, pin map, clock, messenger, flash paths."""

    def __init__(self, role, cfg, pins, clock, msgr, woke_by_button, root, log):
        self.role = role
        self.cfg = cfg
        self.pins = pins
        self.clock = clock
        self.msgr = msgr
        self.woke_by_button = woke_by_button
        self.root = root
        self.log = log
        self.settings = Settings(root + "venue.json", log)
        self.hw = None  # the board, set by make_app; the simulator reads it
        self.wake_pin = None  # the pin that wakes the board from deep sleep, set by make_app

    def path(self, name):
        return self.root + name


def make_link(cfg, clock, status, log):
    """The radio link the config names: "mqtt" (WiFi, the default) or "espnow" (base station)."""
    if cfg.get("link") == "espnow":
        from espnow_link import EspNowLink

        return EspNowLink(cfg, clock, status, log)
    from mqtt_link import MqttLink, join_wifi

    if not join_wifi(cfg, clock):
        log("WIFI failed; the link retries")
    return MqttLink(cfg, clock, status, log)


def safe_mode(pressed, clock):
    """True when the main key is held for SAFE_HOLD_MS from power-up: a technician's way back to
    the REPL when the app misbehaves (a wake from deep sleep never asks)."""
    t0 = clock.ms()
    while pressed():
        if clock.diff(clock.ms(), t0) >= SAFE_HOLD_MS:
            return True
        clock.sleep_ms(20)
    return False


def _main_key(pins):
    p = pins["pins"]
    return p.get("button", p.get("button_a"))


def run(role, make_app, root="", link_factory=make_link, loop_ms=LOOP_MS, log=print, running=None):
    """Load the config, start or resume the boot epoch, build the app and loop; deep-sleep when the
    app allows it. Returns only in safe mode or when `running()` turns False (the simulator)."""
    with open(root + "config.json") as f:
        cfg = json.load(f)
    pins = board.load_pins(root + "pins.json")
    clock = SystemClock()
    woke = machine.reset_cause() == machine.DEEPSLEEP_RESET
    if not woke and safe_mode(board.key(_main_key(pins))[1], clock):
        log("SAFE MODE %s: app skipped, REPL free" % role)
        return None
    rtc = machine.RTC()
    session = device.resume(bytes(rtc.memory()).decode(), woke)
    if session is None:
        ep, seq = device.next_epoch(root + "epoch", clock.epoch_s()), 0
    else:
        ep, seq = session
    log("BOOT %s %s ep=%d fw=%s%s" % (role, cfg["device"], ep, device.FIRMWARE, " woke" if woke else ""))
    msgr = device.Messenger(cfg, ep, clock, None, log, seq)
    msgr.link = link_factory(cfg, clock, msgr.status, log)
    boot = Boot(role, cfg, pins, clock, msgr, woke and machine.wake_reason() != machine.TIMER_WAKE, root, log)
    app = make_app(boot)
    wdt = machine.WDT(timeout=WDT_MS)
    gc.collect()
    app.start()
    log("READY %s free=%d" % (role, gc.mem_free()))
    while running is None or running():
        wdt.feed()
        app.tick()
        nap = app.sleep_ms()
        if nap and boot.wake_pin is not None:
            rtc.memory(device.session_text(msgr).encode())
            log("SLEEP %d ms" % nap)
            msgr.link.stop()
            board.sleep_until_pressed(boot.wake_pin, nap)  # the board boots afresh on waking
        clock.sleep_ms(loop_ms)
    return app
