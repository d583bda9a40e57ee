"""Fair intake: a device that sends faster than any real one waits its turn, so a flood from one
stolen key cannot hold up every other table's call.

Messages arrive on the MQTT client's one thread and are handled there, in order. A device within
its rate (a token bucket) keeps that fast path. Past it, its messages go to a queue of its own,
still in order, that a worker thread handles one at a time, round-robin between flooding devices,
pausing after each as long as it took: the flood gets at most half of the handler's time and every
other device is never more than one queued message behind. The device leaves the slow lane once
its queue is empty."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .metrics import Counters

log = logging.getLogger("redbutton.gateway")

RATE_PER_S = 20.0  # a device's sustained messages a second before it waits its turn
BURST = 40  # what a device may send at once: an outbox emptied after a reconnect fits
MAX_QUEUED = 20_000  # per device; beyond, its messages are dropped and counted (memory stays bounded)
DRAIN_S = 10.0  # at stop, how long the queues may still be worked through

Handler = Callable[[str, bytes], None]


class FairIntake:
    def __init__(self, handle: Handler, counters: Counters, rate_per_s: float = RATE_PER_S, burst: int = BURST,
                 max_queued: int = MAX_QUEUED, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.handle = handle
        self.counters = counters
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_queued = max_queued
        self.monotonic = monotonic
        self._tokens: dict[str, tuple[float, float]] = {}  # device -> (tokens, when counted)
        self._queues: dict[str, deque[tuple[str, bytes]]] = {}  # devices in the slow lane
        self._dropping: set[str] = set()  # devices whose queue is full: their drop was logged
        self._turns: deque[str] = deque()  # devices with a message waiting, in the order they are served
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def receive(self, device: str, topic: str, payload: bytes) -> None:
        """Handle the message now, or queue it behind the device's earlier ones."""
        if not self._queue(device, topic, payload):
            self.handle(topic, payload)

    def queued(self) -> int:
        with self._cv:
            return sum(len(q) for q in self._queues.values())

    def _queue(self, device: str, topic: str, payload: bytes) -> bool:
        with self._cv:
            q = self._queues.get(device)
            if q is None:
                if self._take(device):
                    return False
                q = self._queues[device] = deque()
                self.counters.inc("intake.slowed")
                log.warning("FLOOD %s sends faster than %.0f messages/s: its messages wait their turn", device,
                            self.rate_per_s, extra={"device": device})
            if len(q) >= self.max_queued:
                self.counters.inc("dropped.flood")
                if device not in self._dropping:  # one line while the queue stays full, not one a message
                    self._dropping.add(device)
                    log.warning("DROP reason=flood topic=%s %d messages of %s already wait", topic[:120],
                                len(q), device)
                return True
            if not q:
                self._turns.append(device)
            q.append((topic, payload))
            self.counters.inc("intake.queued")
            self._cv.notify()
            return True

    def _take(self, device: str) -> bool:
        """One token from the device's bucket; False when it is empty."""
        now = self.monotonic()
        tokens, at = self._tokens.get(device, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if tokens < 1.0:
            self._tokens[device] = (tokens, now)
            return False
        self._tokens[device] = (tokens - 1.0, now)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = DRAIN_S) -> None:
        """Work through what waits (for at most `drain_s`), then stop."""
        deadline = time.monotonic() + drain_s
        with self._cv:
            while self._turns and self._thread is not None and self._thread.is_alive():
                if not self._cv.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    break
            self._stopping = True
            left = self.queued()  # the condition's lock is reentrant
            self._cv.notify_all()
        if left:
            log.error("STOPPED with %d queued messages of flooding devices unhandled", left)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._turns and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                device = self._turns[0]
                topic, payload = self._queues[device][0]
            t0 = time.perf_counter()
            try:
                self.handle(topic, payload)
            except Exception:  # the handler logs and counts its own; this thread must not die
                log.exception("intake: handling %s failed", topic[:120])
            took = time.perf_counter() - t0
            with self._cv:
                q = self._queues[device]
                q.popleft()  # only now: until handled, the device's next message queues behind it
                self._turns.popleft()
                if q:
                    self._turns.append(device)
                else:
                    del self._queues[device]
                    self._dropping.discard(device)
                self._cv.notify_all()
                if not self._stopping:
                    self._cv.wait(took)  # the others' turn: at most half the handler's time for floods
