"""The fair intake: a flooding device waits its turn, in order, and never in front of the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from gateway.intake import FairIntake
from gateway.metrics import Counters
from tests.waiting import wait_until


class Handler:
    """Records what was handled and on which thread; `gate` holds the intake's worker (not the
    caller's thread) so a test can look while the flood is still queued."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, str]] = []  # (topic, thread name)
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, topic: str, _payload: bytes) -> None:
        if threading.current_thread().name == "intake":
            self.gate.wait(10)
        with self.lock:
            self.handled.append((topic, threading.current_thread().name))

    def topics(self, device: str) -> list[str]:
        with self.lock:
            return [t for t, _thread in self.handled if t.split("/")[0] == device]


class StoppedClock:
    """A monotonic clock that moves only when told: the bucket refills only then."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


Rig = tuple[FairIntake, Handler, StoppedClock, Counters]


@pytest.fixture
def rig() -> Iterator[Rig]:
    handler, clock, counters = Handler(), StoppedClock(), Counters()
    intake = FairIntake(handler, counters, rate_per_s=10, burst=5, max_queued=100, monotonic=clock)
    intake.start()
    yield intake, handler, clock, counters
    handler.gate.set()
    intake.stop(drain_s=5)


def send(intake: FairIntake, device: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        intake.receive(device, f"{device}/{i}", b"{}")


def test_a_device_within_its_rate_is_handled_at_once_on_the_caller_s_thread(rig: Rig) -> None:
    intake, handler, clock, counters = rig
    for i in range(20):
        clock.t += 0.1  # ten a second: the rate
        send(intake, "btn-a", 1, i)
    assert handler.topics("btn-a") == [f"btn-a/{i}" for i in range(20)]
    assert {thread for _t, thread in handler.handled} == {threading.current_thread().name}
    assert counters.get("intake.slowed") == 0 and intake.queued() == 0


def test_a_flood_waits_its_turn_in_order_while_the_others_go_first(rig: Rig) -> None:
    intake, handler, _clock, counters = rig
    handler.gate.clear()  # the worker holds the first queued message until the test looks
    send(intake, "btn-f", 60)
    assert handler.topics("btn-f") == [f"btn-f/{i}" for i in range(5)], "the burst, at once"
    send(intake, "btn-b", 1)  # another table presses during the flood
    assert handler.topics("btn-b") == ["btn-b/0"], "not behind the flood"
    assert intake.queued() == 55 and counters.get("intake.slowed") == 1
    handler.gate.set()
    wait_until(lambda: len(handler.topics("btn-f")) == 60, 10, "the flood worked through")
    assert handler.topics("btn-f") == [f"btn-f/{i}" for i in range(60)], "in the order sent"
    assert counters.get("intake.queued") == 55 and intake.queued() == 0


def test_a_queued_device_s_next_message_waits_behind_its_queue_even_with_tokens_back(rig: Rig) -> None:
    intake, handler, clock, _counters = rig
    handler.gate.clear()
    send(intake, "btn-f", 8)
    clock.t += 100  # the bucket is full again, but three messages still wait
    send(intake, "btn-f", 1, 8)
    assert handler.topics("btn-f") == [f"btn-f/{i}" for i in range(5)]
    handler.gate.set()
    wait_until(lambda: len(handler.topics("btn-f")) == 9, 10, "the queue worked through")
    assert handler.topics("btn-f") == [f"btn-f/{i}" for i in range(9)]
    clock.t += 100
    send(intake, "btn-f", 1, 9)  # the queue is gone: at once again
    assert handler.handled[-1] == ("btn-f/9", threading.current_thread().name)


def test_a_queue_is_bounded_and_what_does_not_fit_is_dropped_and_counted(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    intake, handler, _clock, counters = rig
    handler.gate.clear()
    send(intake, "btn-f", 5 + 100 + 7)
    assert intake.queued() == 100
    assert counters.get("dropped.flood") == 7
    assert sum("DROP reason=flood" in r.getMessage() for r in caplog.records) == 1, "one line, not one per message"
    handler.gate.set()
    wait_until(lambda: len(handler.topics("btn-f")) == 105, 10, "what fitted worked through")


def test_two_floods_share_the_worker_turn_by_turn(rig: Rig) -> None:
    intake, handler, _clock, _counters = rig
    handler.gate.clear()
    send(intake, "btn-f", 10)
    send(intake, "btn-g", 10)
    handler.gate.set()
    wait_until(lambda: len(handler.handled) == 20, 10, "both floods worked through")
    queued = [t.split("/")[0] for t, thread in handler.handled if thread == "intake"]
    assert queued == ["btn-f", "btn-g"] * 5


def test_stop_works_through_what_waits(rig: Rig) -> None:
    intake, handler, _clock, _counters = rig
    handler.gate.clear()
    send(intake, "btn-f", 30)
    handler.gate.set()
    intake.stop(drain_s=5)
    assert len(handler.topics("btn-f")) == 30
