# The tabletop button: gestures become signed events; the gateway's feedback becomes LED patterns.
from gesture import DOUBLE, LONG, SHORT, Gesture
from outbox import Outbox
from pattern import PatternPlayer

import rbproto

OFF = (0, 0, 0)
_BLUE = (0, 0, 255)
_GREEN = (0, 255, 0)
_RED = (255, 0, 0)
_WHITE = (255, 255, 255)
_AMBER = (255, 120, 0)

IDLE = "idle"
LOW_BATTERY = "low_battery"

# One LED pattern per state the customer can see: (steps, loop). docs/firmware.md has the table.
PATTERNS = {
    rbproto.SENDING: (((_BLUE, 100), (OFF, 100)), True),  # fast blue blink: sending
    rbproto.DELIVERED: (((_BLUE, 1000),), True),  # steady blue: heard
    rbproto.ACKNOWLEDGED: (((_GREEN, 900), (OFF, 300)), True),  # slow green pulse: someone is coming
    rbproto.RESOLVED: (((_GREEN, 3000),), False),  # green for 3 s, then dark
    rbproto.CANCELLED: (((_WHITE, 200), (OFF, 200), (_WHITE, 200)), False),
    rbproto.ERROR: (((_RED, 250), (OFF, 250)), True),  # red blink: nobody could be reached
    LOW_BATTERY: (((_AMBER, 150), (OFF, 150), (_AMBER, 150), (OFF, 150), (_AMBER, 150)), False),
}

# Gesture -> action until the venue sends its own map; "cancel" sends a cancel, anything else is
# the kind of a press.
GESTURES = {SHORT: "complaint", LONG: "cancel", DOUBLE: "happy"}

DELIVER_TIMEOUT_MS = 5000  # no "delivered" by then: show the error pattern, never press into the void
RESENDS = 3  # an unanswered press goes again 5, 15 and 35 s after it went out; at 75 s it is given up
ACK_SHOW_MS = 20 * 60 * 1000  # "someone is coming" stops after this long without news
ERROR_SHOW_MS = 60 * 1000  # red for a minute after the gateway said nobody could be reached
AWAKE_MS = 8000  # stay awake this long after the last thing happened (a second press, a cancel);
# the device config's "awake_ms" may change it
LINGER_MS = 500  # after a heartbeat, for the gateway's answer
CONNECT_WAIT_MS = 5000  # after a wake, how long to wait for the link before sleeping again
LINK_RETRY_MS = 60 * 1000  # asleep with the link down: wake this often to try again
LOW_BATTERY_MV = 3450  # about 10 % left in a LiPo cell under load
# States the button stays awake in: the LED must keep telling the customer something.
_BUSY = (rbproto.SENDING, rbproto.DELIVERED, rbproto.ACKNOWLEDGED, rbproto.RESOLVED, rbproto.CANCELLED,
         rbproto.ERROR, LOW_BATTERY)


class ButtonApp:
    """State: IDLE -> SENDING -> DELIVERED -> ACKNOWLEDGED -> RESOLVED -> IDLE, with CANCELLED and
    ERROR as side exits and LOW_BATTERY shown on the way back to IDLE. Every transition is logged
    as `STATE old->new cause`.

    Every event goes through the outbox, so one sent while the link is down waits there with its
    original time and number. The gateway's answer to a press echoes the press's (ep, seq) in
    `pep`/`pseq`, and only that echo confirms it: a late answer to an earlier press, or news of the
    incident (acknowledged, resolved), changes the light and nothing else. A press still unconfirmed
    after DELIVER_TIMEOUT_MS shows ERROR (if nothing else has been heard) and is sent again with the
    same number (the gateway answers a repeat without recording it twice), up to RESENDS times.
    A feedback without `pep` comes from a gateway that does not echo: any one confirms the press."""

    def __init__(self, messenger, clock, pressed, led, battery, settings, heartbeat, outbox=None,
                 log=print, woke_by_button=False, awake_ms=AWAKE_MS):
        self.msgr = messenger
        self.clock = clock
        self.pressed = pressed
        self.battery = battery
        self.settings = settings
        self.heartbeat = heartbeat
        self.outbox = outbox if outbox is not None else Outbox(clock, log=log)
        self.log = log
        self.awake_ms = awake_ms
        self.gestures = settings.gestures()
        self.gesture = Gesture(clock)
        if woke_by_button:
            self.gesture.woken(pressed())
        self.light = PatternPlayer(clock, led, OFF)
        self.state = IDLE
        self.incident = 0
        self._boot = self._since = clock.ms()
        self._active = clock.ms() if woke_by_button else None  # None: a timer wake, nothing happened
        self._unconfirmed = None  # (ep, seq, topic, payload) of the last press not yet answered
        self._resend_at = 0  # clock ms when it goes again unless its answer has come
        self._resends = 0  # how often it has gone again

    def start(self):
        self.msgr.link.start(self.on_message)

    def _goto(self, state, cause):
        self.log("STATE %s->%s %s" % (self.state, state, cause))
        self.state = state
        self._since = self._active = self.clock.ms()
        if state == IDLE:
            self.light.stop()
        else:
            steps, loop = PATTERNS[state]
            self.light.play(steps, loop)

    def _send(self, mtype, fields, detail=""):
        """Sign now; hand to the link, or to the outbox while the link is down or older events
        wait there. Returns (ep, seq, topic, payload)."""
        seq, t, payload = self.msgr.sign(mtype, fields)
        ep = self.msgr.epoch
        self.log("%s seq=%d %s" % (mtype.upper(), seq, detail) if detail else "%s seq=%d" % (mtype.upper(), seq))
        if not len(self.outbox) and self.msgr.link.publish(t, payload):
            self.log("%s seq=%d sent" % (mtype.upper(), seq))
        else:
            self.outbox.put(ep, seq, t, payload)
        return ep, seq, t, payload

    def on_gesture(self, gesture):
        self._active = self.clock.ms()
        action = self.gestures.get(gesture)
        if action is None:
            return
        bat = self.battery()
        if action == "cancel":
            self._send("cancel", {"bat": bat}, "bat=%d" % bat)
            self._unconfirmed = None
            return
        self._unconfirmed = self._send("press", {"kind": action, "bat": bat}, "kind=%s bat=%d" % (action, bat))
        self._resends = 0
        self._resend_at = self.clock.add(self.clock.ms(), DELIVER_TIMEOUT_MS)
        self._goto(rbproto.SENDING, "press")

    def on_message(self, t, payload):
        msg = self.msgr.receive(t, payload)
        if msg is None:
            return
        if msg.mtype == "config":
            if self.settings.apply(msg.body):
                self.gestures = self.settings.gestures()
            return
        if msg.mtype != "feedback":
            return
        state = msg.body["state"]
        if state not in PATTERNS:
            self.log("DROP reason=bad_state %s" % state)
            return
        self._confirm(msg.body)
        self.incident = msg.body["inc"]
        self.log("FEEDBACK %s inc=%d" % (state, self.incident))
        self._goto(state, "gateway")

    def _confirm(self, body):
        """Forget the waiting press if this feedback answers it: it echoes the press's (ep, seq), or
        it has no echo at all (a gateway that does not echo: every feedback is an answer)."""
        press = self._unconfirmed
        if press is None:
            return
        pep = body.get("pep")
        if pep is None or (pep == press[0] and body["pseq"] == press[1]):
            self._unconfirmed = None
            self.log("PRESS seq=%d answered" % press[1])

    def _await_answer(self, press, now):
        """The waiting press: while it is still in the outbox its wait has not begun; once it has
        gone and no answer came in time, the same press again (same number), the next wait twice
        as long; given up after RESENDS."""
        if self.outbox.holds(press[0], press[1]):
            self._resend_at = self.clock.add(now, DELIVER_TIMEOUT_MS << self._resends)
        elif self.clock.diff(now, self._resend_at) < 0:
            return
        elif self._resends >= RESENDS:
            self._unconfirmed = None
            self.log("PRESS seq=%d unanswered, given up" % press[1])
        else:
            self._resends += 1
            self.log("PRESS seq=%d unanswered, again" % press[1])
            self.outbox.put(press[0], press[1], press[2], press[3])
            self._resend_at = self.clock.add(now, DELIVER_TIMEOUT_MS << self._resends)

    def _back_to_idle(self, cause):
        if self.battery() < LOW_BATTERY_MV:
            self._goto(LOW_BATTERY, cause + ", battery low")
        else:
            self._goto(IDLE, cause)

    def tick(self):
        """One pass of the device loop: read the button, send what waits, handle commands,
        advance the light."""
        now = self.clock.ms()
        g = self.gesture.update(now, self.pressed())
        if g is not None:
            self.on_gesture(g)
        if self._unconfirmed is not None:
            self._await_answer(self._unconfirmed, now)  # before the flush: a press that goes now waits from now
        link = self.msgr.link
        link.poll()
        if link.is_up():
            self.outbox.flush(link)
        self.heartbeat.tick()
        waited = self.clock.diff(now, self._since)
        state = self.state
        if state == rbproto.SENDING and waited >= DELIVER_TIMEOUT_MS:
            self._goto(rbproto.ERROR, "no delivery confirmation")
        elif state == rbproto.ACKNOWLEDGED and waited >= ACK_SHOW_MS:
            self._back_to_idle("acknowledged long ago")
        elif state == rbproto.ERROR and waited >= ERROR_SHOW_MS:
            self._back_to_idle("error shown")  # a queued press goes on being retried
        self.light.tick()
        if self.state in (rbproto.RESOLVED, rbproto.CANCELLED) and not self.light.playing:
            self._back_to_idle("shown")
        elif self.state == LOW_BATTERY and not self.light.playing:
            self._goto(IDLE, "shown")

    def sleep_ms(self):
        """How long the board may deep-sleep now (until the next heartbeat or queue retry), or
        None while it must stay awake: a gesture under way, a pattern the customer is watching,
        or less than AWAKE_MS since the last thing happened, or a press that has gone and waits for
        its answer (RAM does not survive deep sleep; the outbox, in flash, does)."""
        if self.state in _BUSY or self.gesture.busy():
            return None
        press = self._unconfirmed
        if press is not None and not self.outbox.holds(press[0], press[1]):
            return None
        now = self.clock.ms()
        if self._active is not None and self.clock.diff(now, self._active) < self.awake_ms:
            return None
        if self.heartbeat.sent_ago_ms() < LINGER_MS:
            return None  # the gateway may answer a heartbeat with new settings
        wake = self.heartbeat.due_in_ms()
        if wake == 0:  # due but unsent: the link is not up (yet)
            if self.clock.diff(now, self._boot) < CONNECT_WAIT_MS:
                return None
            wake = LINK_RETRY_MS
        retry = self.outbox.retry_in_ms()
        if retry is not None:
            wake = min(wake, max(retry, 1000))
        return wake


def make_app(boot):
    """The button on its board (runner.run calls this at every boot and wake)."""
    from board import ButtonBoard
    from device import Heartbeat

    hw = ButtonBoard(boot.pins)
    boot.hw = hw
    boot.wake_pin = hw.button_pin
    outbox = Outbox(boot.clock, boot.path("outbox.txt"), boot.log)
    heartbeat = Heartbeat(boot.msgr, boot.settings, hw.battery, outbox)
    return ButtonApp(boot.msgr, boot.clock, hw.pressed, hw.led, hw.battery, boot.settings, heartbeat, outbox,
                     boot.log, boot.woke_by_button, boot.cfg.get("awake_ms", AWAKE_MS))
