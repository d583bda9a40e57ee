# Board wiring: builds the hal callables for each role from ESP32 pins.
#
# Pin numbers are never written here: they come from the role's pin map, hardware/pins/<role>.json,
# copied to the device as /pins.json when it is flashed (load_pins). The simulator passes the same
# files, so a rewired board changes one JSON file and nothing else.
import json

from machine import ADC, I2C, Pin


def load_pins(path="pins.json"):
    with open(path) as f:
        return json.load(f)


def key(pin_no):
    """A push button to GND with the internal pull-up: pressed() is True while it is held."""
    pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)
    return pin, lambda: pin.value() == 0


def _battery(pin_no, ratio):
    adc = ADC(Pin(pin_no))
    adc.atten(ADC.ATTN_11DB)  # full range to ~3.1 V at the pin: a 4.2 V cell through 1:2
    return lambda: adc.read_uv() * ratio // 1000


class ButtonBoard:
    def __init__(self, pinmap):
        import neopixel

        pins = pinmap["pins"]
        self.button_pin, self.pressed = key(pins["button"])
        self._np = neopixel.NeoPixel(Pin(pins["led"], Pin.OUT), pinmap.get("led_count", 1))
        self.battery = _battery(pins["battery_adc"], pinmap.get("battery_divider", 2))

    def led(self, rgb):
        self._np.fill(rgb)
        self._np.write()


class PagerBoard:
    """Two keys (A: acknowledge / choose, B: next / menu), a vibration motor, an SSD1306 OLED
    (`oled` is a framebuf.FrameBuffer with show()), a battery divider."""

    def __init__(self, pinmap):
        import ssd1306

        pins = pinmap["pins"]
        self.button_pin, self.pressed = key(pins["button_a"])
        self.button_b_pin, self.pressed_b = key(pins["button_b"])
        self._motor = Pin(pins["motor"], Pin.OUT, value=0)
        oled = pinmap.get("oled", {})
        i2c = I2C(0, sda=Pin(pins["sda"]), scl=Pin(pins["scl"]))
        self.oled = ssd1306.SSD1306_I2C(oled.get("width", 128), oled.get("height", 64), i2c,
                                        oled.get("address", 0x3C))
        self.battery = _battery(pins["battery_adc"], pinmap.get("battery_divider", 2))

    def motor(self, on):
        self._motor.value(1 if on else 0)


def sleep_until_pressed(pin, ms):
    """Deep sleep until the button pulls `pin` low or `ms` pass; the chip then boots afresh.
    ESP32/S3 wake through EXT0 (RTC pins); the C3 has no EXT0 but wakes on GPIO 0-5."""
    import esp32
    import machine

    if hasattr(esp32, "wake_on_ext0"):
        esp32.wake_on_ext0(pin, esp32.WAKEUP_ALL_LOW)
    else:
        esp32.wake_on_gpio((pin,), esp32.WAKEUP_ALL_LOW)
    machine.deepsleep(ms)
