# The wrist pager: alerts become vibration and a screen; keys A and B answer them.
from device import Heartbeat
from gesture import LONG, SHORT, Gesture
from pager_screen import Screen, battery_bars, block_rows, list_row, spread
from pattern import PatternPlayer

LIST = "list"  # the open alerts, the selected one on top
PICK = "pick"  # the resolve pick-list of recovery actions for one acknowledged alert

A_LONG_MS = 1500  # hold A: decline ("can't take it")
B_LONG_MS = 2000  # hold B: on / off duty; longer, so a sleeve brushing the key does not end a shift
SELECT_HOLD_MS = 15000  # a selection moved with B holds this long after the last key
REACTION_MS = 600  # a key pressed this soon after an alert took the selection acts on the one shown before
PICK_IDLE_MS = 20000  # the pick-list closes by itself after this long without a key
NOTICE_MS = 3000  # a one-line notice ("ACK SENT T12", "NOT SENT-NO LINK") stays this long
BATTERY_EVERY_MS = 10000
MAX_ALERTS = 12  # past this the oldest acknowledged alert leaves the pager; a waiting one never does
MAX_AGE_S = 360000  # 100 h: the screen shows "99h+" beyond, and ticks_add takes at most 2**29 ms

# Vibration. The motor is on or off, so "soft" is short: the kind sets the base, each escalation
# level and each re-buzz adds a pulse and lengthens them, up to MAX_PULSES of MAX_PULSE_MS.
SOFT_KINDS = ("happy", "thanks", "compliment", "feedback")
FIRM_KINDS = ("complaint", "urgent", "allergy", "emergency")
MAX_PULSES = 5
MAX_PULSE_MS = 600
SENT_TICK = ((True, 40),)  # a key's event went out
NOT_SENT_TICK = ((True, 40), (False, 80), (True, 40), (False, 80), (True, 40))

_NOT_SENT = "NOT SENT-NO LINK"


def buzz_pattern(kind, level, repeat=0):
    """(on, ms) steps for an alert of `kind` at escalation `level`, on its `repeat`-th re-buzz."""
    if kind in SOFT_KINDS:
        on, gap, n = 120, 250, 1
    elif kind in FIRM_KINDS:
        on, gap, n = 350, 150, 2
    else:
        on, gap, n = 250, 200, 2
    on = min(on + 100 * level + 50 * repeat, MAX_PULSE_MS)
    n = min(n + level + repeat, MAX_PULSES)
    steps = [(True, on)]
    for _ in range(n - 1):
        steps.append((False, gap))
        steps.append((True, on))
    return tuple(steps)


def _about(word, table):
    """A notice about a table: the word and the table when both fit, else the word alone."""
    text = word + " " + table
    return text if len(text) <= 16 else word


class Alert:
    def __init__(self, inc, table, kind, level, t0):
        self.inc = inc
        self.table = table
        self.kind = kind
        self.level = level
        self.t0 = t0  # clock ms when the customer pressed (from the alert's age)
        self.acked = False
        self.acked_at = 0  # clock ms when the ack went out
        self.unsent = None  # "ack", "decline" or "resolve" chosen while the link was down
        self.action = None  # the recovery action of an unsent resolve
        self.buzzes = 0  # re-buzzes so far

    def rank(self):
        """0 waiting for an answer, 1 answered but not sent yet, 2 acknowledged."""
        if self.unsent is not None:
            return 1
        return 2 if self.acked else 0


class PagerApp:
    """Alerts ordered by urgency: waiting before unsent before acknowledged, then higher level,
    then older. The selected alert (the most urgent, or the one the wearer moved to with B) is
    drawn large on top; key A answers it, key B moves on.

    Keys:  A short  acknowledge; on an acknowledged alert: open the resolve pick-list
           A long   decline (the gateway pages the next person at once)
           B short  select the next alert
           B long   on duty / off duty
    In the pick-list: B short next action, A short resolve with it, A or B long back out.

    An answer given while the link is down is kept on the alert, shown as NOT SENT and sent at
    link-up (the wearer may also press again); the duty state goes out at every link-up too.
    Off duty, an alert that still arrives is declined at once, so the gateway pages someone on
    duty without waiting for a timeout. `on_duty` is None until the wearer first sets it (the venue
    file's roster decides until then); once set it is kept in flash at `duty_path`.

    A key acts on what the wearer saw when it went down: if an incoming alert took the top of the
    screen less than REACTION_MS before, on the alert shown before it; and A short on an alert
    acknowledged less than REACTION_MS before is a double press, not a request to resolve.

    Vibration: an alert buzzes by kind and level (buzz_pattern); the most urgent waiting alert
    buzzes again every settings.rebuzz_ms, one pulse more and longer each time, capped; a key
    silences it and restarts the wait. The screen is drawn only when something on it changed (an
    age moves once a second).

    Log markers: ALERT inc=N shown ..., ACK|DECLINE inc=N seq=S sent, RESOLVE inc=N action=X seq=S
    sent, ... NOT SENT, DUTY on|off seq=S ..., REBUZZ inc=N n=K."""

    def __init__(self, messenger, clock, pressed_a, pressed_b, motor, oled, battery, settings,
                 log=print, duty_path=None):
        self.msgr = messenger
        self.clock = clock
        self.pressed_a = pressed_a
        self.pressed_b = pressed_b
        self.battery = battery
        self.settings = settings
        self.log = log
        self.duty_path = duty_path
        self.key_a = Gesture(clock, long_ms=A_LONG_MS, double_ms=0)
        self.key_b = Gesture(clock, long_ms=B_LONG_MS, double_ms=0)
        self.buzzer = PatternPlayer(clock, motor, False)
        self.screen = Screen(oled, getattr(oled, "width", 128))
        self.heartbeat = Heartbeat(messenger, settings, battery)
        self.alerts = []
        self.mode = LIST
        self.on_duty = self._load_duty()
        self.actions = settings.actions()
        self.pick_i = 0
        self._pick_inc = None
        self._handlers = {"alert": self._on_alert, "alert_cancel": self._on_cancel, "config": self._on_config}
        now = clock.ms()
        self._last_key = now
        self._pinned = None  # the alert the wearer selected with B; None: the most urgent one
        self._selected = None  # the alert on top of the screen
        self._before = None  # the one on top before an incoming alert took its place ...
        self._took_at = None  # ... and when
        self._target_a = None  # what each key acts on: what was selected when it went down
        self._target_b = None
        self._a_down = now  # when key A last went down
        self._buzz_at = now
        self._notice = None
        self._notice_at = now
        self._up = False
        self._bars = battery_bars(battery())
        self._bat_at = now
        self._second = -1
        self._dirty = True

    # ---- flash ---------------------------------------------------------------------------------

    def _load_duty(self):
        if self.duty_path is None:
            return None
        try:
            with open(self.duty_path) as f:
                text = f.read().strip()
        except OSError:
            return None
        return True if text == "1" else (False if text == "0" else None)

    def _save_duty(self):
        if self.duty_path is None:
            return
        try:
            with open(self.duty_path, "w") as f:
                f.write("1" if self.on_duty else "0")
        except OSError as e:
            self.log("DUTY not stored: %s" % e)

    # ---- alerts --------------------------------------------------------------------------------

    def start(self):
        self.msgr.link.start(self.on_message)
        self.render()

    def sleep_ms(self):
        """The pager never deep-sleeps: an alert must reach it at any moment."""
        return None

    def _find(self, inc):
        for a in self.alerts:
            if a.inc == inc:
                return a
        return None

    def _key(self, a, i, now):
        # MicroPython's sort is not stable: the index in self.alerts (arrival order) breaks ties, so
        # the device orders alerts of equal urgency as CPython does.
        return (a.rank(), -a.level, -self.clock.diff(now, a.t0), i)

    def ordered(self):
        """The alerts, most urgent first."""
        now = self.clock.ms()
        keys = [self._key(a, i, now) for i, a in enumerate(self.alerts)]
        keys.sort()
        return [self.alerts[k[3]] for k in keys]

    def _most_urgent_waiting(self, now):
        best = None
        best_key = None
        for i, a in enumerate(self.alerts):
            if a.rank() == 0:
                k = self._key(a, i, now)
                if best_key is None or k < best_key:
                    best, best_key = a, k
        return best

    def selected(self):
        """The alert on top of the screen, or None."""
        return self._find(self._selected)

    def age_s(self, a):
        return self.clock.diff(self.clock.ms(), a.t0) // 1000

    def on_message(self, t, payload):
        msg = self.msgr.receive(t, payload)
        if msg is None:
            return
        handler = self._handlers.get(msg.mtype)
        if handler is not None:
            handler(msg.body)

    def _on_alert(self, b):
        now = self.clock.ms()
        a = self._find(b["inc"])
        if a is None:
            # the age moves on the pager's own second, so one render a second shows every age right
            age = min(b["age"], MAX_AGE_S)
            t0 = self.clock.add(now, -(now % 1000) - 1000 * age)
            a = Alert(b["inc"], b["table"], b["kind"], b["lvl"], t0)
            self.alerts.append(a)
            self._trim()
        elif b["lvl"] <= a.level:
            return  # re-delivered: commands are idempotent
        a.level = b["lvl"]
        off = self.on_duty is False
        self.log("ALERT inc=%d shown %s %s lvl=%d age=%d%s" % (a.inc, a.table, a.kind, a.level, b["age"],
                                                              " off duty" if off else ""))
        if off:
            self._respond(a, "decline", " (off duty)", True)
            self._changed(False)
            return
        self.buzzer.play(buzz_pattern(a.kind, a.level))
        self._buzz_at = now
        self._pinned = None  # a new or escalated alert: the most urgent one is on top again
        if self.mode == PICK:
            self._close_pick()
        self._changed(False)

    def _trim(self):
        if len(self.alerts) <= MAX_ALERTS:
            return
        oldest = None
        for a in self.alerts:
            if a.rank() == 2 and (oldest is None or self.clock.diff(oldest.t0, a.t0) > 0):
                oldest = a
        if oldest is not None:
            self.alerts.remove(oldest)
            self.log("ALERT inc=%d dropped: more than %d open" % (oldest.inc, MAX_ALERTS))

    def _on_cancel(self, b):
        a = self._find(b["inc"])
        if a is None:
            return
        self._remove(a)
        self.log("ALERT inc=%d cleared %s" % (a.inc, b["why"]))
        self._note((a.table + " " + b["why"])[:16] if len(a.table) < 12 else "CLEARED")
        self._changed(False)

    def _remove(self, a):
        self.alerts.remove(a)
        if self._pick_inc == a.inc:
            self._close_pick()
        if self._pinned == a.inc:
            self._pinned = None
        if self._most_urgent_waiting(self.clock.ms()) is None:
            self.buzzer.stop()

    def _on_config(self, b):
        try:
            changed = self.settings.apply(b)
        except OSError as e:
            self.log("CONFIG cv=%d not stored: %s" % (b["cv"], e))
            return
        if changed:
            self.actions = self.settings.actions()
            if self.pick_i >= len(self.actions):
                self.pick_i = 0
            self._note("SETTINGS UPDATED")

    # ---- answers -------------------------------------------------------------------------------

    def _respond(self, a, mtype, why="", quiet=False):
        """Send ack, decline or resolve for `a`; when the link is down keep it on the alert."""
        fields = {"inc": a.inc}
        what = "%s inc=%d" % (mtype.upper(), a.inc)
        action = a.action if mtype == "resolve" else None
        if action is not None:
            fields["action"] = action
            what = what + " action=" + action
        seq, ok = self.msgr.send(mtype, fields)
        if not ok:
            a.unsent = mtype
            self.log("%s seq=%d NOT SENT: link down, sent at link-up%s" % (what, seq, why))
            self._note(_NOT_SENT)
            if not quiet:
                self.buzzer.play(NOT_SENT_TICK)
            self._pin(a)
            return False
        self.log("%s seq=%d sent%s" % (what, seq, why))
        a.unsent = None
        if mtype == "ack":
            a.acked = True
            a.acked_at = self.clock.ms()
            self._note(_about("ACK SENT", a.table))
        else:
            self._remove(a)
            self._note(_about("PASSED ON" if mtype == "decline" else "RESOLVED", a.table))
        if not quiet:
            self.buzzer.play(SENT_TICK)
        return True

    def _link_up(self):
        """Tell the gateway the duty state, then send what was answered while the link was down."""
        self._send_duty("link up")
        for a in self.ordered():
            if a.unsent is not None:
                self._respond(a, a.unsent, " (queued)", True)
        self._changed(False)

    def _send_duty(self, why):
        if self.on_duty is None:
            return  # never set on this pager: the venue file's roster stands
        seq, ok = self.msgr.send("duty", {"on": 1 if self.on_duty else 0})
        self.log("DUTY %s seq=%d %s (%s)" % ("on" if self.on_duty else "off", seq,
                                             "sent" if ok else "NOT SENT: link down, sent at link-up", why))

    def _toggle_duty(self):
        self.on_duty = self.on_duty is False  # unset counts as on duty: the first hold goes off
        self._save_duty()
        self._send_duty("key")
        self._note("ON DUTY" if self.on_duty else "OFF DUTY")
        if not self.on_duty:
            self.buzzer.stop()
            for a in self.ordered():
                if not a.acked and a.unsent != "ack":
                    self._respond(a, "decline", " (off duty)", True)
        self._changed(True)

    # ---- selection and keys --------------------------------------------------------------------

    def _current(self):
        """The alert on top: the pinned one while the wearer's choice holds, else the most urgent."""
        if self._pinned is not None:
            if self._find(self._pinned) is not None:
                return self._pinned
            self._pinned = None
        order = self.ordered()
        return order[0].inc if order else None

    def _changed(self, by_key):
        """Something on screen changed; note when an incoming message moved the selection, so a key
        already on its way acts on what the wearer saw."""
        self._dirty = True
        sel = self._current()
        if sel != self._selected:
            if by_key:
                self._took_at = None
            else:
                self._before, self._took_at = self._selected, self.clock.ms()
            self._selected = sel

    def _pin(self, a):
        self._pinned = a.inc
        self._last_key = self.clock.ms()
        self._changed(True)

    def _note(self, text):
        self._notice = text
        self._notice_at = self.clock.ms()
        self._dirty = True

    def _target(self, now):
        if (self._took_at is not None and self.clock.diff(now, self._took_at) < REACTION_MS
                and self._find(self._before) is not None):
            return self._before
        return self._selected

    def _key_down(self, now):
        self._last_key = now
        self._buzz_at = now  # the wearer is looking: the re-buzz waits a full interval again
        self.buzzer.stop()
        return self._target(now)

    def _keys(self, now):
        a_was, b_was = self.key_a.level, self.key_b.level
        ga = self.key_a.update(now, self.pressed_a())
        gb = self.key_b.update(now, self.pressed_b())
        if self.key_a.level and not a_was:
            self._target_a = self._key_down(now)
            self._a_down = now
        if self.key_b.level and not b_was:
            self._target_b = self._key_down(now)
        if ga is not None:
            self._on_key_a(ga)
        if gb is not None:
            self._on_key_b(gb)

    def _on_key_a(self, g):
        if self.mode == PICK:
            if g == SHORT:
                self._resolve()
            else:
                self._close_pick()
            return
        a = self._find(self._target_a)
        if a is None:
            return
        if g == LONG:
            if a.acked:
                self.log("KEY A long: inc=%d is acknowledged; resolve it instead" % a.inc)
                return
            self._respond(a, "decline")
        elif a.acked:
            if self.clock.diff(self._a_down, a.acked_at) < REACTION_MS:
                return  # pressed before "ON IT" could be seen: a retry or a double press, not "resolve"
            self._open_pick(a)
        else:
            self._respond(a, "ack")
        self._changed(True)

    def _on_key_b(self, g):
        if self.mode == PICK:
            if g == SHORT:
                self.pick_i = (self.pick_i + 1) % len(self.choices())
                self._dirty = True
            else:
                self._close_pick()
            return
        if g == LONG:
            self._toggle_duty()
            return
        order = self.ordered()
        if not order:
            return
        i = 0
        for n in range(len(order)):
            if order[n].inc == self._target_b:
                i = n + 1
        self._pinned = order[i % len(order)].inc
        self._changed(True)

    def choices(self):
        """The recovery actions the pick-list offers."""
        return self.actions or ["resolved"]

    def _open_pick(self, a):
        self.mode = PICK
        self._pick_inc = a.inc
        choices = self.choices()
        self.pick_i = choices.index(a.action) if a.action in choices else 0
        self._dirty = True

    def _close_pick(self):
        self.mode = LIST
        self._pick_inc = None
        self._dirty = True

    def _resolve(self):
        a = self._find(self._pick_inc)
        self._close_pick()
        if a is None:
            return
        a.action = self.choices()[self.pick_i]
        self._respond(a, "resolve")
        self._changed(True)

    # ---- loop ----------------------------------------------------------------------------------

    def _rebuzz(self, now):
        """The most urgent waiting alert buzzes again every settings.rebuzz_ms, more each time."""
        if self.on_duty is False or self.buzzer.playing:
            return
        if self.clock.diff(now, self._buzz_at) < self.settings.rebuzz_ms:
            return
        a = self._most_urgent_waiting(now)
        if a is None:
            return
        a.buzzes += 1
        self._buzz_at = now
        self.buzzer.play(buzz_pattern(a.kind, a.level, a.buzzes))
        self.log("REBUZZ inc=%d n=%d" % (a.inc, a.buzzes))

    def _timers(self, now):
        clock = self.clock
        if self._notice is not None and clock.diff(now, self._notice_at) >= NOTICE_MS:
            self._notice = None
            self._dirty = True
        if self.mode == PICK and clock.diff(now, self._last_key) >= PICK_IDLE_MS:
            self._close_pick()
        if self._pinned is not None and clock.diff(now, self._last_key) >= SELECT_HOLD_MS:
            self._pinned = None
            self._changed(False)
        if clock.diff(now, self._bat_at) >= BATTERY_EVERY_MS:
            self._bat_at = now
            bars = battery_bars(self.battery())
            if bars != self._bars:
                self._bars = bars
                self._dirty = True
        if self.alerts and now // 1000 != self._second:
            self._dirty = True  # the ages move once a second

    def tick(self):
        now = self.clock.ms()
        self._keys(now)
        link = self.msgr.link
        link.poll()
        up = link.is_up()
        if up != self._up:
            self._up = up
            self._dirty = True
            if up:
                self._link_up()
        self.heartbeat.tick()
        self._rebuzz(now)
        self.buzzer.tick()
        self._timers(now)
        if self._dirty:
            self.render()

    # ---- screen --------------------------------------------------------------------------------

    def _state(self, a):
        if a.unsent is not None:
            return "NOT SENT"
        if a.acked:
            return "ON IT"
        return "ESC %d" % a.level if a.level else "NEW"

    def render(self):
        """Draw the whole frame and show it; called only when something on it changed."""
        self._dirty = False
        now = self.clock.ms()
        self._second = now // 1000
        scr = self.screen
        scr.begin()
        duty = "" if self.on_duty is None else ("ON" if self.on_duty else "OFF")
        scr.header(duty, self.msgr.link.is_up(), len(self.alerts), self._bars)
        pick = self._find(self._pick_inc) if self.mode == PICK else None
        if pick is not None:
            scr.pick(spread(pick.table, "RESOLVE"), self.choices(), self.pick_i, self._notice)
        elif not self.alerts:
            scr.idle(self.on_duty is False, self._notice)
        else:
            order = self.ordered()
            sel = self._find(self._selected) or order[0]
            block = block_rows(sel.table, sel.kind, self._state(sel), self.age_s(sel))
            rows = []
            for a in order:
                if a is not sel:
                    mark = "!" if a.unsent is not None else ("*" if a.acked else "")
                    rows.append(list_row(mark, a.table, a.kind, self.age_s(a)))
            scr.alerts(block, rows, self._notice)
        scr.end()


def make_app(boot):
    """The pager on its board (runner.run calls this at boot)."""
    from board import PagerBoard

    hw = PagerBoard(boot.pins)
    boot.hw = hw
    return PagerApp(boot.msgr, boot.clock, hw.pressed, hw.pressed_b, hw.motor, hw.oled, hw.battery, boot.settings,
                    boot.log, boot.path("duty"))
