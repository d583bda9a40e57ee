"""A board comes up: the boot markers every role prints, after a reset."""

from __future__ import annotations

from typing import Any

import pytest

from .rig import Board, fresh_boot

BOTH_ROLES = [pytest.param("button", marks=pytest.mark.button), pytest.param("pager", marks=pytest.mark.pager)]


@pytest.mark.parametrize("role", BOTH_ROLES)
def test_after_a_reset_it_boots_joins_the_broker_and_is_ready(role: str, board: Board, dut: Any,
                                                               hands: Any) -> None:
    assert board.role == role
    epoch, free = fresh_boot(dut, hands, board)
    assert epoch > 0
    assert free >= board.min_free, f"{free} bytes of heap left after boot, below {board.min_free}"
