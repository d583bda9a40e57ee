# BaseApp: ESP-NOW packets become serial frames and back, with a bounded peer table and counters.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
import json

from base_app import FLASH_MS, BaseApp
from clock import ManualClock
from fakeradio import FakeRadio, FakeSerial
from fakes import Recorder

from rbproto import frame

BASE_MAC = b"\x24\x6f\x28\x00\x00\x01"
DEV1 = b"\x02\x00\x00\x00\x00\x01"
DEV2 = b"\x02\x00\x00\x00\x00\x02"


class Rig:
    def __init__(self, max_peers=20, stats_ms=10000):
        self.clock = ManualClock()
        self.radio = FakeRadio()
        self.serial = FakeSerial()
        self.log = []
        self.led = Recorder()
        self.app = BaseApp(self.radio, self.serial, self.clock, BASE_MAC, log=self.log.append, led=self.led,
                           max_peers=max_peers, stats_ms=stats_ms)
        self.host = frame.Decoder()  # what the bridge would decode from the serial line
        self.app.start()

    def from_host(self):
        """Everything the base station has written since the last call, decoded as the host would."""
        out = self.host.feed(bytes(self.serial.written))
        self.serial.written = bytearray()
        return out

    def down(self, mac, packet, step=0):
        data = frame.encode(frame.DOWN, mac, packet)
        if step:
            for i in range(0, len(data), step):
                self.serial.feed(data[i:i + step])
                self.app.tick()
        else:
            self.serial.feed(data)
            self.app.tick()


def stats_of(items):
    for kind, mac, data in items:
        if kind == frame.STATS:
            return mac, json.loads(data)
    return None


def test_start_logs_ready_and_reports_stats():
    rig = Rig()
    assert rig.log[0] == "BASE ready mac=246f28000001"
    mac, stats = stats_of(rig.from_host())
    assert mac == BASE_MAC
    assert stats["up"] == 0 and stats["down"] == 0 and stats["peers"] == 0


def test_radio_packets_go_up_as_frames_in_order():
    rig = Rig()
    rig.from_host()
    rig.radio.inbox.append((DEV1, b"\x01\x00\x01first"))
    rig.radio.inbox.append((DEV2, b"\x07\x00\x01second packet"))
    rig.app.tick()
    # irecv's buffer was overwritten by the second packet: the first frame must hold its own copy
    assert rig.from_host() == [(frame.UP, DEV1, b"\x01\x00\x01first"), (frame.UP, DEV2, b"\x07\x00\x01second packet")]
    assert rig.log[-2:] == ["UP mac=020000000001 bytes=8", "UP mac=020000000002 bytes=16"]
    assert rig.app.up == 2


def test_down_frame_is_sent_and_reported():
    rig = Rig()
    rig.from_host()
    rig.down(DEV1, b"\x05\x00\x01cmd", step=3)  # the frame arrives in pieces over several reads
    assert rig.radio.peers == [DEV1]
    assert rig.radio.sent == [(DEV1, b"\x05\x00\x01cmd", True)]
    assert rig.from_host() == [(frame.SENT, DEV1, bytes((frame.SENT_OK,)) + b"\x05\x00\x01")]
    assert rig.log[-1] == "DOWN mac=020000000001 ok"
    assert rig.led.calls == [(0, 40, 0)]
    rig.clock.advance(FLASH_MS)
    rig.app.tick()
    assert rig.led.value == (0, 0, 0)


def test_failed_send_is_retried_once_then_reported():
    rig = Rig()
    rig.from_host()
    rig.radio.acks = [False, True]
    rig.down(DEV1, b"\x01\x00\x01a")
    assert [s[2] for s in rig.radio.sent] == [False, True]
    assert rig.from_host()[0][2][0] == frame.SENT_OK
    rig.radio.acks = [False, OSError(12393, "ESP_ERR_ESPNOW_NOT_FOUND")]
    rig.down(DEV1, b"\x02\x00\x01b")
    assert rig.from_host() == [(frame.SENT, DEV1, bytes((frame.SENT_FAIL,)) + b"\x02\x00\x01")]
    assert rig.log[-1] == "DOWN mac=020000000001 fail"
    assert rig.app.send_fail == 1
    assert rig.led.value == (60, 0, 0)


def test_peer_table_evicts_least_recently_used():
    rig = Rig(max_peers=3)
    macs = [bytes((2, 0, 0, 0, 0, i)) for i in range(1, 5)]
    for m in macs[:3]:
        rig.down(m, b"\x01\x00\x01x")
    rig.down(macs[0], b"\x02\x00\x01x")  # the first peer is used again: the second is now the oldest
    rig.down(macs[3], b"\x03\x00\x01x")
    assert rig.radio.deleted == [macs[1]]
    assert sorted(rig.radio.peers) == sorted([macs[0], macs[2], macs[3]])
    assert rig.app.evicted == 1
    rig.down(macs[1], b"\x04\x00\x01x")  # back again: the third is evicted now
    assert rig.radio.deleted == [macs[1], macs[2]]
    assert len(rig.radio.peers) == 3


def test_damaged_down_frames_are_counted_and_the_next_one_works():
    rig = Rig()
    good = frame.encode(frame.DOWN, DEV1, b"\x09\x00\x01ok")
    bad = bytearray(good)
    bad[-5] ^= 0x10  # a data byte: the COBS chain holds, the CRC does not
    rig.serial.feed(b"\xff\xfe garbage\x00" + bytes(bad) + good + frame.encode(frame.UP, DEV2, b"wrong way"))
    rig.app.tick()
    assert rig.radio.sent == [(DEV1, b"\x09\x00\x01ok", True)]
    assert rig.app.ignored == 1  # an UP frame from the host is not for the radio
    text = rig.app.stats()
    stats = json.loads(text)
    assert stats["bad_crc"] == 1 and stats["garbage"] == 1 and stats["down"] == 1


def test_stats_go_out_periodically():
    rig = Rig(stats_ms=5000)
    rig.from_host()
    rig.radio.inbox.append((DEV1, b"\x01\x00\x01x"))
    rig.clock.advance(4999)
    rig.app.tick()
    assert stats_of(rig.from_host()) is None
    rig.clock.advance(1)
    rig.app.tick()
    mac, stats = stats_of(rig.from_host())
    assert stats["up"] == 1 and stats["rx_lost"] == 3
    assert rig.log[-1].startswith("BASE stats {")


def test_radio_and_serial_errors_never_raise():
    rig = Rig()
    rig.radio.recv_error = OSError(12389, "ESP_ERR_ESPNOW_NOT_INIT")
    rig.serial.write_error = OSError(5, "EIO")
    rig.down(DEV1, b"\x01\x00\x01x")
    rig.app.tick()
    assert rig.app.serial_err >= 1
    assert "BASE recv error" in rig.log[-2] or any("recv error" in line for line in rig.log)


def test_oversized_radio_packet_is_not_bridged():
    rig = Rig()
    rig.from_host()
    rig.radio._data = bytearray(400)
    rig.radio.inbox.append((DEV1, bytes(frame.MAX_DATA + 1)))
    rig.app.tick()
    assert rig.from_host() == []
    assert rig.app.ignored == 1
