"""The button: a press is signed, reaches the broker as the device's own, and the gateway's answer
comes back to it; the press that wakes it from deep sleep counts. Every call made here is
cancelled again (a long press), so a real venue's staff are not left paged for a test."""

from __future__ import annotations

import re
from typing import Any

import pytest

import rbproto

from .rig import Board, BrokerWatch, fresh_boot

pytestmark = pytest.mark.button
ANSWER_S = 10.0  # press -> broker -> gateway -> broker -> button
SLEEP_S = 20.0  # heartbeat, its linger, and the config's awake_ms before deep sleep


def sent_and_answered(dut: Any, watch: BrokerWatch, epoch: int, wait: float) -> int:
    """The short press just made is signed, sent, on the broker as the board's own, and answered;
    -> the incident the gateway answered with."""
    press = dut.expect(rb"PRESS seq=(\d+) kind=complaint bat=(\d+)\r\n", timeout=wait)
    seq, bat = int(press.group(1)), int(press.group(2))
    dut.expect(rf"PRESS seq={seq} (sent|forwarded)\r\n".encode(), timeout=ANSWER_S)  # at once, or once the link is up
    msg = watch.wait_for("press", ANSWER_S, seq=seq)
    assert msg.device == watch.board.device and msg.site == watch.board.site
    assert msg.body["ep"] == epoch and msg.body["kind"] == "complaint" and msg.body["bat"] == bat
    answer = dut.expect(rb"FEEDBACK (\w+) inc=(\d+)\r\n", timeout=ANSWER_S)
    state = answer.group(1).decode()
    assert state in (rbproto.DELIVERED, rbproto.ACKNOWLEDGED), f"the gateway answered {state}"
    return int(answer.group(2))


def cancel_the_call(dut: Any, hands: Any, watch: BrokerWatch, inc: int) -> None:
    hands.hold()
    cancel = dut.expect(rb"CANCEL seq=(\d+) bat=\d+\r\n", timeout=hands.patience)
    watch.wait_for("cancel", ANSWER_S, seq=int(cancel.group(1)))
    dut.expect(rf"FEEDBACK {rbproto.CANCELLED} inc={inc}\r\n".encode(), timeout=ANSWER_S)


def test_a_press_is_signed_sent_and_answered(board: Board, dut: Any, hands: Any,
                                             broker_watch: BrokerWatch) -> None:
    epoch, _free = fresh_boot(dut, hands, board)
    hands.tap()
    inc = sent_and_answered(dut, broker_watch, epoch, hands.patience)
    cancel_the_call(dut, hands, broker_watch, inc)


def test_the_press_that_wakes_it_from_deep_sleep_is_sent(board: Board, dut: Any, hands: Any,
                                                         broker_watch: BrokerWatch) -> None:
    epoch, _free = fresh_boot(dut, hands, board)
    dut.expect(rb"SLEEP \d+ ms\r\n", timeout=SLEEP_S)
    hands.tap()
    woke = dut.expect(rf"BOOT button {re.escape(board.device)} ep=(\d+) fw=\S+ woke\r\n".encode(),
                      timeout=hands.patience)
    assert int(woke.group(1)) == epoch  # resumed from RTC memory: the same boot epoch, no flash write
    inc = sent_and_answered(dut, broker_watch, epoch, ANSWER_S)  # the waking press itself
    cancel_the_call(dut, hands, broker_watch, inc)
