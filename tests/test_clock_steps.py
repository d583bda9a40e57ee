"""Telling a jump of the wall clock from time passing and from slow drift."""

from gateway.clock import ManualClock, StepWatch


def test_time_passing_is_no_jump_and_a_set_clock_is_one_of_its_size() -> None:
    clock, watch = ManualClock(), StepWatch()
    assert watch.observe(clock.now(), clock.monotonic()) == 0.0
    clock.advance(3600)
    assert watch.observe(clock.now(), clock.monotonic()) == 0.0
    clock.jump(-7200)
    assert watch.observe(clock.now(), clock.monotonic()) == -7200
    assert watch.observe(clock.now(), clock.monotonic()) == 0.0, "a jump is reported once"


def test_slow_drift_is_followed_without_ever_being_called_a_jump() -> None:
    clock, watch = ManualClock(), StepWatch()
    watch.observe(clock.now(), clock.monotonic())
    for _ in range(10_000):  # NTP slewing 0.5 ms a second, read every second: 5 s in all
        clock.advance(1)
        clock.jump(0.0005)
        assert watch.observe(clock.now(), clock.monotonic()) == 0.0
    clock.jump(1.5)
    assert watch.observe(clock.now(), clock.monotonic()) == 1.5
