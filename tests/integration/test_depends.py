"""Jobs that wait for jobs ("depends_on"): with two daemons on one Redis, a
job enqueued before its dependencies waits parked (not taken over and
over), starts only after all of them ended ok and is released by the
commit of the last one (whichever daemon ran it); a dependency that failed
for good fails its dependents without running them, down a chain; a
dependency that ended long before is seen at once; a dependency on another
queue is released by the supervisors' sweep; a bad depends_on is
dead-lettered; a parked job shows in status and /metrics, and can be found
and cancelled."""

import json
import time

from jobqtest import Events, dead_entries, get_result, job, jobq_cli, key, push, qkey, wait_for

CONF = {"daemon": {"workers": "2", "test_handlers": "yes", "queues": "default,other"}}


def parked(r, jid, queue="default"):
    return r.hexists(qkey("parked", queue), jid)


def test_order_and_failure_with_two_daemons(r, jobqd):
    d1 = jobqd(CONF)
    d2 = jobqd(CONF)
    events = Events(r)
    try:
        # J first: its dependencies do not exist yet.
        push(r, job("echo", id="J", args={"x": 1}, depends_on=["A", "B"]))
        wait_for(lambda: parked(r, "J"), 10, 0.02, "J to be parked")
        push(r, job("sleep", id="A", args={"seconds": 0.3}))
        push(r, job("sleep", id="B", args={"seconds": 0.6}))
        # the failure chain, dependents first
        push(r, job("echo", id="H", depends_on=["G"]))
        push(r, job("echo", id="G", depends_on=["F"]))
        push(r, job("fail", id="F", args={"message": "boom"}))

        res_j = get_result(r, "J", timeout=15)
        res_a, res_b = get_result(r, "A"), get_result(r, "B")
        assert res_j["status"] == "ok" and res_j["result"] == {"x": 1}, res_j
        assert res_j["started_at"] >= max(res_a["finished_at"], res_b["finished_at"]), (res_j, res_a, res_b)
        assert not parked(r, "J")

        res = get_result(r, "G", timeout=15)
        assert res["status"] == "failed", res
        assert res["error"] == "dependency 'F' failed: boom", res
        assert res["started_at"] is None  # never ran
        res = get_result(r, "H", timeout=15)
        assert res["status"] == "failed", res
        assert res["error"] == "dependency 'G' failed: dependency 'F' failed: boom", res
        assert {e["id"] for e in dead_entries(r)} >= {"F", "G", "H"}

        # A dependency that ended long ago: K runs at once, never parked.
        push(r, job("echo", id="K", args="k", depends_on=["A", "B"]))
        assert get_result(r, "K")["result"] == "k"
        for jid, ev in (("H", "failed"), ("J", "ok"), ("K", "ok")):
            events.wait(lambda e: e.get("id") == jid and e.get("event") == ev)
    finally:
        events.close()
    started = [e["id"] for e in events.seen if e.get("event") == "started"]
    assert started.count("J") == 1 and "G" not in started and "H" not in started, started
    # parked, not taken in a loop: J waited at most twice (for A and B, then for B)
    waits = sum(log.count("job=J waiting for") for log in (d1.log(), d2.log()))
    assert 1 <= waits <= 2, waits
    assert r.keys(qkey("waiters", "default", "*")) == [], "waiters sets left behind"
    assert r.hlen(qkey("parked", "default")) == 0


def test_dependency_on_another_queue(r, jobqd):
    """Released by the supervisors' sweep of parked jobs (every second)."""
    jobqd(CONF)
    push(r, job("echo", id="later", args=2, depends_on=["first"]), queue="other")
    wait_for(lambda: parked(r, "later", "other"), 10, 0.02, "later to be parked")
    push(r, job("sleep", id="first", args={"seconds": 0.2}))
    first = get_result(r, "first")
    res = get_result(r, "later", timeout=10)
    assert res["status"] == "ok" and res["result"] == 2, res
    assert res["started_at"] - first["finished_at"] < 3.0, (res, first)


def test_bad_depends_on_is_dead_lettered(r, jobqd):
    jobqd(CONF)
    for jid, deps in (("b1", "A"), ("b2", []), ("b3", [1]), ("b4", ["x" * 129]), ("b5", ["ok"] * 101)):
        push(r, job("echo", id=jid, depends_on=deps))
    for jid in ("b1", "b2", "b3", "b4", "b5"):
        res = get_result(r, jid)
        assert res["status"] == "failed", res
        assert "'depends_on' must be an array of 1 to 100 job ids" in res["error"], res
    assert r.get(key("result", "b1")) is not None


def test_parked_job_is_shown_found_and_cancelled(r, jobqd, redis_server):
    """A parked job counts in status and /metrics, `jobq result` says what
    it waits for, and `jobq cancel` removes it: its dependency ending later
    releases nothing and runs nothing."""
    def jq(*args):
        return jobq_cli(redis_server.url, *args)

    jobqd(CONF)
    events = Events(r)
    try:
        push(r, job("echo", id="P", args=1, depends_on=["D1", "D2"]))
        wait_for(lambda: parked(r, "P"), 10, 0.02, "P to be parked")

        status = jq("status", "--json")
        assert status.returncode == 0, status.stderr
        snap = json.loads(status.stdout)
        default = next(q for q in snap["queues"] if q["name"] == "default")
        assert (default["parked"], default["waiting"], default["inflight"]) == (1, 0, 0), default
        assert snap["totals"]["parked"] == 1
        lines = jq("status").stdout.splitlines()
        header = next(l for l in lines if l.startswith("QUEUE")).split()
        assert header == ["QUEUE", "WAITING", "IN-FLIGHT", "SCHEDULED", "PARKED", "DEAD"], header
        row = next(l for l in lines if l.startswith("default ")).split()
        assert row[header.index("PARKED")] == "1", lines
        metrics = jq("metrics").stdout
        assert 'jobq_queue_jobs{queue="default",state="parked"} 1' in metrics.splitlines(), metrics

        res = jq("result", "P")
        assert res.returncode == 3, (res.returncode, res.stderr)
        assert "it is parked in queue default, depending on D1, D2" in res.stderr, res.stderr

        cancel = jq("cancel", "P")
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.strip() == "cancelled job P (it was parked in queue default)", cancel.stdout
        assert not parked(r, "P")
        res = get_result(r, "P")
        assert (res["status"], res["error"]) == ("failed", "cancelled"), res
        events.wait(lambda e: e.get("id") == "P" and e.get("event") == "cancelled")
        again = jq("cancel", "P")
        assert again.returncode == 2 and "already finished" in again.stderr, again.stderr

        # Its dependencies end: nothing is released, P does not run.
        push(r, job("echo", id="D1"))
        push(r, job("echo", id="D2"))
        get_result(r, "D1")
        get_result(r, "D2")
        time.sleep(0.3)
        assert get_result(r, "P")["error"] == "cancelled"
        assert r.llen(qkey("queue")) == 0
        assert r.keys(qkey("waiters", "default", "*")) == [], "waiters sets left behind"
        assert json.loads(jq("status", "--json").stdout)["totals"]["parked"] == 0
    finally:
        events.close()
    assert "P" not in [e["id"] for e in events.seen if e.get("event") == "started"]
