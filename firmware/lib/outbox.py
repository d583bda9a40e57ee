# Store and forward: signed events the link could not take, kept in flash until it can.
#
# A press made while the WiFi or the base station is out is signed at once, with the time of the
# press and its own sequence number, and written here. It survives deep sleep, a reset and a power
# cut, and goes out in order, with a growing pause between attempts, once the link is back.
#
# The queue is bounded (MAX_ITEMS). When it is full the oldest item but one is dropped: the first
# item is the customer's first call (its time is how long they have waited) and the newest is what
# they want now (a repeat, or a cancel); anything between repeats a call already queued.
MAX_ITEMS = 8
BACKOFF_MS = (1000, 2000, 5000, 10000, 30000)


def _label(t):
    """PRESS for .../evt/press: the stable log marker of the event a topic carries."""
    return t[t.rfind("/") + 1:].upper()


class Outbox:
    def __init__(self, clock, path="outbox.txt", log=print, max_items=MAX_ITEMS):
        self.clock = clock
        self.path = path
        self.log = log
        self.max_items = max_items
        self.items = []  # [(ep, seq, topic, payload bytes)], oldest first
        self.dropped = 0
        self._fails = 0
        self._retry_at = None
        self._load()

    def __len__(self):
        return len(self.items)

    def _load(self):
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.rstrip("\n").split(" ", 3)
                    if len(parts) == 4:
                        self.items.append((int(parts[0]), int(parts[1]), parts[2], parts[3].encode()))
        except (OSError, ValueError):
            pass  # no queue yet; a torn last line is skipped, the lines before it kept
        if self.items:
            self.log("QUEUE restored %d" % len(self.items))

    def _save(self):
        with open(self.path, "w") as f:
            for ep, seq, t, payload in self.items:
                f.write("%d %d %s %s\n" % (ep, seq, t, payload.decode()))

    def put(self, ep, seq, t, payload):
        if len(self.items) >= self.max_items:
            lost = self.items.pop(1)
            self.dropped += 1
            self.log("QUEUE full: dropped seq=%d, kept the first and the newest" % lost[1])
        self.items.append((ep, seq, t, payload))
        self._save()
        self.log("%s seq=%d queued (%d waiting)" % (_label(t), seq, len(self.items)))

    def holds(self, ep, seq):
        """True while the event (ep, seq) waits here."""
        for item in self.items:
            if item[0] == ep and item[1] == seq:
                return True
        return False

    def holds_older(self, ep):
        """True while an event of an earlier boot epoch waits: nothing newer may overtake it."""
        for item in self.items:
            if item[0] < ep:
                return True
        return False

    def retry_in_ms(self):
        """Milliseconds until the next attempt (0: now); None when the queue is empty."""
        if not self.items:
            return None
        if self._retry_at is None:
            return 0
        return max(0, self.clock.diff(self._retry_at, self.clock.ms()))

    def flush(self, link):
        """Send what waits, oldest first, until the link refuses one; returns how many went."""
        if self.retry_in_ms() != 0:
            return 0
        sent = 0
        while self.items:
            ep, seq, t, payload = self.items[0]
            if not link.publish(t, payload):
                delay = BACKOFF_MS[min(self._fails, len(BACKOFF_MS) - 1)]
                self._fails += 1
                self._retry_at = self.clock.add(self.clock.ms(), delay)
                break
            self.items.pop(0)
            sent += 1
            self._fails = 0
            self._retry_at = None
            self.log("%s seq=%d forwarded" % (_label(t), seq))
        if sent:
            self._save()
        return sent
