# The venue's settings for this device: sent down by the gateway (`config` command), kept in flash.
#
# Flash keeps them across deep sleep and power loss, so a button that wakes for one press already
# knows its gesture map, and a pager its recovery actions, before the gateway has said a word.
import json

# What a device does before it has ever heard from the gateway (cv 0: "no venue config yet").
DEFAULTS = {
    "cv": 0,
    "gest": "short=complaint,long=cancel,double=happy",
    "acts": "apology,fixed,replaced,discount,free_item",
    "hb": 300,
    "rebuzz": 30,
}
_MIN_HB_S = 10  # a heartbeat interval below this would flatten a button's battery
_MIN_REBUZZ_S = 5


def _int(value):
    return value if isinstance(value, int) else 0


def _items(text):
    return [s for s in text.split(",") if s]


class Settings:
    def __init__(self, path="venue.json", log=print):
        self.path = path
        self.log = log
        self.values = dict(DEFAULTS)
        try:
            with open(path) as f:
                stored = json.load(f)
            for k in DEFAULTS:
                if k in stored and type(stored[k]) is type(DEFAULTS[k]):
                    self.values[k] = stored[k]
        except (OSError, ValueError):
            pass  # first boot, or a file cut short by a power loss: the defaults hold

    @property
    def version(self):
        return self.values["cv"]

    @property
    def heartbeat_ms(self):
        return max(_MIN_HB_S, _int(self.values["hb"])) * 1000

    @property
    def rebuzz_ms(self):
        return max(_MIN_REBUZZ_S, _int(self.values["rebuzz"])) * 1000

    def gestures(self):
        """{"short": "complaint", "long": "cancel", "double": "happy"}: gesture -> action."""
        out = {}
        for item in _items(self.values["gest"]):
            gesture, _, action = item.partition("=")
            if gesture and action:
                out[gesture] = action
        return out

    def actions(self):
        """The recovery actions a pager offers when its wearer resolves an incident."""
        return _items(self.values["acts"])

    def apply(self, body):
        """Take a `config` command's body; True when something changed (and was written to flash)."""
        new = {}
        for k in DEFAULTS:
            new[k] = body[k]
        if new == self.values:
            return False
        self.values = new
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump(new, f)
        import os

        os.rename(tmp, self.path)  # a power cut leaves either the old file or the new one
        self.log("CONFIG cv=%d applied" % new["cv"])
        return True
