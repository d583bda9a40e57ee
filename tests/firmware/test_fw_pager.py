# PagerApp: signed alerts become vibration and a screen; keys A and B answer them.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs). The screen
# is a real framebuf.FrameBuffer (the simulator's shim on CPython) and is read back from its pixels.
from clock import ManualClock
from device import Messenger
from fake_oled import FakeOled, read_row, screen_lines
from fakes import FakeLink, Recorder, scratch
from pager_app import (
    A_LONG_MS,
    B_LONG_MS,
    MAX_ALERTS,
    MAX_PULSES,
    NOT_SENT_TICK,
    NOTICE_MS,
    PICK,
    PICK_IDLE_MS,
    REACTION_MS,
    SELECT_HOLD_MS,
    SENT_TICK,
    PagerApp,
    buzz_pattern,
)
from settings import Settings

import rbproto

SITE = "cafe"
DEVICE = "pgr-ana"
KEY_HEX = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
KEY = rbproto.key_from_hex(KEY_HEX)
EPOCH = 9
GATEWAY_EP = 1767220000
TICK_MS = 10
HEAD, BLOCK_A, BLOCK_B, ROW1, ROW2, ROW3, ROW4 = 0, 10, 19, 28, 37, 46, 55
CONFIG = {"cv": 7, "gest": "short=complaint", "acts": "apology,comp_drink,manager_visit", "hb": 60, "rebuzz": 10}


class Rig:
    """A PagerApp on a manual clock with a fake link, motor, keys and OLED."""

    def __init__(self, link_up=True, duty=None, duty_path=None):
        self.clock = ManualClock(ms=1000, epoch_s=1767225600)
        self.link = FakeLink(link_up)
        self.log = []
        cfg = {"site": SITE, "device": DEVICE, "key": KEY_HEX}
        self.msgr = Messenger(cfg, EPOCH, self.clock, self.link, log=self.log.append)
        self.motor = Recorder()
        self.oled = FakeOled()
        self.a = False
        self.b = False
        self.mv = 4000
        self.settings = Settings(scratch("venue.json"), log=self.log.append)
        self.duty_path = duty_path or scratch("duty")
        if duty is not None:
            with open(self.duty_path, "w") as f:
                f.write("1" if duty else "0")
        self.app = PagerApp(self.msgr, self.clock, self.key_a, self.key_b, self.motor, self.oled, self.battery,
                            self.settings, log=self.log.append, duty_path=self.duty_path)
        self.app.start()
        self.cmd_seq = 0
        self.run(TICK_MS)

    def key_a(self):
        return self.a

    def key_b(self):
        return self.b

    def battery(self):
        return self.mv

    def run(self, ms):
        """Advance `ms` in loop steps, ticking after each step."""
        end = self.clock.ms() + ms
        while self.clock.ms() < end:
            self.clock.advance(TICK_MS)
            self.app.tick()

    def press(self, key, hold_ms=100, after_ms=100):
        if key == "A":
            self.a = True
        else:
            self.b = True
        self.run(hold_ms)
        self.a = self.b = False
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

    def alert(self, inc, table="T12", kind="complaint", lvl=0, age=0, seq=None):
        t, payload = self.command("alert", {"inc": inc, "table": table, "kind": kind, "lvl": lvl, "age": age}, seq)
        self.run(TICK_MS)
        return t, payload

    def cancel(self, inc, why="customer cancelled"):
        self.command("alert_cancel", {"inc": inc, "why": why})
        self.run(TICK_MS)

    def lines(self):
        return screen_lines(self.oled)

    def row(self, y):
        return read_row(self.oled, y)

    def inv(self, y):
        return read_row(self.oled, y, True)

    def order(self):
        return [a.inc for a in self.app.ordered()]

    def selected(self):
        return self.app._selected


def key_for(device):
    return KEY if device == DEVICE else None


def events(rig, mtype=None):
    out = []
    for t, p, _ in rig.link.sent:
        msg = rbproto.decode(t, p, key_for)
        if mtype is None or msg.mtype == mtype:
            out.append(msg)
    return out


def logged(rig, start):
    return [line for line in rig.log if line.startswith(start)]


def on_ms(steps):
    total = 0
    for on, ms in steps:
        if on:
            total += ms
    return total


def pulses(steps):
    return len([s for s in steps if s[0]])


def motor_changes(rig, ms):
    """The motor's values while the loop runs `ms` (each change once)."""
    seen = [rig.motor.value]
    for _ in range(ms // TICK_MS):
        rig.run(TICK_MS)
        if rig.motor.value != seen[-1]:
            seen.append(rig.motor.value)
    return seen


# ---- screen ---------------------------------------------------------------------------------------

def test_starts_idle_with_header_and_hint():
    rig = Rig()
    assert rig.lines() == ["              B4", "   no alerts", "hold B: off duty"]
    assert rig.motor.calls == [False]


def test_header_shows_duty_link_count_and_battery():
    rig = Rig(duty=True, link_up=False)
    assert rig.row(HEAD) == "ON  NO LINK   B4"
    rig.link.up = True
    rig.run(TICK_MS)
    assert rig.row(HEAD) == "ON            B4"
    rig.alert(1)
    rig.alert(2, table="T2")
    assert rig.row(HEAD) == "ON          2 B4"
    rig.mv = 3500
    rig.run(10000)
    assert rig.row(HEAD).endswith("2 B1")


def test_alert_draws_the_selected_block_inverted():
    rig = Rig()
    rig.alert(12, age=42)
    assert rig.inv(BLOCK_A) == "T12·complaint"
    assert rig.inv(BLOCK_B) == "NEW         0:42"
    assert rig.lines() == ["            1 B4", "T12·complaint", "NEW         0:42"]
    # the block is lit from edge to edge, one pixel above and below its two rows
    for x in (0, 64, 127):
        assert rig.oled.pixel(x, BLOCK_A - 1) == 1
        assert rig.oled.pixel(x, BLOCK_B + 7) == 1
    assert rig.oled.pixel(0, BLOCK_A - 2) == 0


def test_block_pixels_match_framebuf_text():
    """The age, drawn dark on the lit block, is exactly framebuf's own text in a second buffer."""
    rig = Rig()
    rig.alert(12, age=42)
    expected = FakeOled()
    expected.fill_rect(0, BLOCK_B - 1, 128, 9, 1)
    expected.text("0:42", 96, BLOCK_B, 0)
    for x in range(96, 128):
        for y in range(BLOCK_B - 1, BLOCK_B + 8):
            assert rig.oled.pixel(x, y) == expected.pixel(x, y), (x, y)


def test_age_starts_from_the_alert_and_moves_each_second():
    rig = Rig()
    rig.alert(12, age=42)
    assert rig.inv(BLOCK_B).endswith("0:42")
    rig.run(1000)
    assert rig.inv(BLOCK_B).endswith("0:43")
    rig.run(60000)
    assert rig.inv(BLOCK_B).endswith("1:43")
    rig.run(3600 * 1000)
    assert rig.inv(BLOCK_B).endswith("1h01")


def test_renders_only_when_something_changed():
    rig = Rig()
    shows = rig.oled.shows
    rig.run(5000)
    assert rig.oled.shows == shows  # idle: nothing moves
    rig.alert(12)
    shows = rig.oled.shows
    rig.run(5000)
    assert 5 <= rig.oled.shows - shows <= 6  # one frame a second for the age


def test_list_orders_waiting_then_level_then_age():
    rig = Rig()
    rig.alert(1, table="T1", age=10)
    rig.alert(2, table="T2", lvl=2)
    rig.alert(3, table="T3", kind="help", age=30)
    rig.alert(4, table="T4", kind="happy", age=30)  # as old as T3: arrival order breaks the tie
    assert rig.order() == [2, 3, 4, 1]
    assert rig.inv(BLOCK_A) == "T2·complaint"
    assert rig.inv(BLOCK_B) == "ESC 2       0:00"
    assert [rig.row(ROW1), rig.row(ROW2), rig.row(ROW3)] == [
        "T3 help     0:30", "T4 happy    0:30", "T1 complain 0:10"]
    rig.run(REACTION_MS)
    rig.press("A")  # acknowledge T2: it goes below the waiting ones
    assert rig.order() == [3, 4, 1, 2]
    assert rig.inv(BLOCK_A) == "T3·help"
    assert rig.row(ROW3) == "*T2 complai 0:00"


def test_equal_alerts_keep_arrival_order():
    rig = Rig()
    for inc in (5, 3, 9, 1, 7):
        rig.command("alert", {"inc": inc, "table": "T%d" % inc, "kind": "help", "lvl": 0, "age": 0})
    rig.run(TICK_MS)
    assert rig.order() == [5, 3, 9, 1, 7]


def test_more_alerts_than_rows():
    rig = Rig()
    for inc in range(1, 8):
        rig.alert(inc, table="T%d" % inc, kind="help")
    assert rig.row(ROW3) == "T4 help     0:00"
    assert rig.row(ROW4) == "+3 more"


def test_long_table_is_never_cut_and_nothing_is_drawn_past_the_edge():
    rig = Rig()
    rig.alert(1, table="terrace-table-12", kind="a_very_long_kind_of_call", age=4000)
    rig.alert(2, table="terrace-and-garden-table-17", kind="help", age=5)
    rig.alert(3, table="T3", kind="something_long_again", age=7)
    assert rig.inv(BLOCK_A) == "terrace-table-12"
    assert rig.inv(BLOCK_B) == "NEW         1h06"
    assert rig.row(ROW1) == "T3 somethin 0:07"
    assert rig.row(ROW2) == "terrace-and-gar~"
    rig.press("B")
    rig.press("B")
    assert rig.inv(BLOCK_A) == "terrace-and-gard"
    assert rig.inv(BLOCK_B) == "en-table-17 0:05"
    assert rig.oled.blank_past_edge()


def test_nothing_drawn_past_the_edge_in_the_pick_list():
    rig = Rig()
    rig.command("config", {"cv": 2, "gest": "short=complaint", "acts": "a_recovery_action_too_long_to_fit,b",
                           "hb": 60, "rebuzz": 30})
    rig.alert(1, table="T1")
    rig.press("A")
    rig.run(REACTION_MS)
    rig.press("A")
    assert rig.app.mode == PICK
    assert rig.inv(BLOCK_B) == "a recovery act"
    assert rig.oled.blank_past_edge()


# ---- vibration ------------------------------------------------------------------------------------

def test_pattern_by_kind_and_level():
    happy, help0, complaint0 = buzz_pattern("happy", 0), buzz_pattern("help", 0), buzz_pattern("complaint", 0)
    assert pulses(happy) == 1 and on_ms(happy) <= 150  # short and soft
    assert on_ms(happy) < on_ms(help0) < on_ms(complaint0)
    levels = [buzz_pattern("complaint", lvl) for lvl in range(4)]
    for lower, higher in zip(levels, levels[1:]):
        assert on_ms(lower) < on_ms(higher)
        assert pulses(lower) <= pulses(higher)
    assert pulses(buzz_pattern("complaint", 9, 9)) == MAX_PULSES


def test_alert_buzzes_its_pattern_once():
    rig = Rig()
    rig.alert(12, kind="complaint", lvl=1)
    assert rig.motor.value is True
    steps = buzz_pattern("complaint", 1)
    expected = [True]
    for on, _ms in steps:
        if on != expected[-1]:
            expected.append(on)
    assert motor_changes(rig, 5000) == expected + [False]


def test_waiting_alert_rebuzzes_every_interval_more_each_time():
    rig = Rig()
    assert rig.settings.rebuzz_ms == 30000
    rig.alert(12, kind="help")
    start = rig.clock.ms()
    rig.run(30000 - 2 * TICK_MS - (rig.clock.ms() - start))
    assert logged(rig, "REBUZZ") == []
    rig.run(3 * TICK_MS)
    assert logged(rig, "REBUZZ") == ["REBUZZ inc=12 n=1"]
    assert rig.motor.value is True
    first = motor_changes(rig, 5000)
    assert first == [True, False] * pulses(buzz_pattern("help", 0, 1))
    rig.run(25000)
    assert logged(rig, "REBUZZ") == ["REBUZZ inc=12 n=1", "REBUZZ inc=12 n=2"]
    assert on_ms(buzz_pattern("help", 0, 2)) > on_ms(buzz_pattern("help", 0, 1)) > on_ms(buzz_pattern("help", 0))
    rig.run(30000 * 8)
    assert len(logged(rig, "REBUZZ")) == 10
    assert pulses(buzz_pattern("help", 0, 10)) == MAX_PULSES
    rig.press("A")  # acknowledged: no more re-buzz
    rig.run(90000)
    assert len(logged(rig, "REBUZZ")) == 10


def test_rebuzz_interval_comes_from_the_venue():
    rig = Rig()
    rig.command("config", CONFIG)
    rig.alert(12)
    rig.run(10000)
    assert logged(rig, "REBUZZ") == ["REBUZZ inc=12 n=1"]


def test_rebuzz_picks_the_most_urgent_waiting_alert():
    rig = Rig()
    rig.command("config", CONFIG)
    rig.alert(1, table="T1", kind="happy")
    rig.alert(2, table="T2", lvl=1)
    rig.run(10000)
    assert logged(rig, "REBUZZ") == ["REBUZZ inc=2 n=1"]


def test_a_key_silences_the_buzz_and_restarts_the_rebuzz_wait():
    rig = Rig()
    rig.command("config", CONFIG)
    rig.alert(12)
    rig.run(5000)
    rig.press("B")  # just looking
    rig.run(9000)
    assert logged(rig, "REBUZZ") == []
    rig.run(1500)
    assert logged(rig, "REBUZZ") == ["REBUZZ inc=12 n=1"]
    rig.b = True
    rig.run(100)
    assert rig.motor.value is False
    rig.b = False
    rig.run(100)


# ---- keys -----------------------------------------------------------------------------------------

def test_a_short_acknowledges_the_selected_alert():
    rig = Rig()
    rig.alert(12, age=42)
    rig.press("A")
    acks = events(rig, "ack")
    assert [m.body["inc"] for m in acks] == [12]
    assert acks[0].body["ep"] == EPOCH
    assert "ACK inc=12 seq=%d sent" % acks[0].body["seq"] in rig.log
    assert rig.app.alerts[0].acked
    assert rig.inv(BLOCK_B) == "ON IT       0:42"
    assert rig.inv(ROW4) == "ACK SENT T12"
    assert rig.motor.calls[-2:] == [SENT_TICK[0][0], False]
    rig.run(NOTICE_MS)
    assert rig.row(ROW4) == ""


def test_ack_moves_the_selection_to_the_next_waiting_alert():
    rig = Rig()
    rig.alert(1, table="T1", lvl=1)
    rig.alert(2, table="T2")
    rig.press("A")
    rig.press("A")
    assert [m.body["inc"] for m in events(rig, "ack")] == [1, 2]


def test_a_long_declines():
    rig = Rig()
    rig.alert(12)
    rig.press("A", hold_ms=A_LONG_MS + 100)
    declines = events(rig, "decline")
    assert [m.body["inc"] for m in declines] == [12]
    assert "DECLINE inc=12 seq=%d sent" % declines[0].body["seq"] in rig.log
    assert events(rig, "ack") == []
    assert rig.app.alerts == []
    assert rig.inv(ROW4) == "PASSED ON T12"


def test_a_long_on_an_acknowledged_alert_sends_nothing():
    rig = Rig()
    rig.alert(12)
    rig.press("A")
    rig.press("A", hold_ms=A_LONG_MS + 100)
    assert events(rig, "decline") == []
    assert len(rig.app.alerts) == 1


def test_b_short_moves_the_selection_and_a_answers_it():
    rig = Rig()
    rig.alert(1, table="T1", lvl=1)
    rig.alert(2, table="T2")
    rig.alert(3, table="T3")
    rig.press("B")
    assert rig.inv(BLOCK_A) == "T2·complaint"
    assert rig.row(ROW1) == "T1 complain 0:00"
    rig.press("B")
    rig.press("B")
    assert rig.inv(BLOCK_A) == "T1·complaint"  # round again
    rig.press("B")
    rig.press("B")
    rig.press("A")
    assert [m.body["inc"] for m in events(rig, "ack")] == [3]


def test_a_moved_selection_returns_to_the_most_urgent_after_a_while():
    rig = Rig()
    rig.alert(1, table="T1", lvl=1)
    rig.alert(2, table="T2")
    rig.press("B")
    assert rig.selected() == 2
    rig.run(SELECT_HOLD_MS - 500)
    assert rig.selected() == 2
    rig.run(600)
    assert rig.selected() == 1
    assert rig.inv(BLOCK_A) == "T1·complaint"


def test_a_key_pressed_as_a_new_alert_arrives_acts_on_the_alert_shown():
    rig = Rig()
    rig.alert(1, table="T1")
    rig.a = True
    rig.run(40)
    rig.alert(2, table="T2", lvl=2)  # takes the top of the screen just before the key registers
    rig.run(40)
    rig.a = False
    rig.run(100)
    assert [m.body["inc"] for m in events(rig, "ack")] == [1]
    assert rig.selected() == 2
    rig.run(REACTION_MS)
    rig.press("A")
    assert [m.body["inc"] for m in events(rig, "ack")] == [1, 2]


# ---- resolve --------------------------------------------------------------------------------------

def test_resolve_through_the_pick_list():
    rig = Rig()
    rig.alert(12)
    rig.press("A")  # acknowledge
    rig.run(NOTICE_MS)
    rig.press("A")  # on an acknowledged alert: the pick-list
    assert rig.app.mode == PICK
    assert rig.row(BLOCK_A) == "T12      RESOLVE"
    assert rig.inv(BLOCK_B) == "apology"
    assert [rig.row(ROW1), rig.row(ROW2), rig.row(ROW3)] == ["fixed", "replaced", "discount       v"]
    assert rig.row(ROW4) == "A:send hold:back"
    for _ in range(4):
        rig.press("B")
    assert rig.row(BLOCK_B) == "fixed          ^"
    assert rig.inv(ROW3) == "free item"
    rig.press("A")
    resolves = events(rig, "resolve")
    assert [(m.body["inc"], m.body["action"]) for m in resolves] == [(12, "free_item")]
    assert "RESOLVE inc=12 action=free_item seq=%d sent" % resolves[0].body["seq"] in rig.log
    assert rig.app.alerts == []
    assert rig.app.mode != PICK
    assert rig.inv(ROW4) == "RESOLVED T12"


def ack_and_pick(rig):
    """Acknowledge the selected alert, look, and press A again: the pick-list."""
    rig.press("A")
    rig.run(REACTION_MS)
    rig.press("A")
    assert rig.app.mode == PICK


def test_a_second_press_too_soon_after_the_ack_does_not_open_the_pick_list():
    rig = Rig()
    rig.alert(12)
    rig.press("A")
    rig.press("A")  # a double press
    assert rig.app.mode != PICK
    rig.run(REACTION_MS)
    rig.press("A")
    assert rig.app.mode == PICK


def test_pick_list_backs_out_with_a_long_press_of_either_key():
    rig = Rig(duty=True)
    rig.alert(12)
    ack_and_pick(rig)
    rig.press("B")
    assert rig.inv(ROW1) == "fixed"
    rig.press("A", hold_ms=A_LONG_MS + 100)
    assert rig.app.mode != PICK
    rig.press("A")
    assert rig.app.mode == PICK
    assert rig.inv(BLOCK_B) == "apology"  # a fresh start
    rig.press("B", hold_ms=B_LONG_MS + 100)
    assert rig.app.mode != PICK
    assert rig.app.on_duty is True  # B long backs out here; it does not end the shift
    assert events(rig, "resolve") == []
    assert events(rig, "decline") == []


def test_pick_list_closes_by_itself():
    rig = Rig()
    rig.alert(12)
    ack_and_pick(rig)
    rig.run(PICK_IDLE_MS - 500)
    assert rig.app.mode == PICK
    rig.run(600)
    assert rig.app.mode != PICK
    assert rig.inv(BLOCK_A) == "T12·complaint"


def test_a_new_alert_closes_the_pick_list():
    rig = Rig()
    rig.alert(12)
    ack_and_pick(rig)
    rig.alert(13, table="T13")
    assert rig.app.mode != PICK
    assert rig.inv(BLOCK_A) == "T13·complaint"


def test_config_is_applied_and_its_actions_offered():
    rig = Rig()
    rig.command("config", CONFIG)
    rig.run(TICK_MS)
    assert rig.settings.version == 7
    assert rig.settings.actions() == ["apology", "comp_drink", "manager_visit"]
    assert "CONFIG cv=7 applied" in rig.log
    assert rig.inv(ROW4) == "SETTINGS UPDATED"
    rig.alert(12)
    rig.press("A")
    rig.run(REACTION_MS)
    rig.press("A")
    rig.press("B")
    assert rig.inv(ROW1) == "comp drink"
    rig.press("A")
    assert [m.body["action"] for m in events(rig, "resolve")] == ["comp_drink"]
    again = Settings(rig.settings.path)  # kept in flash
    assert again.version == 7


# ---- duty -----------------------------------------------------------------------------------------

def test_b_hold_toggles_duty_and_sends_it():
    rig = Rig()
    assert rig.app.on_duty is None
    rig.press("B", hold_ms=B_LONG_MS + 100)
    duty = events(rig, "duty")
    assert [m.body["on"] for m in duty] == [0]
    assert "DUTY off seq=%d sent (key)" % duty[0].body["seq"] in rig.log
    assert rig.row(HEAD) == "OFF           B4"
    assert rig.inv(BLOCK_B) == "    OFF DUTY"
    rig.run(NOTICE_MS)
    assert rig.row(ROW4) == "hold B: on duty"
    rig.press("B", hold_ms=B_LONG_MS + 100)
    assert [m.body["on"] for m in events(rig, "duty")] == [0, 1]
    assert rig.row(HEAD) == "ON            B4"
    assert Rig(duty_path=rig.duty_path).app.on_duty is True  # kept in flash


def test_b_short_hold_is_not_a_duty_toggle():
    rig = Rig()
    rig.press("B", hold_ms=A_LONG_MS + 100)
    assert events(rig, "duty") == []


def test_duty_is_sent_at_every_link_up_once_set():
    rig = Rig(duty=False)
    assert [m.body["on"] for m in events(rig, "duty")] == [0]
    rig.link.up = False
    rig.run(1000)
    rig.link.up = True
    rig.run(TICK_MS)
    assert [m.body["on"] for m in events(rig, "duty")] == [0, 0]
    assert logged(rig, "DUTY off")[-1].endswith("sent (link up)")
    unset = Rig()
    assert events(unset, "duty") == []  # never set here: the venue file's roster stands


def test_off_duty_alert_is_declined_at_once():
    rig = Rig(duty=False)
    rig.alert(12)
    assert [m.body["inc"] for m in events(rig, "decline")] == [12]
    assert "ALERT inc=12 shown T12 complaint lvl=0 age=0 off duty" in rig.log
    assert logged(rig, "DECLINE inc=12")[0].endswith("sent (off duty)")
    assert rig.app.alerts == []
    assert rig.motor.calls == [False]  # no buzz
    assert rig.inv(ROW4) == "PASSED ON T12"


def test_going_off_duty_passes_on_waiting_alerts_and_keeps_acknowledged_ones():
    rig = Rig(duty=True)
    rig.alert(1, table="T1")
    rig.alert(2, table="T2")
    rig.press("A")
    rig.press("B", hold_ms=B_LONG_MS + 100)
    assert [m.body["inc"] for m in events(rig, "decline")] == [2]
    assert [a.inc for a in rig.app.alerts] == [1]
    assert rig.row(HEAD).startswith("OFF")
    assert rig.inv(BLOCK_B).startswith("ON IT")


# ---- link -----------------------------------------------------------------------------------------

def test_ack_while_the_link_is_down_is_shown_and_sent_at_link_up():
    rig = Rig()
    rig.alert(12)
    rig.link.up = False
    rig.run(TICK_MS)
    assert rig.row(HEAD).startswith("    NO LINK")
    rig.press("A")
    assert events(rig, "ack") == []
    assert logged(rig, "ACK inc=12")[0].endswith("NOT SENT: link down, sent at link-up")
    assert rig.inv(BLOCK_B) == "NOT SENT    0:00"
    assert rig.inv(ROW4) == "NOT SENT-NO LINK"
    rig.run(500)
    assert rig.motor.calls[-len(NOT_SENT_TICK) - 1:] == [s[0] for s in NOT_SENT_TICK] + [False]
    rig.command("config", CONFIG)  # a short re-buzz interval: the answered alert stays quiet
    rig.run(30000)
    assert logged(rig, "REBUZZ") == []
    rig.link.up = True
    rig.run(TICK_MS)
    acks = events(rig, "ack")
    assert [m.body["inc"] for m in acks] == [12]
    assert "ACK inc=12 seq=%d sent (queued)" % acks[0].body["seq"] in rig.log
    assert rig.inv(BLOCK_B).startswith("ON IT")
    assert rig.row(HEAD) == "            1 B4"


def test_not_sent_can_be_retried_by_hand():
    rig = Rig()
    rig.alert(12)
    rig.alert(13, table="T13", lvl=1)
    rig.run(REACTION_MS)
    rig.link.up = False
    rig.press("A")  # T13, the most urgent
    assert rig.inv(BLOCK_A) == "T13·complaint"  # the unsent one stays on top
    rig.link.up = True
    rig.press("A")  # pressed again before the link-up was noticed: sent now, once
    rig.run(1000)
    assert [m.body["inc"] for m in events(rig, "ack")] == [13]
    assert rig.app.mode != PICK  # the retry is not taken for a second press on an acknowledged alert


def test_decline_and_resolve_while_the_link_is_down_are_kept():
    rig = Rig()
    rig.alert(1, table="T1", lvl=1)
    rig.alert(2, table="T2")
    rig.press("A")  # T1 acknowledged
    rig.link.up = False
    rig.press("B")  # T1 (acknowledged) selected
    rig.run(NOTICE_MS)
    rig.press("A")
    rig.press("B")
    rig.press("A")  # resolve T1 with "fixed"
    rig.press("B")  # T2
    rig.press("A", hold_ms=A_LONG_MS + 100)  # decline T2
    assert [a.unsent for a in rig.app.alerts] == ["resolve", "decline"]
    assert rig.row(ROW1).startswith("!")
    rig.link.up = True
    rig.run(TICK_MS)
    assert [(m.body["inc"], m.body["action"]) for m in events(rig, "resolve")] == [(1, "fixed")]
    assert [m.body["inc"] for m in events(rig, "decline")] == [2]
    assert rig.app.alerts == []


# ---- commands -------------------------------------------------------------------------------------

def test_heartbeat_goes_out_and_repeats():
    rig = Rig()
    beats = events(rig, "heartbeat")
    assert len(beats) == 1
    assert beats[0].body["bat"] == 4000
    assert beats[0].body["cv"] == 0
    rig.run(rig.settings.heartbeat_ms)
    assert len(events(rig, "heartbeat")) == 2


def test_alert_cancel_removes_it_with_a_notice():
    rig = Rig()
    rig.alert(12)
    rig.alert(13, table="T13")
    rig.cancel(12, "taken by Ben")
    assert [a.inc for a in rig.app.alerts] == [13]
    assert "ALERT inc=12 cleared taken by Ben" in rig.log
    assert rig.inv(ROW4) == "T12 taken by Ben"
    rig.cancel(13)
    rig.run(NOTICE_MS)
    assert rig.lines() == ["              B4", "   no alerts", "hold B: off duty"]
    assert rig.motor.value is False


def test_cancel_of_an_unknown_alert_is_harmless():
    rig = Rig()
    rig.alert(12)
    rig.cancel(99)
    assert [a.inc for a in rig.app.alerts] == [12]


def test_escalation_moves_an_alert_up_and_buzzes_again():
    rig = Rig()
    rig.alert(1, table="T1")
    rig.alert(2, table="T2")
    rig.run(5000)
    assert rig.motor.value is False
    assert rig.order() == [1, 2]
    rig.alert(2, table="T2", lvl=1, age=5)
    assert rig.order() == [2, 1]
    assert rig.motor.value is True
    assert rig.inv(BLOCK_B) == "ESC 1       0:05"


def test_redelivered_alert_is_idempotent():
    rig = Rig()
    rig.alert(12)
    rig.run(5000)
    shows = rig.oled.shows
    rig.alert(12)
    assert len(rig.app.alerts) == 1
    assert rig.motor.value is False
    assert rig.oled.shows == shows
    assert len(logged(rig, "ALERT inc=12 shown")) == 1


def test_replayed_and_forged_alerts_are_dropped():
    rig = Rig()
    t, payload = rig.alert(12)
    rig.cancel(12)
    rig.link.on_message(t, payload)
    body = {"ep": GATEWAY_EP, "seq": 50, "ts": 1767225600, "inc": 5, "table": "T5", "kind": "x", "lvl": 2,
            "age": 0}
    t, payload = rbproto.encode(b"\x00" * 32, SITE, DEVICE, "alert", body)
    rig.link.on_message(t, payload)
    assert rig.msgr.dropped == 2
    assert rig.app.alerts == []


def test_too_many_alerts_drop_the_oldest_acknowledged_one():
    rig = Rig()
    rig.alert(1, table="T1", age=100)
    rig.alert(2, table="T2", age=200)
    rig.run(REACTION_MS)
    rig.press("A")  # T2, the older
    rig.press("A")  # T1
    for inc in range(3, MAX_ALERTS + 2):
        rig.alert(inc, table="T%d" % inc)
    assert len(rig.app.alerts) == MAX_ALERTS
    assert rig.app._find(2) is None
    assert "ALERT inc=2 dropped: more than %d open" % MAX_ALERTS in rig.log


# ---- memory ---------------------------------------------------------------------------------------

def test_a_full_pager_allocates_well_under_its_heap_budget():
    """Inside MicroPython: everything the app allocates with the collector off (its objects, the
    1 KB frame buffer, a full list of alerts and a frame, garbage included) stays under 32 KB of the
    64 KB the pager may use. CPython has no gc.mem_alloc and skips the count."""
    import gc

    if not hasattr(gc, "mem_alloc"):
        return
    clock = ManualClock(ms=1000)
    msgr = Messenger({"site": SITE, "device": DEVICE, "key": KEY_HEX}, EPOCH, clock, FakeLink(), log=lambda s: None)
    settings = Settings(scratch("venue.json"), log=lambda s: None)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        app = PagerApp(msgr, clock, lambda: False, lambda: False, Recorder(), FakeOled(margin=0), lambda: 4000,
                       settings, log=lambda s: None)
        app.start()
        for inc in range(1, MAX_ALERTS + 1):
            app._on_alert({"inc": inc, "table": "terrace-table-%d" % inc, "kind": "complaint", "lvl": inc % 3,
                           "age": inc})
        app.render()
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert len(app.alerts) == MAX_ALERTS
    assert used < 32 * 1024, used
