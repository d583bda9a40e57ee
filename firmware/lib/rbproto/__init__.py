# Red Button wire protocol v1: topics, message schema, signing, encoding, decoding, replay window.
#
# The one codec of the project. It runs unchanged on the ESP32 (MicroPython), in the gateway and in
# the simulator (CPython), so it uses only what both have: hashlib.sha256, binascii, json.
# docs/protocol.md is the prose contract; tests/vectors/v1.json pins this code byte for byte.
import binascii
import hashlib
import json

VERSION = 1
ROOT = "rb/v1"
MAX_PAYLOAD = 512  # bytes; a button event is ~200, one TCP segment with room to spare
MAX_STR = 48
MAX_LIST = 120  # list fields (a comma-separated string): the venue's gesture map, recovery actions
_TAG = "rb1"  # first line of every canonical form: binds a signature to protocol v1

EVT = "evt"  # device -> gateway
CMD = "cmd"  # gateway -> device

# Message type -> (direction, field names in canonical order). Every field is required (OPTIONAL
# below names the few that are not).
# The order is the signing order and the JSON order; never reorder, only add a new type.
SCHEMA = {
    "press": (EVT, ("ep", "seq", "ts", "kind", "bat")),
    "cancel": (EVT, ("ep", "seq", "ts", "bat")),
    "heartbeat": (EVT, ("ep", "seq", "ts", "bat", "rssi", "fw", "up", "q", "cv")),
    "duty": (EVT, ("ep", "seq", "ts", "on")),
    "ack": (EVT, ("ep", "seq", "ts", "inc")),
    "decline": (EVT, ("ep", "seq", "ts", "inc")),
    "resolve": (EVT, ("ep", "seq", "ts", "inc", "action")),
    "alert": (CMD, ("ep", "seq", "ts", "inc", "table", "kind", "lvl", "age")),
    "alert_cancel": (CMD, ("ep", "seq", "ts", "inc", "why")),
    "feedback": (CMD, ("ep", "seq", "ts", "inc", "state")),
    "config": (CMD, ("ep", "seq", "ts", "cv", "gest", "acts", "hb", "rebuzz")),
}

# Message type -> fields it may carry after the required ones: all of them, in this order, or none.
# A feedback with them echoes the (ep, seq) of the press it answers ((NO_PRESS, NO_PRESS): it
# answers none); the gateway adds them only for firmware that reads them (docs/protocol.md).
OPTIONAL = {"feedback": ("pep", "pseq")}
NO_PRESS = 0  # never a boot epoch or a sequence number: both start at 1

# Field name -> True for integers, False for strings.
_INT_FIELDS = {
    "ep": True, "seq": True, "ts": True, "bat": True, "rssi": True, "up": True, "q": True, "cv": True,
    "on": True, "inc": True, "lvl": True, "age": True, "hb": True, "rebuzz": True, "pep": True, "pseq": True,
    "kind": False, "fw": False, "action": False, "table": False, "why": False, "state": False,
    "gest": False, "acts": False,
}
_LIST_FIELDS = ("gest", "acts")  # strings up to MAX_LIST long, items separated by ","

# Button feedback states, in the order a customer sees them.
SENDING = "sending"
DELIVERED = "delivered"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
CANCELLED = "cancelled"
ERROR = "error"
FEEDBACK_STATES = (SENDING, DELIVERED, ACKNOWLEDGED, RESOLVED, CANCELLED, ERROR)

ONLINE = "online"
OFFLINE = "offline"

# Reasons a message is refused; the gateway counts drops under these names.
OVERSIZED = "oversized"
BAD_TOPIC = "bad_topic"
MALFORMED = "malformed"
BAD_FIELD = "bad_field"
UNKNOWN_DEVICE = "unknown_device"
BAD_SIGNATURE = "bad_signature"
REPLAYED = "replayed"


class ProtocolError(ValueError):
    """A refused message; `reason` is one of the constants above."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason
        self.detail = detail


class Message:
    """A decoded, verified message. `body` maps every schema field to its value."""

    def __init__(self, mtype, site, device, body):
        self.mtype = mtype
        self.site = site
        self.device = device
        self.body = body

    def __repr__(self):
        return "Message(%s %s/%s %r)" % (self.mtype, self.site, self.device, self.body)


# ---- identifiers and topics -------------------------------------------------------------------

def valid_id(s):
    """Site and device ids: 1-32 of [a-z0-9_-], so they are safe in topics and file names."""
    if not isinstance(s, str) or not 0 < len(s) <= 32:
        return False
    for c in s:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-" or c == "_"):
            return False
    return True


def topic(site, device, mtype):
    """The topic a message of `mtype` travels on (events up, commands down)."""
    return "%s/%s/%s/%s/%s" % (ROOT, site, device, SCHEMA[mtype][0], mtype)


def status_topic(site, device):
    """Retained online/offline status of a device (or of the gateway, device id "gateway")."""
    return "%s/%s/%s/status" % (ROOT, site, device)


def events_filter(site):
    return "%s/%s/+/%s/+" % (ROOT, site, EVT)


def status_filter(site):
    return "%s/%s/+/status" % (ROOT, site)


def commands_filter(site, device):
    return "%s/%s/%s/%s/+" % (ROOT, site, device, CMD)


def parse_topic(t):
    """Topic -> (site, device, mtype); mtype is "status" for status topics. Raises ProtocolError."""
    parts = t.split("/")
    if len(parts) == 5 and parts[4] == "status":
        site, device, mtype = parts[2], parts[3], "status"
    elif len(parts) == 6:
        site, device, mtype = parts[2], parts[3], parts[5]
        spec = SCHEMA.get(mtype)
        if spec is None or spec[0] != parts[4]:
            raise ProtocolError(BAD_TOPIC, t)
    else:
        raise ProtocolError(BAD_TOPIC, t)
    if parts[0] + "/" + parts[1] != ROOT or not valid_id(site) or not valid_id(device):
        raise ProtocolError(BAD_TOPIC, t)
    return site, device, mtype


# ---- signing ----------------------------------------------------------------------------------

def hmac_sha256(key, data):
    """RFC 2104 HMAC-SHA256. Written out because the ESP32 build ships hashlib but not hmac."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]))
    inner.update(data)
    outer = hashlib.sha256(bytes([b ^ 0x5C for b in key]))
    outer.update(inner.digest())
    return outer.digest()


def _equal(a, b):
    """Constant-time comparison of two byte strings (no early exit on the first difference)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def key_from_hex(text):
    return binascii.unhexlify(text)


def fields(mtype, body):
    """The fields a message of `mtype` with this body has, in signing order: the schema's, then
    the optional ones when the body has the first of them."""
    names = SCHEMA[mtype][1]
    extra = OPTIONAL.get(mtype)
    if extra is not None and extra[0] in body:
        names = names + extra
    return names


def canonical(t, mtype, body):
    """The bytes that are signed: tag, topic, then each field's value in schema order, one a line.
    Values are decimal integers or printable ASCII without newlines, so no escaping is needed and
    no dict has to be sorted."""
    parts = [_TAG, t]
    for name in fields(mtype, body):
        parts.append(str(body[name]))
    return "\n".join(parts).encode()


def sign(key, t, mtype, body):
    return binascii.hexlify(hmac_sha256(key, canonical(t, mtype, body))).decode()


# ---- encoding ---------------------------------------------------------------------------------

def _check_value(name, value):
    if _INT_FIELDS[name]:
        # bool is an int subclass on both interpreters; a bool is never a valid field value.
        if not isinstance(value, int) or isinstance(value, bool) or not -(2 ** 62) < value < 2 ** 62:
            raise ProtocolError(BAD_FIELD, name)
        return
    if not isinstance(value, str) or len(value) > (MAX_LIST if name in _LIST_FIELDS else MAX_STR):
        raise ProtocolError(BAD_FIELD, name)
    for c in value:
        if c < " " or c > "~" or c == '"' or c == "\\":
            raise ProtocolError(BAD_FIELD, name)


def _json(names, body, sig):
    """The one JSON text of a message: its fields in signing order, the signature last, no
    whitespace, integers in decimal, strings as they are (no value needs escaping)."""
    out = []
    for name in names:
        if _INT_FIELDS[name]:
            out.append('"%s":%d' % (name, body[name]))
        else:
            out.append('"%s":"%s"' % (name, body[name]))
    out.append('"sig":"%s"' % sig)
    return "{" + ",".join(out) + "}"


def encode(key, site, device, mtype, body):
    """-> (topic, payload bytes). The JSON is written in schema order with the signature last, so
    the same message gives the same bytes on MicroPython and CPython."""
    t = topic(site, device, mtype)
    names = fields(mtype, body)
    for name in OPTIONAL.get(mtype, ()):
        if (name in body) != (name in names):
            raise ProtocolError(BAD_FIELD, "all of " + ",".join(OPTIONAL[mtype]) + " or none")
    for name in names:
        _check_value(name, body[name])
    return t, _json(names, body, sign(key, t, mtype, body)).encode()


def encode_status(state, fw, ep):
    """Retained status payload (and the last-will with state "offline"). Not signed: it only
    reports liveness, never opens an incident, and the broker's ACL guards the topic."""
    return ('{"state":"%s","fw":"%s","ep":%d}' % (state, fw, ep)).encode()


# ---- decoding ---------------------------------------------------------------------------------

def _load_object(payload):
    """-> (the JSON object, the payload's text)."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(OVERSIZED, "%d bytes" % len(payload))
    try:
        # UTF-8 first: given bytes, CPython's json would also read UTF-16 and UTF-32 (MicroPython's not)
        text = payload if isinstance(payload, str) else payload.decode()
    except UnicodeError:
        raise ProtocolError(MALFORMED, "not UTF-8")
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeError):  # MicroPython raises ValueError for bad JSON and bad UTF-8
        raise ProtocolError(MALFORMED, "not JSON")
    if not isinstance(obj, dict):
        raise ProtocolError(MALFORMED, "not an object")
    return obj, text


def decode(t, payload, key_for):
    """Parse, validate and verify one signed message.

    key_for(device) returns the device's key (bytes) or None when the device is unknown.
    Returns a Message; raises ProtocolError with the reason on any defect. Replay is checked
    separately (ReplayWindow), because it needs state the codec does not keep."""
    site, device, mtype = parse_topic(t)
    if mtype == "status":
        raise ProtocolError(BAD_TOPIC, "status is not a signed message")
    obj, text = _load_object(payload)
    names = fields(mtype, obj)
    if len(obj) != len(names) + 1:
        raise ProtocolError(BAD_FIELD, "expected fields " + ",".join(names) + ",sig")
    body = {}
    for name in names:
        if name not in obj:
            raise ProtocolError(BAD_FIELD, "missing " + name)
        _check_value(name, obj[name])
        body[name] = obj[name]
    sig = obj.get("sig")
    if not isinstance(sig, str) or len(sig) != 64:
        raise ProtocolError(BAD_FIELD, "sig")
    # Only the very text encode() writes for these values: MicroPython's json also reads what
    # CPython's refuses ("01", a missing ':' or ',', an unknown escape), and this way both
    # interpreters take the same payloads. Spaces, another order, a repeated key or an escaped
    # character are refused too. One string of the payload's size: cheap next to the HMAC.
    if _json(names, body, sig) != text:
        raise ProtocolError(MALFORMED, "not in canonical form")
    key = key_for(device)
    if key is None:
        raise ProtocolError(UNKNOWN_DEVICE, device)
    try:
        given = binascii.unhexlify(sig)
    except ValueError:
        raise ProtocolError(BAD_FIELD, "sig is not hex")
    if not _equal(given, hmac_sha256(key, canonical(t, mtype, body))):
        raise ProtocolError(BAD_SIGNATURE, device)
    return Message(mtype, site, device, body)


def decode_status(t, payload):
    """-> (site, device, state, fw, ep) for a retained status message."""
    site, device, mtype = parse_topic(t)
    if mtype != "status":
        raise ProtocolError(BAD_TOPIC, t)
    obj = _load_object(payload)[0]
    state = obj.get("state")
    fw = obj.get("fw", "")
    ep = obj.get("ep", 0)
    if state not in (ONLINE, OFFLINE):
        raise ProtocolError(BAD_FIELD, "state")
    _check_value("fw", fw)
    _check_value("ep", ep)
    return site, device, state, fw, ep


# ---- replay and duplicate rejection -----------------------------------------------------------

WINDOW = 64  # how far behind the newest sequence number a late message is still accepted


class ReplayWindow:
    """Accepts each (boot epoch, sequence number) of one sender at most once.

    A newer epoch (the sender rebooted) starts afresh; an older epoch is a replay. Within an epoch
    a sliding window of WINDOW numbers (as IPsec does) tolerates reordering while refusing
    duplicates. The state is three integers, so the gateway can persist it per device."""

    def __init__(self, ep=-1, top=-1, bits=0):
        self.ep = ep
        self.top = top
        self.bits = bits  # bit i set: sequence number top - i has been accepted

    def check(self, ep, seq):
        """True when (ep, seq) is new. Does not record it: call accept() once it is handled."""
        if ep != self.ep:
            return ep > self.ep
        if seq > self.top:
            return True
        behind = self.top - seq
        return behind < WINDOW and not (self.bits >> behind) & 1

    def accept(self, ep, seq):
        if ep != self.ep:
            self.ep, self.top, self.bits = ep, seq, 1
        elif seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)
