"""The webhook against a real HTTP server on loopback, fed by a real gateway and SQLite store: signed
JSON per incident change, retries with a backoff (slept through an injected function, never for
real), no retry on a 4xx, a bounded queue that drops the oldest, and a watcher that never blocks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import free_port
from gateway.metrics import Counters
from gateway.store import Incident, IncidentEvent, Store
from gateway.venue import parse_venue
from gateway.webhook import BACKOFF_S, Webhook
from gateway_rig import Rig, rules_doc
from waiting import wait_until

SECRET = "s3cret"


@dataclass
class Received:
    path: str
    headers: Message  # names are case-insensitive (urllib sends X-Redbutton-Event, say)
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    """An HTTP server on a free loopback port that records every POST and answers with the statuses
    queued in `statuses` (then 200). Clearing `gate` holds every answer back until it is set."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received(self.path, self.headers, body))
                receiver.gate.wait(10)
                status = receiver.statuses.popleft() if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/rb?token=abc"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def event(inc: int, new: str = "open", old: str | None = None) -> IncidentEvent:
    return IncidentEvent(inc, 1_767_225_600.0 + inc, old, new, "btn-t12", "press complaint")


def no_incident(_inc: int) -> Incident | None:
    return None


def test_each_incident_change_of_a_real_gateway_is_posted_signed_in_order(
        receiver: Receiver, venue_doc: dict[str, Any], tmp_path: Path) -> None:
    rig = Rig(rules_doc(venue_doc), tmp_path / "db.sqlite")
    counters = Counters()
    hook = Webhook(receiver.url, rig.venue.site, rig.store.incident, secret=SECRET, venue_name=rig.venue.name,
                   counters=counters).start()
    rig.store.watchers.append(hook)
    try:
        rig.press("T12")
        pager = rig.paged()[0]
        rig.advance(20)
        rig.send(pager, "ack", inc=1)
        rig.advance(100)
        rig.send(pager, "resolve", inc=1, action="apology")
        wait_until(lambda: len(receiver.requests) == 4, what="four deliveries")
    finally:
        hook.stop()
        rig.store.close()
    docs = [r.json for r in receiver.requests]
    assert [d["event"] for d in docs] == ["open", "paged", "acknowledged", "resolved"]
    assert [r.headers["X-RedButton-Event"] for r in receiver.requests] == ["open", "paged", "acknowledged",
                                                                           "resolved"]
    first = docs[0]
    assert first["site"] == rig.venue.site and first["venue"] == rig.venue.name
    assert first["incident"] == 1 and first["old"] is None and first["new"] == "open"
    assert first["actor"] == "btn-t12" and first["cause"] == "press complaint"
    assert first["summary"]["table"] == "T12" and first["summary"]["kind"] == "complaint"
    assert docs[3]["summary"]["durations"] == {"press_to_page": 0.0, "page_to_ack": 20.0, "ack_to_resolve": 100.0}
    assert docs[3]["summary"]["recovery_action"] == "apology"
    for r in receiver.requests:
        assert r.path == "/hooks/rb?token=abc"
        assert r.headers["Content-Type"] == "application/json"
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r.headers["X-RedButton-Signature"], expected)
        assert r.headers["X-RedButton-Delivery"] == r.json["delivery"]
    assert len({r.headers["X-RedButton-Delivery"] for r in receiver.requests}) == 4, "a delivery id is unique"
    assert counters.get("webhook.sent") == 4 and counters.get("webhook.failed") == 0


def test_without_a_secret_nothing_is_signed(receiver: Receiver) -> None:
    hook = Webhook(receiver.url, "bistro", no_incident).start()
    try:
        hook(event(1))
        wait_until(lambda: receiver.requests, what="a delivery")
    finally:
        hook.stop()
    assert "X-RedButton-Signature" not in receiver.requests[0].headers
    assert receiver.requests[0].json["summary"] is None


def test_a_5xx_is_retried_with_the_backoff_and_the_same_delivery_id(receiver: Receiver) -> None:
    receiver.statuses.extend([503, 500])
    slept: list[float] = []
    counters = Counters()
    hook = Webhook(receiver.url, "bistro", no_incident, counters=counters, sleep=slept.append).start()
    try:
        hook(event(1))
        wait_until(lambda: counters.get("webhook.sent") == 1, what="the third attempt to succeed")
    finally:
        hook.stop()
    assert slept == list(BACKOFF_S[:2])
    assert len(receiver.requests) == 3
    assert len({r.headers["X-RedButton-Delivery"] for r in receiver.requests}) == 1
    assert counters.get("webhook.retried") == 2 and counters.get("webhook.failed") == 0


@pytest.mark.parametrize("status", [400, 404, 302])
def test_a_4xx_or_a_redirect_is_not_retried(receiver: Receiver, status: int, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses.append(status)
    slept: list[float] = []
    counters = Counters()
    hook = Webhook(receiver.url, "bistro", no_incident, counters=counters, sleep=slept.append).start()
    try:
        with caplog.at_level(logging.ERROR, "redbutton.webhook"):
            hook(event(7))
            wait_until(lambda: counters.get("webhook.failed") == 1, what="the delivery to be given up")
    finally:
        hook.stop()
    assert len(receiver.requests) == 1 and slept == []
    line = caplog.records[-1].getMessage()
    assert f"WEBHOOK failed inc=7 open to http://127.0.0.1:{receiver.server.server_address[1]}/… after 1 attempt(s): " \
           f"HTTP {status}" == line
    assert "token" not in line, "the URL's path and query (often a token) stay out of the log"


def test_a_receiver_that_is_down_is_retried_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    counters = Counters()
    hook = Webhook(f"http://127.0.0.1:{free_port()}/hook", "bistro", no_incident, counters=counters,
                   sleep=slept.append).start()
    try:
        with caplog.at_level(logging.ERROR, "redbutton.webhook"):
            hook(event(3))
            wait_until(lambda: counters.get("webhook.failed") == 1, what="the delivery to be given up")
    finally:
        hook.stop()
    assert slept == list(BACKOFF_S)
    assert counters.get("webhook.sent") == 0 and counters.get("webhook.retried") == len(BACKOFF_S)
    assert f"after {len(BACKOFF_S) + 1} attempt(s): URLError" in caplog.records[-1].getMessage()


def test_the_watcher_never_blocks_and_a_full_queue_drops_the_oldest(receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver hangs on to the first delivery
    counters = Counters()
    hook = Webhook(receiver.url, "bistro", no_incident, counters=counters, queue_size=2).start()
    try:
        hook(event(1))
        wait_until(lambda: receiver.requests, what="the first delivery to be in flight")
        for inc in (2, 3, 4):  # the worker is stuck: these queue, and the oldest of them is dropped
            hook(event(inc))
        assert hook.pending() == 2 and counters.get("webhook.dropped") == 1
        receiver.gate.set()
        wait_until(lambda: counters.get("webhook.sent") == 3, what="the rest delivered")
    finally:
        hook.stop()
    assert [r.json["incident"] for r in receiver.requests] == [1, 3, 4]


def test_only_the_chosen_events_are_sent_and_never_a_note(receiver: Receiver) -> None:
    hook = Webhook(receiver.url, "bistro", no_incident, events={"acknowledged", "joined"}).start()
    try:
        hook(event(1, "open"))
        hook(event(1, "joined"))
        hook(event(1, "paged", "open"))
        hook(event(1, "paged", "paged"))  # a note (or a re-page): not a change
        hook(event(1, "acknowledged", "paged"))
        hook(event(1, "acknowledged", "acknowledged"))
        wait_until(lambda: len(receiver.requests) == 2, what="two deliveries")
    finally:
        hook.stop()
    assert [r.json["event"] for r in receiver.requests] == ["joined", "acknowledged"]


def test_by_default_every_state_change_is_sent_but_not_a_joined_press(receiver: Receiver) -> None:
    hook = Webhook(receiver.url, "bistro", no_incident).start()
    try:
        for e in (event(1, "open"), event(1, "joined"), event(1, "unreached", "open"), event(1, "cancelled", "open")):
            hook(e)
        wait_until(lambda: len(receiver.requests) == 3, what="three deliveries")
    finally:
        hook.stop()
    assert [r.json["event"] for r in receiver.requests] == ["open", "unreached", "cancelled"]


def test_an_incident_that_cannot_be_read_still_goes_out(receiver: Receiver) -> None:
    def broken(_inc: int) -> Incident | None:
        raise RuntimeError("database is locked")

    hook = Webhook(receiver.url, "bistro", broken).start()
    try:
        hook(event(5))
        wait_until(lambda: receiver.requests, what="a delivery")
    finally:
        hook.stop()
    assert receiver.requests[0].json["incident"] == 5 and receiver.requests[0].json["summary"] is None


def test_stop_delivers_what_is_queued(receiver: Receiver) -> None:
    counters = Counters()
    hook = Webhook(receiver.url, "bistro", no_incident, counters=counters)
    for inc in range(1, 6):
        hook(event(inc))
    hook.start()
    hook.stop()
    assert [r.json["incident"] for r in receiver.requests] == [1, 2, 3, 4, 5]
    assert counters.get("webhook.sent") == 5 and hook.pending() == 0


def test_stop_cuts_a_backoff_short_and_counts_what_is_left() -> None:
    counters = Counters()
    # the real sleep (the stop event's wait) with a backoff nobody would wait out in a test
    hook = Webhook(f"http://127.0.0.1:{free_port()}/hook", "bistro", no_incident, counters=counters,
                   backoff_s=(3600.0,)).start()
    hook(event(1))
    hook(event(2))
    wait_until(lambda: counters.get("webhook.retried") == 1, what="the first retry to wait")
    hook.stop()
    # the one waiting is given up at once; the queued one gets a single try within the drain time
    assert counters.get("webhook.failed") == 2 and counters.get("webhook.retried") == 1
    assert hook.pending() == 0


def test_from_venue(venue_doc: dict[str, Any], store: Store) -> None:
    assert Webhook.from_venue(parse_venue(venue_doc), store.incident) is None, "off by default"
    venue_doc["integrations"] = {"webhook_url": "https://hooks.example.com/x", "webhook_secret_env": "RB_HOOK_KEY",
                                 "webhook_events": ["resolved"]}
    venue = parse_venue(venue_doc)
    with pytest.raises(ValueError, match="RB_HOOK_KEY is not set"):
        Webhook.from_venue(venue, store.incident)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RB_HOOK_KEY", "k1")
        hook = Webhook.from_venue(venue, store.incident)
    assert hook is not None and hook.secret == "k1" and hook.events == {"resolved"}
    assert hook.site == venue.site and hook.url == "https://hooks.example.com/x"
