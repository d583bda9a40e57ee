# Makes tests/firmware a package for pytest (its modules become firmware.conftest,
# firmware.test_fw_*), so this folder's conftest.py never takes the bare name "conftest" that
# tests/*.py import from tests/conftest.py. The MicroPython runner ignores this file.
