# PatternPlayer: timed output steps, one-shot and looping, on a manual clock.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from clock import ManualClock
from fakes import Recorder
from pattern import PatternPlayer

STEPS = (("a", 100), ("b", 200))


def make():
    clock = ManualClock()
    out = Recorder()
    return clock, out, PatternPlayer(clock, out, "idle")


def at(clock, player, t):
    """Move the clock to `t` ms and tick once."""
    clock.now = t
    player.tick()


def test_starts_idle_and_not_playing():
    clock, out, p = make()
    assert out.calls == ["idle"]
    assert not p.playing


def test_one_shot_steps_then_idle():
    clock, out, p = make()
    p.play(STEPS)
    assert p.playing
    assert out.value == "a"
    at(clock, p, 99)
    assert out.value == "a"
    at(clock, p, 100)
    assert out.value == "b"
    at(clock, p, 299)
    assert out.value == "b"
    at(clock, p, 300)
    assert out.value == "idle"
    assert not p.playing
    at(clock, p, 1000)
    assert out.calls == ["idle", "a", "b", "idle"]


def test_loop_repeats():
    clock, out, p = make()
    p.play(STEPS, loop=True)
    seen = []
    for t in range(0, 1000, 50):
        at(clock, p, t)
        seen.append(out.value)
    # a: 0-99, b: 100-299, a: 300-399, b: 400-599, a: 600-699, b: 700-899, a: 900-
    assert seen == ["a", "a", "b", "b", "b", "b", "a", "a", "b", "b",
                    "b", "b", "a", "a", "b", "b", "b", "b", "a", "a"]
    assert p.playing


def test_output_called_only_on_change():
    clock, out, p = make()
    p.play(STEPS, loop=True)
    for t in range(0, 301, 10):
        at(clock, p, t)
    assert out.calls == ["idle", "a", "b", "a"]


def test_late_tick_catches_up_without_drift():
    clock, out, p = make()
    p.play(STEPS, loop=True)
    at(clock, p, 3 * 300 + 150)  # three whole loops late, then half into "b"
    assert out.value == "b"
    at(clock, p, 4 * 300)
    assert out.value == "a"


def test_stop_returns_to_idle():
    clock, out, p = make()
    p.play(STEPS, loop=True)
    at(clock, p, 120)
    p.stop()
    assert out.value == "idle"
    assert not p.playing
    at(clock, p, 5000)
    assert out.value == "idle"


def test_play_restarts_from_first_step():
    clock, out, p = make()
    p.play(STEPS, loop=True)
    at(clock, p, 150)
    assert out.value == "b"
    p.play((("c", 50),))
    assert out.value == "c"
    at(clock, p, 199)
    assert out.value == "c"
    at(clock, p, 200)
    assert out.value == "idle"


def test_empty_pattern_is_idle():
    clock, out, p = make()
    p.play(())
    assert out.value == "idle"
    assert not p.playing
