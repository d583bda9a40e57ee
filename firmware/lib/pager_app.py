# The wrist pager: alerts become vibration and text; its button acknowledges the most urgent one.
from gesture import LONG, SHORT, Gesture
from pattern import PatternPlayer

# Vibration by escalation level: the higher the level, the longer and more insistent.
BUZZ = (
    ((True, 300), (False, 150), (True, 300)),
    ((True, 500), (False, 150), (True, 500), (False, 150), (True, 500)),
    ((True, 800), (False, 100), (True, 800), (False, 100), (True, 800), (False, 100), (True, 800)),
)
MAX_LINES = 4  # a 128x64 OLED with an 8x8 font and a status line


class Alert:
    def __init__(self, inc, table, kind, level, t_ms):
        self.inc = inc
        self.table = table
        self.kind = kind
        self.level = level
        self.t_ms = t_ms
        self.acked = False


class PagerApp:
    """Shows open alerts, most urgent first (unacknowledged, higher level, older); a short press
    acknowledges the top unacknowledged alert, a long press declines it."""

    def __init__(self, messenger, clock, pressed, motor, display, battery, log=print):
        self.msgr = messenger
        self.clock = clock
        self.pressed = pressed
        self.display = display
        self.battery = battery
        self.log = log
        self.gesture = Gesture(clock, double_ms=0)
        self.buzzer = PatternPlayer(clock, motor, False)
        self.alerts = []
        self._shown = None
        self._rendered_s = -1

    def start(self):
        self.msgr.link.start(self.on_message)
        self.render()

    def _find(self, inc):
        for a in self.alerts:
            if a.inc == inc:
                return a
        return None

    def on_message(self, t, payload):
        msg = self.msgr.receive(t, payload)
        if msg is None:
            return
        b = msg.body
        if msg.mtype == "alert":
            a = self._find(b["inc"])
            if a is None:
                a = Alert(b["inc"], b["table"], b["kind"], b["lvl"], self.clock.ms())
                self.alerts.append(a)
            elif b["lvl"] <= a.level:
                return  # a re-delivered alert: commands are idempotent
            a.level = b["lvl"]
            self.buzzer.play(BUZZ[min(a.level, len(BUZZ) - 1)])
            self.log("ALERT inc=%d shown %s %s lvl=%d" % (a.inc, a.table, a.kind, a.level))
            self.render()
        elif msg.mtype == "alert_cancel":
            a = self._find(b["inc"])
            if a is not None:
                self.alerts.remove(a)
                self.log("ALERT inc=%d cleared %s" % (a.inc, b["why"]))
                self.render()

    def ordered(self):
        now = self.clock.ms()
        # MicroPython's sort is not stable: arrival order (the index in self.alerts) breaks ties,
        # so the device shows alerts of equal urgency in the same order as CPython does.
        alerts = self.alerts
        return sorted(alerts, key=lambda a: (a.acked, -a.level, -self.clock.diff(now, a.t_ms),
                                             alerts.index(a)))

    def line(self, a, now):
        age = self.clock.diff(now, a.t_ms) // 1000
        mark = "*" if a.acked else ""
        return "%s%s %s %d:%02d" % (mark, a.table, a.kind, age // 60, age % 60)

    def render(self):
        now = self.clock.ms()
        self._rendered_s = now // 1000
        head = "ON" if self.msgr.link.is_up() else "NO LINK"
        lines = [head]
        for a in self.ordered()[:MAX_LINES]:
            lines.append(self.line(a, now))
        if not self.alerts:
            lines.append("no alerts")
        if lines != self._shown:
            self._shown = lines
            self.display.show(lines)

    def _respond(self, mtype):
        for a in self.ordered():
            if not a.acked:
                seq, ok = self.msgr.send(mtype, {"inc": a.inc})
                self.log("%s inc=%d seq=%d %s" % (mtype.upper(), a.inc, seq, "sent" if ok else "unsent"))
                if ok:
                    self.buzzer.stop()
                    if mtype == "ack":
                        a.acked = True
                    else:
                        self.alerts.remove(a)
                    self.render()
                return

    def tick(self):
        now = self.clock.ms()
        g = self.gesture.update(now, self.pressed())
        if g == SHORT:
            self._respond("ack")
        elif g == LONG:
            self._respond("decline")
        self.msgr.link.poll()
        self.buzzer.tick()
        if now // 1000 != self._rendered_s:
            self.render()  # ages move once a second
