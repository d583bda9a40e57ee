# Stand-ins for MicroPython's espnow.ESPNow, the WLAN interface and a serial port, for the ESP-NOW
# link and base station logic tests (MicroPython subset). The simulator's shim is the full model;
# these only record and replay, so a test can say exactly which send fails.

EXIST = OSError(12395, "ESP_ERR_ESPNOW_EXIST")
FULL = OSError(12392, "ESP_ERR_ESPNOW_FULL")
NOT_FOUND = OSError(12393, "ESP_ERR_ESPNOW_NOT_FOUND")


class FakeRadio:
    def __init__(self, max_peers=20):
        self.on = False
        self.peers = []
        self.max_peers = max_peers
        self.deleted = []
        self.settings = {}
        self.ack = True  # what a send answers when `acks` is empty
        self.acks = []  # answers for the next sends, in order: True, False or an exception
        self.sent = []  # (mac, packet, answer) of every send attempt
        self.inbox = []  # (mac, packet) waiting for irecv
        self.recv_error = None
        self.peers_table = {}
        # irecv hands out the same buffer every time, as MicroPython's does
        self._data = bytearray(250)
        self._out = [None, None]

    def active(self, flag=None):
        if flag is None:
            return self.on
        self.on = bool(flag)
        if not flag:
            self.peers = []
        return None

    def config(self, **kw):
        self.settings.update(kw)

    def add_peer(self, mac, *args, **kw):
        if mac in self.peers:
            raise EXIST
        if len(self.peers) >= self.max_peers:
            raise FULL
        self.peers.append(bytes(mac))

    def del_peer(self, mac):
        if mac not in self.peers:
            raise NOT_FOUND
        self.peers.remove(mac)
        self.deleted.append(mac)

    def send(self, mac, msg, sync=True):
        if mac not in self.peers:
            raise NOT_FOUND
        answer = self.acks.pop(0) if self.acks else self.ack
        self.sent.append((bytes(mac), bytes(msg), answer))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def irecv(self, timeout_ms=None):
        if self.recv_error is not None:
            raise self.recv_error
        if not self.inbox:
            return (None, None)
        mac, msg = self.inbox.pop(0)
        n = len(msg)
        self._data[:n] = msg
        self._out[0] = mac
        self._out[1] = memoryview(self._data)[:n]
        return self._out

    def stats(self):
        return (len(self.sent), 0, 0, 0, 3)


class FakeWlan:
    def __init__(self, mac=b"\x02\x00\x00\x00\x00\x01"):
        self.on = False
        self.mac = mac
        self.channel = 0

    def active(self, flag=None):
        if flag is None:
            return self.on
        self.on = bool(flag)
        return None

    def config(self, *args, **kw):
        if args:
            return self.mac if args[0] == "mac" else self.channel
        if "channel" in kw:
            self.channel = kw["channel"]
        return None


class FakeSerial:
    """write() keeps everything written; feed() queues what read() returns next."""

    def __init__(self):
        self.written = bytearray()
        self.incoming = []
        self.write_error = None

    def write(self, data):
        if self.write_error is not None:
            raise self.write_error
        self.written.extend(data)

    def read(self):
        return self.incoming.pop(0) if self.incoming else None

    def feed(self, data):
        self.incoming.append(bytes(data))
