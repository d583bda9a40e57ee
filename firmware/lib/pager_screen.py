# The pager's 128x64 OLED: what a waiter reads at a glance, drawn through framebuf's 8x8 font.
#
# The font has ASCII only and 16 characters fit a row. Text starts only on a column of that
# 16-column grid and on one of ROWS_Y, and is cut to fit before it is drawn, so nothing is clipped
# at the right edge and a screen reader (the simulator, the tests) can read any frame back cell by
# cell. The layout:
#
#   y= 0  ON  NO LINK 3 [=]  duty (ON / OFF, blank until the wearer first sets it), NO LINK while
#                            the link is down, open alerts, battery gauge (two cells, 0-4 bars)
#   y=10 |T12.complaint   |  the selected alert in a lit box: table, drawn dot, kind
#   y=19 |ESC 1       0:42|  its state (NEW, ESC n, ON IT, NOT SENT) and the customer's wait
#   y=28  T14 help    0:05   the others, most urgent first, one line each: table, as much of the
#   y=37  *T2 water   3:10   kind as fits, wait (* acknowledged, ! answer not sent yet)
#   y=46  T7 happy    0:02
#   y=55  +2 more            or a notice in a lit box for a few seconds ("ACK SENT T12",
#                            "NOT SENT-NO LINK", "PASSED ON T12", "OFF DUTY", ...)
#
# The resolve pick-list: the table and RESOLVE on y=10, four actions from y=19 with the cursor's
# lit (^ / v in the last column when more are above / below), "A:send hold:back" on y=55.

COLS = 16
HEAD_Y = 0
BLOCK_Y = (10, 19)
LIST_Y = (28, 37, 46, 55)
PICK_Y = (19, 28, 37, 46)  # the pick-list's options, under its title on BLOCK_Y[0]
ROWS_Y = (HEAD_Y, 10, 19, 28, 37, 46, 55)  # every text row, top to bottom
ROW_H = 9  # an inverted row's box: from a pixel above the glyphs to the row below
DOT = "\x01"  # in a row's text: the drawn separator dot, one cell wide
BATTERY_BARS = 4
_EMPTY_MV = 3300  # a LiPo cell under load: empty here, full from _FULL_MV
_FULL_MV = 4150


def dot(fb, x, y, c):
    """The separator between table and kind: a 2x2 dot in the middle of an 8x8 cell."""
    fb.fill_rect(x + 3, y + 3, 2, 2, c)


def battery(fb, x, y, bars, c):
    """A battery two cells wide with 0-4 bars."""
    fb.rect(x, y + 1, 14, 6, c)
    fb.fill_rect(x + 14, y + 3, 2, 2, c)
    for i in range(bars):
        fb.fill_rect(x + 2 + 3 * i, y + 3, 2, 2, c)


def battery_bars(mv):
    if mv <= _EMPTY_MV:
        return 0
    return min(BATTERY_BARS, (mv - _EMPTY_MV) * (BATTERY_BARS + 1) // (_FULL_MV - _EMPTY_MV))


def age_text(s):
    """The customer's wait: 0:42, 12:05, then 1h05 from an hour on, 99h+ at most (5 chars)."""
    s = max(0, s)
    if s < 3600:
        return "%d:%02d" % (s // 60, s % 60)
    if s >= 100 * 3600:
        return "99h+"
    return "%dh%02d" % (s // 3600, s % 3600 // 60)


def label(name):
    """A kind or recovery action as shown: free_item -> free item."""
    return name.replace("_", " ")


def spread(left, right, cols=COLS):
    """left, then right against the right edge; right is dropped when both do not fit."""
    gap = cols - len(left) - len(right)
    if not right or gap < 1:
        return left
    return left + " " * gap + right


def block_rows(table, kind, state, age_s):
    """The selected alert's two rows. The table is never cut: a long one takes the first row (and
    the second when longer than a row) and the kind gives way."""
    age = age_text(age_s)
    if len(table) + 2 <= COLS:
        return table + DOT + label(kind)[:COLS - len(table) - 1], spread(state, age)
    if len(table) <= COLS:
        return table, spread(state, age)
    return table[:COLS], spread(table[COLS:], age)


def list_row(mark, table, kind, age_s):
    """One line for an alert in the list: mark, table, as much of the kind as fits, age on the
    right. A table id longer than a row (ids may have 32 characters) is the one thing cut, with ~."""
    left = mark + table
    if len(left) > COLS:
        return left[:COLS - 1] + "~"
    age = age_text(age_s)
    room = COLS - len(left) - len(age) - 1  # columns for " kind"
    if room < 0:
        return left
    if room >= 2:
        left = left + " " + label(kind)[:room - 1]
    return spread(left, age)


def header_text(duty, link_up, count):
    """Columns 0-13 of the top row (the battery takes 14-15): duty, link, open alerts."""
    left = duty
    if not link_up:
        left = left + " " * (4 - len(left)) + "NO LINK"
    n = "" if not count else ("%d" % count if count < 10 else "9+")
    return spread(left, n, COLS - 3)


class Screen:
    """Draws whole frames on an SSD1306_I2C (a framebuf.FrameBuffer with show()); the app calls
    begin(), the parts, end(). Nothing here allocates more than a row's strings."""

    def __init__(self, oled, width=128):
        self.fb = oled
        self.width = width
        self.frames = 0

    def begin(self):
        self.fb.fill(0)

    def end(self):
        self.fb.show()
        self.frames += 1

    def text(self, s, col, y, c=1):
        """s from column `col`, cut at the right edge; DOT draws the separator dot."""
        fb = self.fb
        s = s[:COLS - col]
        x = col * 8
        first = True
        for part in s.split(DOT):
            if not first:
                dot(fb, x, y, c)
                x += 8
            first = False
            if part:
                fb.text(part, x, y, c)
                x += 8 * len(part)

    def row(self, y, s, inverted=False, col=0):
        if inverted:
            self.fb.fill_rect(0, y - 1, self.width, ROW_H, 1)
        self.text(s, col, y, 0 if inverted else 1)

    def centred(self, y, s, inverted=False):
        self.row(y, s, inverted, max(0, (COLS - len(s)) // 2))

    def header(self, duty, link_up, count, bars):
        self.row(HEAD_Y, header_text(duty, link_up, count))
        battery(self.fb, self.width - 16, HEAD_Y, bars, 1)

    def alerts(self, block, rows, notice):
        """The selected alert's two rows (inverted) and the others' lines under it, with "+N more"
        when they do not all fit, and a notice on the last row when there is one."""
        fb = self.fb
        fb.fill_rect(0, BLOCK_Y[0] - 1, self.width, 2 * ROW_H, 1)
        self.text(block[0], 0, BLOCK_Y[0], 0)
        self.text(block[1], 0, BLOCK_Y[1], 0)
        slots = len(LIST_Y) - (1 if notice else 0)
        if len(rows) > slots:
            shown = rows[:slots - 1]
            shown.append("+%d more" % (len(rows) - slots + 1))
        else:
            shown = rows
        for i in range(len(shown)):
            self.row(LIST_Y[i], shown[i])
        if notice:
            self.row(LIST_Y[-1], notice, True)

    def idle(self, off_duty, notice):
        if off_duty:
            self.centred(BLOCK_Y[1], "OFF DUTY", True)
            hint = "hold B: on duty"
        else:
            self.centred(BLOCK_Y[1], "no alerts")
            hint = "hold B: off duty"
        if notice:
            self.row(LIST_Y[-1], notice, True)
        else:
            self.row(LIST_Y[-1], hint)

    def pick(self, title, options, cursor, notice):
        """The resolve pick-list: a title, four options at a time with the cursor's inverted, ^ and
        v in the last column when there are more above or below, and the keys' hint."""
        self.row(BLOCK_Y[0], title)
        rows = PICK_Y
        first = max(0, min(cursor - len(rows) + 1, len(options) - len(rows)))
        for i in range(len(rows)):
            n = first + i
            if n >= len(options):
                break
            text = label(options[n])[:COLS - 2]
            if i == 0 and first > 0:
                text = spread(text, "^")
            elif i == len(rows) - 1 and n < len(options) - 1:
                text = spread(text, "v")
            self.row(rows[i], text, n == cursor)
        if notice:
            self.row(LIST_Y[-1], notice, True)
        else:
            self.row(LIST_Y[-1], "A:send hold:back")
