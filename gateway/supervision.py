"""Device supervision: which devices are in trouble, from what the registry has heard of them.

A button that has gone silent is a table that cannot call anyone, so it is a trouble of its own
kind, paged as urgent; a silent pager is a person who cannot be reached; a low cell is a warning
before either happens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import rbproto

from .venue import BUTTON, Venue

DEAD_BUTTON = "dead_button"
SILENT_PAGER = "silent_pager"
LOW_BATTERY = "low_battery"
URGENT = (DEAD_BUTTON,)
GRACE_S = 30.0  # on top of the heartbeat window: a heartbeat delayed by a reconnect is not trouble


@dataclass
class Heard:
    """What the gateway knows of one device."""

    last_seen: float | None = None
    state: str | None = None  # online / offline from the retained status (last-will)
    battery_mv: int | None = None
    fw: str | None = None  # the firmware version it last reported: what it can read (gateway/firmware.py)


class Online:
    """The devices whose status says online, asked one at a time: routing asks about a few pagers
    per page, where a set of every device would be rebuilt for each."""

    def __init__(self, heard: Mapping[str, Heard]) -> None:
        self.heard = heard

    def __contains__(self, device: object) -> bool:
        h = self.heard.get(device) if isinstance(device, str) else None
        return h is not None and h.state == rbproto.ONLINE


def window_s(venue: Venue, device: str) -> float:
    """How long a device may be silent: its heartbeat interval times the venue's factor, plus grace."""
    s = venue.device_settings
    hb = s.button_heartbeat_s if venue.devices[device].role == BUTTON else s.pager_heartbeat_s
    return hb * venue.rules.silent_after + GRACE_S


def trouble(venue: Venue, device: str, heard: Heard | None, now: float, since: float) -> str | None:
    """The device's trouble now, or None. `since` is when supervision started: a device never heard
    counts as silent from then on, not from the epoch."""
    h = heard or Heard()
    silent = now - (h.last_seen if h.last_seen is not None else since) > window_s(venue, device)
    offline = h.state == rbproto.OFFLINE
    if silent or offline:
        return DEAD_BUTTON if venue.devices[device].role == BUTTON else SILENT_PAGER
    if h.battery_mv is not None and h.battery_mv < venue.rules.low_battery_mv:
        return LOW_BATTERY
    return None


def troubles(venue: Venue, heard: Mapping[str, Heard], now: float, since: float) -> dict[str, str]:
    """Every device of the venue in trouble: device id -> trouble."""
    out = {}
    for device in venue.devices:
        t = trouble(venue, device, heard.get(device), now, since)
        if t is not None:
            out[device] = t
    return out
