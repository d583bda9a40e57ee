# Codec fuzz cases made the same way on every interpreter, for tests/test_fuzz.py to hold CPython
# (the gateway) and MicroPython (the devices) to the same verdict on each. A seeded LCG instead of
# `random`, whose sequences differ between the two. MicroPython subset; not a test module itself:
# test_fuzz.py runs print_verdicts() here and inside MicroPython and compares the lines.
import rbproto

N = 1500
SEED = 7
KEY = b"\x5a" * 32
SITES = ("demo", "x" * 32)
DEVICES = ("btn-t1", "pgr-ana")
MTYPES = tuple(sorted(rbproto.SCHEMA))  # MicroPython keeps no insertion order in a dict
TOKENS = (b"NaN", b"Infinity", b"-0", b"1e400", b"1.5", b"true", b"null", b"[]", b"{}", b'"1"', b"01", b"+1",
          b"4611686018427387904", b"-4611686018427387904", b"99999999999999999999999999", b"1E2", b"\"\\u00e9\"",
          b"\"\\ud800\"", b"\"\xc3\xa9\"", b"\"\xff\"", b"\"a\\\"b\"", b"\"a\\\\b\"", b"0x1")


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x >> 8

    def below(self, n):
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def bytes(self, n):
        return bytes(self.below(256) for _ in range(n))


def _body(g, mtype):
    body = {}
    for name in rbproto.SCHEMA[mtype][1] + (rbproto.OPTIONAL.get(mtype, ()) if g.below(2) else ()):
        if rbproto._INT_FIELDS[name]:
            body[name] = g.pick((0, 1, g.below(100000), -g.below(1000), 2 ** 62 - 1, -(2 ** 62) + 1))
        else:
            n = g.below(rbproto.MAX_STR + 1)
            body[name] = "".join(chr(32 + g.below(95)) for _ in range(n)).replace('"', "'").replace("\\", "/")
    return body


def _value_span(p, g):
    """(start, end) of one field's value in an encoded payload."""
    starts = [i + 2 for i in range(len(p) - 1) if p[i] == 0x22 and p[i + 1] == 0x3A]  # '":'
    start = g.pick(starts)
    end = start
    depth = 0
    while end < len(p) and (depth or p[end] not in (0x2C, 0x7D)):  # ',' '}'
        if p[end] == 0x22:
            depth ^= 1
        end += 1
    return start, end


def case(g):
    """(topic, payload, status?) of one case: a valid message of any type, changed one way or not."""
    mtype = g.pick(MTYPES)
    site, device = g.pick(SITES), g.pick(DEVICES)
    t, p = rbproto.encode(KEY, site, device, mtype, _body(g, mtype))
    op = g.below(16)
    b = bytearray(p)
    if op == 0:
        return t, p, False
    if op == 1:
        for _ in range(1 + g.below(3)):
            i = g.below(len(b))
            b[i] ^= 1 << g.below(8)
    elif op == 2:
        b[g.below(len(b))] = g.below(256)
    elif op == 3:
        b = b[:g.below(len(b))]
    elif op == 4:
        i = g.below(len(b) + 1)
        b = b[:i] + g.bytes(1 + g.below(8)) + b[i:]
    elif op == 5:
        start, end = _value_span(p, g)
        b = b[:start] + g.pick(TOKENS) + b[end:]
    elif op == 6:
        b = bytearray(b"".join(bytes((c, 0)) for c in p))  # UTF-16-LE
    elif op == 7:
        b = bytearray(b"\xef\xbb\xbf" + p)
    elif op == 8:
        n = 1 + g.below(250)
        b = bytearray(b"[" * n + p + b"]" * n)
    elif op == 9:
        b = bytearray(g.bytes(g.below(600)))
    elif op == 10:
        i = p.find(b'"sig":"') + 7
        b = b[:i] + bytes(b[i:i + 64]).upper() + b[i + 64:]
    elif op == 11:
        b = b[:-1] + b' ' * g.below(400) + b"}"
    elif op == 12:
        i = g.below(len(b))
        b = b[:i] + b[i:i + 1 + g.below(20)] + b[i:]
    elif op == 13:
        return rbproto.status_topic(site, device), g.pick((
            rbproto.encode_status("online", "1.0", g.below(9)), b'{"state":"offline"}', b'{"state":"x"}',
            b'{"state":"online","ep":true}', b'{"state":"online","fw":"\xc3\xa9"}', b"\xff\xfe{\x00}\x00",
            b'{"state":"online","ep":1e3}', b"[]", g.bytes(g.below(40)))), True
    elif op == 14:
        t = t.replace("/evt/", "/cmd/") if "/evt/" in t else t.replace("/cmd/", "/evt/")
    else:
        i = g.below(len(b))
        b = b[:i] + g.pick((b"\xc3\xa9", b"\xff", b"\xed\xa0\x80", b"\\u0000", b"\x00", b"\n")) + b[i:]
    return t, bytes(b), False


def verdict(t, p, status):
    try:
        if status:
            return "status " + rbproto.decode_status(t, p)[2]
        m = rbproto.decode(t, p, lambda d: KEY)
        return "ok %s %d" % (m.mtype, m.body["seq"])
    except rbproto.ProtocolError as e:
        return e.reason
    except Exception as e:  # what the fuzz looks for: anything but a ProtocolError
        return "CRASH " + type(e).__name__


def verdicts(n=N, seed=SEED):
    g = Lcg(seed)
    out = []
    for _ in range(n):
        t, p, status = case(g)
        out.append(verdict(t, p, status))
    return out


def test_print_verdicts():
    for i, v in enumerate(verdicts()):
        print("V %d %s" % (i, v))
