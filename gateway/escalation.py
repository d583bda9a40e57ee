"""Timers of the escalation engine: every incident's next deadline, in SQLite and in a heap.

The database row is the truth (it survives `kill -9`); the heap only says when to look. A heap
entry whose deadline no longer matches its row is stale and skipped, so rescheduling never needs to
find and remove the old entry."""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable

from .clock import Clock

# What a deadline means, stored in incidents.deadline_kind.
ACK = "ack"  # paged, not acknowledged within the level's ack timeout: page the next level
REPEAT = "repeat"  # the last level is paged and nobody answered: alert them again
RETRY = "retry"  # nobody could be paged (unreached): try again, someone may have come on duty
RESOLVE = "resolve"  # acknowledged, not resolved within the resolve timeout: re-alert the responder
FOLLOWUP = "followup"  # resolved: the follow-up window closes

IDLE_WAKE_S = 1.0  # the engine looks at least this often (device supervision runs on the same beat)


class Scheduler:
    """Runs `on_tick()` on its own thread as soon as the earliest deadline is due, and at least
    every IDLE_WAKE_S. Tests do not start it: they call the gateway's tick() with a manual clock."""

    def __init__(self, clock: Clock, on_tick: Callable[[], None]) -> None:
        self.clock = clock
        self.on_tick = on_tick
        self._heap: list[tuple[float, int]] = []
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def schedule(self, at: float, inc_id: int) -> None:
        with self._cv:
            heapq.heappush(self._heap, (at, inc_id))
            self._cv.notify()

    def load(self, entries: list[tuple[float, int]]) -> None:
        with self._cv:
            self._heap = list(entries)
            heapq.heapify(self._heap)
            self._cv.notify()

    def due(self, now: float) -> list[int]:
        """Pop the incidents whose (possibly stale) deadline has come."""
        out = []
        with self._cv:
            while self._heap and self._heap[0][0] <= now:
                out.append(heapq.heappop(self._heap)[1])
        return out

    def shift(self, seconds: float) -> None:
        """Move every entry: the wall clock jumped by `seconds` and the timers go with it."""
        with self._cv:
            self._heap = [(at + seconds, inc_id) for at, inc_id in self._heap]  # the order is unchanged
            self._cv.notify()

    def next_at(self) -> float | None:
        with self._cv:
            return self._heap[0][0] if self._heap else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="escalation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while self._wait_for_work():
            self.on_tick()

    def _wait_for_work(self) -> bool:
        """Sleep until the earliest deadline, at most IDLE_WAKE_S; False once stop() was called."""
        with self._cv:
            if not self._stopping:
                now = self.clock.now()
                nxt = self._heap[0][0] if self._heap else now + IDLE_WAKE_S
                wait = min(nxt - now, IDLE_WAKE_S)
                if wait > 0:
                    self._cv.wait(wait)
            return not self._stopping
