# Heap per device role in MicroPython, driven step by step by tests/mpy/heap.mjs.
#
# For each role: the modules it imports and the app built as its make_app does (board parts
# replaced by the test fakes, the pager's frame buffer real), after a few loop passes and after
# answering messages. "boot" is what stays allocated after a collection; "per_message" is what
# one handled command allocates (garbage included); "retained_after_100" is what 100 handled
# commands leave behind after a collection (a leak shows here).
import gc
import sys

sys.path.insert(0, "/lib")
sys.path.insert(0, "/tests")

SITE = "heap"
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
GATEWAY_EP = 1767220000
_FIRMWARE = ("rbproto", "rbproto.frame", "rbproto.air", "clock", "device", "settings", "outbox", "gesture",
             "pattern", "button_app", "pager_app", "pager_screen", "base_app", "fakes", "fake_oled", "framebuf")


def command(rbproto, device, mtype, seq, fields):
    body = {"ep": GATEWAY_EP, "seq": seq, "ts": 1767225600}
    body.update(fields)
    return rbproto.encode(rbproto.key_from_hex(KEY_HEX), SITE, device, mtype, body)


def forget_modules():
    for name in _FIRMWARE:
        if name in sys.modules:
            del sys.modules[name]


# State kept between steps. heap.mjs calls each step in its own runPython(), starting with
# gc.collect(): inside one running call this port's collector cannot free what the call's own
# frames have dropped, between calls it frees everything unreachable.
state = {}
results = {}


def step_begin(role):
    state.clear()
    forget_modules()


def step_base(role):
    state["base"] = gc.mem_alloc()


def step_build(role):
    import rbproto

    build, device, mtype, fields = ROLES[role]
    app, link, tick = build(device)
    for _ in range(20):
        tick()
    state.update(app=app, link=link, tick=tick, rbproto=rbproto, device=device, mtype=mtype, fields=fields)


def step_booted(role):
    state["boot"] = gc.mem_alloc() - state["base"]


def step_one_message(role):
    t, payload = command(state["rbproto"], state["device"], state["mtype"], 1, state["fields"])
    before = gc.mem_alloc()
    state["link"].deliver(t, payload)
    state["per_message"] = gc.mem_alloc() - before


def step_hundred_messages(role):
    for seq in range(2, 102):
        t, payload = command(state["rbproto"], state["device"], state["mtype"], seq, state["fields"])
        state["link"].deliver(t, payload)
        state["tick"]()


def step_end(role):
    results[role] = {"boot": state["boot"], "per_message": state["per_message"],
                     "retained_after_100": gc.mem_alloc() - state["base"] - state["boot"]}
    state.clear()


STEPS = ("begin", "base", "build", "booted", "one_message", "hundred_messages", "end")


def build_button(device):
    from button_app import ButtonApp
    from clock import ManualClock
    from device import Heartbeat, Messenger
    from fakes import FakeLink, Recorder, scratch
    from outbox import Outbox
    from settings import Settings

    clock = ManualClock()
    link = FakeLink()
    cfg = {"site": SITE, "device": device, "key": KEY_HEX}
    msgr = Messenger(cfg, 1, clock, link, log=lambda line: None)
    settings = Settings(scratch("venue.json"), lambda line: None)
    outbox = Outbox(clock, scratch("outbox.txt"), lambda line: None)
    hb = Heartbeat(msgr, settings, lambda: 3900, outbox)
    app = ButtonApp(msgr, clock, lambda: False, Recorder(), lambda: 3900, settings, hb, outbox, lambda line: None)
    app.start()

    def tick():
        app.tick()
        clock.advance(10)

    return app, link, tick


def build_pager(device):
    from clock import ManualClock
    from device import Messenger
    from fake_oled import FakeOled
    from fakes import FakeLink, Recorder, scratch
    from pager_app import PagerApp
    from settings import Settings

    clock = ManualClock()
    link = FakeLink()
    cfg = {"site": SITE, "device": device, "key": KEY_HEX}
    msgr = Messenger(cfg, 1, clock, link, log=lambda line: None)
    settings = Settings(scratch("venue.json"), lambda line: None)
    oled = FakeOled(margin=0)  # the SSD1306 driver's 1 KB frame buffer
    app = PagerApp(msgr, clock, lambda: False, lambda: False, Recorder(), oled, lambda: 3900, settings,
                   lambda line: None, scratch("duty"))
    app.start()

    def tick():
        app.tick()
        clock.advance(10)

    return app, link, tick


ROLES = {
    "button": (build_button, "btn-1", "feedback", {"inc": 1, "state": "delivered"}),
    # the same alert delivered again each time (a QoS 1 repeat): shown once, answered once
    "pager": (build_pager, "pgr-1", "alert", {"inc": 1, "table": "T12", "kind": "complaint", "lvl": 0,
                                              "age": 3}),
}
ROLE_NAMES = ",".join(ROLES)
STEP_NAMES = ",".join(STEPS)
