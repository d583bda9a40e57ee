"""The broker log follower on its own: mosquitto's lines (as 2.0.11 writes them) become counters and
one clear log line each; a file that grows a half line at a time, is rotated or truncated, is
followed without losing or counting a line twice. The lines come from a file written here; the
same lines from a real mosquitto are read in tests/test_access.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.broker import Mosquitto
from gateway.broker_access import BrokerAccess, acl_text, filter_within
from gateway.broker_log import (
    DENIED_PUBLISH,
    DENIED_SUBSCRIBE,
    LINES_PER_MINUTE,
    REFUSED_CONNECT,
    TLS_FAILED,
    BrokerLog,
    BrokerLogFollower,
)
from gateway.metrics import Counters
from gateway.venue import Venue
from waiting import wait_until

# As mosquitto 2.0.11 wrote them in this project's experiments (docs/security.md).
REFUSED = ["1795447101: New connection from 127.0.0.1:38949 on port 8883.",
           "1795447101: Client <unknown> disconnected, not authorised."]
CONNECTED_B = "1795447106: New client connected from 127.0.0.1:55157 as c-b (p2, c1, k60, u'btn-t1')."
DENIED = "1795447106: Denied PUBLISH from c-b (d0, q1, r0, m1, 'rb/v1/{site}/btn-t12/evt/press', ... (143 bytes))"
SUBSCRIBE = ["1795447107: Received SUBSCRIBE from c-b", "1795447107: \trb/v1/{site}/{topic} (QoS 1)"]
UNKNOWN_CA = ["1795447109: New connection from 127.0.0.1:43337 on port 8883.",
              "1795447109: OpenSSL Error[0]: error:0A000418:SSL routines::tlsv1 alert unknown ca",
              "1795447109: Client <unknown> disconnected: Protocol error."]
PLAIN_ON_TLS = "1795447110: Client connection from 127.0.0.1 failed: error:0A00010B:SSL routines::wrong version number."


@pytest.fixture
def counters() -> Counters:
    return Counters()


def feed(parser: BrokerLog, *lines: str, site: str = "s", topic: str = "") -> None:
    for line in lines:
        parser.feed(line.format(site=site, topic=topic))


def test_each_refusal_is_counted_and_logged_once_with_its_reason(counters: Counters, venue: Venue,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="redbutton.broker")
    parser = BrokerLog(counters, lambda: acl_text(venue))
    feed(parser, *REFUSED)
    feed(parser, CONNECTED_B, DENIED, site=venue.site)
    feed(parser, *SUBSCRIBE, site=venue.site, topic="btn-t1/cmd/#")  # its own: fine
    feed(parser, *SUBSCRIBE, site=venue.site, topic="pgr-ana/cmd/#")
    feed(parser, *SUBSCRIBE, site=venue.site, topic="+/cmd/#")
    feed(parser, *UNKNOWN_CA, PLAIN_ON_TLS)
    feed(parser, "1: Client connection from 127.0.0.1 failed: error:0A000126:SSL routines::unexpected eof while "
         "reading.")  # a port check (as Mosquitto.start does): nobody was refused
    assert {k: v for k, v in counters.snapshot().items() if k.startswith("broker.")} == {
        REFUSED_CONNECT: 1, DENIED_PUBLISH: 1, DENIED_SUBSCRIBE: 2, TLS_FAILED: 2}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "BROKER REFUSED a connection from 127.0.0.1:38949: not authorised (no login, an unknown user or a wrong "
        "password)",
        f"BROKER DENIED a publish by user btn-t1 (client c-b) to rb/v1/{venue.site}/btn-t12/evt/press: not in its ACL",
        f"BROKER DENIED a subscription by user btn-t1 (client c-b) to rb/v1/{venue.site}/pgr-ana/cmd/#: beyond its "
        "ACL, so none of what it covers past the ACL is delivered",
        f"BROKER DENIED a subscription by user btn-t1 (client c-b) to rb/v1/{venue.site}/+/cmd/#: beyond its "
        "ACL, so none of what it covers past the ACL is delivered",
        "BROKER TLS handshake failed from 127.0.0.1:43337: error:0A000418:SSL routines::tlsv1 alert unknown ca "
        "(a client that does not trust the broker's certificate: a device with an old or no ca.der?)",
        "BROKER TLS handshake failed from 127.0.0.1: error:0A00010B:SSL routines::wrong version number "
        "(a client speaking plain MQTT to the TLS port)",
    ]
    assert [getattr(r, "device", None) for r in caplog.records][1:4] == ["btn-t1"] * 3
    assert not parser.opening  # every connection that opened was accounted for


def test_the_gateways_own_subscriptions_and_unrelated_lines_count_nothing(counters: Counters, venue: Venue) -> None:
    parser = BrokerLog(counters, lambda: acl_text(venue))
    feed(parser, "1: New client connected from 127.0.0.1:1 as redbutton-gw (p5, c0, k15, u'gateway').",
         "1: Received SUBSCRIBE from redbutton-gw", f"1: \trb/v1/{venue.site}/+/evt/# (QoS 1)",
         f"1: \trb/v1/{venue.site}/+/status (QoS 1)", "1: Sending SUBACK to redbutton-gw",
         "1: Received PUBLISH from redbutton-gw (d0, q1, r1, m2, 'rb/v1/x/gateway/status', ... (40 bytes))",
         "1: mosquitto version 2.0.11 running", "not a mosquitto line at all", "")
    assert counters.snapshot() == {}
    assert dict(parser.users) == {"redbutton-gw": "gateway"}  # the lines were read, and found harmless


@pytest.mark.parametrize("stamp", ["1795447101: ", "2026-11-23T15:21:00: ", ""])  # log_timestamp_format, or none
def test_any_timestamp_mosquitto_can_write(stamp: str, counters: Counters) -> None:
    BrokerLog(counters).feed(stamp + "Client <unknown> disconnected, not authorised.")
    assert counters.get(REFUSED_CONNECT) == 1


def test_a_refusal_among_several_opening_connections_names_no_wrong_address(counters: Counters,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    parser = BrokerLog(counters)
    feed(parser, "1: New connection from 10.0.0.7:1000 on port 8883.",
         "1: New connection from 10.0.0.8:2000 on port 8883.", "1: Client <unknown> disconnected, not authorised.")
    assert "(one of 2 connections opening)" in caplog.records[-1].getMessage()
    assert counters.get(REFUSED_CONNECT) == 1


def test_a_flood_is_counted_in_full_and_logged_in_moderation(counters: Counters,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    parser = BrokerLog(counters, clock=lambda: now[0])
    for _ in range(500):
        feed(parser, *REFUSED)
    assert counters.get(REFUSED_CONNECT) == 500
    assert len(caplog.records) == LINES_PER_MINUTE
    now[0] = 61.0
    feed(parser, *REFUSED)
    assert f"({500 - LINES_PER_MINUTE} more not logged in the last minute" in caplog.records[-1].getMessage()


@pytest.mark.parametrize(("topic_filter", "pattern", "within"), [
    ("rb/v1/s/a/cmd/#", "rb/v1/s/a/cmd/#", True),
    ("rb/v1/s/a/cmd/alert", "rb/v1/s/a/cmd/#", True),
    ("rb/v1/s/a/cmd", "rb/v1/s/a/cmd/#", True),  # '#' also matches its parent level
    ("rb/v1/s/+/cmd/#", "rb/v1/s/a/cmd/#", False),
    ("rb/v1/s/#", "rb/v1/s/a/cmd/#", False),
    ("rb/v1/s/b/cmd/#", "rb/v1/s/a/cmd/#", False),
    ("rb/v1/s/b/cmd/x", "rb/v1/s/+/cmd/#", True),
    ("rb/v1/s/b/evt/x", "rb/v1/s/+/cmd/#", False),
    ("rb/v1/s/b/status", "rb/v1/s/b/status", True),
    ("rb/v1/s/b/status/x", "rb/v1/s/b/status", False),
])
def test_filter_within(topic_filter: str, pattern: str, within: bool) -> None:
    assert filter_within(topic_filter, pattern) is within


# ---- following the file ---------------------------------------------------------------------------


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "mosquitto.log"
    path.write_text("\n".join(REFUSED) + "\n")  # before the follower: not counted again
    return path


def test_lines_before_the_start_are_not_counted_and_half_lines_wait(log_file: Path, counters: Counters) -> None:
    follower = BrokerLogFollower(log_file, counters)
    assert follower.poll() == 0
    append(log_file, REFUSED[0] + "\n" + REFUSED[1][:20])
    assert follower.poll() == 1 and counters.get(REFUSED_CONNECT) == 0
    append(log_file, REFUSED[1][20:] + "\n")
    assert follower.poll() == 1 and counters.get(REFUSED_CONNECT) == 1


def test_a_log_rotated_by_renaming_is_read_to_its_end_and_the_new_one_from_its_start(log_file: Path,
                                                                                     counters: Counters) -> None:
    follower = BrokerLogFollower(log_file, counters)
    follower.poll()
    append(log_file, "\n".join(REFUSED) + "\n")
    log_file.rename(log_file.with_suffix(".log.1"))  # logrotate's create: renamed, and...
    assert follower.poll() == 2 and counters.get(REFUSED_CONNECT) == 1
    append(log_file.with_suffix(".log.1"), "\n".join(REFUSED) + "\n")  # mosquitto writes on until its SIGHUP
    append(log_file, "\n".join(REFUSED) + "\n")  # ...the new file, after the SIGHUP
    follower.poll()
    assert counters.get(REFUSED_CONNECT) == 3
    append(log_file, "\n".join(REFUSED) + "\n")
    follower.poll()
    assert counters.get(REFUSED_CONNECT) == 4


def test_a_log_truncated_in_place_is_read_from_its_start(log_file: Path, counters: Counters) -> None:
    follower = BrokerLogFollower(log_file, counters)
    follower.poll()
    os.truncate(log_file, 0)  # logrotate's copytruncate
    append(log_file, REFUSED[1] + "\n")
    follower.poll()
    assert counters.get(REFUSED_CONNECT) == 1


def test_a_log_that_does_not_exist_yet_is_read_from_its_first_line(tmp_path: Path, counters: Counters) -> None:
    path = tmp_path / "later.log"
    follower = BrokerLogFollower(path, counters)
    assert follower.poll() == 0
    path.write_text("\n".join(REFUSED) + "\n")
    assert follower.poll() == 2 and counters.get(REFUSED_CONNECT) == 1


def test_the_private_brokers_audit_mode_logs_what_the_follower_counts(tmp_path: Path, venue: Venue) -> None:
    """Mosquitto(audit=True), as tests and the demo may run it: the same log lines as a venue's broker."""
    access = BrokerAccess(tmp_path / "access")
    access.write_acl(venue)
    access.set_password("btn-t1", "b-password")
    counters = Counters()
    with Mosquitto(tmp_path / "broker", access=access, audit=True) as broker:
        follower = broker.follow(counters, lambda: acl_text(venue))
        try:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="b", protocol=mqtt.MQTTv311)
            c.username_pw_set("btn-t1", "b-password")
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            c.publish(f"rb/v1/{venue.site}/btn-t12/evt/press", b"{}", qos=1).wait_for_publish(5)
            c.disconnect()
            c.loop_stop()
            wait_until(lambda: counters.get(DENIED_PUBLISH) == 1, what=f"the denied publish: {counters.snapshot()}")
        finally:
            follower.stop()
