# Stand-ins for the hal parts in firmware logic tests (MicroPython subset, like the tests).


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
