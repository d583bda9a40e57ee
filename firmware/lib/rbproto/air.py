# ESP-NOW air format: one protocol message is topic + "\n" + payload, cut into packets of <= 250 bytes.
#
# packet = message id (1 byte) + fragment index (1 byte) + fragment count (1 byte) + chunk
# ESP-NOW v1 carries at most 250 bytes a packet (MicroPython's espnow.MAX_DATA_LEN on IDF < 5.4;
# v2 allows 1470, but a v1 receiver drops anything longer), while a `config` command is ~450.
# Reassembler puts the chunks back together with a bounded number of partial messages and a
# timeout, and drops a message sent twice (a send retried because its acknowledgement was lost).
# MicroPython subset: the device's espnow_link and the host's serial bridge share this file.

MAX_PACKET = 250
HEADER = 3
CHUNK = MAX_PACKET - HEADER
MAX_FRAGMENTS = 4  # 988 bytes: a 512-byte payload and its topic need 3
MAX_MESSAGE = CHUNK * MAX_FRAGMENTS
TIMEOUT_MS = 2000  # a message whose fragments do not all arrive in time is dropped

# Reasons Reassembler.errors counts.
BAD_PACKET = "bad_packet"  # header out of range or no data
TIMEOUT = "reassembly_timeout"
EVICTED = "reassembly_evicted"  # more partial messages at once than there are slots
DUPLICATE = "duplicate"


def join(topic, payload):
    return topic.encode() + b"\n" + payload


def split(message):
    """message -> (topic, payload); ValueError when there is no topic line or it is not text."""
    i = message.find(b"\n")
    if i <= 0:
        raise ValueError("no topic line")
    return bytes(message[:i]).decode(), bytes(message[i + 1:])


def fragment(msg_id, message):
    """The packets that carry `message` (bytes) under message id msg_id (0-255)."""
    n = (len(message) + CHUNK - 1) // CHUNK or 1
    if n > MAX_FRAGMENTS:
        raise ValueError("message too long for the air: %d bytes" % len(message))
    out = []
    for i in range(n):
        out.append(bytes((msg_id & 0xFF, i, n)) + message[i * CHUNK:(i + 1) * CHUNK])
    return out


class Reassembler:
    """Collects fragments per (sender MAC, message id). `clock` has ms() and diff() (the firmware's
    clock.SystemClock/ManualClock or a host equivalent). At most `slots` messages are in progress;
    a new one evicts the oldest. Memory: the chunks of those messages, nothing else."""

    def __init__(self, clock, slots=2, timeout_ms=TIMEOUT_MS):
        self.clock = clock
        self.slots = slots
        self.timeout_ms = timeout_ms
        self._partial = []  # [mac, msg_id, count, parts (list, None where missing), first ms]
        self._last = {}  # mac -> (msg_id, ms) of the last message completed, to drop a re-send
        self.errors = {}

    def _count(self, reason):
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def _seen(self, mac, msg_id, now):
        last = self._last.get(mac)
        return last is not None and last[0] == msg_id and self.clock.diff(now, last[1]) < self.timeout_ms

    def _done(self, mac, msg_id, now):
        if mac not in self._last and len(self._last) >= 32:
            self._last = {}  # a bound, not a cache policy: forgetting only risks a duplicate
        self._last[mac] = (msg_id, now)

    def add(self, mac, packet):
        """The whole message (bytes) once `packet` completes it, else None. Copies what it keeps,
        so `packet` may be a buffer the radio reuses (ESPNow.irecv)."""
        now = self.clock.ms()
        mac = bytes(mac)
        if len(packet) <= HEADER:
            self._count(BAD_PACKET)
            return None
        msg_id, index, count = packet[0], packet[1], packet[2]
        if not 0 < count <= MAX_FRAGMENTS or index >= count:
            self._count(BAD_PACKET)
            return None
        if self._seen(mac, msg_id, now):
            self._count(DUPLICATE)
            return None
        if count == 1:
            self._done(mac, msg_id, now)
            return bytes(packet[HEADER:])
        slot = None
        for s in self._partial:
            if s[0] == mac and s[1] == msg_id:
                slot = s
                break
        if slot is not None and slot[2] != count:
            self._partial.remove(slot)  # the id came round again for another message
            slot = None
        if slot is None:
            if len(self._partial) >= self.slots:
                self._partial.pop(0)
                self._count(EVICTED)
            slot = [mac, msg_id, count, [None] * count, now]
            self._partial.append(slot)
        slot[3][index] = bytes(packet[HEADER:])
        if None in slot[3]:
            return None
        self._partial.remove(slot)
        self._done(mac, msg_id, now)
        return b"".join(slot[3])

    def expire(self):
        """Drop partial messages older than the timeout; returns how many."""
        now = self.clock.ms()
        old = [s for s in self._partial if self.clock.diff(now, s[4]) >= self.timeout_ms]
        for s in old:
            self._partial.remove(s)
            self._count(TIMEOUT)
        return len(old)
