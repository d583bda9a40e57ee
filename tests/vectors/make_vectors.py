"""Writes tests/vectors/v1.json from the codec. Run only when protocol v1 gains a message type, an
optional field or a refusal: the file pins the codec, so a changed byte in an existing vector is a
protocol break (new vectors go at the end of their list)."""

import binascii
import json
from pathlib import Path

import rbproto

KEY = bytes(range(32))
SITE = "demo"
MESSAGES = [
    ("btn-t12", "press", {"ep": 3, "seq": 41, "ts": 1767225600, "kind": "complaint", "bat": 3912}),
    ("btn-t12", "cancel", {"ep": 3, "seq": 42, "ts": 1767225610, "bat": 3911}),
    ("btn-t12", "heartbeat",
     {"ep": 3, "seq": 43, "ts": 1767225900, "bat": 3900, "rssi": -61, "fw": "0.1.0", "up": 3600, "q": 0, "cv": 0}),
    ("pgr-ana", "duty", {"ep": 9, "seq": 4, "ts": 1767225500, "on": 1}),
    ("pgr-ana", "ack", {"ep": 9, "seq": 5, "ts": 1767225605, "inc": 17}),
    ("pgr-ana", "decline", {"ep": 9, "seq": 6, "ts": 1767225606, "inc": 17}),
    ("pgr-ana", "resolve", {"ep": 9, "seq": 7, "ts": 1767225700, "inc": 17, "action": "replaced"}),
    ("pgr-ana", "alert",
     {"ep": 1767220000, "seq": 77, "ts": 1767225601, "inc": 17, "table": "T12", "kind": "complaint", "lvl": 0,
      "age": 1}),
    ("pgr-ana", "alert_cancel", {"ep": 1767220000, "seq": 78, "ts": 1767225611, "inc": 17, "why": "cancelled"}),
    ("btn-t12", "feedback",
     {"ep": 1767220000, "seq": 79, "ts": 1767225605, "inc": 17, "state": "acknowledged"}),
    ("pgr-ana", "config",
     {"ep": 1767220000, "seq": 80, "ts": 1767225606, "cv": 305419896,
      "gest": "short=complaint,long=cancel,double=happy",
      "acts": "apology,fixed,replaced,discount,free_item", "hb": 300, "rebuzz": 30}),
    # the answer to the press above: it echoes the press's ep and seq
    ("btn-t12", "feedback",
     {"ep": 1767220000, "seq": 81, "ts": 1767225601, "inc": 17, "state": "delivered", "pep": 3, "pseq": 41}),
]


def main() -> None:
    good = []
    for device, mtype, body in MESSAGES:
        topic, payload = rbproto.encode(KEY, SITE, device, mtype, body)
        canonical = rbproto.canonical(topic, mtype, body).decode()
        good.append({"mtype": mtype, "site": SITE, "device": device, "body": body, "topic": topic,
                     "canonical": canonical, "payload": payload.decode()})
    press = good[0]
    ptopic, ppayload = press["topic"], press["payload"]
    echo = good[-1]
    sig = ppayload[ppayload.index('"sig":"') + 7:-2]
    odd = next(i for i, c in enumerate(sig) if c in "acde")  # \b and \f are JSON escapes, \a \c \d \e are not
    bad = [
        {"name": "not json", "topic": ptopic, "payload": "{\"ep\":3,", "reason": rbproto.MALFORMED},
        {"name": "not an object", "topic": ptopic, "payload": "[1,2]", "reason": rbproto.MALFORMED},
        {"name": "invalid utf-8", "topic": ptopic, "payload_hex": "fffe7b7d", "reason": rbproto.MALFORMED},
        {"name": "oversized", "topic": ptopic, "payload": "{\"x\":\"" + "a" * 600 + "\"}",
         "reason": rbproto.OVERSIZED},
        {"name": "tampered field", "topic": ptopic, "payload": ppayload.replace("3912", "3913"),
         "reason": rbproto.BAD_SIGNATURE},
        {"name": "signed for another device", "topic": ptopic.replace("btn-t12", "btn-t13"),
         "payload": ppayload, "reason": rbproto.BAD_SIGNATURE},
        {"name": "unknown device", "topic": ptopic.replace("btn-t12", "btn-zz"), "payload": ppayload,
         "reason": rbproto.UNKNOWN_DEVICE},
        {"name": "missing field", "topic": ptopic,
         "payload": ppayload.replace("\"bat\":3912,", "\"bat2\":3912,"), "reason": rbproto.BAD_FIELD},
        {"name": "string where int", "topic": ptopic, "payload": ppayload.replace("\"seq\":41", "\"seq\":\"41\""),
         "reason": rbproto.BAD_FIELD},
        {"name": "bool where int", "topic": ptopic, "payload": ppayload.replace("\"seq\":41", "\"seq\":true"),
         "reason": rbproto.BAD_FIELD},
        {"name": "extra field", "topic": ptopic, "payload": ppayload.replace("{", "{\"x\":1,", 1),
         "reason": rbproto.BAD_FIELD},
        {"name": "newline in string", "topic": ptopic, "payload": ppayload.replace("complaint", "compl\\naint"),
         "reason": rbproto.BAD_FIELD},
        {"name": "sig not hex", "topic": ptopic, "payload": ppayload[:-67] + "\"" + "z" * 64 + "\"}",
         "reason": rbproto.BAD_FIELD},
        {"name": "wrong version root", "topic": ptopic.replace("rb/v1", "rb/v2"), "payload": ppayload,
         "reason": rbproto.BAD_TOPIC},
        {"name": "command type on event topic", "topic": ptopic.replace("evt/press", "evt/alert"),
         "payload": ppayload, "reason": rbproto.BAD_TOPIC},
        {"name": "upper-case device id", "topic": ptopic.replace("btn-t12", "BTN-T12"), "payload": ppayload,
         "reason": rbproto.BAD_TOPIC},
        # Not the text encode() writes: refused by both interpreters (MicroPython's json reads the
        # first four, CPython's the last four)
        {"name": "leading zero", "topic": ptopic, "payload": ppayload.replace("\"seq\":41", "\"seq\":041"),
         "reason": rbproto.MALFORMED},
        {"name": "missing colon", "topic": ptopic, "payload": ppayload.replace("\"seq\":41", "\"seq\"41"),
         "reason": rbproto.MALFORMED},
        {"name": "missing comma", "topic": ptopic, "payload": ppayload.replace(",\"ts\"", "\"ts\""),
         "reason": rbproto.MALFORMED},
        {"name": "unknown escape", "topic": ptopic,
         "payload": ppayload.replace(sig, sig[:odd] + "\\" + sig[odd:]), "reason": rbproto.MALFORMED},
        {"name": "spaces", "topic": ptopic, "payload": ppayload.replace(",", ", ").replace(":", ": "),
         "reason": rbproto.MALFORMED},
        {"name": "another order", "topic": ptopic,
         "payload": ppayload.replace("\"ep\":3,\"seq\":41", "\"seq\":41,\"ep\":3"), "reason": rbproto.MALFORMED},
        {"name": "escaped character", "topic": ptopic, "payload": ppayload.replace("complaint", "compl\\u0061int"),
         "reason": rbproto.MALFORMED},
        {"name": "repeated key", "topic": ptopic, "payload": ppayload.replace("{", "{\"seq\":41,", 1),
         "reason": rbproto.MALFORMED},
        # the echo of a feedback: both fields or neither, and on a feedback only
        {"name": "echo without pseq", "topic": echo["topic"], "payload": echo["payload"].replace(",\"pseq\":41", ""),
         "reason": rbproto.BAD_FIELD},
        {"name": "echo on a press", "topic": ptopic,
         "payload": ppayload.replace(",\"sig\"", ",\"pep\":3,\"pseq\":41,\"sig\""), "reason": rbproto.BAD_FIELD},
    ]
    # Every device in "devices" has the key KEY; any other device id is unknown.
    doc = {"protocol": "rb/v1", "key_hex": binascii.hexlify(KEY).decode(),
           "devices": ["btn-t12", "btn-t13", "pgr-ana"], "messages": good, "bad": bad}
    out = Path(__file__).with_name("v1.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", out, len(good), "messages", len(bad), "bad cases")


if __name__ == "__main__":
    main()
