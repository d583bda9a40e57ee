"""CPython only: make the firmware modules importable by bare name, as they are on the device.

The test_*.py files next to this one are written in the MicroPython subset and also run inside
MicroPython (tests/mpy/run_tests.mjs, driven by tests/test_firmware_micropython.py); this file is
the only part of the folder the device runner does not load."""

import sys
from pathlib import Path

FIRMWARE_LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"

if str(FIRMWARE_LIB) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_LIB))
