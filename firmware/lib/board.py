# Board wiring: builds the hal callables for each role from ESP32 pins.
# Pin numbers follow the reference boards in hardware/ (ESP32-C3 button, ESP32-S3 pager).
from machine import ADC, I2C, Pin

BUTTON_PIN = 9  # push button to GND, internal pull-up
BUTTON_LED_PIN = 8  # one WS2812 RGB LED
BUTTON_BATTERY_PIN = 2  # battery through a 1:2 divider

PAGER_BUTTON_PIN = 0
PAGER_MOTOR_PIN = 10  # vibration motor through a transistor
PAGER_SDA_PIN = 8
PAGER_SCL_PIN = 9
PAGER_BATTERY_PIN = 1


def _pressed(pin_no):
    pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)
    return pin, lambda: pin.value() == 0


def _battery(pin_no, ratio=2):
    adc = ADC(Pin(pin_no))
    adc.atten(ADC.ATTN_11DB)
    return lambda: adc.read_uv() * ratio // 1000


class ButtonBoard:
    def __init__(self):
        import neopixel

        self.button_pin, self.pressed = _pressed(BUTTON_PIN)
        self._np = neopixel.NeoPixel(Pin(BUTTON_LED_PIN, Pin.OUT), 1)
        self.battery = _battery(BUTTON_BATTERY_PIN)

    def led(self, rgb):
        self._np[0] = rgb
        self._np.write()


class OledDisplay:
    """hal display on an SSD1306 128x64 over I2C, 8 px per text line, through framebuf."""

    def __init__(self, i2c):
        import ssd1306

        self.oled = ssd1306.SSD1306_I2C(128, 64, i2c)

    def show(self, lines):
        self.oled.fill(0)
        for i, line in enumerate(lines[:6]):
            self.oled.text(line[:16], 0, i * 10 + (2 if i else 0))
        self.oled.show()


class PagerBoard:
    def __init__(self):
        self.button_pin, self.pressed = _pressed(PAGER_BUTTON_PIN)
        self._motor = Pin(PAGER_MOTOR_PIN, Pin.OUT, value=0)
        self.display = OledDisplay(I2C(0, sda=Pin(PAGER_SDA_PIN), scl=Pin(PAGER_SCL_PIN)))
        self.battery = _battery(PAGER_BATTERY_PIN)

    def motor(self, on):
        self._motor.value(1 if on else 0)
