# What every device role shares: its identity, the boot epoch, and signed messaging over a link.
import rbproto

FIRMWARE = "0.2.0"  # 0.2: answers to a press are told apart by their echo (docs/protocol.md)


_CLOCK_SET = 1600000000  # a wall clock below this (Sept 2020) has not been set yet


def next_epoch(path="epoch", now_s=0):
    """Boot epoch: kept in flash and raised at every boot, so sequence numbers restart at 1
    without the gateway mistaking them for replays. Once the wall clock is set the epoch jumps to
    the Unix time, so it also stays ahead of an epoch used by hand (redbutton sign)."""
    try:
        with open(path) as f:
            ep = int(f.read())
    except (OSError, ValueError):
        ep = 0
    ep = max(ep + 1, now_s if now_s > _CLOCK_SET else 0)
    with open(path, "w") as f:
        f.write(str(ep))
    return ep


def resume(rtc_text, woke):
    """(ep, seq) kept in RTC memory across deep sleep, or None when the device must start a new
    epoch. RTC memory survives deep sleep but not a reset or power loss, and waking must not write
    flash (the epoch file) at every press."""
    if not woke or not rtc_text:
        return None
    try:
        ep, seq = rtc_text.split(",")
        return int(ep), int(seq)
    except ValueError:
        return None


def session_text(msgr):
    """What goes into RTC memory before deep sleep: the epoch and the last sequence number used."""
    return "%d,%d" % (msgr.epoch, msgr.seq)


class Messenger:
    """Signs outgoing events and verifies incoming commands for one device.

    cfg holds "site", "device" and "key" (hex). Every refused command is logged with its reason and
    counted in `dropped`; it never raises into the application."""

    def __init__(self, cfg, epoch, clock, link, log=print, seq=0):
        self.site = cfg["site"]
        self.device = cfg["device"]
        self._key = rbproto.key_from_hex(cfg["key"])
        self.epoch = epoch
        self.seq = seq
        self.clock = clock
        self.link = link
        self.log = log
        self.window = rbproto.ReplayWindow()  # commands come from the gateway alone
        self.dropped = 0

    def _key_for(self, device):
        return self._key if device == self.device else None

    def sign(self, mtype, fields):
        """Sign an event with the next sequence number and the time now: (seq, topic, payload).
        A queued press keeps these, so it arrives later with its original time and number."""
        self.seq += 1
        body = {"ep": self.epoch, "seq": self.seq, "ts": self.clock.epoch_s()}
        body.update(fields)
        t, payload = rbproto.encode(self._key, self.site, self.device, mtype, body)
        return self.seq, t, payload

    def send(self, mtype, fields):
        """Sign and publish an event; returns (seq, handed_to_link)."""
        seq, t, payload = self.sign(mtype, fields)
        return seq, self.link.publish(t, payload)

    def receive(self, t, payload):
        """A verified, first-seen command Message, or None when it is refused."""
        try:
            msg = rbproto.decode(t, payload, self._key_for)
        except rbproto.ProtocolError as e:
            return self._drop(e.reason, e.detail)
        ep, seq = msg.body["ep"], msg.body["seq"]
        if not self.window.check(ep, seq):
            return self._drop(rbproto.REPLAYED, "ep=%d seq=%d" % (ep, seq))
        self.window.accept(ep, seq)
        return msg

    def _drop(self, reason, detail):
        self.dropped += 1
        self.log("DROP reason=%s %s" % (reason, detail))
        return None

    def status(self, state):
        return rbproto.status_topic(self.site, self.device), rbproto.encode_status(state, FIRMWARE, self.epoch)


class Heartbeat:
    """A heartbeat every `settings.heartbeat_ms` while the link is up: battery, signal, firmware,
    uptime, queue length and config version. The gateway treats a device silent past its window as
    a fault. While the outbox holds events of an earlier boot epoch the heartbeat holds back: the
    gateway would take them for replays once it had seen the new epoch."""

    def __init__(self, msgr, settings, battery, outbox=None):
        self.msgr = msgr
        self.settings = settings
        self.battery = battery
        self.outbox = outbox
        self._boot = msgr.clock.ms()
        self._last = None  # the first one goes out as soon as the link is up

    def due_in_ms(self):
        """Milliseconds until the next heartbeat is due (0: now)."""
        if self._last is None:
            return 0
        clock = self.msgr.clock
        return max(0, self.settings.heartbeat_ms - clock.diff(clock.ms(), self._last))

    def sent_ago_ms(self):
        """Milliseconds since the last heartbeat went out (a large number if none has)."""
        if self._last is None:
            return 1 << 29
        clock = self.msgr.clock
        return clock.diff(clock.ms(), self._last)

    def tick(self):
        link = self.msgr.link
        if self.due_in_ms() > 0 or not link.is_up():
            return
        if self.outbox is not None and self.outbox.holds_older(self.msgr.epoch):
            return
        clock = self.msgr.clock
        now = clock.ms()
        seq, ok = self.msgr.send("heartbeat", {
            "bat": self.battery(), "rssi": link.rssi(), "fw": FIRMWARE,
            "up": clock.diff(now, self._boot) // 1000, "q": len(self.outbox) if self.outbox is not None else 0,
            "cv": self.settings.version})
        if ok:
            self._last = now
            self.msgr.log("HEARTBEAT seq=%d" % seq)
