"""Payloads that cannot be run go to jobq:{default}:dead with the raw payload and a
clear error, are never retried, and the daemon goes on."""

import json
import time

import pytest

from jobqtest import dead_entries, get_result, job, push, qkey, wait_dead

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
