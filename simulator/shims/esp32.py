"""`esp32` for the simulator: the deep-sleep wake sources, recorded on the device's Chip.

Difference covered: the ROM's wake logic does not exist on the host; the virtual device reads the
pins recorded here and wakes when one is pulled to the level asked for (only low is used)."""

from __future__ import annotations

from .machine import Pin, chip

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def wake_on_ext0(pin: Pin | None, level: bool) -> None:
    chip().wake_pins = [pin] if pin is not None else []


def wake_on_gpio(pins: tuple[Pin, ...] | list[Pin] | None, level: bool) -> None:
    chip().wake_pins = list(pins or ())
