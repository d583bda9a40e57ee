"""The codec against an independent HMAC, and its properties under generated input."""

from __future__ import annotations

import binascii
import hmac
import json
from hashlib import sha256
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import rbproto

VECTORS = json.loads((Path(__file__).parent / "vectors" / "v1.json").read_text())
KEY = binascii.unhexlify(VECTORS["key_hex"])


def test_vector_signatures_match_the_standard_library_hmac() -> None:
    """The codec's hand-written HMAC (the ESP32 has no hmac module) equals CPython's."""
    assert VECTORS["messages"], "vectors are empty"
    for v in VECTORS["messages"]:
        sig = json.loads(v["payload"])["sig"]
        assert sig == hmac.new(KEY, v["canonical"].encode(), sha256).hexdigest(), v["mtype"]


def test_every_message_type_has_a_vector() -> None:
    assert {v["mtype"] for v in VECTORS["messages"]} == set(rbproto.SCHEMA)


@given(st.binary(min_size=0, max_size=200), st.binary(max_size=700))
@settings(max_examples=300)
def test_hmac_matches_the_standard_library(key: bytes, data: bytes) -> None:
    assert rbproto.hmac_sha256(key, data) == hmac.new(key, data, sha256).digest()


@given(st.binary(max_size=700))
@settings(max_examples=500)
def test_garbage_is_refused_with_a_reason_never_a_crash(payload: bytes) -> None:
    try:
        rbproto.decode("rb/v1/demo/btn-t12/evt/press", payload, lambda d: KEY)
    except rbproto.ProtocolError as e:
        assert e.reason in (rbproto.MALFORMED, rbproto.OVERSIZED, rbproto.BAD_FIELD, rbproto.BAD_SIGNATURE)
    else:
        raise AssertionError("random bytes verified")


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 200)), max_size=300))
def test_replay_window_accepts_each_number_at_most_once(stream: list[tuple[int, int]]) -> None:
    w = rbproto.ReplayWindow()
    accepted: set[tuple[int, int]] = set()
    for ep, seq in stream:
        if w.check(ep, seq):
            assert (ep, seq) not in accepted
            w.accept(ep, seq)
            accepted.add((ep, seq))


@given(st.integers(0, 10**6), st.permutations(list(range(1, rbproto.WINDOW + 1))))
def test_replay_window_tolerates_reordering_within_the_window(ep: int, order: list[int]) -> None:
    w = rbproto.ReplayWindow()
    for seq in order:
        assert w.check(ep, seq)
        w.accept(ep, seq)
    assert not any(w.check(ep, seq) for seq in order)


def test_signature_binds_the_topic() -> None:
    body = {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint", "bat": 1}
    _t, payload = rbproto.encode(KEY, "demo", "btn-t12", "press", body)
    try:
        rbproto.decode("rb/v1/other/btn-t12/evt/press", payload, lambda d: KEY)
    except rbproto.ProtocolError as e:
        assert e.reason == rbproto.BAD_SIGNATURE
    else:
        raise AssertionError("a press signed for one site verified on another")


def test_every_event_fits_the_size_limit_at_its_largest() -> None:
    longest = "x" * rbproto.MAX_STR
    for mtype, (_dir, fields) in rbproto.SCHEMA.items():
        body = {f: (-(2**62) + 1 if rbproto._INT_FIELDS[f] else longest) for f in fields}
        _t, payload = rbproto.encode(KEY, "a" * 32, "b" * 32, mtype, body)
        assert len(payload) <= rbproto.MAX_PAYLOAD, mtype
