"""The built-in handlers noop, echo, sleep and (with test_handlers = yes)
fail, and the shape of results, dead-letter entries and stats they leave."""

import json
import time

import pytest

from jobqtest import (Events, dead_entries, get_result, inflight_jobs, job, key, push, qkey, stat,
                      wait_dead, wait_for)

RESULT_FIELDS = ("id", "status", "result", "attempts", "worker", "queue", "handler",
                 "enqueued_at", "started_at", "finished_at")


def check_result(res, job_id, handler, status="ok", queue="default"):
    """The fields every result has, whatever the handler."""
    for f in RESULT_FIELDS:
        assert f in res, "result has no %r: %r" % (f, res)
    assert res["id"] == job_id
    assert res["status"] == status
    assert res["handler"] == handler
    assert res["queue"] == queue
    assert res["attempts"] == 1
    assert isinstance(res["worker"], str) and res["worker"]
    now = time.time()
    for f in ("enqueued_at", "started_at", "finished_at"):
        assert isinstance(res[f], float), "%s is not a float: %r" % (f, res[f])
        assert now - 120 < res[f] <= now + 1, "%s=%r is not about now (%r)" % (f, res[f], now)
    assert res["started_at"] <= res["finished_at"]
    if status == "ok":
        assert res.get("error") is None, res
    else:
        assert isinstance(res.get("error"), str) and res["error"], res


def test_noop(r, jobqd):
    jobqd()
    push(r, job("noop", id="n1"))
    res = get_result(r, "n1")
    check_result(res, "n1", "noop")
    assert res["result"] is None
    ttl = r.ttl(key("result", "n1"))
    assert 0 < ttl <= 3600, "result TTL %r, want result_ttl = 3600" % ttl


@pytest.mark.parametrize("args", [
    {"a": [1, 2.5, {"b": "café 東京"}], "n": None, "t": True},
    [1, "two", 3],
    "just a string",
    42,
])
def test_echo_returns_args(r, jobqd, args):
    jobqd()
    push(r, job("echo", id="e1", args=args))
    res = get_result(r, "e1")
    check_result(res, "e1", "echo")
    assert res["result"] == args


def test_sleep(r, jobqd):
    jobqd()
    push(r, job("sleep", id="s1", args={"seconds": 0.3}))
    res = get_result(r, "s1")
    check_result(res, "s1", "sleep")
    assert res["finished_at"] - res["started_at"] >= 0.25


def test_fifo_within_a_queue(r, jobqd):
    jobqd({"daemon": {"workers": 1, "batch_size": 1}})
    for i in range(10):
        push(r, job("noop", id="f%d" % i))
    results = [get_result(r, "f%d" % i) for i in range(10)]
    starts = [res["started_at"] for res in results]
    assert starts == sorted(starts), "jobs of one queue did not run in RPUSH order"


def test_job_without_id_gets_one(r, jobqd):
    events = Events(r)
    try:
        jobqd()
        payload = push(r, job("echo", args={"anon": 1}))
        ev = events.wait(lambda e: e.get("event") == "ok" and e.get("handler") == "echo")
    finally:
        events.close()
    assert ev["queue"] == "default"
    job_id = ev["id"]
    assert isinstance(job_id, str) and job_id, "event has no assigned id: %r" % ev
    res = get_result(r, job_id, timeout=5)
    check_result(res, job_id, "echo")
    assert res["result"] == {"anon": 1}
    assert '"id"' not in payload


def test_events_for_a_job_with_id(r, jobqd):
    events = Events(r)
    try:
        jobqd()
        push(r, job("noop", id="ev1"))
        ok = events.wait(lambda e: e.get("id") == "ev1" and e.get("event") == "ok")
    finally:
        events.close()
    mine = [e for e in events.seen if e.get("id") == "ev1"]
    assert [e["event"] for e in mine] == ["started", "ok"], mine
    started = mine[0]
    for ev in (started, ok):
        assert ev["queue"] == "default"
        assert ev["handler"] == "noop"
        assert ev["attempt"] == 1
    assert started["worker"] == ok["worker"]
    res = get_result(r, "ev1")
    assert abs(started["time"] - res["started_at"]) < 1e-5, (started, res)


def test_started_event_of_a_lone_job_is_sent_when_it_starts(r, jobqd):
    """A job taken alone announces itself while its handler runs, not when
    it ends."""
    events = Events(r)
    try:
        jobqd({"daemon": {"workers": 1}})
        push(r, job("sleep", id="long", args={"seconds": 2}))
        started = events.wait(lambda e: e.get("id") == "long" and e.get("event") == "started", 5)
        seen_at = time.time()
        assert not r.exists(key("result", "long")), "the started event came after the result"
        assert seen_at - started["time"] < 1.0, (seen_at, started)
        events.wait(lambda e: e.get("id") == "long" and e.get("event") == "ok", 10)
    finally:
        events.close()


def test_idle_worker_picks_up_quickly(r, jobqd):
    jobqd({"daemon": {"workers": 1}})
    push(r, job("noop", id="warm"))
    get_result(r, "warm", timeout=15)
    for i in range(3):
        time.sleep(1.2)  # let the worker settle into its blocking wait
        t0 = time.monotonic()
        push(r, job("noop", id="quick%d" % i))
        get_result(r, "quick%d" % i, timeout=5)
        took = time.monotonic() - t0
        assert took < 0.5, "an idle worker took %.2f s to run a noop (want < 0.5 s)" % took


def test_inflight_holds_the_running_job(r, jobqd):
    jobqd({"daemon": {"workers": 1}})
    payload = push(r, job("sleep", id="slow", args={"seconds": 2}))

    def holding():
        for k, items in inflight_jobs(r).items():
            if payload in items:
                return k
        return None

    k = wait_for(holding, 10, 0.02, "the sleep job in a jobq:{default}:inflight:* list")
    assert k.startswith(qkey("inflight", "default") + ":"), k
    assert r.type(k) == "list"
    assert r.llen(qkey("queue", "default")) == 0
    assert payload in r.lrange(k, 0, -1)
    res = get_result(r, "slow", timeout=15)
    assert res["status"] == "ok"
    # Once the outcome is written the job is no longer in flight.
    wait_for(lambda: all(not items for items in inflight_jobs(r).values()), 5, 0.05,
             "in-flight lists to be empty when idle")


def test_stats_count_processed_and_failed(r, jobqd):
    jobqd({"daemon": {"test_handlers": "yes"}})
    for i in range(3):
        push(r, job("noop", id="ok%d" % i))
    push(r, job("fail", id="bad", args={"message": "nope"}))
    for i in range(3):
        get_result(r, "ok%d" % i)
    get_result(r, "bad")
    wait_for(lambda: stat(r, "processed") == 4, 5, 0.05, "jobq:{default}:stats processed == 4")
    assert stat(r, "failed") == 1
    assert stat(r, "processed") == 4


def test_fail_handler(r, jobqd):
    jobqd({"daemon": {"test_handlers": "yes"}, "jobs": {"max_attempts": 1}})
    payload = push(r, job("fail", id="f1", args={"message": "disk on fire 42"}))
    res = get_result(r, "f1")
    check_result(res, "f1", "fail", status="failed")
    assert "disk on fire 42" in res["error"]
    dead = wait_dead(r, payload)
    assert dead["id"] == "f1"
    assert dead["queue"] == "default"
    assert dead["handler"] == "fail"
    assert "disk on fire 42" in dead["error"]
    assert dead["attempts"] == 1
    assert isinstance(dead["failed_at"], float)
    assert abs(dead["failed_at"] - time.time()) < 120


def test_fail_handler_absent_without_test_handlers(r, jobqd):
    jobqd()  # test_handlers = no
    payload = push(r, job("fail", id="nf", args={"message": "x"}))
    dead = wait_dead(r, payload)
    assert "fail" in dead["error"]
    assert get_result(r, "nf")["status"] == "failed"


def test_dead_list_is_newest_first(r, jobqd):
    jobqd({"daemon": {"workers": 1, "batch_size": 1, "test_handlers": "yes"}})
    first = push(r, job("fail", id="d1", args={"message": "one"}))
    get_result(r, "d1")
    second = push(r, job("fail", id="d2", args={"message": "two"}))
    get_result(r, "d2")
    wait_dead(r, second)
    assert [e["payload"] for e in dead_entries(r)][:2] == [second, first]


EVENT_NAMES = {"queued", "started", "progress", "ok", "failed", "retrying", "dead", "cancelled"}


def test_every_event_is_a_job_state_change(r, jobqd):
    """jobq:events carries one message per job state change (README.md,
    "Redis keys" and the events table): every message, from the daemon's
    start on, names a documented event and has event, id, queue, handler,
    time, and attempt and worker (the daemon's events), whatever else
    happens (start, jobs ok, retried, failed, rejected)."""
    events = Events(r)
    try:
        jobqd({"daemon": {"test_handlers": "yes", "queues": "default,other"},
               "jobs": {"retry_backoff_base": 0, "max_attempts": 2}})
        push(r, job("noop", id="e-ok"))
        push(r, job("fail", id="e-fail", args={"message": "m"}))
        push(r, "{not json")
        push(r, job("noop", id="e-other"), queue="other")
        for i in ("e-ok", "e-fail", "e-other"):
            get_result(r, i)
        events.wait(lambda e: e.get("event") == "dead", 10)
        events.wait(lambda e: e.get("id") == "e-fail" and e.get("event") == "failed", 10)
        time.sleep(0.3)
        while True:  # drain
            m = events.pubsub.get_message(timeout=0.1)
            if m is None:
                break
            if m["type"] == "message":
                events.seen.append(json.loads(m["data"]))
    finally:
        events.close()
    bad = []
    for e in events.seen:
        missing = {"event", "id", "queue", "handler", "time"} - set(e)
        if e.get("event") != "queued":
            missing |= {"attempt", "worker"} - set(e)
        if e.get("event") not in EVENT_NAMES or missing or not isinstance(e.get("queue"), str):
            bad.append((e, sorted(missing)))
    assert not bad, "messages on jobq:events that are not documented job events: %r" % bad
    kinds = [(e["id"], e["event"]) for e in events.seen if e.get("id") in ("e-ok", "e-fail", "e-other")]
    assert ("e-ok", "ok") in kinds and ("e-other", "ok") in kinds and ("e-fail", "retrying") in kinds, kinds
