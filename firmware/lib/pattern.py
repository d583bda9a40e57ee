# Timed output patterns: LED colours for the button, vibration for the pager.


class PatternPlayer:
    """Plays a pattern, a tuple of (value, ms) steps, on an output callable; loops it if asked.

    Polled from the device loop with tick(): no timers or threads, so it runs the same on the board,
    in the simulator and under tests with a manual clock. `out` is only called on a change."""

    def __init__(self, clock, out, idle):
        self.clock = clock
        self.out = out
        self.idle = idle
        self.steps = ()
        self.loop = False
        self._i = 0
        self._t = 0
        self._value = None
        self._set(idle)

    def _set(self, value):
        if value != self._value:
            self._value = value
            self.out(value)

    def play(self, steps, loop=False):
        self.steps, self.loop, self._i, self._t = steps, loop, 0, self.clock.ms()
        self._set(steps[0][0] if steps else self.idle)

    def stop(self):
        self.steps = ()
        self._set(self.idle)

    @property
    def playing(self):
        return bool(self.steps)

    def tick(self):
        if not self.steps:
            return
        now = self.clock.ms()
        while self.clock.diff(now, self._t) >= self.steps[self._i][1]:
            self._t = self.clock.add(self._t, self.steps[self._i][1])
            self._i += 1
            if self._i == len(self.steps):
                if not self.loop:
                    self.stop()
                    return
                self._i = 0
        self._set(self.steps[self._i][0])
