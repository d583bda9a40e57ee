"""Venue reload while the gateway runs: a file watcher and the SIGHUP path share one VenueWatcher.

A manager edits the venue file (who is on which table tonight) without restarting the gateway, so open
incidents, replay windows and the MQTT session stay as they are. A file with an error never replaces the
venue in force: the error is logged with the key at fault and the old venue keeps serving presses. A
venue for another site is refused too: the broker subscriptions and device topics belong to one site."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .metrics import Counters
from .venue import Venue, VenueError, load_venue

log = logging.getLogger("redbutton.reload")

# What identifies one version of the file. The content hash catches an edit of the same size within the
# file system's mtime granularity; mtime catches `touch`, which asks for a reload on purpose.
Signature = tuple[int, int, str]
UNREADABLE: Signature = (-1, -1, "")


def signature(path: Path) -> Signature:
    try:
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return UNREADABLE
    return st.st_mtime_ns, st.st_size, digest


class VenueWatcher:
    """Polls the venue file on a daemon thread and hands each good new version to `on_change`.

    A change is loaded once the file has looked the same for `settle_s` (half a poll interval unless
    given), so an editor that truncates and then writes is not caught half way with an empty file.
    Each version is tried once: a broken file is reported once, not on every poll. trigger() (SIGHUP)
    reloads at once, changed or not, and works without polling too (`start(poll=False)`)."""

    def __init__(self, path: str | Path, on_change: Callable[[Venue], None], interval_s: float = 1.0, *,
                 site: str | None = None, counters: Counters | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float | None], object] | None = None, settle_s: float | None = None) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.interval_s = interval_s
        self.site = site
        self.counters = counters or Counters()
        self.clock = clock
        self.settle_s = interval_s / 2 if settle_s is None else settle_s
        self._wake = threading.Event()
        self._sleep = sleep or self._wait  # the default wait is cut short by trigger() and stop()
        self._triggers = 0  # written only by trigger(), so no SIGHUP is lost between a read and a reset
        self._stopping = threading.Event()
        self._polling = True
        self._current = signature(self.path)  # the version the caller loaded before starting us
        self._pending: tuple[Signature, float] | None = None
        self._thread: threading.Thread | None = None

    def start(self, poll: bool = True) -> VenueWatcher:
        self._polling = poll
        self._thread = threading.Thread(target=self._run, name="venue-watcher", daemon=True)
        self._thread.start()
        how = f"on SIGHUP and on a change (checked every {self.interval_s:.3g} s)" if poll else "on SIGHUP"
        log.info("venue %s reloads %s", self.path, how)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def trigger(self) -> None:
        """Reload at once (the SIGHUP handler): counts and wakes the watcher thread, which does the reload, so
        the signal handler neither reads files nor calls into the gateway."""
        self._triggers += 1
        self._wake.set()

    def _wait(self, timeout: float | None) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def _run(self) -> None:
        seen = 0  # a SIGHUP that came before start() still counts
        while not self._stopping.is_set():
            self._sleep(self.interval_s if self._polling else None)
            if self._stopping.is_set():
                return
            triggers = self._triggers
            forced, seen = triggers != seen, triggers
            if forced or self._polling:
                try:
                    self.poll(force=forced)
                except Exception:  # the watcher must outlive any surprise; the gateway keeps its venue
                    log.exception("venue watcher failed on %s", self.path)

    def poll(self, force: bool = False) -> bool:
        """One look at the file; True when a new venue was handed over."""
        sig = signature(self.path)
        if force:
            self._pending = None
            return self._load(sig, "SIGHUP")
        if sig == self._current:
            self._pending = None
            return False
        now = self.clock()
        if self._pending is None or self._pending[0] != sig:
            self._pending = (sig, now)
        if now - self._pending[1] < self.settle_s:
            return False
        self._pending = None
        return self._load(sig, "file changed")

    def _load(self, sig: Signature, cause: str) -> bool:
        self._current = sig
        try:
            venue = load_venue(self.path)
            if self.site is not None and venue.site != self.site:
                raise VenueError(f"{self.path}: site: {venue.site!r} is not the running site {self.site!r} "
                                 "(subscriptions are per site: restart the gateway to change it)")
            self.on_change(venue)
        except VenueError as e:
            self.counters.inc("venue.reload_failed")
            log.error("venue reload refused (%s), the old venue stays in force: %s", cause, e)
            return False
        except Exception:
            self.counters.inc("venue.reload_failed")
            log.exception("venue reload failed (%s) while applying it", cause)
            return False
        self.counters.inc("venue.reloaded")
        log.info("venue reloaded (%s) from %s: site %s, %d tables, %d staff, %d devices", cause, self.path,
                 venue.site, len(venue.tables), len(venue.staff), len(venue.devices))
        return True
