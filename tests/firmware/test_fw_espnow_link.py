# EspNowLink: hal.Link over ESP-NOW to a base station, on a manual clock and a fake radio.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from clock import ManualClock
from device import FIRMWARE, Messenger
from espnow_link import RXBUF, EspNowLink
from fakeradio import FakeRadio, FakeWlan

from rbproto import air

SITE = "cafe"
DEVICE = "pgr-ana"
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
BASE = b"\x24\x6f\x28\x00\x00\x01"
OTHER = b"\x02\x00\x00\x00\x00\x09"
STATUS_ONLINE = ('{"state":"online","fw":"%s","ep":3}' % FIRMWARE).encode()


class Rig:
    def __init__(self, start=True):
        self.clock = ManualClock()
        self.radio = FakeRadio()
        self.wlan = FakeWlan()
        self.log = []
        self.got = []
        cfg = {"site": SITE, "device": DEVICE, "key": KEY_HEX,
               "espnow": {"base_mac": "246f28000001", "channel": 6}}
        self.msgr = Messenger(cfg, 3, self.clock, None, log=self.log.append)
        self.link = EspNowLink(cfg, self.clock, self.msgr.status, log=self.log.append, radio=self.radio,
                               wlan=self.wlan)
        self.msgr.link = self.link
        self.base = air.Reassembler(self.clock)  # what the host makes of the packets
        if start:
            self.link.start(self.on_message)

    def on_message(self, topic, payload):
        self.got.append((topic, payload))

    def messages(self):
        """The messages the base station heard (acknowledged sends only), in order."""
        out = []
        for mac, packet, answer in self.radio.sent:
            if answer is True:
                m = self.base.add(mac, packet)
                if m is not None:
                    out.append(air.split(m))
        self.radio.sent = []
        return out

    def from_base(self, mac, topic, payload, msg_id=1):
        for p in air.fragment(msg_id, air.join(topic, payload)):
            self.radio.inbox.append((mac, p))


def test_start_joins_the_channel_and_announces_online():
    rig = Rig()
    assert rig.wlan.on and rig.wlan.channel == 6
    assert rig.radio.on and rig.radio.peers == [BASE]
    assert rig.radio.settings["rxbuf"] == RXBUF
    assert rig.messages() == [("rb/v1/cafe/pgr-ana/status", STATUS_ONLINE)]
    assert rig.link.is_up()
    assert rig.log[-1] == "LINK up"


def test_long_message_goes_in_fragments():
    rig = Rig()
    rig.messages()
    payload = b"x" * 450
    assert rig.link.publish("rb/v1/cafe/pgr-ana/evt/heartbeat", payload)
    assert len(rig.radio.sent) == 2
    assert rig.messages() == [("rb/v1/cafe/pgr-ana/evt/heartbeat", payload)]
    assert not rig.link.publish("rb/v1/cafe/pgr-ana/evt/heartbeat", b"x" * air.MAX_MESSAGE)  # too long: refused
    assert rig.link.is_up()


def test_failed_send_is_retried_once():
    rig = Rig()
    rig.messages()
    rig.radio.acks = [False, True]
    assert rig.link.publish("rb/v1/cafe/pgr-ana/evt/ack", b"{}")
    assert [s[2] for s in rig.radio.sent] == [False, True]
    assert rig.link.is_up()


def test_no_ack_takes_the_link_down_and_poll_reannounces_with_backoff():
    rig = Rig()
    rig.messages()
    rig.radio.ack = False
    assert not rig.link.publish("rb/v1/cafe/pgr-ana/evt/ack", b"{}")
    assert not rig.link.is_up()
    assert rig.log[-1].startswith("LINK down")
    rig.radio.sent = []
    rig.clock.advance(199)
    rig.link.poll()
    assert rig.radio.sent == []  # backoff: 200 ms first
    rig.clock.advance(1)
    rig.link.poll()
    assert len(rig.radio.sent) == 2  # the status, tried twice
    rig.radio.sent = []
    rig.clock.advance(499)
    rig.link.poll()
    assert rig.radio.sent == []  # then 500 ms
    rig.radio.ack = True
    rig.clock.advance(1)
    rig.link.poll()
    assert rig.link.is_up()
    assert rig.messages() == [("rb/v1/cafe/pgr-ana/status", STATUS_ONLINE)]


def test_a_send_that_gets_through_while_down_brings_the_link_up_and_reannounces():
    rig = Rig()
    rig.radio.ack = False
    rig.link.publish("rb/v1/cafe/pgr-ana/evt/ack", b"{}")
    rig.radio.sent = []
    rig.radio.ack = True
    assert rig.link.publish("rb/v1/cafe/pgr-ana/evt/ack", b"{}")  # tried although the link is down
    assert rig.link.is_up()
    rig.link.poll()
    assert [t for t, _p in rig.messages()] == ["rb/v1/cafe/pgr-ana/evt/ack", "rb/v1/cafe/pgr-ana/status"]


def test_commands_from_the_base_station_reach_the_app():
    rig = Rig()
    rig.from_base(BASE, "rb/v1/cafe/pgr-ana/cmd/config", b"c" * 450, msg_id=4)
    rig.from_base(OTHER, "rb/v1/cafe/pgr-ana/cmd/alert", b"spoofed", msg_id=5)
    rig.from_base(BASE, "rb/v1/cafe/pgr-ana/cmd/alert", b"{}", msg_id=6)
    rig.radio.inbox.append((BASE, b"\x07\x00\x01no topic line"))
    rig.link.poll()
    assert rig.got == [("rb/v1/cafe/pgr-ana/cmd/config", b"c" * 450), ("rb/v1/cafe/pgr-ana/cmd/alert", b"{}")]
    assert rig.log[-1] == "DROP reason=malformed air message"


def test_receiving_is_bounded_per_poll():
    rig = Rig()
    for i in range(12):
        rig.from_base(BASE, "rb/v1/cafe/pgr-ana/cmd/alert", b"%d" % i, msg_id=i)
    rig.link.poll()
    assert len(rig.got) == 8
    rig.link.poll()
    assert len(rig.got) == 12


def test_radio_errors_never_reach_the_app():
    rig = Rig()
    rig.radio.acks = [OSError(12396, "ESP_ERR_ESPNOW_IF"), OSError(12396, "ESP_ERR_ESPNOW_IF")]
    assert not rig.link.publish("rb/v1/cafe/pgr-ana/evt/ack", b"{}")
    rig.radio.recv_error = OSError(12389, "ESP_ERR_ESPNOW_NOT_INIT")
    rig.link.poll()
    assert not rig.link.is_up()


def test_rssi_comes_from_the_peer_table():
    rig = Rig()
    assert rig.link.rssi() == 0
    rig.radio.peers_table[BASE] = [-61, 1234]
    assert rig.link.rssi() == -61


def test_stop_turns_the_radio_off_and_start_brings_it_back():
    rig = Rig()
    rig.messages()
    rig.link.stop()
    assert not rig.radio.on and not rig.link.is_up()
    rig.link.start(rig.on_message)
    assert rig.radio.on and rig.link.is_up()
    assert [t for t, _p in rig.messages()] == ["rb/v1/cafe/pgr-ana/status"]
