"""The webhook: each incident change POSTed as signed JSON to a URL the venue names.

A store watcher runs on the thread that changed the incident, inside the gateway's own work, so
`__call__` only puts the event on a bounded queue; a worker thread of its own does the HTTP, looks
the incident up, retries with a backoff and gives up with a log line. Nothing here can delay a page
or raise into the gateway. Counters: `webhook.sent`, `webhook.retried`, `webhook.failed` (given
up), `webhook.dropped` (the queue overflowed, or the gateway stopped with events still queued)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from .metrics import Counters
from .store import JOINED, Incident, IncidentEvent
from .venue import INCIDENT_STATES, Venue

log = logging.getLogger("redbutton.webhook")

SIGNATURE_HEADER = "X-RedButton-Signature"
EVENT_HEADER = "X-RedButton-Event"
DELIVERY_HEADER = "X-RedButton-Delivery"
USER_AGENT = "redbutton-gateway"
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # the waits between attempts: six tries over ~48 s
TIMEOUT_S = 5.0
QUEUE_SIZE = 1000
STOP_DRAIN_S = 2.0

Lookup = Callable[[int], Incident | None]
Sleep = Callable[[float], bool | None]  # waits between attempts; True: give up, the webhook is stopping


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 from a POST as a GET without the body: a redirect is a failure."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def event_name(e: IncidentEvent) -> str | None:
    """What an event is called in `webhook_events` and the event header: the state the incident
    reached, or "joined"; None for a line that changes nothing (a note, a re-page in the same state)."""
    if e.new == JOINED or e.old != e.new:
        return e.new
    return None


def signature(secret: str, body: bytes) -> str:
    """The signature header's value; a receiver computes the same over the raw body and compares
    in constant time (hmac.compare_digest)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def summary(inc: Incident) -> dict[str, Any]:
    """The incident as a receiver sees it: its record (times are Unix seconds) and its durations."""
    return {**asdict(inc), "table": inc.table_id, "durations": inc.durations()}


def redacted(url: str) -> str:
    """scheme://host[:port] only: a webhook URL's path or query often carries a token (Slack, Teams)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc.rpartition('@')[2]}/…"


class Webhook:
    """Store watcher and delivery worker. `start()` starts the worker; `stop()` lets it deliver
    what is queued for up to `drain_s`, then ends it. Deliveries are made one at a time, in order."""

    def __init__(self, url: str, site: str, lookup: Lookup, *, secret: str | None = None,
                 events: Collection[str] | None = None, venue_name: str | None = None,
                 counters: Counters | None = None, timeout_s: float = TIMEOUT_S,
                 backoff_s: Sequence[float] = BACKOFF_S, queue_size: int = QUEUE_SIZE,
                 sleep: Sleep | None = None, drain_s: float = STOP_DRAIN_S) -> None:
        self.url = url
        self.site = site
        self.venue_name = venue_name or site
        self.lookup = lookup
        self.secret = secret
        self.events = frozenset(INCIDENT_STATES if events is None else events)  # default: every state change
        self.counters = counters or Counters()
        self.timeout_s = timeout_s
        self.backoff_s = tuple(backoff_s)
        self.drain_s = drain_s
        self._stopping = threading.Event()
        self._drain_until = 0.0
        self.sleep: Sleep = sleep or self._stopping.wait
        self._queue: deque[IncidentEvent] = deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._where = redacted(url)

    @classmethod
    def from_venue(cls, venue: Venue, lookup: Lookup, counters: Counters | None = None,
                   **kwargs: Any) -> Webhook | None:
        """The venue's webhook, or None when its file names no URL. Raises ValueError when the file
        names a secret variable that is not set (see Integrations.secret)."""
        i = venue.integrations
        if i.webhook_url is None:
            return None
        return cls(i.webhook_url, venue.site, lookup, secret=i.secret(), events=i.webhook_events,
                   venue_name=venue.name, counters=counters, **kwargs)

    # ---- the watcher side: never blocks, never raises -------------------------------------------

    def __call__(self, event: IncidentEvent) -> None:
        name = event_name(event)
        if name is None or name not in self.events:
            return
        with self._cond:
            dropped = self._queue.popleft() if len(self._queue) >= self._size else None
            self._queue.append(event)
            self._cond.notify()
        if dropped is not None:
            self.counters.inc("webhook.dropped")
            log.warning("WEBHOOK dropped inc=%d %s: %d deliveries queued for %s", dropped.incident, dropped.new,
                        self._size, self._where, extra={"inc": dropped.incident})

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    # ---- the worker --------------------------------------------------------------------------

    def start(self) -> Webhook:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()
        log.info("webhook to %s on", self._where)
        return self

    def stop(self) -> None:
        """Deliver what is queued for up to drain_s (backoff waits are cut short), then end."""
        with self._cond:
            self._drain_until = time.monotonic() + self.drain_s
            self._stopping.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.drain_s + self.timeout_s)
            if self._thread.is_alive():
                log.warning("webhook worker still busy with a delivery at stop; left behind")
            self._thread = None
        left = self._take_all()
        if left:
            self.counters.inc("webhook.dropped", len(left))
            log.warning("WEBHOOK dropped %d queued deliveries at stop (%s)", len(left), self._where)

    def _take_all(self) -> list[IncidentEvent]:
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        return left

    def _next(self) -> IncidentEvent | None:
        """The next event; None once stopping and the queue is empty or the drain time is up."""
        with self._cond:
            while not self._queue:
                if self._stopping.is_set():
                    return None
                self._cond.wait()
            if self._stopping.is_set() and time.monotonic() > self._drain_until:
                return None
            return self._queue.popleft()

    def _run(self) -> None:
        while (event := self._next()) is not None:
            try:
                self.deliver(event)
            except Exception:  # a bug here must not end the worker: the next event still goes out
                self.counters.inc("webhook.failed")
                log.exception("WEBHOOK failed inc=%d %s: unexpected error", event.incident, event.new,
                              extra={"inc": event.incident})

    def body(self, event: IncidentEvent, delivery: str) -> bytes:
        """The JSON body: the change, the incident's summary now (None if it cannot be read), the site."""
        try:
            inc = self.lookup(event.incident)
        except Exception as e:  # the database is busy or gone: the change itself still goes out
            log.warning("WEBHOOK inc=%d: incident summary unavailable: %s", event.incident, e,
                        extra={"inc": event.incident})
            inc = None
        doc = {"delivery": delivery, "event": event_name(event) or event.new, "site": self.site,
               "venue": self.venue_name, "incident": event.incident, "at": event.at, "old": event.old,
               "new": event.new, "actor": event.actor, "cause": event.cause,
               "summary": summary(inc) if inc is not None else None}
        return json.dumps(doc, separators=(",", ":")).encode()

    def deliver(self, event: IncidentEvent) -> bool:
        """POST one event, retrying as BACKOFF_S says; -> whether the receiver took it (2xx)."""
        delivery = uuid.uuid4().hex  # the same for every attempt: the receiver can drop a repeat
        body = self.body(event, delivery)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   EVENT_HEADER: event_name(event) or event.new, DELIVERY_HEADER: delivery}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        attempts = len(self.backoff_s) + 1
        for attempt in range(1, attempts + 1):
            outcome, retry = self._post(body, headers)
            if outcome is None:
                self.counters.inc("webhook.sent")
                log.debug("WEBHOOK sent inc=%d %s (attempt %d)", event.incident, event.new, attempt)
                return True
            if not retry or attempt == attempts:
                break
            if self._stopping.is_set():  # while stopping, each delivery left gets a single try
                outcome += "; the gateway is stopping"
                break
            self.counters.inc("webhook.retried")
            if self.sleep(self.backoff_s[attempt - 1]):  # cut short: stop() was called meanwhile
                outcome += "; the gateway is stopping"
                break
        self.counters.inc("webhook.failed")
        log.error("WEBHOOK failed inc=%d %s to %s after %d attempt(s): %s", event.incident, event.new, self._where,
                  attempt, outcome, extra={"inc": event.incident})
        return False

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[str | None, bool]:
        """One attempt; -> (None, _) on success, else (what went wrong, whether to try again)."""
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                resp.read(65536)
                status = int(resp.status)
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
        except (OSError, ValueError) as e:  # refused, reset, timed out, DNS, TLS (URLError is an OSError)
            return f"{type(e).__name__}: {getattr(e, 'reason', e)}", True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", status >= 500 or status in (408, 429)

