"""Who is on duty: the venue's shift schedule, overridden by the wearer's own toggle on the pager.

A toggle holds until the schedule next changes for that person (a shift starts or ends): someone
who went off duty early is on again when their next shift starts, and someone who came in on a day
off is on duty until they toggle off or one of their shifts starts or ends."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Shift:
    days: tuple[str, ...]  # the days the shift starts on
    start_min: int  # minutes after local midnight
    end_min: int  # may be below start_min: the shift ends the next day

    @property
    def minutes(self) -> int:
        return (self.end_min - self.start_min) % 1440 or 1440


def parse_hhmm(text: str) -> int:
    """'07:30' -> 450; ValueError for anything else."""
    hh, sep, mm = text.partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit()) or len(mm) != 2:
        raise ValueError(f"{text!r} is not HH:MM")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"{text!r} is not a time of day")
    return h * 60 + m


def _spans(shifts: tuple[Shift, ...], local: datetime.datetime) -> list[tuple[datetime.datetime, datetime.datetime]]:
    """Every shift occurrence that starts yesterday or today (local time), as (start, end)."""
    out = []
    for back in (1, 0):
        day = (local - datetime.timedelta(days=back)).replace(hour=0, minute=0, second=0, microsecond=0)
        for s in shifts:
            if DAYS[day.weekday()] in s.days:
                start = day + datetime.timedelta(minutes=s.start_min)
                out.append((start, start + datetime.timedelta(minutes=s.minutes)))
    return out


def scheduled(shifts: tuple[Shift, ...], now: float, tz: ZoneInfo) -> bool:
    local = datetime.datetime.fromtimestamp(now, tz)
    return any(start <= local < end for start, end in _spans(shifts, local))


def last_boundary(shifts: tuple[Shift, ...], now: float, tz: ZoneInfo) -> float:
    """The most recent moment a shift started or ended, at or before `now` (0 if none in two days)."""
    local = datetime.datetime.fromtimestamp(now, tz)
    past = [t for span in _spans(shifts, local) for t in span if t <= local]
    return max(past).timestamp() if past else 0.0


def on_duty(shifts: tuple[Shift, ...], default: bool, toggle: tuple[bool, float] | None, now: float,
            tz: ZoneInfo) -> bool:
    """On duty by schedule (or by `default` for staff without shifts), unless the pager's toggle
    (on, set_at) was set since the schedule last changed."""
    if not shifts:
        return toggle[0] if toggle is not None else default
    if toggle is not None and toggle[1] >= last_boundary(shifts, now, tz):
        return toggle[0]
    return scheduled(shifts, now, tz)
