"""Virtual people: staff who answer their pagers and customers who press buttons, through the keys.

They act only as a person would: a staff member reads the pager's alerts and presses key A (short to
acknowledge, long to decline) or key B to bring another alert up; a customer presses the table's
button. Every choice comes from one seeded RNG, so a run is reproducible; the times (how long a
person takes to look at the wrist) are drawn from a log-normal, the usual shape of human reaction."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .devices import VirtualButton, VirtualPager

ACK, DECLINE, IGNORE = "ack", "decline", "ignore"
POLL_S = 0.02
Z95 = 1.6449  # the standard normal's 95th percentile


@dataclass
class Habits:
    """How one staff member answers: delay to act (median and p95, seconds), and the chance that a
    given alert is declined or ignored."""

    ack_median_s: float = 2.0
    ack_p95_s: float = 5.0
    decline: float = 0.0
    ignore: float = 0.0
    resolve_after_s: float = 1.0  # acknowledged: back from the table this long after, resolves on the pager

    def delay(self, rng: random.Random) -> float:
        """Log-normal with the given median and 95th percentile."""
        sigma = max(math.log(max(self.ack_p95_s, self.ack_median_s) / self.ack_median_s) / Z95, 1e-6)
        return rng.lognormvariate(math.log(self.ack_median_s), sigma)

    def choose(self, rng: random.Random) -> str:
        r = rng.random()
        return IGNORE if r < self.ignore else DECLINE if r < self.ignore + self.decline else ACK


@dataclass
class Decision:
    what: str
    at: float  # monotonic time to act


class _OwnThread:
    """Something a person does on a thread of their own, until stopped."""

    _stop: threading.Event
    _thread: threading.Thread | None

    def _name(self) -> str:
        return "person"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name(), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class StaffMember(_OwnThread):
    """A person wearing a pager, on a thread of their own."""

    staff_id: str
    pager: VirtualPager
    habits: Habits
    rng: random.Random
    log: Callable[[str], None] = print
    decided: dict[int, Decision] = field(default_factory=dict)
    answered: dict[int, str] = field(default_factory=dict)  # inc -> ack / decline, once done
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _name(self) -> str:
        return f"person-{self.staff_id}"

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._look()
            except Exception as e:  # the pager rebooting under the finger: look again next time
                self.log(f"{self.staff_id}: {type(e).__name__}: {e}")

    def _look(self) -> None:
        """One glance at the wrist: decide about new alerts, act on the first that is due."""
        app = self.pager.app
        if app is None or self.pager.link is None:
            return
        now = time.monotonic()
        alerts = list(app.alerts)
        for a in alerts:
            if not a.acked and a.unsent is None and a.inc not in self.decided:
                what = self.habits.choose(self.rng)
                self.decided[a.inc] = Decision(what, now + self.habits.delay(self.rng))
                self.log(f"{self.staff_id} sees inc={a.inc} {a.table}: will {what}")
        due = [a for a in alerts if not a.acked and a.unsent is None and a.inc not in self.answered
               and self.decided[a.inc].what != IGNORE and self.decided[a.inc].at <= now]
        if due:
            self._answer(app, due[0].inc)
            return
        for a in alerts:
            acked_for = self.answered.get(a.inc) == ACK and a.acked
            if acked_for and now - self.decided[a.inc].at >= self.habits.resolve_after_s:
                self.pager.resolve(app.choices()[0])
                self.answered[a.inc] = "resolved"
                return

    def _answer(self, app: Any, inc: int) -> None:
        """Bring the alert up with key B if another is shown, then key A (held long to decline)."""
        for _ in range(len(app.alerts) + 1):
            top = app.selected()
            if top is not None and top.inc == inc:
                break
            self.pager._key(self.pager.press_b)
        else:
            return
        what = self.decided[inc].what
        time.sleep(0.7)  # a key right after the selection moved acts on the alert shown before (REACTION_MS)
        if what == DECLINE:
            self.pager.press_a(self.pager.LONG_A_MS)
        else:
            self.pager.press_a()
        self.answered[inc] = what


class Crowd(_OwnThread):
    """Customers: presses at `rate_per_min` (a Poisson process) on random tables from `start_s` for
    `for_s` seconds of the scenario clock."""

    def __init__(self, buttons: Sequence[VirtualButton], rate_per_min: float, for_s: float,
                 rng: random.Random, log: Callable[[str], None] = print) -> None:
        self.buttons = list(buttons)
        self.rate_per_min = rate_per_min
        self.for_s = for_s
        self.rng = rng
        self.log = log
        self.presses = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = {b.id: threading.Lock() for b in self.buttons}

    def _name(self) -> str:
        return "crowd"

    def _run(self) -> None:
        end = time.monotonic() + self.for_s
        while not self._stop.wait(self.rng.expovariate(self.rate_per_min / 60)):
            if time.monotonic() >= end:
                return
            button = self.rng.choice(self.buttons)
            threading.Thread(target=self._press, args=(button,), daemon=True).start()

    def _press(self, button: VirtualButton) -> None:
        """A finger that finds the button already pressed waits its turn, as a second guest would."""
        with self._busy[button.id]:
            button.press()
            self.presses += 1
            time.sleep(0.35)  # lets go, and the next hand is not quicker than a double press's window
