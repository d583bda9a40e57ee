# PagerApp: signed alerts become text and vibration; its button acknowledges or declines.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from clock import ManualClock
from device import Messenger
from fakes import FakeLink, Recorder
from pager_app import BUZZ, PagerApp

import rbproto

SITE = "cafe"
DEVICE = "pgr-ana"
KEY_HEX = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
KEY = rbproto.key_from_hex(KEY_HEX)
EPOCH = 9
GATEWAY_EP = 1767220000
TICK_MS = 10


class FakeDisplay:
    def __init__(self):
        self.shown = []

    def show(self, lines):
        self.shown.append(list(lines))

    @property
    def lines(self):
        return self.shown[-1] if self.shown else []


class Rig:
    def __init__(self, link_up=True):
        self.clock = ManualClock(ms=1000, epoch_s=1767225600)
        self.link = FakeLink(link_up)
        self.log = []
        cfg = {"site": SITE, "device": DEVICE, "key": KEY_HEX}
        self.msgr = Messenger(cfg, EPOCH, self.clock, self.link, log=self.log.append)
        self.motor = Recorder()
        self.display = FakeDisplay()
        self.held = False
        self.app = PagerApp(self.msgr, self.clock, self.is_held, self.motor, self.display,
                            self.battery, log=self.log.append)
        self.app.start()
        self.cmd_seq = 0

    def is_held(self):
        return self.held

    def battery(self):
        return 4000

    def run(self, ms):
        """Advance `ms` in loop steps, ticking after each step (the last tick is at now + ms)."""
        end = self.clock.ms() + ms
        while self.clock.ms() < end:
            self.clock.advance(TICK_MS)
            self.app.tick()

    def press(self, hold_ms=100, after_ms=200):
        self.held = True
        self.run(hold_ms)
        self.held = False
        self.run(after_ms)

    def command(self, mtype, fields, seq=None, key=KEY):
        if seq is None:
            self.cmd_seq += 1
            seq = self.cmd_seq
        body = {"ep": GATEWAY_EP, "seq": seq, "ts": self.clock.epoch_s()}
        body.update(fields)
        t, payload = rbproto.encode(key, SITE, DEVICE, mtype, body)
        self.link.on_message(t, payload)
        return t, payload

    def alert(self, inc, table="T12", kind="complaint", lvl=0, seq=None):
        return self.command("alert", {"inc": inc, "table": table, "kind": kind, "lvl": lvl, "age": 0}, seq)

    def cancel(self, inc, why="resolved"):
        return self.command("alert_cancel", {"inc": inc, "why": why})


def key_for(device):
    return KEY if device == DEVICE else None


def events(rig):
    return [rbproto.decode(t, p, key_for) for t, p, _ in rig.link.sent]


def test_starts_with_no_alerts():
    rig = Rig()
    assert rig.display.lines == ["ON", "no alerts"]
    assert rig.motor.calls == [False]


def test_no_link_shown_in_head_line():
    rig = Rig(link_up=False)
    assert rig.display.lines[0] == "NO LINK"


def test_alert_shows_line_and_buzzes():
    rig = Rig()
    rig.alert(12)
    assert "T12 complaint 0:00" in rig.display.lines
    assert rig.display.lines == ["ON", "T12 complaint 0:00"]
    assert rig.motor.value is True
    assert rig.msgr.dropped == 0


def test_buzz_pattern_for_level_zero():
    rig = Rig()
    rig.alert(12)
    seen = [rig.motor.value]
    for _ in range(100):  # 1 s
        rig.run(TICK_MS)
        if rig.motor.value != seen[-1]:
            seen.append(rig.motor.value)
    assert seen == [s[0] for s in BUZZ[0]] + [False]


def test_age_advances_with_clock():
    rig = Rig()
    rig.alert(12)
    rig.run(1000)
    assert rig.display.lines[1] == "T12 complaint 0:01"
    rig.run(41000)
    assert rig.display.lines[1] == "T12 complaint 0:42"
    rig.run(60000)
    assert rig.display.lines[1] == "T12 complaint 1:42"


def test_short_press_acks_alert():
    rig = Rig()
    rig.alert(12)
    rig.run(42000)
    assert rig.display.lines[1] == "T12 complaint 0:42"
    rig.press()
    assert len(rig.link.sent) == 1
    t, payload, retain = rig.link.sent[0]
    assert t == "rb/v1/%s/%s/evt/ack" % (SITE, DEVICE)
    assert retain is False
    msg = rbproto.decode(t, payload, key_for)
    assert msg.mtype == "ack"
    assert msg.body["inc"] == 12
    assert msg.body["ep"] == EPOCH
    assert msg.body["seq"] == 1
    assert rig.display.lines == ["ON", "*T12 complaint 0:42"]
    assert rig.motor.value is False
    assert rig.app.alerts[0].acked


def test_second_press_with_all_acked_sends_nothing():
    rig = Rig()
    rig.alert(12)
    rig.press()
    rig.press()
    assert len(rig.link.sent) == 1


def test_alert_cancel_removes_line():
    rig = Rig()
    rig.alert(12)
    rig.alert(13, table="T13")
    rig.run(5000)
    rig.cancel(12)
    lines = rig.display.lines
    assert lines == ["ON", "T13 complaint 0:05"]
    rig.cancel(13)
    assert rig.display.lines == ["ON", "no alerts"]
    assert rig.app.alerts == []


def test_cancel_of_unknown_alert_is_harmless():
    rig = Rig()
    rig.alert(12)
    rig.cancel(99)
    assert rig.display.lines == ["ON", "T12 complaint 0:00"]


def test_alerts_ordered_by_level_then_age():
    rig = Rig()
    rig.alert(1, table="T1", lvl=0)
    rig.run(2000)
    rig.alert(2, table="T2", lvl=2)
    rig.run(1000)
    rig.alert(3, table="T3", lvl=0)
    rig.run(1000)
    assert rig.display.lines == ["ON", "T2 complaint 0:02", "T1 complaint 0:04", "T3 complaint 0:01"]


def test_press_acks_most_urgent_and_moves_it_down():
    rig = Rig()
    rig.alert(1, table="T1", lvl=0)
    rig.alert(2, table="T2", lvl=1)
    rig.press()
    msgs = events(rig)
    assert [m.mtype for m in msgs] == ["ack"]
    assert msgs[0].body["inc"] == 2
    assert rig.display.lines == ["ON", "T1 complaint 0:00", "*T2 complaint 0:00"]
    rig.press()
    msgs = events(rig)
    assert [m.body["inc"] for m in msgs] == [2, 1]
    assert [m.body["seq"] for m in msgs] == [1, 2]


def test_escalation_reorders_and_rebuzzes():
    rig = Rig()
    rig.alert(1, table="T1", lvl=0)
    rig.alert(2, table="T2", lvl=0)
    rig.run(1000)
    assert rig.motor.value is False
    assert rig.display.lines[1:] == ["T1 complaint 0:01", "T2 complaint 0:01"]
    rig.alert(2, table="T2", lvl=1)
    assert rig.display.lines[1:] == ["T2 complaint 0:01", "T1 complaint 0:01"]
    assert rig.motor.value is True


def test_redelivered_alert_is_idempotent():
    rig = Rig()
    rig.alert(12)
    rig.run(1000)
    before = len(rig.display.shown)
    rig.alert(12)  # same incident and level, new command
    assert len(rig.app.alerts) == 1
    assert rig.motor.value is False
    assert len(rig.display.shown) == before


def test_replayed_alert_is_dropped():
    rig = Rig()
    t, payload = rig.alert(12)
    rig.cancel(12)
    rig.link.on_message(t, payload)
    assert rig.msgr.dropped == 1
    assert rig.app.alerts == []
    assert rig.display.lines == ["ON", "no alerts"]


def test_forged_alert_is_dropped():
    rig = Rig()
    body = {"ep": GATEWAY_EP, "seq": 1, "ts": 1767225600, "inc": 5, "table": "T5", "kind": "x", "lvl": 2, "age": 0}
    t, payload = rbproto.encode(b"\x00" * 32, SITE, DEVICE, "alert", body)
    rig.link.on_message(t, payload)
    assert rig.msgr.dropped == 1
    assert rig.app.alerts == []
    assert rig.motor.calls == [False]


def test_long_press_declines_alert():
    rig = Rig()
    rig.alert(12)
    rig.press(hold_ms=1700)
    msgs = events(rig)
    assert [m.mtype for m in msgs] == ["decline"]
    assert msgs[0].body["inc"] == 12
    assert rig.app.alerts == []
    assert rig.display.lines == ["ON", "no alerts"]


def test_ack_with_link_down_keeps_alert_open():
    rig = Rig()
    rig.alert(12)
    rig.link.up = False
    rig.press()
    assert rig.link.sent == []
    assert not rig.app.alerts[0].acked
    rig.run(1000)  # the next once-a-second render shows the link state
    assert rig.display.lines == ["NO LINK", "T12 complaint 0:01"]


def test_at_most_four_alert_lines():
    rig = Rig()
    for inc in range(1, 7):
        rig.alert(inc, table="T%d" % inc)
    lines = rig.display.lines
    assert len(lines) == 5
    assert lines[1:] == ["T1 complaint 0:00", "T2 complaint 0:00", "T3 complaint 0:00", "T4 complaint 0:00"]
