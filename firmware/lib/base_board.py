# Base station board glue: the ESP-NOW radio, the serial line to the host, the status LED, the loop.
#
# The reference board (hardware/pins/base.json) is an ESP32-S3 whose native USB port (USB CDC)
# carries both the frames and print()'s log; a board with a USB-UART chip can use a spare UART
# instead (config "uart": {"id": 1, "baud": 460800, "tx": 17, "rx": 18}).
import gc
import json

import board
import machine
import runner
from base_app import BaseApp
from clock import SystemClock

RXBUF = 8192  # bytes of received packets the radio holds: bursts from many devices at once
LOOP_MS = 1
WDT_MS = 10000  # the loop never blocks: a stall of 10 s is a fault, and a reset puts it right
DEFAULT_KEY = 0  # the BOOT key of ESP32 and ESP32-S3 dev boards, for safe mode


def radio(channel, rxbuf=RXBUF):
    """The ESP-NOW radio on the station interface, on the venue's channel: (ESPNow, own MAC)."""
    import espnow
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.config(channel=channel)  # no access point is joined; the devices use the same channel
    e = espnow.ESPNow()
    e.config(rxbuf=rxbuf)  # takes effect when the radio is made active
    e.active(True)
    return e, wlan.config("mac")


class UsbSerial:
    """The native USB CDC, which is also the REPL's console: raw bytes through sys.stdin/stdout.
    Ctrl-C is switched off, because a frame may contain 0x03; safe mode gives the REPL back."""

    def __init__(self):
        import select
        import sys

        import micropython

        micropython.kbd_intr(-1)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def read(self):
        """What has arrived, without waiting (stdin has no in_waiting: one byte per poll)."""
        got = bytearray()
        while len(got) < 512 and self._poll.poll(0):
            b = self._in.read(1)
            if not b:
                break
            got.extend(b)
        return bytes(got) if got else None

    def write(self, data):
        self._out.write(data)


class UartSerial:
    def __init__(self, uart_id, baud, tx, rx):
        self._uart = machine.UART(uart_id, baudrate=baud, tx=tx, rx=rx, rxbuf=2048, timeout=0)

    def read(self):
        return self._uart.read()  # None when nothing has arrived

    def write(self, data):
        self._uart.write(data)


def serial_port(cfg):
    u = cfg.get("uart")
    if u:
        return UartSerial(u["id"], u.get("baud", 460800), u["tx"], u["rx"])
    return UsbSerial()


def status_led(pinmap):
    """The on-board RGB LED as a callable, or None when the pin map has none."""
    pin = pinmap.get("pins", {}).get("led")
    if pin is None:
        return None
    import neopixel

    np = neopixel.NeoPixel(machine.Pin(pin, machine.Pin.OUT), pinmap.get("led_count", 1))

    def led(rgb):
        np.fill(rgb)
        np.write()

    return led


def run(root="", serial=None, log=print, running=None, loop_ms=LOOP_MS, make_app=BaseApp):
    """Boot the base station from /config.json and /pins.json and bridge until `running()` turns
    False (the simulator; on the board it never does). The simulator also passes its own `serial`
    and a `make_app` that keeps the app it builds."""
    with open(root + "config.json") as f:
        cfg = json.load(f)
    try:
        pinmap = board.load_pins(root + "pins.json")
    except OSError:
        pinmap = {}
    clock = SystemClock()
    pressed = board.key(pinmap.get("pins", {}).get("key", DEFAULT_KEY))[1]
    if runner.safe_mode(pressed, clock):
        log("SAFE MODE base: app skipped, REPL free")
        return None
    e, mac = radio(cfg.get("espnow", {}).get("channel", 1))
    app = make_app(e, serial or serial_port(cfg), clock, mac, log=log, led=status_led(pinmap))
    wdt = machine.WDT(timeout=WDT_MS)
    gc.collect()
    app.start()
    while running is None or running():
        wdt.feed()
        app.tick()
        clock.sleep_ms(loop_ms)
    return app
