"""`redbutton live`: frames rendered headless from a real simulated venue, and the command path the view uses."""

from __future__ import annotations

from typing import Any

from gateway.store import Store
from simulator.live import LiveConsole, age, frame_text, type_keys
from waiting import wait_until

DEADLINE_S = 10.0


def row(frame: str, *words: str) -> str:
    """The first row of a panel holding every one of `words` (a table's button, an incident)."""
    cells = (cell for line in frame.splitlines() for cell in line.split("│"))
    return next((cell.strip() for cell in cells if all(w in cell for w in words)), "")


def pager_box(frame: str, title: str) -> list[str]:
    """The column of a frame under a pager box's title: its screen rows and the BUZZ/duty line."""
    lines = frame.splitlines()
    top = next(i for i, line in enumerate(lines) if title in line)
    left = lines[top].index(title) - 3
    return [line[left:left + 20] for line in lines[top:top + 8]]


def test_frame_shows_the_pressed_table_and_the_buzzing_pager(sim: Any, store: Store) -> None:
    ui = LiveConsole(sim, store, "test broker")
    first = frame_text(ui.snapshot())
    assert "T12" in row(first, "btn-t12") and "idle" in row(first, "btn-t12")
    assert "none open" in first

    sim.button_at("T12").press()
    pager = sim.pager_of("ana")
    assert pager.wait_for(r"ALERT inc=\d+ shown T12", DEADLINE_S) is not None

    def buzzing_frame() -> str | None:
        # the incident panel refreshes from the store on its own cadence, so wait for it too
        frame = frame_text(ui.snapshot())
        box = "\n".join(pager_box(frame, "ana · pgr-ana"))
        paged = row(frame, "T12", "complaint").split()[3:5] == ["paged", "ana"]  # state, who is paged
        return frame if "T12" in box and "BUZZ" in box and paged else None

    frame = wait_until(buzzing_frame, DEADLINE_S, "ana's pager box showing T12 and BUZZ, T12 paged to ana")
    assert row(frame, "btn-t12").split()[-1] in ("sending", "delivered")


def test_ack_typed_in_the_view_shows_the_button_acknowledged(sim: Any, store: Store) -> None:
    ui = LiveConsole(sim, store)
    button, pager = sim.button_at("T12"), sim.pager_of("ana")
    key_t12 = next(k for k, t in ui.keys.items() if t == "T12")
    submitted: list[str] = []
    assert type_keys(ui, key_t12, submitted.append)  # a number key on an empty prompt presses at once
    assert submitted == [key_t12]
    assert ui.handle(submitted[0])
    assert pager.wait_for(r"ALERT inc=\d+ shown T12", DEADLINE_S) is not None
    assert button.wait_for(r"FEEDBACK delivered", DEADLINE_S) is not None

    seen = len(button.lines)
    assert type_keys(ui, "ack ana\r", submitted.append)
    assert submitted[-1] == "ack ana" and ui.prompt == ""
    assert ui.handle(submitted[-1])
    assert pager.wait_for(r"ACK inc=\d+ seq=\d+ sent", DEADLINE_S) is not None
    assert button.wait_for(r"FEEDBACK acknowledged", DEADLINE_S, since=seen) is not None

    frame = frame_text(ui.snapshot())
    assert row(frame, "btn-t12").split()[-1] == "acknowledged"
    assert "ack on ana's pager" in frame
    assert "ACK inc=" in frame  # the device log tail
    assert "acknowledged" in row(frame, "T12", "complaint", "ana")


def test_quit_and_unknown_commands(sim: Any, store: Store) -> None:
    ui = LiveConsole(sim, store)
    assert not ui.handle("quit")
    assert not type_keys(ui, "quit\r", lambda _line: None)
    assert ui.handle("fly away")
    assert "? fly away" in frame_text(ui.snapshot())


def test_age_reads_like_the_pager() -> None:
    assert [age(s) for s in (0, 42, 725, 3723, -5)] == ["0:00", "0:42", "12:05", "1:02:03", "0:00"]
