# Gesture: debounce and short / long / double press, driven by a manual clock.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from clock import ManualClock
from gesture import DOUBLE, LONG, SHORT, Gesture

STEP_MS = 5  # how often the device loop polls the pin in these tests


def drive(gesture, clock, script, step=STEP_MS):
    """Poll `gesture` every `step` ms through `script`, a list of (pressed, duration_ms).
    Returns [(gesture, t_ms)] for every gesture reported, with the clock time it came at."""
    seen = []
    for pressed, duration in script:
        end = clock.ms() + duration
        while clock.ms() < end:
            g = gesture.update(clock.ms(), pressed)
            if g is not None:
                seen.append((g, clock.ms()))
            clock.advance(step)
    return seen


def names(seen):
    return [g for g, _ in seen]


def bounce(ms, period=10):
    """A contact chattering for `ms`: the level flips every `period` ms, starting pressed."""
    script = []
    level = True
    t = 0
    while t < ms:
        script.append((level, period))
        level = not level
        t += period
    return script


def test_bounce_within_debounce_gives_no_gesture():
    clock = ManualClock()
    g = Gesture(clock)
    script = [(False, 100)] + bounce(40) + [(False, 1000)]
    assert drive(g, clock, script) == []
    assert g.level is False


def test_single_spike_shorter_than_debounce_is_ignored():
    clock = ManualClock()
    g = Gesture(clock)
    seen = drive(g, clock, [(False, 100), (True, 45), (False, 1000)])
    assert seen == []


def test_clean_press_gives_short_after_double_window():
    clock = ManualClock()
    g = Gesture(clock)
    seen = drive(g, clock, [(False, 100), (True, 120), (False, 1000)])
    assert names(seen) == [SHORT]
    released = 100 + 120
    # debounced release at +50 ms, then the 300 ms wait for a possible second press
    t = seen[0][1]
    assert released + 50 + 300 <= t <= released + 50 + 300 + 2 * STEP_MS


def test_bouncy_press_gives_one_short():
    clock = ManualClock()
    g = Gesture(clock)
    script = [(False, 100)] + bounce(30, 5) + [(True, 150)] + bounce(20, 5) + [(False, 1000)]
    assert names(drive(g, clock, script)) == [SHORT]


def test_hold_gives_long_once():
    clock = ManualClock()
    g = Gesture(clock)
    seen = drive(g, clock, [(False, 100), (True, 1400)])
    assert seen == []  # not long yet
    seen = drive(g, clock, [(True, 600), (False, 1000)])
    assert names(seen) == [LONG]
    # reported while still held: 1.5 s after the debounced press (100 + 50 + 1500)
    assert 1650 <= seen[0][1] <= 1650 + 2 * STEP_MS


def test_long_hold_does_not_also_report_short():
    clock = ManualClock()
    g = Gesture(clock)
    seen = drive(g, clock, [(False, 100), (True, 5000), (False, 2000)])
    assert names(seen) == [LONG]


def test_two_quick_presses_give_double():
    clock = ManualClock()
    g = Gesture(clock)
    script = [(False, 100), (True, 100), (False, 120), (True, 100), (False, 1000)]
    assert names(drive(g, clock, script)) == [DOUBLE]


def test_two_slow_presses_give_two_shorts():
    clock = ManualClock()
    g = Gesture(clock)
    script = [(False, 100), (True, 100), (False, 800), (True, 100), (False, 1000)]
    assert names(drive(g, clock, script)) == [SHORT, SHORT]


def test_double_ms_zero_reports_short_at_release():
    clock = ManualClock()
    g = Gesture(clock, double_ms=0)
    seen = drive(g, clock, [(False, 100), (True, 100), (False, 1000)])
    assert names(seen) == [SHORT]
    released = 200
    assert released + 50 <= seen[0][1] <= released + 50 + 2 * STEP_MS


def test_double_ms_zero_two_presses_give_two_shorts():
    clock = ManualClock()
    g = Gesture(clock, double_ms=0)
    script = [(False, 100), (True, 100), (False, 120), (True, 100), (False, 1000)]
    assert names(drive(g, clock, script)) == [SHORT, SHORT]
