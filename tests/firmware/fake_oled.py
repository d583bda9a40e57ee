# The pager's OLED in firmware logic tests (MicroPython subset): a frame buffer in the SSD1306
# driver's format and a reader that turns its pixels back into text.

import pager_screen

try:
    import framebuf
except ImportError:  # CPython: the simulator's shim, which draws MicroPython's own 8x8 font
    from simulator.shims import framebuf


class FakeOled(framebuf.FrameBuffer):
    """An SSD1306_I2C stand-in: a framebuf.FrameBuffer in the driver's format (MONO_VLSB) whose
    show() counts frames. Its pixels are `margin` columns wider than the `width` it reports, so a
    test sees anything drawn past the right edge."""

    def __init__(self, width=128, height=64, margin=8):
        self.width = width
        self.height = height
        self.margin = margin
        self.buffer = bytearray((width + margin) * height // 8)
        super().__init__(self.buffer, width + margin, height, framebuf.MONO_VLSB)
        self.shows = 0

    def show(self):
        self.shows += 1

    def blank_past_edge(self):
        for x in range(self.width, self.width + self.margin):
            for y in range(self.height):
                if self.pixel(x, y):
                    return False
        return True


def _drawn(draw, cells):
    buf = bytearray(8 * cells)
    draw(framebuf.FrameBuffer(buf, 8 * cells, 8, framebuf.MONO_VLSB))
    return bytes(buf)


_GLYPHS = {}  # the column bytes of one cell (or two, for the battery) -> the text they read as


def _glyphs():
    if not _GLYPHS:
        for c in range(32, 127):
            _GLYPHS[_drawn(lambda fb: fb.text(chr(c), 0, 0, 1), 1)] = chr(c)
        _GLYPHS[_drawn(lambda fb: pager_screen.dot(fb, 0, 0, 1), 1)] = "·"
        for bars in range(pager_screen.BATTERY_BARS + 1):
            _GLYPHS[_drawn(lambda fb: pager_screen.battery(fb, 0, 0, bars, 1), 2)] = "B%d" % bars
    return _GLYPHS


def _cells(fb, x, y, n, inverted):
    out = bytearray(8 * n)
    for i in range(8 * n):
        v = 0
        for j in range(8):
            if fb.pixel(x + i, y + j):
                v |= 1 << j
        out[i] = v ^ 0xFF if inverted else v
    return bytes(out)


def read_row(fb, y, inverted=False, cols=16):
    """The text whose glyphs start at pixel row y, cell by cell on the 8-pixel grid: the 8x8 font,
    the separator dot as "·", the battery as B0-B4, anything else as "?"; trailing blanks dropped.
    inverted: read dark glyphs on a lit row."""
    table = _glyphs()
    text = ""
    col = 0
    while col < cols:
        got = None
        n = 2
        if col + 2 <= cols:
            got = table.get(_cells(fb, 8 * col, y, 2, inverted))
        if got is None:
            n = 1
            got = table.get(_cells(fb, 8 * col, y, 1, inverted), "?")
        text += got
        col += n
    return text.rstrip()


def screen_lines(fb):
    """Every non-blank text row of the pager's screen, top to bottom, as a person reads it; a row
    is read lit-on-dark or dark-on-lit, whichever reads."""
    lines = []
    for y in pager_screen.ROWS_Y:
        light = read_row(fb, y)
        dark = read_row(fb, y, True)
        text = dark if dark.count("?") < light.count("?") else light
        if text:
            lines.append(text)
    return lines
