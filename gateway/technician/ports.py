"""Which serial ports are ESP32 boards, and what a failure to open one means to a technician.

Boards are recognised by their USB bridge's VID:PID: the operating system only knows the bridge,
so "probably" is as good as it gets before esptool has talked to the chip."""

from __future__ import annotations

import errno
import grp
import os
from dataclasses import dataclass

from serial.tools.list_ports import comports

from . import EXIT_NO_ANSWER, EXIT_USAGE, DeviceError

ESPRESSIF = 0x303A
USB_SERIAL_JTAG = (ESPRESSIF, 0x1001)

# (VID, PID) -> what the board probably is; PID None: any product of that vendor.
KNOWN_BRIDGES: dict[tuple[int, int | None], str] = {
    USB_SERIAL_JTAG: "ESP32-C3/S3 native USB (USB-Serial-JTAG)",
    (ESPRESSIF, None): "Espressif native USB",
    (0x10C4, 0xEA60): "ESP32 board with a CP210x USB-UART",
    (0x1A86, 0x7523): "ESP32 board with a CH340 USB-UART",
    (0x1A86, 0x55D4): "ESP32 board with a CH9102/CH343 USB-UART",
    (0x1A86, 0x55D3): "ESP32 board with a CH343 USB-UART",
    (0x0403, 0x6001): "ESP32 board with an FTDI FT232R USB-UART",
    (0x0403, 0x6010): "ESP32 board with an FTDI FT2232 (ESP-Prog, WROVER-KIT)",
    (0x0403, 0x6015): "ESP32 board with an FTDI FT231X USB-UART",
}


@dataclass(frozen=True)
class Port:
    device: str
    kind: str  # what it probably is; "" when not a known ESP32 bridge
    vid: int | None
    pid: int | None
    serial_number: str
    description: str

    @property
    def usb_id(self) -> str:
        return "-" if self.vid is None or self.pid is None else f"{self.vid:04X}:{self.pid:04X}"


def board_kind(vid: int | None, pid: int | None) -> str:
    """What a USB VID:PID probably is, or "" when it is not a bridge ESP32 boards use."""
    if vid is None:
        return ""
    return KNOWN_BRIDGES.get((vid, pid)) or KNOWN_BRIDGES.get((vid, None), "")


def serial_ports(everything: bool = False) -> list[Port]:
    """The ports that look like ESP32 boards (all serial ports with `everything`), by device name."""
    found = []
    for info in comports():
        kind = board_kind(info.vid, info.pid)
        if kind or everything:
            found.append(Port(info.device, kind, info.vid, info.pid, info.serial_number or "-",
                              info.description if info.description not in (None, "n/a") else "-"))
    return sorted(found, key=lambda p: p.device)


def is_usb_serial_jtag(device: str) -> bool:
    """True for the chip's own USB peripheral, which drops off the bus while the chip resets."""
    return any(p.device == device and (p.vid, p.pid) == USB_SERIAL_JTAG for p in serial_ports())


def is_path(port: str) -> bool:
    """A device path, as opposed to a pyserial URL (socket://, rfc2217://) that has no file to check."""
    return "://" not in port


def group_hint(port: str) -> str:
    """How to get access to a port: by joining the group that owns it (dialout on Debian)."""
    try:
        group = grp.getgrgid(os.stat(port).st_gid).gr_name
    except (OSError, KeyError):
        group = "dialout"
    return f"add yourself to the '{group}' group (sudo usermod -aG {group} $USER), then log out and back in"


def no_such_port(port: str) -> DeviceError:
    return DeviceError(f"{port}: no such port: is the board plugged in, with a USB cable that has data lines? "
                       "`redbutton device list` shows the boards this computer sees", EXIT_NO_ANSWER)


def check_port(port: str) -> None:
    """Fail early and clearly on a port that is not there or not ours, before a tool tries it."""
    if not is_path(port):
        return
    if not os.path.exists(port):
        raise no_such_port(port)
    if not os.access(port, os.R_OK | os.W_OK):
        raise DeviceError(f"{port}: permission denied: {group_hint(port)}")


def open_error(port: str, e: OSError) -> DeviceError:
    """What pyserial's failure to open `port` means (SerialException is an OSError with its errno)."""
    code = e.errno if isinstance(e.errno, int) else (e.args[0] if e.args and isinstance(e.args[0], int) else None)
    if code == errno.ENOENT:
        return no_such_port(port)
    if code in (errno.EACCES, errno.EPERM):
        return DeviceError(f"{port}: permission denied: {group_hint(port)}")
    if code in (errno.EBUSY, errno.EAGAIN):
        return DeviceError(f"{port}: in use by another program (a monitor, the serial bridge, mpremote?): "
                           "close it and try again", EXIT_USAGE)
    if code == errno.ENOTTY or "Inappropriate ioctl" in str(e):
        return DeviceError(f"{port}: not a serial port", EXIT_USAGE)
    return DeviceError(f"{port}: cannot open: {e}", EXIT_NO_ANSWER)
