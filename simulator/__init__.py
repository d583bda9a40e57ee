"""Red Button simulator: runs the firmware's own modules on CPython against a real broker."""
