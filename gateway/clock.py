"""Clocks for the gateway, injected so tests move time by hand instead of sleeping.

Two readings: the wall clock, for what is recorded and shown (when a call was made), and a
monotonic clock, for how long things take. The wall clock can jump (NTP stepping a clock that
was wrong, someone's `date -s`); the monotonic one cannot, so a jump is seen as a change in the
difference between the two (StepWatch)."""

import time
from typing import Protocol

STEP_S = 1.0  # the wall clock moved this much against the monotonic one between two readings: a jump.
# NTP slews at most 0.5 ms a second, and both are read within microseconds of each other.


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that only ever go forward with real time."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """Time moves only when told: advance() is time passing (both readings move), jump() is the
    wall clock being set (only it moves)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.t = start
        self.mono = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.mono += seconds

    def jump(self, seconds: float) -> None:
        self.t += seconds


class StepWatch:
    """Notices the wall clock jumping: observe() returns by how much it jumped since the last
    reading (0.0 when it did not), following slow drift without calling it a jump."""

    def __init__(self, threshold_s: float = STEP_S) -> None:
        self.threshold_s = threshold_s
        self.offset: float | None = None  # wall minus monotonic at the last reading

    def observe(self, wall: float, mono: float) -> float:
        offset = wall - mono
        last, self.offset = self.offset, offset
        if last is None or abs(offset - last) < self.threshold_s:
            return 0.0
        return offset - last
