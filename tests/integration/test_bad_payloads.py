"""Payloads that cannot be run go to jobq:{default}:dead with the raw payload and a
clear error, are never retried, and the daemon goes on."""

import base64
import json
import time

import pytest

from jobqtest import dead_entries, get_result, job, push, qkey, wait_dead, wait_for

BIG = json.dumps({"handler": "noop", "args": {"pad": "x" * 2000}}, separators=(",", ":"))

# (name, payload, words one of which the error must contain, id, handler)
CASES = [
    ("not_json", "{not json", ("json", "parse"), None, None),
    ("json_array", "[1,2]", ("object",), None, None),
    ("json_string", '"str"', ("object",), None, None),
    ("no_handler", '{"id":"nh","args":{}}', ("handler",), "nh", None),
    ("handler_not_string", '{"id":"hn","handler":42}', ("handler",), "hn", None),
    ("unknown_handler", '{"id":"uh","handler":"no_such_handler"}', ("no_such_handler",),
     "uh", "no_such_handler"),
    ("too_large", BIG, ("large", "size", "max_payload", "1024", "limit", "exceed"), None,
     None),
]


@pytest.mark.parametrize("name,payload,words,job_id,handler", CASES, ids=[c[0] for c in CASES])
def test_bad_payload_goes_to_dead(r, jobqd, name, payload, words, job_id, handler):
    jobqd({"daemon": {"workers": 1}, "jobs": {"max_payload": 1024, "max_attempts": 3}})
    push(r, payload)
    push(r, job("noop", id="after"))

    # The daemon goes on.
    assert get_result(r, "after", timeout=15)["status"] == "ok"

    dead = wait_dead(r, payload)
    assert dead["payload"] == payload
    assert dead["queue"] == "default"
    err = dead["error"]
    assert isinstance(err, str) and err
    assert any(w in err.lower() for w in words), \
        "dead-letter error %r mentions none of %r" % (err, words)
    if job_id is not None:
        assert dead["id"] == job_id
    else:
        assert dead["id"] is None or isinstance(dead["id"], str)
    if handler is not None:
        assert dead["handler"] == handler
    elif name != "too_large":
        assert dead["handler"] is None
    assert isinstance(dead["failed_at"], float)
    assert abs(dead["failed_at"] - time.time()) < 120
    assert isinstance(dead["attempts"], int) and not isinstance(dead["attempts"], bool)

    # Never retried: exactly one entry, nothing scheduled.
    assert [e["payload"] for e in dead_entries(r)].count(payload) == 1
    assert r.zcard(qkey("scheduled")) == 0

    # With a string id the producer also gets a failed result.
    if job_id is not None:
        res = get_result(r, job_id, timeout=5)
        assert res["id"] == job_id
        assert res["status"] == "failed"
        assert res["error"]


def test_all_bad_payloads_in_a_row(r, jobqd):
    """All of them back to back, then a noop: each is dead-lettered once."""
    jobqd({"jobs": {"max_payload": 1024}})
    for c in CASES:
        push(r, c[1])
    push(r, job("noop", id="after"))
    assert get_result(r, "after", timeout=15)["status"] == "ok"
    for c in CASES:
        wait_dead(r, c[1])
    assert len(dead_entries(r)) == len(CASES)


# ---------------------------------------------------------------- big payloads

DEAD_PAYLOAD_MAX = 64 * 1024  # README.md: a dead entry keeps at most 64 KiB of payload


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def wait_dead_by(r, pred, what, timeout=10.0):
    return wait_for(lambda: next((e for e in dead_entries(r) if pred(e)), None), timeout, 0.02, what)


def check_cut(entry, raw):
    """The fields of an entry whose payload was cut."""
    assert entry.get("payload_truncated") is True, entry.keys()
    assert entry["payload_bytes"] == len(raw), (entry["payload_bytes"], len(raw))
    assert entry["payload_fnv1a64"] == fnv1a64(raw), (entry["payload_fnv1a64"], fnv1a64(raw))


def test_dead_entry_keeps_at_most_64_KiB_of_payload(r, jobqd):
    """Payloads over 64 KiB are cut in their dead entry (at a UTF-8
    boundary; base64 when not UTF-8), with their size and FNV-1a hash; one
    under the limit is kept whole. Over max_payload or not, parsed or not."""
    jobqd({"daemon": {"workers": 1}, "jobs": {"max_payload": 150000}})
    head = '{"id":"%s","handler":"no_such_handler","args":{"pad":"'
    # Over max_payload (too large), plain ASCII.
    big = (head % "big-ascii") + "x" * 160000 + '"}}'
    # Under max_payload, unknown handler; 3-byte characters from a point
    # where byte 65536 falls in the middle of one.
    prefix = (head % "big-utf8") + "y" * 11
    assert (DEAD_PAYLOAD_MAX - len(prefix.encode())) % 3 != 0
    utf8 = prefix + "東" * 30000 + '"}}'
    # Not UTF-8 (so not JSON either).
    binary = bytes([0xff, 0xfe, 0x80]) * 30000
    # Just at the limit: kept whole, no note.
    exact = (head % "exact") + "z" * (DEAD_PAYLOAD_MAX - len(head % "exact") - 3) + '"}}'
    assert len(exact) == DEAD_PAYLOAD_MAX
    for p in (big, utf8, binary, exact):
        r.rpush(qkey("queue"), p)
    push(r, job("noop", id="after"))
    assert get_result(r, "after", timeout=20)["status"] == "ok"

    # Too large to be read: found by its payload, not its id.
    e = wait_dead_by(r, lambda e: (e.get("payload") or "").startswith(head % "big-ascii"),
                     "dead entry of big-ascii")
    assert e["payload"] == big[:DEAD_PAYLOAD_MAX]
    check_cut(e, big.encode())
    assert any(w in e["error"].lower() for w in ("large", "max_payload", "limit")), e["error"]

    e = wait_dead_by(r, lambda e: e.get("id") == "big-utf8", "dead entry of big-utf8")
    raw = utf8.encode()
    want = raw[:DEAD_PAYLOAD_MAX].decode("utf-8", errors="ignore")
    assert len(want.encode()) > DEAD_PAYLOAD_MAX - 3
    assert e["payload"] == want, (len(e["payload"].encode()), len(want.encode()))
    check_cut(e, raw)
    assert "no_such_handler" in e["error"], e["error"]

    e = wait_dead_by(r, lambda e: e.get("payload_base64"), "dead entry of the binary payload")
    assert e["payload"] is None and e["id"] is None, {k: v for k, v in e.items() if k != "payload_base64"}
    assert base64.b64decode(e["payload_base64"]) == binary[:DEAD_PAYLOAD_MAX]
    check_cut(e, binary)

    e = wait_dead_by(r, lambda e: e.get("id") == "exact", "dead entry of exact")
    assert e["payload"] == exact
    assert not {"payload_truncated", "payload_bytes", "payload_fnv1a64", "payload_base64"} & set(e), e.keys()

    # Each stored entry is bounded, whatever the payload's size.
    for raw_entry in r.lrange(qkey("dead"), 0, -1):
        assert len(raw_entry) < 2 * DEAD_PAYLOAD_MAX + 4096, len(raw_entry)
    assert len(dead_entries(r)) == 4
    # The producer of a job with an id still learns what happened.
    for i in ("big-utf8", "exact"):
        assert get_result(r, i)["status"] == "failed"


def test_failed_job_with_a_big_payload_is_cut_in_its_dead_entry(r, jobqd):
    """A job that ran and failed for good (not only an unreadable one)."""
    jobqd({"daemon": {"test_handlers": "yes"}})
    payload = job("fail", id="bigfail", args={"message": "no", "pad": "p" * 100000})
    push(r, payload)
    res = get_result(r, "bigfail")
    assert res["status"] == "failed" and "no" in res["error"], res
    e = wait_dead_by(r, lambda e: e.get("id") == "bigfail", "dead entry of bigfail")
    assert e["payload"] == payload[:DEAD_PAYLOAD_MAX]
    check_cut(e, payload.encode())
    assert e["attempts"] == 1 and e["handler"] == "fail"
