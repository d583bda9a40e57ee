# Clocks for device logic: the board's ticks clock, and a manual one that tests step by hand.
import time

# MicroPython ports whose epoch is 2000-01-01 report gmtime(0) as the year 2000.
_UNIX_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


class SystemClock:
    """Milliseconds from time.ticks_ms (wraps; always compare with diff), wall time in Unix
    seconds. On the host the simulator adds ticks_ms/ticks_diff/sleep_ms to `time`."""

    def ms(self):
        return time.ticks_ms()

    def diff(self, later, earlier):
        return time.ticks_diff(later, earlier)

    def add(self, t, ms):
        return time.ticks_add(t, ms)

    def epoch_s(self):
        return int(time.time()) + _UNIX_OFFSET

    def sleep_ms(self, ms):
        time.sleep_ms(ms)


class ManualClock:
    """A clock that moves only when told to: tests run device logic without sleeping."""

    def __init__(self, ms=0, epoch_s=1700000000):
        self.now = ms
        self.epoch0 = epoch_s

    def ms(self):
        return self.now

    def diff(self, later, earlier):
        return later - earlier

    def add(self, t, ms):
        return t + ms

    def epoch_s(self):
        return self.epoch0 + self.now // 1000

    def sleep_ms(self, ms):
        self.now += ms

    def advance(self, ms):
        self.now += ms
