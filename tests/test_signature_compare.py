"""The signature check reads every byte whatever differs: the firmware's own constant-time compare
(MicroPython has no hmac.compare_digest), so how long a refusal takes tells a forger nothing about
how much of a guessed signature was right. rbproto.decode, which the gateway and the devices both
verify with, goes through it."""

from __future__ import annotations

import pytest

import rbproto


class Watched(bytes):
    """Bytes that note which positions were read."""

    read: set[int]

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        self.read.add(i)
        return super().__getitem__(i)


def watched(data: bytes) -> Watched:
    w = Watched(data)
    w.read = set()
    return w


@pytest.mark.parametrize("wrong_at", [0, 1, 16, 31])
def test_a_wrong_signature_is_read_to_its_last_byte_wherever_it_differs(wrong_at: int) -> None:
    right = bytes(range(32))
    guess = bytearray(right)
    guess[wrong_at] ^= 0xFF
    a, b = watched(bytes(guess)), watched(right)
    assert rbproto._equal(a, b) is False
    assert a.read == b.read == set(range(32))  # no early exit at the first difference


def test_equal_signatures_and_lengths() -> None:
    assert rbproto._equal(b"\x01" * 32, b"\x01" * 32)
    assert not rbproto._equal(b"\x01" * 32, b"\x01" * 31)


def test_decode_refuses_a_signature_off_by_its_last_byte() -> None:
    key = b"k" * 32
    topic, payload = rbproto.encode(key, "s", "btn-a", "press", {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint",
                                                                 "bat": 3900})
    sig = payload.split(b'"sig":"')[1][:64]
    forged = payload.replace(sig, sig[:-1] + (b"0" if sig[-1:] != b"0" else b"1"))
    with pytest.raises(rbproto.ProtocolError) as refused:
        rbproto.decode(topic, forged, lambda _d: key)
    assert refused.value.reason == rbproto.BAD_SIGNATURE
