"""The pager: an alert sent to it is shown, and key A acknowledges it with a signed ack.

The alert is signed here with the pager's key, as the gateway signs it, for an incident number no
venue reaches (a real venue's gateway drops the ack as an answer to nothing). Its boot epoch is
newer than the gateway's, so the pager, which keeps one command epoch, would then refuse the
gateway's commands as replays: the pager is reset at the end, which clears that."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .rig import Board, BrokerWatch, fresh_boot

pytestmark = pytest.mark.pager
TEST_INCIDENT_BASE = 900_000_000
ANSWER_S = 10.0
READ_S = 0.7  # the pager ignores key A for 0.6 s after a new alert (nobody has read it yet)


def test_an_alert_is_shown_and_key_a_acknowledges_it(board: Board, dut: Any, hands: Any,
                                                     broker_watch: BrokerWatch) -> None:
    fresh_boot(dut, hands, board)
    now = int(time.time())
    inc = TEST_INCIDENT_BASE + now % 1_000_000
    try:
        broker_watch.command("alert", {"ep": now + 1, "seq": 1, "ts": now, "inc": inc, "table": "HIL",
                                       "kind": "test", "lvl": 0, "age": 0})
        dut.expect(rf"ALERT inc={inc} shown HIL test lvl=0 age=0\r\n".encode(), timeout=ANSWER_S)
        time.sleep(READ_S)  # a person reading the screen, as the firmware requires
        hands.tap()
        ack = dut.expect(rf"ACK inc={inc} seq=(\d+) sent\r\n".encode(), timeout=hands.patience)
        msg = broker_watch.wait_for("ack", ANSWER_S, seq=int(ack.group(1)))
        assert msg.body["inc"] == inc and msg.device == board.device
    finally:
        hands.reset()  # the gateway's commands count again
        dut.expect(rb"READY pager free=\d+\r\n", timeout=board.boot_s + hands.patience)
