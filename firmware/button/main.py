# Tabletop button role: copied to the device as /main.py.
import runner
from board import ButtonBoard
from button_app import ButtonApp


def make_app(msgr, clock, cfg):
    hw = ButtonBoard()
    return ButtonApp(msgr, clock, hw.pressed, hw.led, hw.battery, gestures=cfg.get("gestures"))


runner.run("button", make_app)
