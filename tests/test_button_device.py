"""The button's own boot path on the simulator: settings from the gateway, deep sleep and wake,
reset, and store-and-forward across both, through a real broker and gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue
from simulator.devices import VirtualButton, device_config, pinmap
from waiting import wait_until


@pytest.fixture
def button(venue: Venue, broker: Mosquitto, gateway: Gateway, tmp_path: Path) -> Iterator[VirtualButton]:
    cfg = device_config(venue, "btn-t12", broker.url)
    cfg["awake_ms"] = 300  # the board stays awake 8 s after a press; the test needs no such wait
    b = VirtualButton(cfg, tmp_path / "flash")
    b.start()
    yield b
    b.stop()


def incidents_of(store: Store, button: str) -> list[int]:
    return [i for i in range(1, 50) if (inc := store.incident(i)) is not None and inc.button == button]


def test_boots_reports_and_takes_the_venue_settings(button: VirtualButton, gateway: Gateway,
                                                    store: Store) -> None:
    assert button.wait_for(r"^BOOT button btn-t12 ep=\d+ fw=0\.2\.0$")
    assert button.wait_for(r"^CONFIG cv=\d+ applied")
    assert button.wait_for(r"^HEARTBEAT seq=\d+")
    wait_until(lambda: gateway.counters.get("handled.heartbeat") >= 1, what="a heartbeat handled")
    assert (button.flash / "venue.json").exists()


def test_sleeps_when_idle_and_the_press_that_wakes_it_goes_through(button: VirtualButton, gateway: Gateway,
                                                                   store: Store) -> None:
    assert button.wait_for(r"^SLEEP \d+ ms", timeout=15)
    wait_until(lambda: button.asleep, what="the button asleep")
    boot = button.wait_for(r"^BOOT ")
    assert boot is not None
    epoch = boot[1].split("ep=")[1].split()[0]
    seen = len(button.lines)
    button.press()
    woke = button.wait_for(r"^BOOT .* woke$", since=seen)
    assert woke is not None and f"ep={epoch} " in woke[1]  # the same epoch: resumed from RTC memory
    assert button.wait_for(r"^PRESS seq=\d+ kind=complaint", since=seen)
    assert button.wait_for(r"^FEEDBACK delivered", since=seen)
    assert button.boots == 2
    wait_until(lambda: len(incidents_of(store, "btn-t12")) == 1, what="one incident from the waking press")
    assert gateway.counters.get("dropped.replayed") == 0


def test_press_queued_with_the_link_down_survives_a_reset_and_keeps_its_time(
        button: VirtualButton, gateway: Gateway, store: Store) -> None:
    assert button.wait_for(r"^HEARTBEAT")
    button.set_link(False)
    button.press()
    queued = button.wait_for(r"^PRESS seq=(\d+) queued")
    assert queued is not None
    assert button.wait_for(r"^PRESS seq=\d+ kind=complaint")
    pressed_at = queued[0]
    button.reboot()  # a power cut before the WiFi came back: a new boot epoch
    assert button.wait_for(r"^QUEUE restored 1")
    assert (button.flash / "outbox.txt").read_text().count("/evt/press") == 1
    button.set_link(True)
    assert button.wait_for(r"^PRESS seq=\d+ forwarded")
    wait_until(lambda: len(incidents_of(store, "btn-t12")) == 1, what="the queued press recorded")
    inc = store.incident(incidents_of(store, "btn-t12")[0])
    assert inc is not None
    assert abs(inc.pressed_at - int(pressed_at)) <= 1  # the time of the press, not of the delivery
    assert gateway.counters.get("dropped.replayed") == 0


def test_watchdog_is_armed_and_fed(button: VirtualButton) -> None:
    assert button.chip.wdt_timeout_ms == 30000
    assert not button.chip.wdt_starved()


def test_safe_mode_when_the_button_is_held_at_power_up(venue: Venue, broker: Mosquitto, tmp_path: Path) -> None:
    b = VirtualButton(device_config(venue, "btn-t1", broker.url), tmp_path / "flash")
    b.chip.levels[pinmap("button")["pins"]["button"]] = 0  # a technician's finger on the button
    b.start()
    try:
        assert b.wait_for(r"^SAFE MODE button: app skipped")
        assert b.app is None and b.chip.wdt_timeout_ms is None  # no app, no watchdog: the REPL is free
        assert not any(line.startswith("BOOT") for _t, line in b.lines)
    finally:
        b.stop()


def test_the_reset_button_wakes_a_sleeping_board_with_a_new_epoch(button: VirtualButton) -> None:
    first = button.wait_for(r"^BOOT button btn-t12 ep=(\d+)")
    assert first is not None
    wait_until(lambda: button.asleep, what="the button asleep")
    button.reboot()  # raises if it does not come back
    again = [line for _t, line in button.lines if line.startswith("BOOT ")][-1]
    assert not again.endswith("woke")  # a reset, not a wake from deep sleep
    assert int(again.split("ep=")[1].split()[0]) > int(first[1].split("ep=")[1].split()[0])


def test_the_gateways_answer_echoes_the_press(button: VirtualButton, gateway: Gateway) -> None:
    """The firmware's own button against a real gateway: the feedback to its press echoes the press
    (docs/protocol.md, "Answers to a press"), so the button takes it as that press's answer."""
    assert button.wait_for(r"^HEARTBEAT")  # its status (firmware version) is in the registry by now
    seen = len(button.lines)
    button.press()
    pressed = button.wait_for(r"^PRESS seq=(\d+) kind=complaint", since=seen)
    assert pressed is not None
    seq = pressed[1].split("seq=")[1].split()[0]
    assert button.wait_for(rf"^PRESS seq={seq} answered$", since=seen)
    assert button.wait_for(r"^FEEDBACK delivered", since=seen)
    assert not button.wait_for(r"unanswered", since=seen, timeout=0.5)
