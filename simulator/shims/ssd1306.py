"""`ssd1306` for the simulator: micropython-lib's SSD1306_I2C is a framebuf.FrameBuffer over a 1 KB
buffer whose show() copies it to the panel over I2C. Here show() copies it to `shown`, the pixels a
person would see; nothing reaches the panel between two show() calls, as on the board."""

from __future__ import annotations

from typing import Any

from . import framebuf


class SSD1306_I2C(framebuf.FrameBuffer):
    def __init__(self, width: int, height: int, i2c: Any, addr: int = 0x3C, external_vcc: bool = False) -> None:
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        self.addr = addr
        self.shown = bytes(len(self.buffer))  # the panel: the buffer as of the last show()
        self.frames = 0
        self.on = True
        self.contrast_level = 255
        self.inverted = False

    def show(self) -> None:
        self.shown = bytes(self.buffer)
        self.frames += 1

    def panel(self) -> framebuf.FrameBuffer:
        """A frame buffer over a copy of what the panel shows, to read pixels or text from."""
        return framebuf.FrameBuffer(bytearray(self.shown), self.width, self.height, framebuf.MONO_VLSB)

    def poweroff(self) -> None:
        self.on = False

    def poweron(self) -> None:
        self.on = True

    def contrast(self, contrast: int) -> None:
        self.contrast_level = contrast

    def invert(self, invert: int) -> None:
        self.inverted = bool(invert)
