# The base station: ESP-NOW packets become serial frames for the host's bridge, and back.
#
# It does not read the packets: reassembly, topics and signatures are the host's business, so the
# base station stays small and never needs an update when the protocol grows.
from rbproto import frame

MAX_PEERS = 20  # espnow.MAX_TOTAL_PEER_NUM: sending needs a registered peer, receiving does not
STATS_MS = 10000
SEND_TRIES = 2
FLASH_MS = 40  # the status LED's blink per packet bridged (green) or error (red)
_GREEN = (0, 40, 0)
_RED = (60, 0, 0)
_OFF = (0, 0, 0)
_MAX_RX_PER_TICK = 16  # a burst waits in the radio's buffer rather than starving the serial side


class BaseApp:
    """radio: an espnow.ESPNow (active, on the venue's channel); serial: write(bytes) and a
    non-blocking read() -> bytes or None; mac: the base station's own MAC (6 bytes); led: an
    optional callable taking (r, g, b), blinked green per packet bridged and red on an error.

    Log markers: `BASE ready mac=...`, `UP mac=... bytes=N`, `DOWN mac=... ok|fail`,
    `BASE stats {...}`. The same counters go to the host every stats_ms as a STATS frame."""

    def __init__(self, radio, serial, clock, mac, log=print, led=None, max_peers=MAX_PEERS,
                 stats_ms=STATS_MS):
        self.radio = radio
        self.serial = serial
        self.clock = clock
        self.mac = bytes(mac)
        self.log = log
        self.led = led
        self._lit_at = None
        self.max_peers = max_peers
        self.stats_ms = stats_ms
        self.decoder = frame.Decoder()
        self._peers = {}  # mac -> use stamp: the least recently used peer is evicted first
        self._use = 0
        self._stats_at = clock.ms()
        self.up = 0
        self.down = 0
        self.send_fail = 0
        self.serial_err = 0
        self.evicted = 0
        self.ignored = 0

    def start(self):
        self.log("BASE ready mac=%s" % frame.hexmac(self.mac))
        self._send_stats()

    def _blink(self, rgb):
        if self.led is not None:
            self.led(rgb)
            self._lit_at = self.clock.ms()

    def _write(self, data):
        try:
            self.serial.write(data)
        except OSError:
            self.serial_err += 1
            self._blink(_RED)

    def stats(self):
        """Counters as JSON text, written by hand: no dict to sort, same bytes on every port."""
        e = self.decoder.errors
        return ('{"up":%d,"down":%d,"send_fail":%d,"bad_crc":%d,"garbage":%d,"oversized":%d,'
                '"bad_kind":%d,"peers":%d,"evicted":%d,"serial_err":%d,"rx_lost":%d}') % (
            self.up, self.down, self.send_fail, e.get(frame.BAD_CRC, 0), e.get(frame.GARBAGE, 0),
            e.get(frame.OVERSIZED, 0), e.get(frame.BAD_KIND, 0), len(self._peers), self.evicted,
            self.serial_err, self._rx_lost())

    def _rx_lost(self):
        try:
            return self.radio.stats()[4]  # packets dropped because the receive buffer was full
        except (AttributeError, OSError, IndexError):
            return 0

    def _send_stats(self):
        text = self.stats()
        self._write(frame.encode(frame.STATS, self.mac, text.encode()))
        self._stats_at = self.clock.ms()
        return text

    # ---- up: radio -> serial ---------------------------------------------------------------

    def _radio_to_serial(self):
        for _ in range(_MAX_RX_PER_TICK):
            try:
                mac, packet = self.radio.irecv(0)
            except OSError as e:
                self.log("BASE recv error %s" % e)
                return
            if mac is None:
                return
            if len(packet) > frame.MAX_DATA:
                self.ignored += 1  # an ESP-NOW v2 sender: longer than any packet of ours
                continue
            self._write(frame.encode(frame.UP, mac, packet))  # irecv reuses its buffer: encode copies
            self.up += 1
            self._blink(_GREEN)
            self.log("UP mac=%s bytes=%d" % (frame.hexmac(mac), len(packet)))

    # ---- down: serial -> radio -------------------------------------------------------------

    def _peer(self, mac):
        """Register mac as a peer, evicting the least recently used one when the table is full."""
        self._use += 1
        if mac in self._peers:
            self._peers[mac] = self._use
            return
        if len(self._peers) >= self.max_peers:
            oldest = None
            for m in self._peers:
                if oldest is None or self._peers[m] < self._peers[oldest]:
                    oldest = m
            del self._peers[oldest]
            self.evicted += 1
            try:
                self.radio.del_peer(oldest)
            except OSError:
                pass
        try:
            self.radio.add_peer(mac)
        except OSError:  # already registered (a soft reboot keeps the radio's table)
            pass
        self._peers[mac] = self._use

    def _send(self, mac, packet):
        self._peer(mac)
        for _ in range(SEND_TRIES):
            try:
                if self.radio.send(mac, packet, True):
                    return True
            except (OSError, ValueError) as e:
                self.log("BASE send error %s" % e)
        return False

    def _serial_to_radio(self):
        try:
            data = self.serial.read()
        except OSError:
            self.serial_err += 1
            return
        if not data:
            return
        for kind, mac, packet in self.decoder.feed(data):
            if kind != frame.DOWN:
                self.ignored += 1
                continue
            self.down += 1
            ok = self._send(mac, packet)
            if not ok:
                self.send_fail += 1
            self._blink(_GREEN if ok else _RED)
            status = frame.SENT_OK if ok else frame.SENT_FAIL
            self._write(frame.encode(frame.SENT, mac, bytes((status,)) + packet[:frame.SENT_ECHO]))
            self.log("DOWN mac=%s %s" % (frame.hexmac(mac), "ok" if ok else "fail"))

    def tick(self):
        self._radio_to_serial()
        self._serial_to_radio()
        if self._lit_at is not None and self.clock.diff(self.clock.ms(), self._lit_at) >= FLASH_MS:
            self.led(_OFF)
            self._lit_at = None
        if self.clock.diff(self.clock.ms(), self._stats_at) >= self.stats_ms:
            self.log("BASE stats %s" % self._send_stats())
