"""`framebuf` for the simulator and the CPython side of the firmware tests: the subset the pager
draws with, pixel for pixel as MicroPython draws it.

Covered: FrameBuffer(buffer, width, height, MONO_VLSB[, stride]) (the SSD1306's format) with fill,
pixel (get and set), hline, vline, rect (and its fill flag), fill_rect and text. text() uses
MicroPython's own 8x8 font (font_petme128_8x8 from micropython/extmod, MIT licence, read back from
the MicroPython WebAssembly port): each byte of the UTF-8 text is one glyph, and a byte outside
32-127 draws glyph 127 (a checkerboard), as on the board. Drawing is clipped at the edges.
Not covered, and absent so a firmware change that needs them fails loudly: the other pixel formats,
blit, scroll, line, ellipse, poly.

One addition MicroPython does not have: read_row() reads text back from pixels (an OCR for this
font), which the simulator uses to show a pager's screen as a person would read it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

MONO_VLSB = 0

# 96 glyphs (characters 32-127), 8 column bytes each, bit 0 the top row.
_FONT = bytes.fromhex(
    "00000000000000000000004f4f0000000007070000070700147f7f14147f7f1400242e6b6b3a1200006333180c666300"
    "00327f4d4d777250000000040603010000001c3e63410000000041633e1c0000082a3e1c1c3e2a080008083e3e080800"
    "000080e0600000000008080808080800000000606000000000406030180c0602003e7f49457f3e000040447f7f404000"
    "00627351494f460000226349497f360000181814167f7f1000276745457d3900003e7f49497b3200000303797d070300"
    "00367f49497f360000266f49497f3e000000002424000000000080e46400000000081c36634141000014141414141400"
    "00414163361c080000020351590f0600003e7f414d4f2e00007c7e0b0b7e7c00007f7f49497f3600003e7f4141632200"
    "007f7f41633e1c00007f7f4949414100007f7f0909010100003e7f41497b3a00007f7f08087f7f000000417f7f410000"
    "002060417f3f0100007f7f1c36634100007f7f4040404000007f7f060c067f7f007f7f0e1c7f7f00003e7f41417f3e00"
    "007f7f09090f0600001e3f21617f5e00007f7f19396f460000266f49497b32000001017f7f010100003f7f40407f3f00"
    "001f3f60603f1f00007f7f3018307f7f0063771c1c77630000070f78780f0700006171594d47430000007f7f41410000"
    "0002060c18306040000041417f7f000000080c06060c0800c0c0c0c0c0c0c0c0000001030604000000207454547c7800"
    "007f7f44447c380000387c44446c280000387c44447f7f0000387c54545c580000087e7f090302000098bca4a4fc7c00"
    "007f7f04047c78000000007d7d0000000040c08080fd7d00007f7f30386c44000000417f7f400000007c7c1830187c7c"
    "007c7c04047c780000387c44447c380000fcfc24243c180000183c2424fcfc00007c7c04040c080000485c5454742000"
    "04043f7f44642000003c7c40407c3c00001c3c60603c1c00001c7c3018307c1c00446c38386c4400009cbca0a0fc7c00"
    "004464745c4c44000008083e77414100000000ffff000000004141773e0808000002030103020301aa55aa55aa55aa55"
)


class FrameBuffer:
    def __init__(self, buffer: bytearray | memoryview, width: int, height: int, fmt: int,
                 stride: int | None = None) -> None:
        if fmt != MONO_VLSB:
            raise ValueError("the framebuf shim draws MONO_VLSB only")
        if len(buffer) < (stride or width) * ((height + 7) // 8):
            raise ValueError("buffer too small")
        # names of their own: the SSD1306 driver (a subclass) keeps width, height and buffer itself
        self._fb_buf = buffer
        self._fb_w = width
        self._fb_h = height
        self._fb_stride = stride or width

    def _set(self, x: int, y: int, c: int) -> None:
        i = (y >> 3) * self._fb_stride + x
        if c:
            self._fb_buf[i] |= 1 << (y & 7)
        else:
            self._fb_buf[i] &= ~(1 << (y & 7)) & 0xFF

    def pixel(self, x: int, y: int, c: int | None = None) -> int | None:
        if not (0 <= x < self._fb_w and 0 <= y < self._fb_h):
            return None
        if c is None:
            return (self._fb_buf[(y >> 3) * self._fb_stride + x] >> (y & 7)) & 1
        self._set(x, y, c)
        return None

    def fill(self, c: int) -> None:
        self.fill_rect(0, 0, self._fb_w, self._fb_h, c)

    def fill_rect(self, x: int, y: int, w: int, h: int, c: int) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self._fb_w, x + w), min(self._fb_h, y + h)
        for page in range(y0 >> 3, (y1 + 7) >> 3):  # a byte holds 8 rows of one column
            top, bottom = max(y0, page * 8), min(y1, page * 8 + 8)
            mask = ((1 << (bottom - top)) - 1) << (top - page * 8)
            base = page * self._fb_stride
            for i in range(base + x0, base + x1):
                self._fb_buf[i] = self._fb_buf[i] | mask if c else self._fb_buf[i] & ~mask & 0xFF

    def hline(self, x: int, y: int, w: int, c: int) -> None:
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x: int, y: int, h: int, c: int) -> None:
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x: int, y: int, w: int, h: int, c: int, f: bool = False) -> None:
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        self.fill_rect(x, y, w, 1, c)
        self.fill_rect(x, y + h - 1, w, 1, c)
        self.fill_rect(x, y, 1, h, c)
        self.fill_rect(x + w - 1, y, 1, h, c)

    def text(self, s: str, x: int, y: int, c: int = 1) -> None:
        for byte in s.encode():
            code = byte if 32 <= byte <= 127 else 127
            glyph = _FONT[(code - 32) * 8:(code - 32) * 8 + 8]
            for col in range(8):
                if 0 <= x < self._fb_w:
                    bits, yy = glyph[col], y
                    while bits:
                        if bits & 1 and 0 <= yy < self._fb_h:
                            self._set(x, yy, c)
                        bits >>= 1
                        yy += 1
                x += 1


# ---- reading text back (not part of MicroPython's framebuf) -------------------------------------

Drawer = Callable[[FrameBuffer, int, int, int], None]  # draw(fb, x, y, colour) at one cell's corner


def _cells(draw: Drawer, n: int) -> bytes:
    buf = bytearray(8 * n)
    draw(FrameBuffer(buf, 8 * n, 8, MONO_VLSB), 0, 0, 1)
    return bytes(buf)


_tables: dict[tuple[tuple[str, int], ...], dict[tuple[int, bytes], str]] = {}


def _glyph_table(icons: list[tuple[str, int, Drawer]]) -> dict[tuple[int, bytes], str]:
    key = tuple((name, n) for name, n, _draw in icons)
    table = _tables.get(key)
    if table is None:
        table = {(1, _FONT[i * 8:i * 8 + 8]): chr(32 + i) for i in range(95)}  # 127 is not text
        for name, n, draw in icons:
            table[(n, _cells(draw, n))] = name
        _tables[key] = table
    return table


def _read_cells(fb: FrameBuffer, x: int, y: int, n: int, inverted: bool) -> bytes:
    out = bytearray(8 * n)
    for i in range(8 * n):
        v = 0
        for j in range(8):
            if fb.pixel(x + i, y + j):
                v |= 1 << j
        out[i] = v ^ 0xFF if inverted else v
    return bytes(out)


def read_row(fb: FrameBuffer, y: int, cols: int, icons: Iterable[tuple[str, int, Drawer]] = (),
             inverted: bool | None = None) -> str:
    """The text of the row whose glyphs start at pixel row `y` and on 8-pixel columns, as a person
    reads it (trailing blanks dropped, an unknown cell as "?"). `icons` names drawn shapes:
    (text, cells wide, draw(fb, x, y, colour)). A row drawn dark on light is read as well;
    `inverted` None takes whichever polarity reads better. An icon set is known by its names: the
    same names must always come with the same shapes."""
    if inverted is None:
        light, dark = read_row(fb, y, cols, icons, False), read_row(fb, y, cols, icons, True)
        return dark if dark.count("?") < light.count("?") else light
    icons = list(icons)
    table = _glyph_table(icons)
    widths = sorted({n for _name, n, _d in icons if n > 1}, reverse=True)
    text, col = "", 0
    while col < cols:
        for n in [*widths, 1]:
            if col + n <= cols:
                name = table.get((n, _read_cells(fb, 8 * col, y, n, inverted)))
                if name is not None:
                    text, col = text + name, col + n
                    break
        else:
            text, col = text + "?", col + 1
    return text.rstrip()
