# The hardware-abstraction layer: the few small interfaces device logic is written against.
#
# Device logic (button_app, pager_app, base_app) never imports `machine`. It receives:
#   clock    - clock.SystemClock or clock.ManualClock: ms(), diff(), add(), epoch_s(), sleep_ms()
#   pressed  - a callable returning True while a push button is held (active level handled by board)
#   led      - a callable taking an (r, g, b) tuple, 0-255 each
#   motor    - a callable taking True (vibrate) or False
#   oled     - a framebuf.FrameBuffer with show() (the SSD1306 driver): pager_screen draws on it
#   battery  - a callable returning the battery voltage in millivolts
#   link     - a radio link (see Link below)
# board.py builds these from the pins on an ESP32; the simulator and the tests build their own.


class Link:
    """The radio link interface, MQTT over WiFi (mqtt_link.MqttLink) or ESP-NOW via a base station.

    Implementations keep every socket error to themselves: publish() returns False when the
    message could not be handed to the network, and the link reconnects on its own in poll()."""

    def start(self, on_message):
        """Connect (retrying in poll() if that fails); on_message(topic, payload) gets commands."""
        raise NotImplementedError

    def publish(self, topic, payload, retain=False):
        raise NotImplementedError

    def poll(self):
        """Deliver received commands to on_message; reconnect when the link is down."""
        raise NotImplementedError

    def is_up(self):
        raise NotImplementedError

    def stop(self):
        """Close the link before deep sleep (or when the simulator stops the device)."""
        raise NotImplementedError

    def rssi(self):
        """Signal strength of the link in dBm, 0 when unknown (reported in heartbeats)."""
        raise NotImplementedError
