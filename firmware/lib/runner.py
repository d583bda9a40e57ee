# Boot sequence and main loop shared by every role's main.py.
import gc
import json

import device
from clock import SystemClock
from mqtt_link import MqttLink, join_wifi

LOOP_MS = 10


def run(role, make_app, config_path="config.json"):
    """Load the config, raise the boot epoch, join WiFi, connect and loop forever.
    make_app(messenger, clock, cfg) builds the role's app from its board."""
    with open(config_path) as f:
        cfg = json.load(f)
    clock = SystemClock()
    epoch = device.next_epoch(now_s=clock.epoch_s())
    print("BOOT %s %s ep=%d fw=%s" % (role, cfg["device"], epoch, device.FIRMWARE))
    if not join_wifi(cfg, clock):
        print("WIFI failed; the link retries")
    msgr = device.Messenger(cfg, epoch, clock, None)
    msgr.link = MqttLink(cfg, clock, msgr.status)
    app = make_app(msgr, clock, cfg)
    gc.collect()
    app.start()
    print("READY %s free=%d" % (role, gc.mem_free()))
    while True:
        app.tick()
        clock.sleep_ms(LOOP_MS)
