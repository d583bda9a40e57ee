"""Noise control: a button pressed far more often than any customer would is held for a manager."""

from __future__ import annotations

from collections import deque


class RateLimiter:
    """Per button, the times of its recent presses. More than `limit` within `window_s` flags the
    button until it has been quiet for a whole window: its calls then go to a manager only, so staff
    are not paged for every press of a prankster (and a real call is still seen by someone)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._presses: dict[str, deque[float]] = {}

    def press(self, button: str, now: float) -> bool:
        """Count a press; True when the button is flagged."""
        times = self._presses.setdefault(button, deque())
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        while len(times) > 4 * self.limit:  # bounded memory for a button held down by a brick
            times.popleft()
        return len(times) > self.limit

    def shift(self, seconds: float) -> None:
        """The wall clock jumped: the presses happened as long ago as before."""
        for times in self._presses.values():
            for i in range(len(times)):
                times[i] += seconds

    def flagged(self, button: str, now: float) -> bool:
        times = self._presses.get(button, deque())
        return sum(1 for t in times if t > now - self.window_s) > self.limit
