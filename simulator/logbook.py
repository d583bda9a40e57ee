"""What a simulated board prints, kept with the time of each line, so a test, a scenario or the
demo waits for a firmware marker (`ALERT inc=1 shown`) instead of sleeping."""

from __future__ import annotations

import re
import threading
import time


class LogBook:
    def __init__(self, name: str, echo: bool = False) -> None:
        self.name = name
        self.echo = echo  # also print each line, indented and tagged with the board's name
        self.lines: list[tuple[float, str]] = []
        self._cv = threading.Condition()

    def log(self, line: str) -> None:
        with self._cv:
            self.lines.append((time.time(), line))
            self._cv.notify_all()
        if self.echo:
            print(f"  [{self.name}] {line}", flush=True)

    def wait_for(self, pattern: str, timeout: float = 10.0, since: int = 0) -> tuple[float, str] | None:
        """The first line from index `since` on matching `pattern` (a regex), with its time; None
        when none has come within `timeout` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            seen = since
            while True:
                for t, line in self.lines[seen:]:
                    if rx.search(line):
                        return t, line
                seen = max(seen, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)
