# What every device role shares: its identity, the boot epoch, and signed messaging over a link.
import rbproto

FIRMWARE = "0.1.0"


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


class Messenger:
    """Signs outgoing events and verifies incoming commands for one device.

    cfg holds "site", "device" and "key" (hex). Every refused command is logged with its reason and
    counted in `dropped`; it never raises into the application."""

    def __init__(self, cfg, epoch, clock, link, log=print):
        self.site = cfg["site"]
        self.device = cfg["device"]
        self._key = rbproto.key_from_hex(cfg["key"])
        self.epoch = epoch
        self.seq = 0
        self.clock = clock
        self.link = link
        self.log = log
        self.window = rbproto.ReplayWindow()  # commands come from the gateway alone
        self.dropped = 0

    def _key_for(self, device):
        return self._key if device == self.device else None

    def send(self, mtype, fields):
        """Sign and publish an event; returns (seq, handed_to_link)."""
        self.seq += 1
        body = {"ep": self.epoch, "seq": self.seq, "ts": self.clock.epoch_s()}
        body.update(fields)
        t, payload = rbproto.encode(self._key, self.site, self.device, mtype, body)
        return self.seq, self.link.publish(t, payload)

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
