"""CPython only: make the firmware modules importable by bare name, as they are on the device.

The test_*.py files next to this one are written in the MicroPython subset and also run inside
MicroPython (tests/mpy/run_tests.mjs, driven by tests/test_firmware_micropython.py); this file is
the only part of the folder the device runner does not load."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRMWARE_LIB = HERE.parents[1] / "firmware" / "lib"

# firmware modules, and the tests' own helpers (fakes.py), by bare name as on the device runner
for folder in (FIRMWARE_LIB, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
