# Push-button gestures: debounce, then short / long / double press, as one small state machine.
SHORT = "short"
LONG = "long"
DOUBLE = "double"

# States
_IDLE = 0  # released
_DOWN = 1  # first press held, not yet long
_LONG = 2  # held past the long threshold; already reported, waiting for release
_GAP = 3  # first press released, waiting to see whether a second one follows
_SECOND = 4  # second press held


class Gesture:
    """Turns raw pin readings into gestures. Polled: update(now_ms, pressed) -> gesture or None.

    Contact bounce is filtered by accepting a new level only once it has been stable for
    `debounce_ms`. With `double_ms` = 0 double presses are not detected and a short press is
    reported at release with no wait; otherwise a short press is reported `double_ms` after release
    if no second press came (the price of telling the two apart)."""

    def __init__(self, clock, debounce_ms=50, long_ms=1500, double_ms=300):
        self.clock = clock
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self.double_ms = double_ms
        self.state = _IDLE
        self.level = False  # debounced level
        self._raw = False
        self._raw_since = clock.ms()
        self._t = 0  # time of the last accepted edge
        self._woke_short = False

    def woken(self, held):
        """The press that woke the chip from deep sleep began before this code ran: count it as
        down since now if it is still held, or as a short press already made if it is over."""
        now = self.clock.ms()
        if held:
            self.state, self.level, self._raw, self._raw_since, self._t = _DOWN, True, True, now, now
        else:
            self._woke_short = True

    def busy(self):
        """True while a gesture is under way (the board must not sleep in the middle of one)."""
        return self.state != _IDLE or self.level or self._raw or self._woke_short

    def _debounced(self, now, pressed):
        if pressed != self._raw:
            self._raw = pressed
            self._raw_since = now
        elif pressed != self.level and self.clock.diff(now, self._raw_since) >= self.debounce_ms:
            self.level = pressed
            return True
        return False

    def update(self, now, pressed):
        if self._woke_short:
            self._woke_short = False
            return SHORT
        edge = self._debounced(now, pressed)
        held = self.clock.diff(now, self._t)
        s = self.state
        if s == _IDLE:
            if edge and self.level:
                self.state, self._t = _DOWN, now
        elif s == _DOWN:
            if edge and not self.level:
                if self.double_ms <= 0:
                    self.state = _IDLE
                    return SHORT
                self.state, self._t = _GAP, now
            elif held >= self.long_ms:
                self.state = _LONG
                return LONG
        elif s == _LONG:
            if edge and not self.level:
                self.state = _IDLE
        elif s == _GAP:
            if edge and self.level:
                self.state, self._t = _SECOND, now
            elif held >= self.double_ms:
                self.state = _IDLE
                return SHORT
        elif s == _SECOND:
            if edge and not self.level:
                self.state = _IDLE
                return DOUBLE
        return None
