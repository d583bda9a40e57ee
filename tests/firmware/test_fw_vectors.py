# The codec against tests/vectors/v1.json: the same bytes on MicroPython and CPython.
# MicroPython subset: runs under pytest and inside MicroPython (tests/mpy/run_tests.mjs).
import binascii
import json

import rbproto


def _here():
    f = globals().get("__file__", "").replace("\\", "/")
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def vectors_path():
    """tests/vectors/v1.json next to this folder on the host; /vectors/v1.json inside MicroPython,
    where tests/mpy/run_tests.mjs copies it."""
    candidates = (
        _here() + "/../vectors/v1.json",
        "/vectors/v1.json",
        "tests/vectors/v1.json",
    )
    for path in candidates:
        try:
            with open(path):
                return path
        except OSError:
            pass
    raise AssertionError("v1.json not found in %s" % (candidates,))


_DOC = []


def load():
    if not _DOC:
        with open(vectors_path()) as f:
            _DOC.append(json.load(f))
    return _DOC[0]


def key():
    return binascii.unhexlify(load()["key_hex"])


def key_for(device):
    """Every device the file lists (or, without a list, every device with a message) has the key."""
    doc = load()
    known = doc.get("devices") or [m["device"] for m in doc["messages"]]
    return key() if device in known else None


def bad_payload(case):
    if "payload_hex" in case:
        return binascii.unhexlify(case["payload_hex"])
    return case["payload"].encode()


def test_vectors_file_has_cases():
    doc = load()
    assert len(doc["key_hex"]) == 64
    assert len(doc["messages"]) > 0
    assert len(doc["bad"]) > 0
    # every message type of the schema is pinned by at least one vector
    pinned = [m["mtype"] for m in doc["messages"]]
    for mtype in rbproto.SCHEMA:
        assert mtype in pinned, mtype


def test_encode_reproduces_topic_and_payload():
    k = key()
    for m in load()["messages"]:
        t, payload = rbproto.encode(k, m["site"], m["device"], m["mtype"], m["body"])
        assert t == m["topic"], (m["mtype"], t)
        assert payload == m["payload"].encode(), (m["mtype"], payload)


def test_canonical_form():
    for m in load()["messages"]:
        c = rbproto.canonical(m["topic"], m["mtype"], m["body"])
        assert c == m["canonical"].encode(), (m["mtype"], c)


def test_decode_round_trips_body():
    for m in load()["messages"]:
        msg = rbproto.decode(m["topic"], m["payload"].encode(), key_for)
        assert msg.mtype == m["mtype"]
        assert msg.site == m["site"]
        assert msg.device == m["device"]
        assert msg.body == m["body"], (m["mtype"], msg.body)
        assert sorted(msg.body.keys()) == sorted(rbproto.fields(m["mtype"], m["body"]))


def test_bad_cases_raise_protocol_error_with_reason():
    failures = []
    for case in load()["bad"]:
        try:
            rbproto.decode(case["topic"], bad_payload(case), key_for)
        except rbproto.ProtocolError as e:
            if e.reason != case["reason"]:
                failures.append("%s: got %s, want %s" % (case["name"], e.reason, case["reason"]))
        else:
            failures.append("%s: accepted" % case["name"])
    assert not failures, failures


def test_reason_constants_cover_bad_cases():
    reasons = (rbproto.OVERSIZED, rbproto.BAD_TOPIC, rbproto.MALFORMED, rbproto.BAD_FIELD,
               rbproto.UNKNOWN_DEVICE, rbproto.BAD_SIGNATURE, rbproto.REPLAYED)
    for case in load()["bad"]:
        assert case["reason"] in reasons, case["name"]
