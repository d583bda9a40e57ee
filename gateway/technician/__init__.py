"""Technician commands: `redbutton device ...` for a bag of ESP32 boards on the bench."""

from __future__ import annotations

# Exit codes every `device` subcommand keeps, so scripts can tell the cases apart.
EXIT_OK = 0
EXIT_NO_ANSWER = 1  # no board found or answering, or a wait (--until) timed out
EXIT_USAGE = 2  # bad options, missing files, a port that cannot be opened
EXIT_INTERRUPTED = 130  # Ctrl-C


class DeviceError(Exception):
    """A technician-facing failure: printed as `redbutton: <message>`, never as a traceback.

    `exit_code` is EXIT_USAGE for what the technician can fix on the host (options, files,
    permissions) and EXIT_NO_ANSWER when the board did not answer."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
