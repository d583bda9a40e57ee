# Stand-ins for the hal parts in firmware logic tests (MicroPython subset, like the tests).
# The OLED stand-in and its pixel reader are in fake_oled.py.

_scratch = [0]


def scratch(name):
    """A fresh path for a file the device keeps in flash (settings, outbox, epoch), in a temporary
    folder on CPython and in the in-memory file system inside MicroPython. Each call is new."""
    _scratch[0] += 1
    try:
        import tempfile

        return tempfile.mkdtemp() + "/" + name
    except ImportError:  # MicroPython
        import os

        try:
            os.mkdir("/scratch")
        except OSError:
            pass
        return "/scratch/%d-%s" % (_scratch[0], name)


class FakeLink:
    """hal.Link that records what is published and lets the test deliver commands."""

    def __init__(self, up=True):
        self.sent = []  # (topic, payload, retain)
        self.on_message = None
        self.up = up
        self.polls = 0

    def start(self, on_message):
        self.on_message = on_message

    def publish(self, topic, payload, retain=False):
        if not self.up:
            return False
        self.sent.append((topic, payload, retain))
        return True

    def poll(self):
        self.polls += 1

    def is_up(self):
        return self.up

    def rssi(self):
        return -60 if self.up else 0

    def deliver(self, topic, payload):
        self.on_message(topic, payload)


class Recorder:
    """An output callable (LED, motor, pattern output) that remembers every value it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, value):
        self.calls.append(value)

    @property
    def value(self):
        return self.calls[-1] if self.calls else None
