# pager_screen: the OLED's layout rules, and frames drawn into a real framebuf.FrameBuffer.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs). Inside
# MicroPython the frame buffer is MicroPython's own; on CPython it is simulator/shims/framebuf.py,
# and the golden hashes below (taken from MicroPython) pin the shim to the same pixels.
import binascii
import hashlib

from fake_oled import FakeOled, framebuf, read_row, screen_lines
from pager_screen import (
    BLOCK_Y,
    COLS,
    DOT,
    HEAD_Y,
    LIST_Y,
    Screen,
    age_text,
    battery_bars,
    block_rows,
    header_text,
    list_row,
    spread,
)


def sha(buf):
    return binascii.hexlify(hashlib.sha256(buf).digest()).decode()


# ---- the frame buffer itself -----------------------------------------------------------------------

def test_every_glyph_draws_as_in_micropython():
    buf = bytearray(128 * 48 // 8)
    fb = framebuf.FrameBuffer(buf, 128, 48, framebuf.MONO_VLSB)
    for r in range(6):
        fb.text("".join([chr(32 + 16 * r + i) for i in range(16)]), 0, 8 * r, 1)
    assert sha(buf) == "b0db3489e4e877a8b901ba857c373f9f3dae73c71a9e2829f4d3696bc3586a34"


def test_shapes_clipping_and_dark_text_draw_as_in_micropython():
    buf = bytearray(136 * 64 // 8)
    fb = framebuf.FrameBuffer(buf, 136, 64, framebuf.MONO_VLSB)
    fb.fill(1)
    fb.fill_rect(3, 5, 50, 13, 0)
    fb.text("Hi\x01~\xe9", 7, 9, 1)  # bytes outside 32-127 draw glyph 127
    fb.text("abc", 130, 30, 0)
    fb.text("xyz", -4, 40, 0)
    fb.rect(60, 20, 30, 20, 0)
    fb.rect(62, 22, 10, 10, 0, True)
    fb.hline(0, 63, 200, 0)
    fb.vline(135, -5, 100, 0)
    fb.fill_rect(100, 2, 20, 30, 0)
    fb.fill_rect(105, 7, 5, 17, 1)
    fb.pixel(1, 1, 0)
    assert sha(buf) == "e39cd6ae9420eb1f2076a0059aae8749a33df949affed120a833119266ac04ba"
    assert (fb.pixel(1, 1), fb.pixel(2, 1), fb.pixel(136, 0)) == (0, 1, None)


# ---- layout rules -----------------------------------------------------------------------------------

def test_age_text():
    assert [age_text(s) for s in (-3, 0, 42, 600, 3599, 3600, 3660, 36000, 359999, 360000)] == [
        "0:00", "0:00", "0:42", "10:00", "59:59", "1h00", "1h01", "10h00", "99h59", "99h+"]


def test_spread_puts_the_right_part_against_the_edge_or_drops_it():
    assert spread("NEW", "0:42") == "NEW         0:42"
    assert len(spread("NEW", "0:42")) == COLS
    assert spread("a" * 12, "0:42") == "a" * 12  # no blank between: the right part goes
    assert spread("x", "") == "x"


def test_block_rows_keep_the_table_whole():
    assert block_rows("T12", "complaint", "NEW", 42) == ("T12" + DOT + "complaint", "NEW         0:42")
    assert block_rows("T12", "a_very_long_kind", "ON IT", 5) == ("T12" + DOT + "a very long ", "ON IT       0:05")
    assert block_rows("terrace-table-12", "help", "NOT SENT", 5) == ("terrace-table-12", "NOT SENT    0:05")
    assert block_rows("terrace-and-garden-table-17", "help", "NEW", 5) == ("terrace-and-gard",
                                                                            "en-table-17 0:05")
    assert block_rows("a" * 32, "help", "NEW", 5) == ("a" * 16, "a" * 16)


def test_list_row_fits_sixteen_columns_table_first():
    assert list_row("", "T3", "help", 30) == "T3 help     0:30"
    assert list_row("*", "T12", "complaint", 42) == "*T12 compla 0:42"
    assert list_row("!", "T12", "complaint", 4000) == "!T12 compla 1h06"
    assert list_row("", "terrace-12", "complaint", 4000) == "terrace-12  1h06"
    assert list_row("", "terrace-tbl-12", "help", 4000) == "terrace-tbl-12"
    assert list_row("", "terrace-and-garden-17", "help", 5) == "terrace-and-gar~"
    for row in (list_row("*", "T1", "x" * 48, 359999), list_row("", "t" * 16, "help", 1)):
        assert len(row) <= COLS


def test_header_text():
    assert header_text("ON", True, 0) == "ON"
    assert header_text("OFF", False, 3) == "OFF NO LINK 3"
    assert header_text("ON", True, 12) == "ON         9+"
    assert header_text("OFF", False, 12) == "OFF NO LINK"  # no room left for the count


def test_battery_bars():
    assert [battery_bars(mv) for mv in (3000, 3300, 3400, 3500, 3700, 3900, 4100, 4200)] == [0, 0, 0, 1, 2, 3, 4, 4]


# ---- frames ---------------------------------------------------------------------------------------

def test_row_text_is_framebuf_text_on_the_grid():
    oled = FakeOled()
    scr = Screen(oled)
    scr.row(LIST_Y[0], "T3 help", col=1)
    expected = FakeOled()
    expected.text("T3 help", 8, LIST_Y[0], 1)
    assert oled.buffer == expected.buffer


def test_inverted_row_is_dark_text_in_a_lit_box():
    oled = FakeOled()
    Screen(oled).row(LIST_Y[1], "NOT SENT", True)
    expected = FakeOled()
    expected.fill_rect(0, LIST_Y[1] - 1, 128, 9, 1)
    expected.text("NOT SENT", 0, LIST_Y[1], 0)
    assert oled.buffer == expected.buffer
    assert read_row(oled, LIST_Y[1], True) == "NOT SENT"
    assert read_row(oled, LIST_Y[1]) == "????????????????"


def test_dot_separator_is_drawn_between_table_and_kind():
    oled = FakeOled()
    Screen(oled).text("T12" + DOT + "help", 0, 20)
    assert read_row(oled, 20) == "T12·help"
    assert oled.pixel(24 + 3, 23) == 1 and oled.pixel(24 + 4, 24) == 1
    expected = FakeOled()
    expected.text("help", 32, 20)
    for x in range(32, 64):
        for y in range(20, 28):
            assert oled.pixel(x, y) == expected.pixel(x, y)


def test_text_is_cut_at_the_right_edge():
    oled = FakeOled()
    scr = Screen(oled)
    scr.text("0123456789abcdefXYZ", 0, 0)
    scr.text("0123456789abcdefXYZ" + DOT, 10, 20)
    scr.row(40, "x" * 40, True, 3)
    assert read_row(oled, 0) == "0123456789abcdef"
    assert read_row(oled, 20) == "          012345"
    assert oled.blank_past_edge()


def test_alerts_frame():
    oled = FakeOled()
    scr = Screen(oled)
    scr.begin()
    scr.header("ON", False, 3, 2)
    scr.alerts(("T12" + DOT + "complaint", "ESC 1       0:42"), ["T3 help     0:30", "*T2 water   3:10"], None)
    scr.end()
    assert oled.shows == 1
    assert scr.frames == 1
    assert screen_lines(oled) == ["ON  NO LINK 3 B2", "T12·complaint", "ESC 1       0:42",
                                  "T3 help     0:30", "*T2 water   3:10"]
    assert read_row(oled, BLOCK_Y[0], True) == "T12·complaint"
    assert read_row(oled, HEAD_Y) == "ON  NO LINK 3 B2"
    assert oled.blank_past_edge()


def test_alerts_frame_with_more_rows_than_fit_and_a_notice():
    oled = FakeOled()
    scr = Screen(oled)
    rows = ["T%d help     0:00" % i for i in range(1, 7)]
    scr.alerts(("T0" + DOT + "help", "NEW         0:00"), rows, None)
    assert [read_row(oled, y) for y in LIST_Y] == [rows[0], rows[1], rows[2], "+3 more"]
    oled.fill(0)
    scr.alerts(("T0" + DOT + "help", "NEW         0:00"), rows, "ACK SENT T0")
    assert [read_row(oled, y) for y in LIST_Y[:3]] == [rows[0], rows[1], "+4 more"]
    assert read_row(oled, LIST_Y[3], True) == "ACK SENT T0"


def test_idle_frames():
    oled = FakeOled()
    scr = Screen(oled)
    scr.idle(False, None)
    assert screen_lines(oled) == ["   no alerts", "hold B: off duty"]
    oled.fill(0)
    scr.idle(True, None)
    assert screen_lines(oled) == ["    OFF DUTY", "hold B: on duty"]
    assert read_row(oled, BLOCK_Y[1], True) == "    OFF DUTY"


def test_pick_frame_scrolls_with_the_cursor():
    oled = FakeOled()
    scr = Screen(oled)
    options = ["apology", "fixed", "replaced", "discount", "free_item", "manager_visit"]
    scr.pick("T12      RESOLVE", options, 0, None)
    assert screen_lines(oled) == ["T12      RESOLVE", "apology", "fixed", "replaced", "discount       v",
                                  "A:send hold:back"]
    assert read_row(oled, BLOCK_Y[1], True) == "apology"
    oled.fill(0)
    scr.pick("T12      RESOLVE", options, 5, None)
    assert screen_lines(oled)[1:5] == ["replaced       ^", "discount", "free item", "manager visit"]
    assert read_row(oled, LIST_Y[2], True) == "manager visit"
