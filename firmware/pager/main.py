# Wrist pager role: copied to the device as /main.py.
import runner
from board import PagerBoard
from pager_app import PagerApp


def make_app(msgr, clock, cfg):
    hw = PagerBoard()
    return PagerApp(msgr, clock, hw.pressed, hw.motor, hw.display, hw.battery)


runner.run("pager", make_app)
