"""The virtual base station's USB serial on a real pseudo-terminal: a burst of frames far larger than
the pty's buffer reaches the host whole, and a host that stops reading costs whole frames only,
never a cut one.

A pty takes only what fits in its buffer: os.write then writes part of a frame and the next one
raises EAGAIN. Before the fix that cut the frame short, and the next frame ran into it (two frames
lost as `garbage`). The reading side is pyserial on the pty's slave, as the serial bridge opens it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import serial

from rbproto import frame
from simulator.basestation import PtySerial
from waiting import wait_until

MAC = bytes.fromhex("aabbccddeeff")


def numbered(i: int) -> bytes:
    """A frame of the largest size, its number in the first bytes of its data."""
    data = i.to_bytes(4, "big") + bytes((i + k) % 251 + 1 for k in range(frame.MAX_DATA - 4))
    return bytes(frame.encode(frame.UP, MAC, data))


class Host:
    """The bridge's side: reads the slave with pyserial once `go` is set, decodes every frame."""

    def __init__(self, path: str, go: threading.Event) -> None:
        self.port = serial.serial_for_url(path, timeout=0.05)
        self.decoder = frame.Decoder()
        self.numbers: list[int] = []
        self.intact = True  # every frame's data is the data it was sent with
        self.go = go
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.go.wait(0.05):
                continue
            for _kind, _mac, data in self.decoder.feed(self.port.read(max(1, self.port.in_waiting))):
                n = int.from_bytes(data[:4], "big")
                self.intact &= frame.encode(frame.UP, MAC, data) == numbered(n)
                self.numbers.append(n)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.port.close()


@pytest.fixture
def pty() -> Iterator[tuple[PtySerial, str]]:
    ser = PtySerial(write_wait_s=5.0)  # generous: a loaded test machine must not turn waiting into loss
    path = ser.open()
    yield ser, path
    ser.close()


def test_a_burst_far_larger_than_the_pty_buffer_arrives_whole(pty: tuple[PtySerial, str]) -> None:
    ser, path = pty
    go = threading.Event()
    host = Host(path, go)

    def when_full() -> None:
        """The host starts reading once a write has had to wait: the pty's buffer was full by then."""
        wait_until(lambda: ser.waited, what="a write waiting on a full pty")
        go.set()

    threading.Thread(target=when_full, daemon=True).start()
    n = 2000  # ~610 KB: the pty holds a few dozen such frames
    try:
        for i in range(n):
            ser.write(numbered(i))  # raises OSError (EAGAIN) if it gives up
        wait_until(lambda: len(host.numbers) == n, what=f"{n} frames read", timeout=30)
        assert host.numbers == list(range(n)) and host.intact
        assert host.decoder.errors == {} and ser.dropped == 0
        assert ser.waited > 0
    finally:
        host.close()


def test_a_host_that_stops_reading_loses_whole_frames_never_a_cut_one() -> None:
    ser = PtySerial(write_wait_s=0.2)
    path = ser.open()
    go = threading.Event()
    host = Host(path, go)
    try:
        accepted = []
        i = 0
        while ser.dropped < 3:  # until the buffer is full: the first refusal waited, the next ones do not
            try:
                ser.write(numbered(i))
                accepted.append(i)
            except OSError:
                pass
            i += 1
        go.set()  # the host reads again
        wait_until(lambda: len(host.numbers) >= len(accepted) - 1, what="the buffered frames read")
        ser.write(numbered(i))  # the rest of a frame the host had not taken goes out first, then this one
        accepted.append(i)
        wait_until(lambda: len(host.numbers) == len(accepted), what="every accepted frame read")
        assert host.numbers == accepted and host.intact
        assert host.decoder.errors == {}, "a frame was cut"
    finally:
        host.close()
        ser.close()
