"""Fuzzing helpers: seeded generators of hostile input, an independent reference codec, counts.

The reference codec below is written from docs/protocol.md with the standard library's json, hmac
and re, not from rbproto's code (only the schema tables and the reason names are rbproto's, pinned
by tests/vectors): the fuzz tests compare every verdict of rbproto against it, so a
payload that crashes rbproto, or is refused for the wrong reason, or accepted when it should not be,
shows up as a disagreement. Every generator takes a random.Random, so a seed (REDBUTTON_FUZZ_SEED)
reproduces a run exactly, and hypothesis can drive the same generators through st.randoms()."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import rbproto
from rbproto import frame

# ---- how much, and which run ------------------------------------------------------------------

DEFAULT_SEED = 20260501
DEFAULT_N = 100_000  # payloads through the codec and through the gateway's handler, each


def fuzz_seed() -> int:
    """REDBUTTON_FUZZ_SEED=<int> replays a run; unset, every run fuzzes the same inputs."""
    return int(os.environ.get("REDBUTTON_FUZZ_SEED", DEFAULT_SEED))


def fuzz_n() -> int:
    """REDBUTTON_FUZZ_N=<payloads> scales every fuzz test for a long run (serial streams and venue
    documents in proportion)."""
    return int(os.environ.get("REDBUTTON_FUZZ_N", DEFAULT_N))


def scaled(base: int) -> int:
    """A count given for the default run, in proportion to REDBUTTON_FUZZ_N."""
    return max(1, base * fuzz_n() // DEFAULT_N)


class FuzzSummary:
    """A pytest plugin: one line per fuzz test in a "fuzz counts" section at the end of the run,
    and the same lines in test-output/fuzz.txt for the record."""

    def __init__(self, out: str) -> None:
        self.lines: list[str] = []
        self.out = out

    def add(self, line: str) -> None:
        self.lines.append(line)
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        with open(self.out, "a") as f:
            f.write(line + "\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("fuzz counts")
            for line in self.lines:
                terminalreporter.write_line(line)


def describe(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- the reference codec ----------------------------------------------------------------------

INT, STR, LIST = "int", "str", "list"
FIELD_KINDS = {
    "ep": INT, "seq": INT, "ts": INT, "bat": INT, "rssi": INT, "up": INT, "q": INT, "cv": INT, "on": INT,
    "inc": INT, "lvl": INT, "age": INT, "hb": INT, "rebuzz": INT, "pep": INT, "pseq": INT,
    "kind": STR, "fw": STR, "action": STR, "table": STR, "why": STR, "state": STR,
    "gest": LIST, "acts": LIST,
}
TOPIC = re.compile(r"rb/v1/([a-z0-9_-]{1,32})/([a-z0-9_-]{1,32})/(?:status|(evt|cmd)/([a-z_]{1,20}))")
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}
INT_LIMIT = 2**62
KNOWN_REASONS = frozenset({rbproto.OVERSIZED, rbproto.BAD_TOPIC, rbproto.MALFORMED, rbproto.BAD_FIELD,
                           rbproto.UNKNOWN_DEVICE, rbproto.BAD_SIGNATURE})


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ref_topic(t: str) -> tuple[str, str, str]:
    m = TOPIC.fullmatch(t)
    if m is None:
        raise Refused(rbproto.BAD_TOPIC)
    site, device, direction, mtype = m.groups()
    if direction is None:
        return site, device, "status"
    spec = rbproto.SCHEMA.get(mtype)
    if spec is None or spec[0] != direction:
        raise Refused(rbproto.BAD_TOPIC)
    return site, device, mtype


def _ref_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > rbproto.MAX_PAYLOAD:
        raise Refused(rbproto.OVERSIZED)
    try:
        obj = json.loads(payload.decode("utf-8"))  # UTF-8 only: docs/protocol.md, "malformed"
    except ValueError:
        raise Refused(rbproto.MALFORMED) from None
    if not isinstance(obj, dict):
        raise Refused(rbproto.MALFORMED)
    return obj


def _ref_value_ok(name: str, value: object) -> bool:
    if FIELD_KINDS[name] == INT:
        return type(value) is int and -INT_LIMIT < value < INT_LIMIT
    limit = rbproto.MAX_LIST if FIELD_KINDS[name] == LIST else rbproto.MAX_STR
    return type(value) is str and len(value) <= limit and all(c in PRINTABLE for c in value)


def ref_fields(mtype: str, names: Any) -> tuple[str, ...]:
    """The schema's fields of `mtype`, then its optional ones if `names` has every one of them."""
    required, optional = rbproto.SCHEMA[mtype][1], rbproto.OPTIONAL.get(mtype, ())
    return required + optional if optional and all(f in names for f in optional) else required


def ref_canonical(t: str, mtype: str, body: dict[str, Any]) -> bytes:
    return "\n".join(["rb1", t, *(str(body[f]) for f in ref_fields(mtype, body))]).encode("utf-8", "surrogatepass")


def ref_sign(key: bytes, t: str, mtype: str, body: dict[str, Any]) -> str:
    return hmac.new(key, ref_canonical(t, mtype, body), hashlib.sha256).hexdigest()


def ref_decode(t: str, payload: bytes, key_for: Callable[[str], bytes | None]) -> tuple[str, dict[str, Any]]:
    """(mtype, body) of a message the protocol accepts; Refused(reason) otherwise. The reasons are
    checked in the order rbproto documents: topic, size, JSON, fields, canonical form, sender,
    signature."""
    _site, device, mtype = ref_topic(t)
    if mtype == "status":
        raise Refused(rbproto.BAD_TOPIC)
    obj = _ref_object(payload)
    fields = ref_fields(mtype, obj)
    if set(obj) != {*fields, "sig"} or not all(_ref_value_ok(f, obj[f]) for f in fields):
        raise Refused(rbproto.BAD_FIELD)
    sig = obj["sig"]
    if type(sig) is not str or len(sig) != 64:
        raise Refused(rbproto.BAD_FIELD)
    # canonical: the compact JSON of the fields in their order, then sig, and not one escape
    written = json.dumps({**{f: obj[f] for f in fields}, "sig": sig}, separators=(",", ":"), ensure_ascii=False)
    if payload.decode("utf-8") != written or "\\" in written:
        raise Refused(rbproto.MALFORMED)
    key = key_for(device)
    if key is None:
        raise Refused(rbproto.UNKNOWN_DEVICE)
    if not HEX64.fullmatch(sig):
        raise Refused(rbproto.BAD_FIELD)
    digest = hmac.new(key, ref_canonical(t, mtype, obj), hashlib.sha256).digest()
    if not hmac.compare_digest(bytes.fromhex(sig), digest):
        raise Refused(rbproto.BAD_SIGNATURE)
    return mtype, {f: obj[f] for f in fields}


def ref_decode_status(t: str, payload: bytes) -> tuple[str, str, str, str, int]:
    site, device, mtype = ref_topic(t)
    if mtype != "status":
        raise Refused(rbproto.BAD_TOPIC)
    obj = _ref_object(payload)
    state, fw, ep = obj.get("state"), obj.get("fw", ""), obj.get("ep", 0)
    if state not in (rbproto.ONLINE, rbproto.OFFLINE) or not _ref_value_ok("fw", fw) or not _ref_value_ok("ep", ep):
        raise Refused(rbproto.BAD_FIELD)
    return site, device, str(state), fw, ep


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("refused", reason) of a codec call; anything else escapes to the test."""
    try:
        return "ok", call()
    except (Refused, rbproto.ProtocolError) as e:
        return "refused", e.reason


# ---- valid messages and their mutations ---------------------------------------------------------

ASCII = "".join(sorted(PRINTABLE))
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
WEIRD_TEXT = ["", " ", "é", "ü", "\u202e", "\u0000", "\x7f", "\n", "\r", '"', "\\", "\ufeff", "\U0001f6a8", "\u0301",
              "\ud800", "\udfff", "\uffff", "\U0001d518", "\u2135", "\t", "\ufdfa", "\u2028"]
HUGE_TEXT = ["4611686018427387904", "-4611686018427387904", "4611686018427387903", "9223372036854775808",
             "1" * 300, "-" + "9" * 200, "1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "0.0",
             "1.5", "1E2", "01", "0x10", "+1", ".5", "1.", "true", "false", "null", '"1"', "[]", "{}"]


def rand_id(rng: random.Random, n: int | None = None) -> str:
    return "".join(rng.choice(ID_CHARS) for _ in range(n or rng.randint(1, 12)))


def rand_ascii(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(ASCII) for _ in range(rng.randint(0, most)))


def rand_int(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.randint(0, 5000)
    if r < 0.7:
        return rng.randint(-(2**31), 2**31)
    if r < 0.9:
        return rng.randint(-INT_LIMIT + 1, INT_LIMIT - 1)
    return rng.choice([INT_LIMIT - 1, -INT_LIMIT + 1, INT_LIMIT, -INT_LIMIT, 2**63, -(2**63), 2**64, 0, -1])


def rand_unicode(rng: random.Random, most: int = 20) -> str:
    out = []
    for _ in range(rng.randint(0, most)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(WEIRD_TEXT))
        elif r < 0.7:
            out.append(rng.choice(ASCII))
        else:
            out.append(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x7FF), rng.randint(0x800, 0xFFFF),
                                       rng.randint(0x10000, 0x10FFFF)])))
    return "".join(out)


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, small: for type swaps and extra fields."""
    r = rng.randrange(10 if depth < 3 else 7)
    if r == 0:
        return None
    if r == 1:
        return rng.random() < 0.5
    if r == 2:
        return rand_int(rng)
    if r == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e300, -1e-300, float(rng.randint(0, 10)), math.pi])
    if r in (4, 5):
        return rand_ascii(rng, 10)
    if r == 6:
        return rand_unicode(rng, 8)
    if r in (7, 8):
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rand_ascii(rng, 5): rand_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def rand_body(rng: random.Random, mtype: str) -> dict[str, int | str]:
    """A body every field of which is in range: encode() signs it."""
    body: dict[str, int | str] = {}
    optional = rbproto.OPTIONAL.get(mtype, ())
    for name in rbproto.SCHEMA[mtype][1] + (optional if rng.random() < 0.5 else ()):
        kind = FIELD_KINDS[name]
        if kind == INT:
            body[name] = rand_int(rng) if rng.random() < 0.3 else rng.randint(0, 100_000)
            if not -INT_LIMIT < int(body[name]) < INT_LIMIT:
                body[name] = rng.randint(0, 1000)
        else:
            body[name] = rand_ascii(rng, rbproto.MAX_LIST if kind == LIST else rbproto.MAX_STR)
    return body


def dump(obj: Any, rng: random.Random | None = None) -> bytes:
    """Compact JSON; sometimes with non-ASCII written raw instead of escaped."""
    raw = rng is not None and rng.random() < 0.5
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=not raw).encode("utf-8", "surrogatepass")
    except ValueError:  # a float nan/inf is fine for json.dumps; only the encoding can fail
        return json.dumps(obj, separators=(",", ":")).encode()


def nested(rng: random.Random, depth: int) -> str:
    opener = rng.choice(["[", '{"a":'])
    closer = "]" if opener == "[" else "}"
    return opener * depth + rng.choice(["1", "[]", '""', "null"]) + closer * depth


@dataclass
class Mutant:
    label: str
    topic: str
    payload: bytes


def _splice(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(7)
    if op == 0 and b:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and b:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:
        i = rng.randint(0, len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    elif op == 3 and b:
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 16)]
    elif op == 4:
        del b[rng.randint(0, len(b)):]
    elif op == 5 and b:
        i = rng.randrange(len(b))
        b[i:i] = b[i:i + rng.randint(1, 30)]
    else:
        b += rng.randbytes(rng.randint(1, 20))
    return bytes(b)


def mutate(rng: random.Random, t: str, payload: bytes, key: bytes, other_topics: list[str]) -> Mutant:
    """One structure-aware mutation of a signed message (payload, on topic t, signed with key)."""
    obj: dict[str, Any] = json.loads(payload)
    mtype = t.rsplit("/", 1)[1]
    fields = [k for k in obj if k != "sig"]
    name = rng.choice(fields)
    op = rng.randrange(24)
    if op <= 3:
        return Mutant("bytes", t, _splice(rng, payload))
    if op == 4:
        obj[name] = rand_json(rng)
        return Mutant("type_swap", t, dump(obj, rng))
    if op == 5:
        text = payload.decode()
        at = text.index(f'"{name}":') + len(name) + 3
        end = at
        while end < len(text) and text[end] not in ",}":
            end += 1
        return Mutant("huge_number", t, (text[:at] + rng.choice(HUGE_TEXT) + text[end:]).encode())
    if op == 6:
        text = payload.decode()
        at = text.index(f'"{name}":') + len(name) + 3
        end = at
        while end < len(text) and text[end] not in ",}":
            end += 1
        return Mutant("deep_nesting", t, (text[:at] + nested(rng, rng.randint(1, 240)) + text[end:]).encode())
    if op == 7:
        depth = rng.randint(1, 300)
        return Mutant("deep_nesting", t, b"[" * depth + payload + b"]" * depth)
    if op == 8:
        obj[name] = rand_unicode(rng)
        return Mutant("unicode", t, dump(obj, rng))
    if op == 9:
        s = obj[name]
        if isinstance(s, str):  # the same string, every character escaped: still the signed value
            obj_text = payload.decode().replace(json.dumps(s), '"' + "".join(f"\\u{ord(c):04x}" for c in s) + '"', 1)
            return Mutant("escaped", t, obj_text.encode())
        return Mutant("spaces", t, json.dumps(obj, indent=rng.randint(0, 2)).encode())
    if op == 10:
        pad = rng.randint(rbproto.MAX_PAYLOAD - len(payload) - 5, rbproto.MAX_PAYLOAD + 200)
        return Mutant("oversize", t, payload[:-1] + b" " * max(0, pad) + b"}")
    if op == 11:
        del obj[rng.choice([*fields, "sig"])]
        return Mutant("drop_field", t, dump(obj))
    if op == 12:
        obj[rng.choice([rand_ascii(rng, 6), "sig2", "Sig", "ep ", *FIELD_KINDS])] = rand_json(rng)
        return Mutant("extra_field", t, dump(obj))
    if op == 13:
        text = payload.decode()
        dup = f'"{name}":{json.dumps(rand_json(rng) if rng.random() < 0.7 else obj[name])}'
        return Mutant("duplicate_key", t, (text[:-1] + "," + dup + "}" if rng.random() < 0.5
                                           else "{" + dup + "," + text[1:]).encode())
    if op == 14:
        items = list(obj.items())
        rng.shuffle(items)
        return Mutant("reordered", t, dump(dict(items)))
    if op == 15:
        sig = str(obj["sig"])
        obj["sig"] = rng.choice([sig.upper(), sig[:-1], sig + "0", sig[:-1] + "g", sig[:-2] + "é", " " * 64,
                                 int(sig[:12], 16), None, [sig], sig[::-1], "0" * 64, "+" + sig[1:]])
        return Mutant("signature", t, dump(obj, rng))
    if op == 16:  # a field changed, then signed with the device's own key: in range or not
        obj[name] = rng.choice([rand_json(rng), rand_int(rng), rand_ascii(rng, 60), rand_unicode(rng, 4), True])
        obj["sig"] = ref_sign(key, t, mtype, obj)
        return Mutant("signed_bad_value", t, dump(obj, rng))
    if op == 17:
        obj["sig"] = ref_sign(rng.randbytes(32), t, mtype, obj)
        return Mutant("wrong_key", t, dump(obj))
    if op == 18:
        enc = rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1"])
        return Mutant("encoding", t, payload.decode().encode(enc))
    if op == 19:
        return Mutant("not_an_object", t, dump(rng.choice([list(obj.values()), str(obj), 1, None, True, [obj]])))
    if op == 20:
        return Mutant("other_topic", rng.choice(other_topics), payload)
    if op == 21:
        return Mutant("mangled_topic", mangle_topic(rng, t), payload)
    if op == 22:
        return Mutant("empty", t, rng.choice([b"", b"{}", b" ", b"null", b"\x00"]))
    return Mutant("bytes", t, _splice(rng, _splice(rng, payload)))


def mangle_topic(rng: random.Random, t: str) -> str:
    parts = t.split("/")
    op = rng.randrange(10)
    if op == 0:
        parts[rng.randrange(len(parts))] = rand_unicode(rng, 6)
    elif op == 1:
        parts.insert(rng.randint(0, len(parts)), rand_id(rng))
    elif op == 2:
        del parts[rng.randrange(len(parts))]
    elif op == 3:
        parts[rng.randrange(len(parts))] = rng.choice(["+", "#", "", "..", "RB", "v2", "evt", "cmd", "status"])
    elif op == 4:
        parts[rng.choice([2, 3]) if len(parts) > 3 else 0] = rand_id(rng, 33)
    elif op == 5:
        return t.upper()
    elif op == 6:
        return t + rng.choice(["/", "\n", "\x00", " ", "/status", "#"])
    elif op == 7:
        return "/" + t
    elif op == 8:
        return t.replace("/evt/", "/cmd/") if "/evt/" in t else t.replace("/cmd/", "/evt/")
    else:
        return rand_unicode(rng, 30)
    return "/".join(parts)


def rand_topic(rng: random.Random, site: str, devices: list[str]) -> str:
    """A topic from the whole space: right and wrong roots, sites, devices, directions, types."""
    root = rng.choice(["rb/v1"] * 8 + ["rb/v2", "RB/v1", "rb", "", "rb/v1/"])
    s = rng.choice([site] * 6 + [rand_id(rng), "gateway", "", site.upper()])
    d = rng.choice(devices * 2 + [rand_id(rng), "gateway", "", "+", rand_id(rng, 33)])
    tail = rng.choice(["status", *(f"evt/{m}" for m in rbproto.SCHEMA), *(f"cmd/{m}" for m in rbproto.SCHEMA),
                       "evt/" + rand_id(rng), "evt", "status/x", ""])
    return f"{root}/{s}/{d}/{tail}"


def rand_status(rng: random.Random) -> bytes:
    r = rng.randrange(6)
    if r < 2:
        return bytes(rbproto.encode_status(rng.choice([rbproto.ONLINE, rbproto.OFFLINE]), rand_ascii(rng, 10),
                                           rng.randint(0, 10**6)))
    if r == 2:
        obj = {"state": rng.choice([rbproto.ONLINE, rbproto.OFFLINE, "ONLINE", "", None, 1]),
               "fw": rng.choice([rand_ascii(rng, 60), rand_unicode(rng), 1, None]),
               "ep": rng.choice([rand_int(rng), True, "1", None, 1.5])}
        for k in rng.sample(list(obj), rng.randint(0, 2)):
            del obj[k]
        return dump(obj, rng)
    if r == 3:
        return _splice(rng, rbproto.encode_status(rbproto.ONLINE, "0.1.0", 3))
    if r == 4:
        return rng.randbytes(rng.randint(0, 600))
    return dump(rand_json(rng))


def random_bytes(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.6:
        return rng.randbytes(rng.randint(0, 300))
    if r < 0.8:
        return bytes(rng.choice(b'{}[]":,0123456789-eE.tfnul \\sig') for _ in range(rng.randint(0, 200)))
    if r < 0.95:
        return rng.randbytes(rng.randint(300, 600))
    return rng.randbytes(rng.randint(600, 70_000))


# ---- serial streams ---------------------------------------------------------------------------

@dataclass
class Stream:
    """A serial byte stream built from labelled pieces, and what a decoder must get out of it:
    `must` holds the frames and log lines that follow a clean boundary (a delimiter, a finished log
    line, the start of the stream), which no damage before them may cost."""

    data: bytearray = field(default_factory=bytearray)
    frames: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # every intact frame sent
    must: list[tuple[int, Any, Any]] = field(default_factory=list)
    pieces: Counter[str] = field(default_factory=Counter)

    def clean(self) -> bool:
        """Does the stream so far end at a boundary? After a 0x00, or after a log line that began
        at one (every byte since the last 0x00 printable, the last one a newline)."""
        tail = self.data[self.data.rfind(b"\x00") + 1:]
        if not tail:
            return True
        if tail[-1] != 10:
            return False
        return all(0x20 <= b < 0x7F or b in (9, 10, 13) for b in tail)

    def add(self, label: str, data: bytes, item: tuple[int, Any, Any] | None = None) -> None:
        if item is not None and self.clean():
            self.must.append(item)
        self.data += data
        self.pieces[label] += 1


def rand_frame(rng: random.Random, kinds: tuple[int, ...] = frame.KINDS) -> tuple[int, bytes, bytes]:
    size = rng.choice([0, 1, 2, rng.randint(0, 40), rng.randint(0, frame.MAX_DATA), frame.MAX_DATA, 246, 247, 253])
    data = rng.randbytes(size) if rng.random() < 0.7 else bytes(rng.choice(b"\x00\x00\x01\n\xff") for _ in range(size))
    return rng.choice(kinds), rng.randbytes(6), data


def rand_line(rng: random.Random) -> bytes:
    text = "".join(rng.choice(ASCII + "\t") for _ in range(rng.randint(0, 120)))
    return text.encode() + rng.choice([b"\n", b"\r\n", b"\n", b"\n\n", b"\r\n\r\n"])


def build_stream(rng: random.Random, pieces: int) -> Stream:
    """Intact frames and log lines with every kind of damage between them."""
    s = Stream()
    for _ in range(pieces):
        r = rng.randrange(20)
        if r < 8:
            item = rand_frame(rng)
            s.frames.append(item)
            s.add("frame", frame.encode(*item), item)
        else:
            add_damage(rng, s)
    return s


def add_damage(rng: random.Random, s: Stream) -> None:
    """One piece of what else comes down a serial line: log lines, noise, broken frames."""
    r = rng.randrange(8, 20)
    if r < 10:
        line = rand_line(rng)
        text = line.strip(b"\r\n").split(b"\n")[0]
        s.add("log_line", line, (frame.LOG, None, text.decode()) if text else None)
    elif r == 10:
        s.add("noise", rng.randbytes(rng.randint(1, 400)))
    elif r == 11:
        s.add("noise", rng.randbytes(rng.randint(1, 100)) + b"\x00")
    elif r == 12:
        whole = frame.encode(*rand_frame(rng))
        s.add("truncated", whole[:rng.randint(1, len(whole) - 1)])
    elif r == 13:
        bad = bytearray(frame.encode(*rand_frame(rng)))
        i = rng.choice([0, len(bad) - 3, len(bad) - 2, rng.randrange(len(bad) - 1)])  # code, CRC, any
        bad[i] = (bad[i] + rng.randint(1, 255)) & 0xFF or 1
        s.add("corrupted", bytes(bad))
    elif r == 14:
        bad = bytearray(frame.encode(*rand_frame(rng)))
        i = rng.randrange(len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        s.add("bit_flip", bytes(bad))
    elif r == 15:
        s.add("lost_delimiter", frame.encode(*rand_frame(rng))[:-1])
    elif r == 16:
        junk = bytes(rng.choice(b"\x01\x02\xfe\xff\x80") for _ in range(rng.randint(frame.MAX_ENCODED, 900)))
        s.add("oversized", junk + (b"\x00" if rng.random() < 0.7 else b""))
    elif r == 17:
        s.add("unknown_kind", frame.encode(rng.choice([0, 5, 9, 200, 255]), rng.randbytes(6), rng.randbytes(5)))
    elif r == 18:
        s.add("zeros", b"\x00" * rng.randint(1, 5))
    else:
        s.add("text_no_newline", "".join(rng.choice(ASCII) for _ in range(rng.randint(1, 50))).encode())


def chunks(rng: random.Random, data: bytes) -> Iterator[bytes]:
    """The stream as a serial port hands it out: reads of any size, often one byte."""
    i = 0
    while i < len(data):
        n = rng.choice([1, 1, 2, 3, rng.randint(1, 64), rng.randint(1, 600)])
        yield data[i:i + n]
        i += n


def ref_cobs_decode(data: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            return None
        out += data[i + 1:i + code]
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def ref_split(data: bytes) -> tuple[list[tuple[int, Any, Any]], Counter[str]]:
    """What the serial framing documents for a whole stream, worked out per 0x00-delimited stretch
    (the decoder's streaming, chunked or not, must come to the same): log lines handed out at their
    newline, the rest of a stretch a frame or a counted error; a stretch that begins with a newline
    is a frame whose COBS code byte is 10 if its CRC says so, else a blank line and a frame."""
    items: list[tuple[int, Any, Any]] = []
    errors: Counter[str] = Counter()
    stretches = data.split(b"\x00")
    for n, stretch in enumerate(stretches):
        ended = n < len(stretches) - 1
        start = 0
        text = True
        for i, b in enumerate(stretch):
            if b == 10 and i > start:
                if stretch[start:i] == b"\n":  # blank lines: one newline stays, maybe a code byte
                    start = i
                    continue
                _ref_line(items, stretch[start:i])
                start = i + 1
                continue
            if i - start == _limit(stretch[start:]):  # a log line longer than a frame: cut
                _ref_line(items, stretch[start:i])
                start = i
            if not (0x20 <= b < 0x7F or b in (9, 10, 13)):
                text = False
                break
        rest = stretch[start:]
        if not ended:
            if not text and len(rest) > _limit(rest):
                errors[frame.OVERSIZED] += 1  # counted when the buffer overflows, delimiter or not
            continue
        if not rest:
            continue
        if text:
            _ref_line(items, rest)
            continue
        got = frame.OVERSIZED if len(rest) > _limit(rest) else ref_frame(rest)
        if rest[0] == 10 and got in (frame.GARBAGE, frame.BAD_CRC):
            got = ref_frame(rest[1:])
        if isinstance(got, tuple):
            items.append(got)
        else:
            errors[got] += 1
    return items, errors


def _limit(stretch: bytes) -> int:
    """The longest stretch the decoder holds: a frame, and one newline before it."""
    return frame.MAX_ENCODED + (1 if stretch[:1] == b"\n" else 0)


def _ref_line(items: list[tuple[int, Any, Any]], line: bytes) -> None:
    line = line.strip(b"\r\n")
    if line:
        items.append((frame.LOG, None, line.decode()))


def ref_frame(stretch: bytes) -> tuple[int, bytes, bytes] | str:
    """A delimited stretch that is not text -> the frame, or the reason it is dropped."""
    body = ref_cobs_decode(stretch)
    if body is None or len(body) < frame.HEAD + 2:
        return frame.GARBAGE
    if binascii.crc_hqx(body[:-2], 0xFFFF) != int.from_bytes(body[-2:], "big"):  # CRC-16/CCITT-FALSE
        return frame.BAD_CRC
    if body[0] not in frame.KINDS:
        return frame.BAD_KIND
    return body[0], body[1:frame.HEAD], body[frame.HEAD:-2]


# ---- venue files ------------------------------------------------------------------------------

def toml_text(doc: dict[str, Any]) -> str:
    """A document as TOML, every table inline: enough for fuzzed venues, whatever their types."""
    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, int | str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))  # dates and times: written as strings

    return "".join(f"{key(k)} = {value(v)}\n" for k, v in doc.items())


def paths(value: Any) -> list[tuple[str, Any, Any, Any]]:
    """(path, container, key, value) of every value in a parsed document, depth first (a loop, not
    recursion: fuzzed documents nest deep)."""
    out: list[tuple[str, Any, Any, Any]] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        at, v = stack.pop()
        if isinstance(v, dict):
            children = [(f"{at}.{k}" if at else str(k), k, x) for k, x in v.items()]
        elif isinstance(v, list):
            children = [(f"{at}[{i}]", i, x) for i, x in enumerate(v)]
        else:
            continue
        for p, k, x in children:
            out.append((p, v, k, x))
        stack.extend((p, x) for p, _k, x in reversed(children))
    return out


BAD_VALUES: list[Any] = [
    "", " ", "X" * 40, "UPPER", "a b", "é", "../etc", "\x00", "a\nb", "-", "_", "T1", "pgr-ana", "btn-t1", "dining",
    "server", "manager", "complaint", "cancel", "mon", "25:00", "24:00", "7:5", "Europe/Berlin", "Mars/Olympus",
    "/etc/passwd", "..", "http://", "ftp://x", "https://example.com:99999/x", "https://[::1", "HOME", "1BAD",
    0, -1, 1, 4, 10**30, -(10**30), 2**63, 0.0, -0.5, 1e308, float("nan"), float("inf"), True, False,
    [], [""], [[]], [{}], [0], ["server"], ["dining"], [["dining"]], [{"a": 1}], {}, {"x": 1}, {"id": "a"},
]


def mutate_doc(rng: random.Random, doc: dict[str, Any]) -> str:
    """Change `doc` in place somewhere: delete a key, swap a type, put in a bad value, an unknown
    key, a duplicate, or deep nesting. -> a label."""
    every = paths(doc)
    _p, container, k, v = rng.choice(every)
    op = rng.randrange(9)
    if op == 0:
        del container[k]
        return "deleted_key"
    if op == 1:
        container[k] = rand_json(rng)
        return "type_swap"
    if op in (2, 3):
        container[k] = rng.choice(BAD_VALUES)
        return "bad_value"
    if op == 4:
        target = rng.choice([x for _p2, _c, _k, x in every if isinstance(x, dict)] + [doc])
        target[rng.choice([rand_id(rng), "Site", "zone", "ids", "escalation", "kinds", "levels", "1"])] = rand_json(rng)
        return "unknown_key"
    if op == 5 and isinstance(container, list):
        container.append(rng.choice(container))
        return "duplicate"
    if op == 6:
        deep: Any = rng.choice([1, "x", {}])
        for _ in range(rng.randint(20, 300)):
            deep = [deep] if rng.random() < 0.5 else {"a": deep}
        container[k] = deep
        return "deep_nesting"
    if op == 7 and isinstance(v, str):
        container[k] = v.upper() if rng.random() < 0.5 else v + rand_unicode(rng, 3)
        return "bad_value"
    if op == 8 and isinstance(v, list) and v:
        v[rng.randrange(len(v))] = rand_json(rng)
        return "type_swap"
    container[k] = rng.choice(BAD_VALUES)
    return "bad_value"


def mutate_text(rng: random.Random, text: str) -> tuple[str, bytes]:
    """A syntax-level change to a TOML file: -> (label, file bytes)."""
    lines = text.splitlines(keepends=True)
    op = rng.randrange(12)
    if op == 0 and lines:
        del lines[rng.randrange(len(lines))]
        return "deleted_line", "".join(lines).encode()
    if op == 1 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[rng.randrange(len(lines))])
        return "duplicated_line", "".join(lines).encode()
    if op == 2:
        return "truncated", text.encode()[:rng.randint(0, len(text))]
    if op == 3:
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return "bytes", bytes(data)
    if op == 4:
        i = rng.randint(0, len(text))
        junk = rng.choice(['"', "'", "[", "]", "[[", "{", "}", "=", "\n=", "\\", "#", "\x00", '"""', "'''", ",",
                           "\n[zones]\n", "\nsite = 1\n"])
        return "inserted", (text[:i] + junk + text[i:]).encode()
    if op == 5:
        i = rng.randint(0, len(text))
        return "bad_utf8", text.encode()[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                                             b"\x80"]) + text.encode()[i:]
    if op == 6:
        depth = rng.choice([rng.randint(1, 100), rng.randint(100, 1200)])
        return "deep_nesting", (text + "\ndeep = " + "[" * depth + "1" + "]" * depth + "\n").encode()
    if op == 7:
        depth = rng.randint(50, 1000)
        return "deep_nesting", (text + "\ndeep = " + "{a = " * depth + "1" + "}" * depth + "\n").encode()
    if op == 8:
        return "encoding", text.encode(rng.choice(["utf-16", "utf-8-sig", "utf-32"]))
    if op == 9:
        return "line_endings", text.replace("\n", rng.choice(["\r\n", "\r", "\n\n"])).encode()
    if op == 10:
        return "random", rng.randbytes(rng.randint(0, 300))
    i = rng.randint(0, len(text))
    return "inserted", (text[:i] + rand_unicode(rng, 5) + text[i:]).encode("utf-8", "surrogatepass")


def names_a_key(doc: Any, message: str) -> bool:
    """Does an error message (after the file name) start with a key path of the document, like
    staff[2].shifts[0].days or escalation.kinds.<name>.levels[1], or one missing from a table the
    document has? Paths are compared whole, so a name with dots or brackets in it is no problem."""
    present = {p for p, _c, _k, _v in paths(doc)} | {""}
    at = message.find(": ")
    while at > 0:
        where = message[:at].split(" (")[0]
        # the path itself, or keys missing below a table the file has (an index would be an element)
        ancestor = where
        while ancestor not in present and "." in ancestor:
            ancestor = ancestor.rsplit(".", 1)[0]
        if ancestor not in present:
            ancestor = ""
        if "[" not in where[len(ancestor):]:
            return True
        at = message.find(": ", at + 1)
    return False


def toml_error_names_line(message: str) -> bool:
    return re.search(r"\bline \d+|at end of document", message) is not None


def fmt(data: bytes | str, most: int = 300) -> str:
    text = repr(data)
    return text if len(text) <= most else text[:most] + f"... ({len(data)} long)"
