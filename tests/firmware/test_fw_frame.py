# Serial frames (rbproto.frame) and the ESP-NOW air format (rbproto.air): round trips, damage, resync.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
from clock import ManualClock

from rbproto import air, frame

MAC = b"\xaa\xbb\xcc\xdd\xee\xff"
MAC2 = b"\x02\x00\x00\x00\x00\x07"


def lcg(seed, n):
    """n pseudo-random bytes, the same on every interpreter (MicroPython's random may differ)."""
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def frames_of(items):
    return [i for i in items if i[0] != frame.LOG]


def lines_of(items):
    return [i[2] for i in items if i[0] == frame.LOG]


def crc_bitwise(data):
    """CRC-16/CCITT-FALSE the slow, obvious way: the reference for the nibble table."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


# ---- CRC and COBS -------------------------------------------------------------------------------

def test_crc_check_value_and_reference():
    assert frame.crc16(b"123456789") == 0x29B1  # the catalogue's check value for CCITT-FALSE
    assert frame.crc16(b"") == 0xFFFF
    for n in (1, 2, 17, 64, 255):
        data = lcg(n, n)
        assert frame.crc16(data) == crc_bitwise(data)


def test_cobs_has_no_zero_and_round_trips():
    for data in (b"", b"\x00", b"\x00\x00", b"\x11\x00", lcg(3, 253), bytes(range(1, 256)) * 2,
                 bytes(300), b"\x01" * 254, b"\x01" * 255):
        enc = frame.cobs_encode(data)
        assert bytes(enc).find(b"\x00") < 0  # MicroPython has no `int in bytes`
        assert len(enc) <= len(data) + len(data) // 254 + 1
        buf = bytearray(enc)
        n = frame.cobs_decode_into(buf, len(buf))
        assert bytes(buf[:n]) == data


# ---- frames --------------------------------------------------------------------------------------

def test_round_trip_every_kind_and_size():
    cases = []
    for kind in frame.KINDS:
        for size in (0, 1, 2, 247, 250, 253, 254, 255, frame.MAX_DATA):
            cases.append((kind, MAC, lcg(size + kind, size)))
    cases.append((frame.UP, MAC2, bytes(range(256))[:frame.MAX_DATA]))
    cases.append((frame.DOWN, bytes(6), bytes(frame.MAX_DATA)))  # all zeros: the worst case for COBS
    stream = b"".join(frame.encode(k, m, d) for k, m, d in cases)
    whole = frame.Decoder().feed(stream)
    assert whole == cases
    d = frame.Decoder()
    one_by_one = []
    for i in range(len(stream)):
        one_by_one += d.feed(stream[i:i + 1])
    assert one_by_one == cases
    assert d.frames == len(cases)
    assert d.errors == {}


def test_encode_refuses_what_would_not_fit():
    for mac, data in ((MAC, bytes(frame.MAX_DATA + 1)), (b"\x01\x02", b"x")):
        try:
            frame.encode(frame.UP, mac, data)
        except ValueError:
            continue
        raise AssertionError("encode accepted %d MAC bytes, %d data bytes" % (len(mac), len(data)))


def test_crc_catches_every_single_bit_flip():
    good = frame.encode(frame.UP, MAC, b"rb/v1/cafe/btn-t12/evt/press\n{\"ep\":3,\"seq\":41}")
    nxt = (frame.STATS, MAC2, b"{}")
    last = (frame.SENT, MAC2, b"\x01\x00\x00\x01")
    tail = frame.encode(*nxt) + frame.encode(*last)
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            d = frame.Decoder()
            got = frames_of(d.feed(bytes(bad) + tail))
            # The damaged frame never comes out. A flipped delimiter merges it with the frame
            # after it, which is lost with it; the one after that always arrives.
            assert got in ([nxt, last], [last]), (i, bit, got)
            assert got == [nxt, last] or i == len(good) - 1, (i, bit, got)
            if bad[i]:
                # Still one stretch with the kind and MAC in it: counted, never taken for text.
                assert sum(d.errors.values()) == 1, (i, bit, d.errors)
            # else a new 0x00 split the frame, and a piece of it may be printable (the topic, say):
            # it comes out as a log line, which is harmless; it never comes out as a frame.


def test_resync_after_random_garbage():
    d = frame.Decoder()
    sent = []
    got = []
    for round_ in range(20):
        noise = lcg(round_ + 100, 1 + round_ * 23)
        first = (frame.UP, MAC, lcg(round_, 5 + round_ * 11))
        second = (frame.DOWN, MAC2, lcg(round_ + 50, round_))
        out = frames_of(d.feed(noise + frame.encode(*first) + frame.encode(*second)))
        assert out[-1] == second, round_  # noise costs at most the frame right after it
        got += out
        sent += [first, second]
    assert all(f in sent for f in got)
    assert sum(d.errors.values()) >= 10


def test_resync_after_truncated_frame():
    d = frame.Decoder()
    whole = frame.encode(frame.DOWN, MAC, lcg(9, 120))
    nxt = (frame.DOWN, MAC2, b"next")
    for cut in (1, 2, 5, 60, len(whole) - 1):
        before = sum(d.errors.values())
        out = d.feed(whole[:cut] + frame.encode(*nxt) + frame.encode(*nxt))
        assert frames_of(out) == [nxt], cut  # the first copy went down with the truncated frame
        assert sum(d.errors.values()) == before + 1, cut


def test_log_text_between_frames_comes_out_as_lines_in_order():
    f1 = (frame.UP, MAC, b"\x00\x0a\x0d\x00")  # zeros and line ends inside a frame are not text
    f2 = (frame.SENT, MAC, b"\x01abc")
    d = frame.Decoder()
    out = d.feed(b"BASE ready mac=aabbccddeeff\r\n" + frame.encode(*f1) + b"UP mac=aabbccddeeff bytes=4\n")
    out += d.feed(b"DOWN mac=aa")  # half a line: nothing yet
    assert out == [(frame.LOG, None, "BASE ready mac=aabbccddeeff"), f1,
                   (frame.LOG, None, "UP mac=aabbccddeeff bytes=4")]
    out = d.feed(b"bbccddeeff ok\r\n\r\n" + frame.encode(*f2) + b"\x00text ended by a delimiter\x00")
    assert out == [(frame.LOG, None, "DOWN mac=aabbccddeeff ok"), f2,
                   (frame.LOG, None, "text ended by a delimiter")]
    assert d.errors == {}


def test_text_without_newline_costs_the_frame_after_it():
    f = (frame.UP, MAC, b"x")
    d = frame.Decoder()
    out = d.feed(b"half a line" + frame.encode(*f) + frame.encode(*f))
    assert out == [f]
    assert d.errors == {frame.GARBAGE: 1}


def test_frame_whose_first_code_byte_is_a_newline():
    # The first zero of the body at index 9 makes the COBS code byte 10, an ASCII newline.
    item = (frame.UP, b"\x01\x02\x03\x04\x05\x06", b"\x07\x08\x00\x09")
    enc = frame.encode(*item)
    assert enc[0] == 10
    assert frame.Decoder().feed(b"log line\n" + enc) == [(frame.LOG, None, "log line"), item]


def test_blank_line_before_a_frame_costs_nothing():
    # A "\n" alone cannot be told from a COBS code byte 10 until the delimiter; the CRC decides.
    item = (frame.UP, MAC, b"after a blank line")
    tens = (frame.UP, b"\x01\x02\x03\x04\x05\x06", b"\x07\x08\x00\x09")  # code byte 10
    assert frame.encode(*tens)[0] == 10
    for before in (b"\n", b"line\n\n", b"line\n\n\n", frame.encode(*item) + b"\n"):
        for it in (item, tens):
            d = frame.Decoder()
            assert frames_of(d.feed(before + frame.encode(*it)))[-1] == it
            assert d.errors == {}
    biggest = (frame.DOWN, bytes(6), bytes(frame.MAX_DATA))
    assert frame.Decoder().feed(b"\n" + frame.encode(*biggest)) == [biggest]


def test_oversized_frame_dropped_and_counted():
    d = frame.Decoder()
    blob = b"\x01\xfe" * frame.MAX_ENCODED + b"\x00"
    item = (frame.UP, MAC, b"after")
    out = d.feed(blob + frame.encode(*item))
    assert out == [item]
    assert d.errors == {frame.OVERSIZED: 1}


def test_long_log_line_is_cut_not_counted():
    d = frame.Decoder()
    text = b"x" * (frame.MAX_ENCODED + 10)
    out = d.feed(text + b"\n")
    assert "".join(lines_of(out)) == text.decode()
    assert d.errors == {}


def test_unknown_kind_with_good_crc_is_counted():
    d = frame.Decoder()
    assert frames_of(d.feed(frame.encode(9, MAC, b"future"))) == []
    assert d.errors == {frame.BAD_KIND: 1}


# ---- the air format ------------------------------------------------------------------------------

def test_join_split():
    msg = air.join("rb/v1/cafe/btn-t12/evt/press", b'{"ep":1}')
    assert msg == b'rb/v1/cafe/btn-t12/evt/press\n{"ep":1}'
    assert air.split(msg) == ("rb/v1/cafe/btn-t12/evt/press", b'{"ep":1}')
    assert air.split(b"t\n") == ("t", b"")
    for bad in (b"no line", b"\npayload"):
        try:
            air.split(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_fragment_sizes_and_limits():
    assert [len(p) for p in air.fragment(1, bytes(10))] == [13]
    assert [len(p) for p in air.fragment(1, bytes(air.CHUNK))] == [air.MAX_PACKET]
    assert [len(p) for p in air.fragment(1, bytes(air.CHUNK + 1))] == [air.MAX_PACKET, 4]
    packets = air.fragment(300, bytes(450))  # a config command's size
    assert [p[:3] for p in packets] == [b"\x2c\x00\x02", b"\x2c\x01\x02"]
    assert len(air.fragment(1, bytes(air.MAX_MESSAGE))) == air.MAX_FRAGMENTS
    try:
        air.fragment(1, bytes(air.MAX_MESSAGE + 1))
    except ValueError:
        return
    raise AssertionError("an over-long message was fragmented")


def test_reassembly_round_trip_in_any_order():
    clock = ManualClock()
    r = air.Reassembler(clock)
    for size in (1, 247, 248, 450, air.MAX_MESSAGE):
        msg = lcg(size, size)
        packets = air.fragment(size & 0xFF, msg)
        packets.reverse()
        results = [r.add(MAC, bytearray(p)) for p in packets]
        assert results[-1] == msg, size
        assert results[:-1] == [None] * (len(packets) - 1)
    assert r.errors == {}


def test_interleaved_senders_do_not_mix():
    r = air.Reassembler(ManualClock())
    a = air.fragment(5, b"A" * 400)
    b = air.fragment(5, b"B" * 400)  # same message id, another device
    assert r.add(MAC, a[0]) is None
    assert r.add(MAC2, b[0]) is None
    assert r.add(MAC2, b[1]) == b"B" * 400
    assert r.add(MAC, a[1]) == b"A" * 400


def test_lost_fragment_times_out():
    clock = ManualClock()
    r = air.Reassembler(clock, timeout_ms=2000)
    first = air.fragment(7, bytes(450))
    assert r.add(MAC, first[0]) is None
    clock.advance(1999)
    assert r.expire() == 0
    clock.advance(1)
    assert r.expire() == 1
    assert r.errors == {air.TIMEOUT: 1}
    assert r.add(MAC, first[1]) is None  # its partner is gone: this half waits alone, then expires
    clock.advance(2000)
    assert r.expire() == 1
    nxt = air.fragment(8, bytes(450))
    assert r.add(MAC, nxt[0]) is None
    assert r.add(MAC, nxt[1]) == bytes(450)


def test_resent_message_is_dropped_once_complete():
    clock = ManualClock()
    r = air.Reassembler(clock)
    one = air.fragment(9, b"rb/v1/x\n{}")[0]
    assert r.add(MAC, one) == b"rb/v1/x\n{}"
    assert r.add(MAC, one) is None  # the ack was lost and the sender tried again
    assert r.errors == {air.DUPLICATE: 1}
    two = air.fragment(10, bytes(300))
    assert r.add(MAC, two[0]) is None
    assert r.add(MAC, two[0]) is None  # a fragment twice before completion is harmless
    assert r.add(MAC, two[1]) == bytes(300)
    assert r.add(MAC, two[1]) is None
    clock.advance(air.TIMEOUT_MS)
    assert r.add(MAC, one) == b"rb/v1/x\n{}"  # long after: a new message that reuses the id


def test_bad_headers_and_slot_bound():
    r = air.Reassembler(ManualClock(), slots=2)
    for bad in (b"", b"\x01\x00\x01", b"\x01\x00\x00x", b"\x01\x02\x02x", b"\x01\x00\x09x"):
        assert r.add(MAC, bad) is None
    assert r.errors == {air.BAD_PACKET: 5}
    firsts = [air.fragment(i, bytes(300))[0] for i in (1, 2, 3)]
    for p in firsts:
        assert r.add(MAC, p) is None
    assert r.errors[air.EVICTED] == 1
    assert r.add(MAC, air.fragment(1, bytes(300))[1]) is None  # message 1 was evicted
    assert r.add(MAC, air.fragment(3, bytes(300))[1]) == bytes(300)
