# ButtonApp: a debounced press becomes one signed event; signed feedback drives the LED.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from button_app import (
    ACK_SHOW_MS,
    DELIVER_TIMEOUT_MS,
    IDLE,
    OFF,
    ButtonApp,
)
from clock import ManualClock
from device import Messenger
from fakes import FakeLink, Recorder

import rbproto

SITE = "cafe"
DEVICE = "btn-t12"
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
KEY = rbproto.key_from_hex(KEY_HEX)
EPOCH = 5
GATEWAY_EP = 1767220000  # the gateway's boot epoch, carried in the commands it signs
TICK_MS = 10

BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
RED = (255, 0, 0)
WHITE = (255, 255, 255)


class Rig:
    """A ButtonApp on a manual clock with a fake link, LED and pin."""

    def __init__(self, link_up=True):
        self.clock = ManualClock(epoch_s=1767225600)
        self.link = FakeLink(link_up)
        self.log = []
        cfg = {"site": SITE, "device": DEVICE, "key": KEY_HEX}
        self.msgr = Messenger(cfg, EPOCH, self.clock, self.link, log=self.log.append)
        self.led = Recorder()
        self.held = False
        self.app = ButtonApp(self.msgr, self.clock, self.is_held, self.led, self.battery,
                             log=self.log.append)
        self.app.start()
        self.cmd_seq = 0

    def is_held(self):
        return self.held

    def battery(self):
        return 3900

    def run(self, ms):
        end = self.clock.ms() + ms
        while self.clock.ms() < end:
            self.app.tick()
            self.clock.advance(TICK_MS)

    def press(self, hold_ms=100, after_ms=500):
        self.held = True
        self.run(hold_ms)
        self.held = False
        self.run(after_ms)

    def feedback(self, state, inc=42, key=KEY, seq=None):
        """Sign a feedback command as the gateway does; returns (topic, payload)."""
        if seq is None:
            self.cmd_seq += 1
            seq = self.cmd_seq
        body = {"ep": GATEWAY_EP, "seq": seq, "ts": self.clock.epoch_s(), "inc": inc, "state": state}
        return rbproto.encode(key, SITE, DEVICE, "feedback", body)

    def send_feedback(self, state, inc=42):
        t, payload = self.feedback(state, inc)
        self.link.deliver(t, payload)
        return t, payload


def key_for(device):
    return KEY if device == DEVICE else None


def events(rig, mtype=None):
    """Decoded, verified events the device published (signature checked with the device key)."""
    out = []
    for t, payload, _retain in rig.link.sent:
        msg = rbproto.decode(t, payload, key_for)
        if mtype is None or msg.mtype == mtype:
            out.append(msg)
    return out


def test_start_registers_on_message():
    rig = Rig()
    assert rig.link.on_message is not None
    assert rig.app.state == IDLE
    assert rig.led.value == OFF


def test_short_press_publishes_one_signed_press():
    rig = Rig()
    rig.press()
    assert len(rig.link.sent) == 1
    t, payload, retain = rig.link.sent[0]
    assert t == "rb/v1/%s/%s/evt/press" % (SITE, DEVICE)
    assert retain is False
    msg = rbproto.decode(t, payload, key_for)
    assert msg.mtype == "press"
    assert msg.site == SITE
    assert msg.device == DEVICE
    assert msg.body["kind"] == "complaint"
    assert msg.body["ep"] == EPOCH
    assert msg.body["seq"] == 1
    assert msg.body["bat"] == 3900
    assert msg.body["ts"] == 1767225600  # the clock's wall time, under a second after boot
    assert rig.app.state == rbproto.SENDING
    assert rig.led.calls[:3] == [OFF, BLUE, OFF]  # fast blue blink: sending


def test_press_event_fails_verification_with_another_key():
    rig = Rig()
    rig.press()
    t, payload, _ = rig.link.sent[0]
    other = b"\x01" * 32
    try:
        rbproto.decode(t, payload, lambda d: other)
    except rbproto.ProtocolError as e:
        assert e.reason == rbproto.BAD_SIGNATURE
    else:
        raise AssertionError("a press verified with the wrong key")


def test_sequence_numbers_increase():
    rig = Rig()
    rig.press()
    rig.press()
    rig.press()
    seqs = [m.body["seq"] for m in events(rig, "press")]
    assert seqs == [1, 2, 3]
    assert len(rig.link.sent) == 3


def test_bouncing_contact_sends_nothing():
    rig = Rig()
    for _ in range(4):
        rig.held = not rig.held
        rig.run(TICK_MS)
    rig.held = False
    rig.run(1000)
    assert rig.link.sent == []
    assert rig.app.state == IDLE


def test_double_press_sends_happy_and_long_press_sends_cancel():
    rig = Rig()
    rig.held = True
    rig.run(100)
    rig.held = False
    rig.run(100)
    rig.held = True
    rig.run(100)
    rig.held = False
    rig.run(500)
    rig.press(hold_ms=2000)
    evs = events(rig)
    assert [m.mtype for m in evs] == ["press", "cancel"]
    assert evs[0].body["kind"] == "happy"
    assert evs[1].body["bat"] == 3900
    assert [m.body["seq"] for m in evs] == [1, 2]


def test_feedback_drives_states_and_colours():
    rig = Rig()
    rig.press()
    assert rig.app.state == rbproto.SENDING
    rig.send_feedback(rbproto.DELIVERED)
    assert rig.app.state == rbproto.DELIVERED
    assert rig.app.incident == 42
    assert rig.led.value == BLUE  # steady blue: heard
    rig.run(3000)
    assert rig.led.value == BLUE
    assert rig.app.state == rbproto.DELIVERED  # no timeout once delivered

    rig.send_feedback(rbproto.ACKNOWLEDGED)
    assert rig.app.state == rbproto.ACKNOWLEDGED
    assert rig.led.value == GREEN  # slow green pulse
    rig.run(950)
    assert rig.led.value == OFF
    rig.run(300)
    assert rig.led.value == GREEN

    rig.send_feedback(rbproto.RESOLVED)
    assert rig.app.state == rbproto.RESOLVED
    assert rig.led.value == GREEN
    rig.run(2900)
    assert rig.led.value == GREEN
    rig.run(200)
    assert rig.app.state == IDLE  # green for 3 s, then dark
    assert rig.led.value == OFF
    assert rig.msgr.dropped == 0


def test_cancelled_feedback_flashes_white_then_idle():
    rig = Rig()
    rig.press()
    rig.send_feedback(rbproto.CANCELLED)
    assert rig.app.state == rbproto.CANCELLED
    assert rig.led.value == WHITE
    rig.run(250)
    assert rig.led.value == OFF
    rig.run(200)
    assert rig.led.value == WHITE
    rig.run(300)
    assert rig.app.state == IDLE
    assert rig.led.value == OFF


def test_replayed_feedback_is_dropped():
    rig = Rig()
    rig.press()
    t, delivered = rig.send_feedback(rbproto.DELIVERED)
    rig.send_feedback(rbproto.ACKNOWLEDGED)
    assert rig.app.state == rbproto.ACKNOWLEDGED
    assert rig.msgr.dropped == 0
    rig.link.deliver(t, delivered)  # same ep/seq again
    assert rig.msgr.dropped == 1
    assert rig.app.state == rbproto.ACKNOWLEDGED
    assert rig.link.sent[1:] == []  # a drop is never answered


def test_duplicate_feedback_is_dropped():
    rig = Rig()
    rig.press()
    t, payload = rig.send_feedback(rbproto.DELIVERED)
    rig.link.deliver(t, payload)
    assert rig.msgr.dropped == 1
    assert rig.app.state == rbproto.DELIVERED
    assert any("replayed" in line for line in rig.log)


def test_feedback_with_bad_signature_is_dropped():
    rig = Rig()
    rig.press()
    t, payload = rig.feedback(rbproto.DELIVERED)
    text = payload.decode()
    i = text.index('"sig":"') + 7
    flipped = "0" if text[i] != "0" else "1"
    forged = (text[:i] + flipped + text[i + 1:]).encode()
    rig.link.deliver(t, forged)
    assert rig.msgr.dropped == 1
    assert rig.app.state == rbproto.SENDING
    assert any("bad_signature" in line for line in rig.log)


def test_feedback_signed_with_another_key_is_dropped():
    rig = Rig()
    rig.press()
    t, payload = rig.feedback(rbproto.ACKNOWLEDGED, key=b"\x07" * 32)
    rig.link.deliver(t, payload)
    assert rig.msgr.dropped == 1
    assert rig.app.state == rbproto.SENDING


def test_feedback_for_another_device_is_dropped():
    rig = Rig()
    rig.press()
    body = {"ep": GATEWAY_EP, "seq": 1, "ts": 1767225600, "inc": 42, "state": rbproto.DELIVERED}
    t, payload = rbproto.encode(KEY, SITE, "btn-t13", "feedback", body)
    rig.link.deliver(t, payload)
    assert rig.msgr.dropped == 1
    assert rig.app.state == rbproto.SENDING


def test_garbage_command_is_dropped():
    rig = Rig()
    rig.link.deliver("rb/v1/%s/%s/cmd/feedback" % (SITE, DEVICE), b"\x80 not json")
    rig.link.deliver("rb/v1/%s/%s/cmd/nonsense" % (SITE, DEVICE), b"{}")
    assert rig.msgr.dropped == 2
    assert rig.app.state == IDLE


def test_sending_times_out_to_error():
    rig = Rig()
    rig.held = True
    rig.run(100)
    rig.held = False
    while rig.app.state != rbproto.SENDING:
        rig.run(TICK_MS)
    sent_at = rig.clock.ms() - TICK_MS
    rig.run(DELIVER_TIMEOUT_MS - 100)
    assert rig.app.state == rbproto.SENDING
    rig.run(200)
    assert rig.app.state == rbproto.ERROR
    assert rig.clock.ms() - sent_at >= DELIVER_TIMEOUT_MS
    assert rig.led.value == RED
    rig.run(250)
    assert rig.led.value == OFF
    rig.run(250)
    assert rig.led.value == RED
    assert any("no delivery confirmation" in line for line in rig.log)


def test_late_delivery_after_error_recovers():
    rig = Rig()
    rig.press()
    rig.run(DELIVER_TIMEOUT_MS)
    assert rig.app.state == rbproto.ERROR
    rig.send_feedback(rbproto.DELIVERED)
    assert rig.app.state == rbproto.DELIVERED
    assert rig.led.value == BLUE


def test_link_down_shows_error_at_once():
    rig = Rig(link_up=False)
    rig.press()
    assert rig.link.sent == []
    assert rig.app.state == rbproto.ERROR
    assert rig.led.value == RED


def test_acknowledged_goes_dark_after_ack_show_time():
    rig = Rig()
    rig.press()
    rig.send_feedback(rbproto.ACKNOWLEDGED)
    rig.clock.advance(ACK_SHOW_MS - 1000)
    rig.run(TICK_MS)
    assert rig.app.state == rbproto.ACKNOWLEDGED
    rig.clock.advance(1000)
    rig.run(TICK_MS)
    assert rig.app.state == IDLE
    assert rig.led.value == OFF
