# The tabletop button: gestures become signed events; the gateway's feedback becomes LED patterns.
from gesture import DOUBLE, LONG, SHORT, Gesture
from pattern import PatternPlayer

import rbproto

OFF = (0, 0, 0)
_BLUE = (0, 0, 255)
_GREEN = (0, 255, 0)
_RED = (255, 0, 0)
_WHITE = (255, 255, 255)

IDLE = "idle"

# One LED pattern per state the customer can see: (steps, loop). docs/protocol.md has the table.
PATTERNS = {
    rbproto.SENDING: (((_BLUE, 100), (OFF, 100)), True),  # fast blue blink: sending
    rbproto.DELIVERED: (((_BLUE, 1000),), True),  # steady blue: heard
    rbproto.ACKNOWLEDGED: (((_GREEN, 900), (OFF, 300)), True),  # slow green pulse: someone is coming
    rbproto.RESOLVED: (((_GREEN, 3000),), False),  # green for 3 s, then dark
    rbproto.CANCELLED: (((_WHITE, 200), (OFF, 200), (_WHITE, 200)), False),
    rbproto.ERROR: (((_RED, 250), (OFF, 250)), True),  # red blink: nobody could be reached
}

# Gesture -> action; the venue may send another mapping. "cancel" sends a cancel, anything else is
# the kind of a press.
GESTURES = {SHORT: "complaint", LONG: "cancel", DOUBLE: "happy"}

DELIVER_TIMEOUT_MS = 5000  # no "delivered" by then: show the error pattern, never press into the void
ACK_SHOW_MS = 20 * 60 * 1000  # "someone is coming" stops after this long without news


class ButtonApp:
    """State: IDLE -> SENDING -> DELIVERED -> ACKNOWLEDGED -> RESOLVED -> IDLE, with CANCELLED and
    ERROR as side exits. Every transition is logged as `STATE old->new cause`."""

    def __init__(self, messenger, clock, pressed, led, battery, log=print, gestures=None):
        self.msgr = messenger
        self.clock = clock
        self.pressed = pressed
        self.battery = battery
        self.log = log
        self.gestures = gestures or GESTURES
        self.gesture = Gesture(clock)
        self.light = PatternPlayer(clock, led, OFF)
        self.state = IDLE
        self.incident = 0
        self._since = clock.ms()

    def start(self):
        self.msgr.link.start(self.on_message)

    def _goto(self, state, cause):
        self.log("STATE %s->%s %s" % (self.state, state, cause))
        self.state = state
        self._since = self.clock.ms()
        if state == IDLE:
            self.light.stop()
        else:
            steps, loop = PATTERNS[state]
            self.light.play(steps, loop)

    def on_gesture(self, gesture):
        action = self.gestures.get(gesture)
        if action is None:
            return
        bat = self.battery()
        if action == "cancel":
            seq, ok = self.msgr.send("cancel", {"bat": bat})
            self.log("CANCEL seq=%d %s" % (seq, "sent" if ok else "unsent"))
            return
        seq, ok = self.msgr.send("press", {"kind": action, "bat": bat})
        self.log("PRESS seq=%d kind=%s %s" % (seq, action, "sent" if ok else "unsent"))
        self._goto(rbproto.SENDING if ok else rbproto.ERROR, "press" if ok else "link down")

    def on_message(self, t, payload):
        msg = self.msgr.receive(t, payload)
        if msg is None or msg.mtype != "feedback":
            return
        state = msg.body["state"]
        if state not in PATTERNS:
            self.log("DROP reason=bad_state %s" % state)
            return
        self.incident = msg.body["inc"]
        self.log("FEEDBACK %s inc=%d" % (state, self.incident))
        self._goto(state, "gateway")

    def tick(self):
        """One pass of the device loop: read the button, handle commands, advance the light."""
        now = self.clock.ms()
        g = self.gesture.update(now, self.pressed())
        if g is not None:
            self.on_gesture(g)
        self.msgr.link.poll()
        waited = self.clock.diff(now, self._since)
        if self.state == rbproto.SENDING and waited >= DELIVER_TIMEOUT_MS:
            self._goto(rbproto.ERROR, "no delivery confirmation")
        elif self.state == rbproto.ACKNOWLEDGED and waited >= ACK_SHOW_MS:
            self._goto(IDLE, "acknowledged long ago")
        self.light.tick()
        if self.state in (rbproto.RESOLVED, rbproto.CANCELLED) and not self.light.playing:
            self._goto(IDLE, "shown")
