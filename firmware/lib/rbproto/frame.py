# Serial framing between the base station and the host's serial bridge: COBS, CRC-16, 0x00 after.
#
# On the wire:  COBS(body + crc16(body), big-endian)  0x00
#   body = kind (1 byte) + peer MAC (6 bytes) + data (at most MAX_DATA bytes)
# The base station's print() log shares the USB serial with the frames. COBS leaves no 0x00 inside
# a frame, so every 0x00 ends a frame and is a resynchronisation point. A Decoder sorts the stream
# into good frames, log lines and damage, which it counts by reason and drops.
# No 0x00 goes *before* a frame: with one there, a flipped delimiter (0x00 -> 0x01) would decode
# as the frame plus a trailing zero byte, which CRC-16/CCITT-FALSE (no final xor) always accepts.
# Without it, noise right before a frame costs that one frame; log lines end in "\n" (print), and
# a line is handed out at its "\n", so text never runs into the frame after it. A blank line (a
# "\n" alone) cannot be told from a frame's first COBS code byte 10 until the frame's end: there
# the CRC decides which it was.
# MicroPython subset: the base station firmware and gateway/serial_bridge.py share this file.

UP = 1  # base -> host: an ESP-NOW packet received from MAC
DOWN = 2  # host -> base: an ESP-NOW packet to send to MAC
SENT = 3  # base -> host: the outcome of a DOWN: status byte, then the first bytes of the packet
STATS = 4  # base -> host: the base station's counters as JSON; MAC is the base station's own
KINDS = (UP, DOWN, SENT, STATS)
LOG = 0  # never on the wire: Decoder's kind for a line of log text found between frames

SENT_FAIL = 0  # SENT status byte: the peer did not acknowledge (after the retry)
SENT_OK = 1
SENT_ECHO = 3  # packet bytes a SENT repeats: the air header (rbproto.air), enough to name the message

MAC_LEN = 6
HEAD = 1 + MAC_LEN
MAX_BODY = 300
MAX_DATA = MAX_BODY - HEAD
# COBS adds one byte per started 254-byte block; the CRC adds two.
MAX_ENCODED = MAX_BODY + 2 + (MAX_BODY + 2) // 254 + 1

# Reasons a stretch of the stream is dropped; Decoder.errors counts them.
BAD_CRC = "bad_crc"  # a well-formed frame whose CRC does not match: damaged on the way
GARBAGE = "garbage"  # neither a frame nor text: noise, a truncated frame, a broken COBS chain
OVERSIZED = "oversized"  # no delimiter within MAX_ENCODED bytes
BAD_KIND = "bad_kind"  # a good CRC but a kind this side does not know (a newer peer?)

# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor), a nibble at a time:
# a 16-entry table is fast enough and costs 32 bytes instead of 512.
_CRC_NIBBLE = (
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
    0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF,
)


def crc16(data, crc=0xFFFF):
    t = _CRC_NIBBLE
    for b in data:
        crc = ((crc << 4) & 0xFFFF) ^ t[(crc >> 12) ^ (b >> 4)]
        crc = ((crc << 4) & 0xFFFF) ^ t[(crc >> 12) ^ (b & 0x0F)]
    return crc


def cobs_encode(data):
    """Consistent Overhead Byte Stuffing: the result has no 0x00 and is at most len/254 + 1 longer."""
    out = bytearray(1)
    code_at = 0
    code = 1
    for b in data:
        if b:
            out.append(b)
            code += 1
        if not b or code == 0xFF:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
    out[code_at] = code
    return out


def cobs_decode_into(buf, n, start=0):
    """Undo COBS on buf[start:n] in place, the output from buf[0] on (it is never longer than the
    input); the decoded length, or -1 when the chain of block lengths is broken."""
    i = start
    o = 0
    while i < n:
        code = buf[i]
        end = i + code
        if code == 0 or end > n:
            return -1
        buf[o:o + code - 1] = buf[i + 1:end]
        o += code - 1
        i = end
        if code < 0xFF and i < n:
            buf[o] = 0
            o += 1
    return o


def cobs_crc(buf, start, n):
    """(CRC-16 of what buf[start:n] COBS-decodes to, its length), or (-1, 0) when the chain is
    broken; buf is left as it is. A body followed by its own CRC (big-endian) gives 0."""
    mv = memoryview(buf)
    i = start
    crc = 0xFFFF
    m = 0
    while i < n:
        code = buf[i]
        end = i + code
        if code == 0 or end > n:
            return -1, 0
        crc = crc16(mv[i + 1:end], crc)
        m += code - 1
        i = end
        if code < 0xFF and i < n:
            crc = crc16(_ZERO, crc)
            m += 1
    return crc, m


_ZERO = b"\x00"


def encode(kind, mac, data):
    """One frame, its delimiter included, ready to write to the serial line."""
    if len(mac) != MAC_LEN or len(data) > MAX_DATA:
        raise ValueError("frame: bad MAC or data too long")
    body = bytearray(HEAD + len(data) + 2)
    body[0] = kind
    body[1:HEAD] = mac
    body[HEAD:HEAD + len(data)] = data
    crc = crc16(memoryview(body)[:-2])
    body[-2] = crc >> 8
    body[-1] = crc & 0xFF
    return bytes(cobs_encode(body)) + b"\x00"


def _printable(b):
    return 0x20 <= b < 0x7F or b == 9 or b == 13


def hexmac(mac):
    return "".join("%02x" % b for b in mac)


class Decoder:
    """Splits a serial byte stream into frames and log lines, in order; memory is one buffer of
    MAX_ENCODED + 1 bytes.

    Between two 0x00 delimiters the bytes are a frame if COBS, length and CRC check out, or log
    text if every byte is printable. A text line is handed out as soon as its "\\n" arrives (the
    host shows the base station's log live); no frame can look like text, because its second
    byte is the kind, a control character. Anything else is counted in `errors` by reason and
    dropped; decoding always starts afresh after the next 0x00."""

    def __init__(self):
        self._buf = bytearray(MAX_ENCODED + 1)  # + a newline that may come first (see _frame)
        self._n = 0
        self._text = True  # every byte of the current stretch so far is printable
        self._skip = False  # the stretch overflowed: drop everything up to the next 0x00
        self.frames = 0
        self.errors = {}

    def _count(self, reason):
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def _line(self, out):
        line = bytes(self._buf[:self._n]).strip(b"\r\n")
        if line:
            out.append((LOG, None, line.decode()))

    def feed(self, data):
        """-> list of (kind, mac, data) for good frames and (LOG, None, text) for log lines."""
        out = []  # type: list
        buf = self._buf
        for b in data:
            if b == 0:
                if not self._skip and self._n:
                    if self._text:
                        self._line(out)
                    else:
                        self._frame(out)
                self._n = 0
                self._text = True
                self._skip = False
                continue
            if self._skip:
                continue
            if b == 10 and self._text and self._n:
                if self._n == 1 and buf[0] == 10:
                    continue  # blank lines: one newline is kept, it may be a frame's first byte
                self._line(out)
                self._n = 0
                continue
            if self._n >= MAX_ENCODED and (buf[0] != 10 or self._n > MAX_ENCODED):  # the newline: one more
                if self._text:  # a log line longer than a frame: hand out what there is
                    self._line(out)
                    self._n = 0
                else:
                    self._count(OVERSIZED)
                    self._skip = True
                    continue
            buf[self._n] = b
            self._n += 1
            if self._text and b != 10 and not _printable(b):
                self._text = False
        return out

    def _frame(self, out):
        buf = self._buf
        start = 0
        if buf[0] == 10 and self._n > 1:
            # A newline first: either the COBS code byte 10, or a blank log line ("\n" alone, which
            # the text rule keeps because it cannot tell the two apart) before a frame. The reading
            # whose CRC checks out wins; the blank line is the fallback.
            crc, m = cobs_crc(buf, 0, self._n)
            if crc != 0 or m < HEAD + 2:
                start = 1
        m = cobs_decode_into(buf, self._n, start)
        if m < HEAD + 2:
            self._count(GARBAGE)
            return
        if crc16(memoryview(buf)[:m - 2]) != (buf[m - 2] << 8) | buf[m - 1]:
            self._count(BAD_CRC)
            return
        if buf[0] not in KINDS:
            self._count(BAD_KIND)
            return
        self.frames += 1
        out.append((buf[0], bytes(buf[1:HEAD]), bytes(buf[HEAD:m - 2])))
