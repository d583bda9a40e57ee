# ButtonApp: a debounced press becomes one signed event; signed feedback drives the LED.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from button_app import (
    ACK_SHOW_MS,
    AWAKE_MS,
    DELIVER_TIMEOUT_MS,
    ERROR_SHOW_MS,
    IDLE,
    LOW_BATTERY,
    OFF,
    RESENDS,
    ButtonApp,
)
from clock import ManualClock
from device import FIRMWARE, Heartbeat, Messenger
from fakes import FakeLink, Recorder, scratch
from outbox import Outbox
from settings import Settings

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
AMBER = (255, 120, 0)


class Rig:
    """A ButtonApp on a manual clock with a fake link, LED and pin."""

    def __init__(self, link_up=True, epoch=EPOCH, flash=None, woke_by_button=False, held=False, clock=None):
        self.clock = clock or ManualClock(epoch_s=1767225600)
        self.link = FakeLink(link_up)
        self.log = []
        self.flash = flash or {"venue": scratch("venue.json"), "outbox": scratch("outbox.txt")}
        cfg = {"site": SITE, "device": DEVICE, "key": KEY_HEX}
        self.msgr = Messenger(cfg, epoch, self.clock, self.link, log=self.log.append)
        self.led = Recorder()
        self.held = held
        self.mv = 3900
        self.settings = Settings(self.flash["venue"], self.log.append)
        self.outbox = Outbox(self.clock, self.flash["outbox"], self.log.append)
        self.heartbeat = Heartbeat(self.msgr, self.settings, self.battery, self.outbox)
        self.app = ButtonApp(self.msgr, self.clock, self.is_held, self.led, self.battery, self.settings,
                             self.heartbeat, self.outbox, self.log.append, woke_by_button)
        self.app.start()
        self.cmd_seq = 0

    def is_held(self):
        return self.held

    def battery(self):
        return self.mv

    def command(self, mtype, fields):
        self.cmd_seq += 1
        body = {"ep": GATEWAY_EP, "seq": self.cmd_seq, "ts": self.clock.epoch_s()}
        body.update(fields)
        t, payload = rbproto.encode(KEY, SITE, DEVICE, mtype, body)
        self.link.deliver(t, payload)

    def sent(self):
        """(topic, payload, retain) the device published, heartbeats left out."""
        return [s for s in self.link.sent if not s[0].endswith("/heartbeat")]

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

    def feedback(self, state, inc=42, key=KEY, seq=None, press=None):
        """Sign a feedback command as the gateway does; returns (topic, payload). `press`: the
        (ep, seq) it answers, (0, 0) for none, as a gateway that echoes sends it; None: no echo,
        as a gateway that does not."""
        if seq is None:
            self.cmd_seq += 1
            seq = self.cmd_seq
        body = {"ep": GATEWAY_EP, "seq": seq, "ts": self.clock.epoch_s(), "inc": inc, "state": state}
        if press is not None:
            body["pep"], body["pseq"] = press
        return rbproto.encode(key, SITE, DEVICE, "feedback", body)

    def send_feedback(self, state, inc=42, press=None):
        t, payload = self.feedback(state, inc, press=press)
        self.link.deliver(t, payload)
        return t, payload


def key_for(device):
    return KEY if device == DEVICE else None


def events(rig, mtype=None):
    """Decoded, verified events the device published (signature checked with the device key),
    heartbeats left out unless asked for."""
    out = []
    for t, payload, _retain in rig.link.sent if mtype == "heartbeat" else rig.sent():
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
    assert len(rig.sent()) == 1
    t, payload, retain = rig.sent()[0]
    assert t == "rb/v1/%s/%s/evt/press" % (SITE, DEVICE)
    assert retain is False
    msg = rbproto.decode(t, payload, key_for)
    assert msg.mtype == "press"
    assert msg.site == SITE
    assert msg.device == DEVICE
    assert msg.body["kind"] == "complaint"
    assert msg.body["ep"] == EPOCH
    assert msg.body["seq"] == 2  # 1 went to the boot heartbeat
    assert msg.body["bat"] == 3900
    assert msg.body["ts"] == 1767225600  # the clock's wall time, under a second after boot
    assert rig.app.state == rbproto.SENDING
    assert rig.led.calls[:3] == [OFF, BLUE, OFF]  # fast blue blink: sending


def test_press_event_fails_verification_with_another_key():
    rig = Rig()
    rig.press()
    t, payload, _ = rig.sent()[0]
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
    assert seqs == [2, 3, 4]  # 1 went to the boot heartbeat
    assert len(rig.sent()) == 3


def test_bouncing_contact_sends_nothing():
    rig = Rig()
    for _ in range(4):
        rig.held = not rig.held
        rig.run(TICK_MS)
    rig.held = False
    rig.run(1000)
    assert rig.sent() == []
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
    assert [m.body["seq"] for m in evs] == [2, 3]


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
    assert rig.sent()[1:] == []  # a drop is never answered


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


def test_press_with_the_link_down_is_queued_then_sent_with_its_original_time_and_number():
    rig = Rig(link_up=False)
    rig.press()
    assert rig.sent() == []
    assert len(rig.outbox) == 1
    assert any(line.startswith("PRESS seq=1 queued") for line in rig.log)
    assert rig.app.state == rbproto.SENDING
    rig.run(DELIVER_TIMEOUT_MS)
    assert rig.app.state == rbproto.ERROR  # never press into the void
    assert rig.led.value in (RED, OFF)
    pressed_ts = rig.clock.epoch_s() - DELIVER_TIMEOUT_MS // 1000
    rig.clock.advance(60000)
    rig.link.up = True
    rig.run(100)
    presses = events(rig, "press")
    assert len(presses) == 1
    assert presses[0].body["seq"] == 1
    assert presses[0].body["ts"] <= pressed_ts + 1  # the time of the press, not of the sending
    assert len(rig.outbox) == 0
    rig.send_feedback(rbproto.DELIVERED)
    assert rig.app.state == rbproto.DELIVERED


def test_queued_press_survives_a_reset_and_goes_before_anything_of_the_new_epoch():
    first = Rig(link_up=False)
    first.press()
    assert len(first.outbox) == 1
    # power cut: a new boot epoch, the same flash
    again = Rig(link_up=True, epoch=EPOCH + 1, flash=first.flash, clock=first.clock)
    assert any("QUEUE restored 1" in line for line in again.log)
    again.run(50)
    sent = [rbproto.decode(t, p, key_for) for t, p, _r in again.link.sent]
    assert [(m.mtype, m.body["ep"], m.body["seq"]) for m in sent[:2]] == [
        ("press", EPOCH, 1), ("heartbeat", EPOCH + 1, 1)]
    assert len(again.outbox) == 0


def test_outbox_keeps_first_and_newest_when_full_and_backs_off():
    clock = ManualClock()
    log = []
    box = Outbox(clock, scratch("outbox.txt"), log.append, max_items=3)
    for seq in range(1, 6):
        box.put(EPOCH, seq, "rb/v1/x/btn/evt/press", b"{}")
    assert [item[1] for item in box.items] == [1, 4, 5]
    assert box.dropped == 2
    link = FakeLink(up=False)
    assert box.flush(link) == 0
    assert box.retry_in_ms() == 1000
    clock.advance(500)
    link.up = True
    assert box.flush(link) == 0  # still waiting out the back-off
    clock.advance(500)
    assert box.flush(link) == 3
    assert box.retry_in_ms() is None
    assert [s[0] for s in link.sent] == ["rb/v1/x/btn/evt/press"] * 3
    restored = Outbox(clock, box.path)
    assert len(restored) == 0


def test_outbox_back_off_grows():
    clock = ManualClock()
    box = Outbox(clock, scratch("outbox.txt"), lambda line: None)
    box.put(EPOCH, 1, "t/evt/press", b"{}")
    link = FakeLink(up=False)
    waits = []
    for _ in range(6):
        box.flush(link)
        waits.append(box.retry_in_ms())
        clock.advance(box.retry_in_ms())
    assert waits == [1000, 2000, 5000, 10000, 30000, 30000]


def test_torn_outbox_file_keeps_complete_lines():
    path = scratch("outbox.txt")
    with open(path, "w") as f:
        f.write("5 1 rb/v1/x/btn/evt/press {\"a\":1}\n5 2 rb/v1/x/bt")
    box = Outbox(ManualClock(), path, lambda line: None)
    assert [item[1] for item in box.items] == [1]


def test_unanswered_press_is_sent_again_with_the_same_number():
    rig = Rig()
    rig.press()
    rig.run(DELIVER_TIMEOUT_MS)
    assert rig.app.state == rbproto.ERROR
    rig.run(100)
    presses = events(rig, "press")
    assert [m.body["seq"] for m in presses] == [2, 2]  # the gateway answers a repeat once more
    rig.send_feedback(rbproto.DELIVERED)
    assert rig.app.state == rbproto.DELIVERED
    rig.run(DELIVER_TIMEOUT_MS * 2)
    assert len(events(rig, "press")) == 2


def press_numbers(rig):
    return [m.body["seq"] for m in events(rig, "press")]


def test_only_the_echo_of_a_press_confirms_it():
    """Press 1 answered, press 2 sent; a late answer to press 1 and news of the incident arrive
    (they change the light), press 2's answer is lost: press 2 goes again after
    DELIVER_TIMEOUT_MS, and only the feedback that echoes it stops that."""
    rig = Rig()
    rig.press()
    first = press_numbers(rig)[0]
    rig.send_feedback(rbproto.DELIVERED, press=(EPOCH, first))
    assert rig.app.state == rbproto.DELIVERED
    rig.press()
    second = press_numbers(rig)[1]
    assert second == first + 1 and rig.app.state == rbproto.SENDING
    late = rig.feedback(rbproto.DELIVERED, press=(EPOCH, first))  # the first answer, delivered twice
    rig.link.deliver(*late)
    assert rig.app.state == rbproto.DELIVERED  # the light follows every feedback
    rig.send_feedback(rbproto.ACKNOWLEDGED, press=(rbproto.NO_PRESS, rbproto.NO_PRESS))  # someone took it
    assert rig.app.state == rbproto.ACKNOWLEDGED
    rig.send_feedback(rbproto.ACKNOWLEDGED, press=(EPOCH - 1, second))  # another boot's press
    rig.run(DELIVER_TIMEOUT_MS - 500)
    assert press_numbers(rig) == [first, second]
    rig.run(600)
    assert press_numbers(rig) == [first, second, second]  # the same press, same number, again
    assert any(line == "PRESS seq=%d unanswered, again" % second for line in rig.log)
    assert rig.app.state == rbproto.ACKNOWLEDGED  # what the customer was told stays
    rig.send_feedback(rbproto.ACKNOWLEDGED, press=(EPOCH, first))
    rig.run(2 * DELIVER_TIMEOUT_MS)
    assert press_numbers(rig) == [first, second, second, second]  # still not its answer: once more
    rig.send_feedback(rbproto.ACKNOWLEDGED, press=(EPOCH, second))
    assert "PRESS seq=%d answered" % second in rig.log
    rig.run(20 * DELIVER_TIMEOUT_MS)
    assert press_numbers(rig) == [first, second, second, second]  # answered: never again
    assert rig.app.state == rbproto.ACKNOWLEDGED
    assert rig.msgr.dropped == 0


def test_an_unanswered_press_goes_again_with_growing_waits_then_is_given_up():
    rig = Rig()
    rig.held = True
    rig.run(100)
    rig.held = False
    while not rig.sent():
        rig.run(TICK_MS)
    pressed = press_numbers(rig)[0]
    sent_at = rig.clock.ms()
    times = []
    while rig.clock.ms() - sent_at < 200 * 1000:
        before = len(rig.sent())
        rig.run(100)
        if len(rig.sent()) > before:
            times.append((rig.clock.ms() - sent_at) // 1000)
    assert times == [5, 15, 35]  # after 5 s, then 10 and 20 s more
    assert len(times) == RESENDS
    assert set(press_numbers(rig)) == {pressed}
    assert "PRESS seq=%d unanswered, given up" % pressed in rig.log
    assert rig.app.sleep_ms() is not None  # nothing left to wait for


def test_a_gone_press_keeps_the_button_awake_until_answered():
    rig = Rig()
    rig.run(20)  # boot heartbeat out
    rig.press()
    rig.send_feedback(rbproto.RESOLVED, press=(rbproto.NO_PRESS, rbproto.NO_PRESS))
    rig.run(3100 + AWAKE_MS)
    assert rig.app.state == IDLE
    assert rig.app.sleep_ms() is None  # its answer may still come: RAM would forget it asleep
    rig.send_feedback(rbproto.RESOLVED, press=(EPOCH, press_numbers(rig)[0]))
    rig.run(3100 + AWAKE_MS)
    assert rig.app.sleep_ms() is not None


def test_without_an_echo_any_feedback_answers_the_press():
    """A gateway that does not echo (or does not know this firmware reads it) sends feedback
    without pep/pseq: every one is an answer, as before the echo."""
    rig = Rig()
    rig.press()
    rig.send_feedback(rbproto.DELIVERED)
    rig.press()
    rig.send_feedback(rbproto.ACKNOWLEDGED)  # news of the incident, taken for the answer
    rig.run(10 * DELIVER_TIMEOUT_MS)
    assert len(press_numbers(rig)) == 2


def test_feedback_with_half_an_echo_is_dropped():
    rig = Rig()
    rig.press()
    body = {"ep": GATEWAY_EP, "seq": 1, "ts": rig.clock.epoch_s(), "inc": 42, "state": rbproto.DELIVERED}
    t, payload = rbproto.encode(KEY, SITE, DEVICE, "feedback", body)
    sig = payload[payload.find(b'"sig"'):]
    rig.link.deliver(t, payload[:payload.find(b'"sig"')] + b'"pep":5,' + sig)
    assert rig.msgr.dropped == 1
    assert any("reason=bad_field" in line for line in rig.log)
    assert rig.app.state == rbproto.SENDING


def test_venue_gesture_map_from_config_is_used_and_kept_in_flash():
    rig = Rig()
    rig.command("config", {"cv": 7, "gest": "short=help,long=cancel,double=bill", "acts": "fixed",
                           "hb": 600, "rebuzz": 20})
    rig.press()
    assert events(rig, "press")[0].body["kind"] == "help"
    again = Rig(flash=rig.flash)
    assert again.settings.version == 7
    assert again.app.gestures == {"short": "help", "long": "cancel", "double": "bill"}
    assert again.settings.heartbeat_ms == 600000


def test_heartbeat_reports_battery_signal_firmware_uptime_queue_and_config():
    rig = Rig()
    rig.run(20)
    beats = events(rig, "heartbeat")
    assert len(beats) == 1
    b = beats[0].body
    assert (b["bat"], b["rssi"], b["fw"], b["up"], b["q"], b["cv"]) == (3900, -60, FIRMWARE, 0, 0, 0)
    rig.clock.advance(299000)
    rig.run(20)
    assert len(events(rig, "heartbeat")) == 1
    rig.clock.advance(1000)
    rig.run(20)
    beats = events(rig, "heartbeat")
    assert len(beats) == 2
    assert beats[1].body["up"] == 300


def test_low_battery_is_shown_on_the_way_back_to_idle():
    rig = Rig()
    rig.mv = 3300
    rig.press()
    assert events(rig, "press")[0].body["bat"] == 3300
    rig.send_feedback(rbproto.CANCELLED)
    rig.run(700)
    assert rig.app.state == LOW_BATTERY
    assert rig.led.value in (AMBER, OFF)
    assert AMBER in rig.led.calls
    rig.run(800)
    assert rig.app.state == IDLE


def test_error_from_the_gateway_is_shown_then_the_button_may_sleep():
    rig = Rig()
    rig.press()
    rig.send_feedback(rbproto.ERROR)
    rig.run(1000)
    assert rig.app.sleep_ms() is None
    rig.clock.advance(ERROR_SHOW_MS)
    rig.run(20)
    assert rig.app.state == IDLE


def test_sleeps_only_when_idle_and_quiet_until_the_next_heartbeat():
    rig = Rig()
    rig.run(20)  # boot heartbeat out
    rig.press()
    assert rig.app.sleep_ms() is None  # showing "sending"
    rig.send_feedback(rbproto.RESOLVED)
    rig.run(3100)
    assert rig.app.state == IDLE
    assert rig.app.sleep_ms() is None  # a second press or a cancel may follow
    rig.run(AWAKE_MS)
    nap = rig.app.sleep_ms()
    assert nap is not None and 0 < nap <= 300000 - AWAKE_MS - 3000


def test_a_timer_wake_sleeps_again_right_after_its_heartbeat():
    rig = Rig()
    rig.run(600)
    assert len(events(rig, "heartbeat")) == 1
    nap = rig.app.sleep_ms()
    assert nap is not None and 299000 <= nap <= 300000


def test_with_the_link_down_it_waits_for_it_a_while_then_sleeps_and_retries():
    rig = Rig(link_up=False)
    rig.run(600)
    assert rig.app.sleep_ms() is None  # still connecting
    rig.run(5000)
    assert rig.app.sleep_ms() == 60000


def test_the_press_that_woke_the_board_counts():
    rig = Rig(woke_by_button=True, held=True)
    rig.run(80)  # the finger comes off soon after boot
    rig.held = False
    rig.run(500)
    presses = events(rig, "press")
    assert len(presses) == 1 and presses[0].body["kind"] == "complaint"


def test_a_short_press_over_before_boot_still_counts():
    rig = Rig(woke_by_button=True, held=False)
    rig.run(20)
    assert len(events(rig, "press")) == 1


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


def test_queue_and_numbering_carry_across_deep_sleep():
    from device import resume, session_text

    first = Rig(link_up=False)
    first.press()
    assert len(first.outbox) == 1
    rtc = session_text(first.msgr)  # written to RTC memory before deep sleep
    assert resume(rtc, woke=False) is None  # a reset or power cut: RTC memory means nothing
    assert resume("garbage", woke=True) is None
    ep, seq = resume(rtc, woke=True)
    assert (ep, seq) == (EPOCH, first.msgr.seq)
    again = Rig(link_up=True, epoch=ep, flash=first.flash, clock=first.clock)
    again.msgr.seq = seq
    again.run(50)
    sent = [rbproto.decode(t, p, key_for) for t, p, _r in again.link.sent]
    assert [(m.mtype, m.body["ep"], m.body["seq"]) for m in sent] == [
        ("press", EPOCH, 1), ("heartbeat", EPOCH, seq + 1)]
