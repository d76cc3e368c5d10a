"""The Redis key schema (README.md, "Redis keys"): every key of queue Q
carries the hash tag {Q}; delayed jobs, dead entries, in-flight lists,
holders, leases and stats are per queue; nothing is written under the
0.1.0 keys (jobq:queue:<q>, jobq:scheduled, jobq:dead, jobq:stats:*,
jobq:inflight:*, jobq:daemon:<id>:inflight)."""

import json
import os
import time

from jobqtest import (dead_entries, get_result, holders, inflight_jobs, inflight_keys, job, key, leases,
                      push, qkey, redis_time_ms, schedule, schema_violations, stat, wait_dead, wait_for)

TWO_QUEUES = {"daemon": {"queues": "default,other", "workers": 2, "test_handlers": "yes",
                         "heartbeat_interval": 0.5, "heartbeat_ttl": 2}}

OLD_PATTERNS = ("jobq:queue:*", "jobq:scheduled", "jobq:dead", "jobq:stats:*", "jobq:inflight:*",
                "jobq:daemon:*:inflight")


def old_keys(r):
    return sorted({k for p in OLD_PATTERNS for k in r.scan_iter(match=p, count=1000)})


def test_every_key_follows_the_queue_schema(r, jobqd):
    """Jobs in every state on two queues: done, dead, waiting for a retry,
    delayed, running. Each lies under its queue's hash tag with the
    documented type, and the daemon holds a lease and registers its
    in-flight lists on each queue it serves."""
    d = jobqd(dict(TWO_QUEUES, jobs={"retry_backoff_base": 30, "retry_backoff_max": 60}))
    daemon_id = "%s:%d" % (os.uname().nodename, d.pid)
    push(r, job("noop", id="ok-d"))
    push(r, job("noop", id="ok-o"), queue="other")
    dead_payload = push(r, job("fail", id="dead-o", args={"message": "no"}, max_attempts=1), queue="other")
    push(r, job("fail", id="retry-d", args={"message": "later"}, max_attempts=3))
    for i in ("ok-d", "ok-o", "dead-o"):
        get_result(r, i)
    # The retry waits 15..30 s in default's scheduled set.
    wait_for(lambda: r.zcard(qkey("scheduled")) == 1, 10, 0.01,
             "the retry of retry-d in jobq:{default}:scheduled")
    assert json.loads(r.zrange(qkey("scheduled"), 0, -1)[0])["id"] == "retry-d"
    schedule(r, job("noop", id="later-o"), time.time() + 3600, queue="other")
    running = push(r, job("sleep", id="run-d", args={"seconds": 3}))
    wait_for(lambda: any(running in v for v in inflight_jobs(r, "default").values()), 10, 0.01,
             "run-d in flight")

    assert schema_violations(r) == [], "keys outside the documented schema"
    assert old_keys(r) == [], "keys of the 0.1.0 schema written"

    assert wait_dead(r, dead_payload, queue="other")["queue"] == "other"
    assert [e["id"] for e in dead_entries(r, "other")] == ["dead-o"]
    assert dead_entries(r, "default") == []
    assert r.zrange(qkey("scheduled", "other"), 0, -1) == [job("noop", id="later-o")]
    assert r.type(qkey("stats", "default")) == "hash" and r.type(qkey("stats", "other")) == "hash"

    # In flight: the running job's list is default's, registered as this
    # daemon's in the holders; a lease per queue, in the future.
    [k] = [k for k, v in inflight_jobs(r, "default").items() if running in v]
    assert holders(r, "default").get(k) == daemon_id, (k, holders(r, "default"))
    assert not [x for x in inflight_keys(r, "other") if r.llen(x)], "other has nothing in flight"
    now = redis_time_ms(r)
    for q in ("default", "other"):
        lease = leases(r, q).get(daemon_id)
        assert lease is not None, "no lease of %s on %s: %r" % (daemon_id, q, leases(r, q))
        assert now < lease <= now + 2000 + 100, (q, lease - now)
    # The registry and heartbeat stay global.
    assert json.loads(r.hget(key("daemons"), daemon_id))["queues"] == ["default", "other"]
    assert 0 < r.pttl(key("daemon", daemon_id)) <= 2000
    assert get_result(r, "run-d", timeout=10)["status"] == "ok"
    assert schema_violations(r) == [] and old_keys(r) == []


def test_stats_are_per_queue(r, jobqd):
    jobqd(TWO_QUEUES)
    for i in range(3):
        push(r, job("noop", id="d%d" % i))
    push(r, job("fail", id="dbad", args={"message": "x"}, max_attempts=1))
    for i in range(2):
        push(r, job("noop", id="o%d" % i), queue="other")
    for i in ("d0", "d1", "d2", "dbad", "o0", "o1"):
        get_result(r, i)
    wait_for(lambda: stat(r, "processed") == 4 and stat(r, "processed", "other") == 2, 5, 0.02,
             "processed 4 on default and 2 on other")
    assert stat(r, "failed") == 1
    assert stat(r, "failed", "other") == 0
    assert r.hgetall(qkey("stats", "other")) == {"processed": "2"}
    assert not list(r.scan_iter(match="jobq:stats*")), "global stats counters written"


def test_delayed_job_runs_on_the_queue_of_its_scheduled_set(r, jobqd):
    """A delayed job needs no "queue" field: the set it sits in is its
    queue, whatever a stray "queue" member of the payload says."""
    jobqd(TWO_QUEUES)
    now = time.time()
    schedule(r, job("noop", id="late-o"), now + 0.5, queue="other")
    schedule(r, job("noop", id="stray", queue="default"), now + 0.5, queue="other")
    schedule(r, job("noop", id="late-d"), now + 0.5)
    schedule(r, job("noop", id="future"), now + 3600, queue="other")
    for i, q in (("late-o", "other"), ("stray", "other"), ("late-d", "default")):
        res = get_result(r, i, timeout=10)
        assert res["status"] == "ok" and res["queue"] == q, res
        assert res["started_at"] >= now + 0.5 - 0.01, "%s ran before it was due: %r" % (i, res)
    assert r.zrange(qkey("scheduled", "other"), 0, -1) == [job("noop", id="future")]
    assert r.zcard(qkey("scheduled")) == 0


def test_bad_payload_of_a_queue_goes_to_its_dead_list(r, jobqd):
    jobqd(TWO_QUEUES)
    push(r, "{not json", queue="other")
    push(r, job("noop", id="after"), queue="other")
    assert get_result(r, "after")["status"] == "ok"
    entry = wait_dead(r, "{not json", queue="other")
    assert entry["queue"] == "other", entry
    assert dead_entries(r, "default") == []


def test_jobs_left_under_the_old_keys_are_not_served(r, jobqd):
    """The 0.1.0 keys mean nothing to this daemon (README.md, "Moving from
    0.1.0"): a job there stays put, untouched, while the new key is
    served."""
    old = job("noop", id="old-style")
    r.rpush("jobq:queue:default", old)
    r.zadd("jobq:scheduled", {job("noop", id="old-delayed", queue="default"): time.time() - 1})
    jobqd()
    push(r, job("noop", id="new-style"))
    assert get_result(r, "new-style")["status"] == "ok"
    time.sleep(1.0)  # several promotion ticks
    assert r.lrange("jobq:queue:default", 0, -1) == [old]
    assert r.zcard("jobq:scheduled") == 1
    assert r.get(key("result", "old-style")) is None and r.get(key("result", "old-delayed")) is None


def test_crashed_job_is_retried_and_buried_in_its_own_queue(r, jobqd):
    """A job of other whose worker dies: its retry waits in
    jobq:{other}:scheduled, its dead entry goes to jobq:{other}:dead, its
    counts to jobq:{other}:stats; default's keys stay untouched."""
    jobqd({"daemon": {"queues": "default,other", "workers": 2, "test_handlers": "yes"},
           "jobs": {"retry_backoff_base": 1.5, "retry_backoff_max": 2, "poison_limit": 5}})
    push(r, job("crash", id="c1", max_attempts=2), queue="other")
    wait_for(lambda: r.zcard(qkey("scheduled", "other")) == 1, 10, 0.01, "c1's retry in jobq:{other}:scheduled")
    [retry] = r.zrange(qkey("scheduled", "other"), 0, -1)
    assert json.loads(retry)["id"] == "c1"
    assert r.zcard(qkey("scheduled")) == 0
    res = get_result(r, "c1", timeout=15)
    assert res["status"] == "failed" and res["attempts"] == 2 and res["queue"] == "other", res
    assert "SIGSEGV" in res["error"], res
    entry = wait_for(lambda: dead_entries(r, "other"), 5, 0.02, "c1's dead entry in jobq:{other}:dead")[0]
    assert entry["id"] == "c1" and entry["queue"] == "other" and entry["attempts"] == 2, entry
    wait_for(lambda: stat(r, "processed", "other") == 1, 5, 0.02, "processed 1 on other")
    assert stat(r, "failed", "other") == 1
    assert dead_entries(r, "default") == [] and stat(r, "processed") == 0
    assert r.zcard(qkey("scheduled", "other")) == 0
    assert not [k for k in inflight_keys(r) if r.llen(k)]


def test_cancel_request_in_the_queues_cancel_set_stops_a_running_job(r, jobqd):
    """ZADD jobq:{other}:cancel <now> <id> (what `jobq cancel` writes for a
    running job of other): the supervisor kills the worker, records the job
    failed with "cancelled" and drops the request."""
    d = jobqd({"daemon": {"queues": "default,other", "workers": 2}, "jobs": {"max_attempts": 3}})
    payload = push(r, job("sleep", id="long", args={"seconds": 30}), queue="other")
    wait_for(lambda: any(payload in v for v in inflight_jobs(r, "other").values()), 10, 0.01, "long in flight")
    t0 = time.time()
    r.zadd(qkey("cancel", "other"), {"long": t0})
    res = get_result(r, "long", timeout=10)
    assert res["status"] == "failed" and res["error"] == "cancelled" and res["queue"] == "other", res
    assert res["attempts"] == 1, res
    assert time.time() - t0 < 5
    wait_for(lambda: r.zcard(qkey("cancel", "other")) == 0, 5, 0.02, "the cancel request dropped")
    time.sleep(0.5)
    # Not retried, not waiting again.
    assert r.llen(qkey("queue", "other")) == 0 and r.zcard(qkey("scheduled", "other")) == 0
    assert not [k for k in inflight_keys(r) if r.llen(k)]
    d.assert_running()


def test_queue_names_with_colons_dots_and_dashes(r, jobqd):
    """Queue names may hold : . - _ (README.md): their keys, in-flight lists
    and holders work like any other, and a dead worker's job goes back to
    its own queue."""
    q1, q2 = "mail:out.v2", "img-resize_hi"
    d = jobqd({"daemon": {"queues": "%s,%s" % (q1, q2), "workers": 2, "test_handlers": "yes",
                          "shutdown_timeout": 1},
               "jobs": {"retry_backoff_base": 0, "poison_limit": 5}})
    push(r, job("echo", id="m1", args=[1]), queue=q1)
    push(r, job("echo", id="i1", args=[2]), queue=q2)
    assert get_result(r, "m1")["queue"] == q1 and get_result(r, "i1")["queue"] == q2
    payload = push(r, job("sleep", id="m2", args={"seconds": 30}, max_attempts=2), queue=q1)
    [k] = wait_for(lambda: [k for k, v in inflight_jobs(r, q1).items() if payload in v], 10, 0.01,
                   "m2 in flight")
    assert k.startswith("jobq:{%s}:inflight:" % q1), k
    daemon_id = "%s:%d" % (os.uname().nodename, d.pid)
    assert holders(r, q1).get(k) == daemon_id, holders(r, q1)
    os.kill(int(k.rsplit(":", 1)[1]), 9)
    # Back on its own queue and taken by another worker: retried at once
    # (backoff 0) when it had started, as it was when the kill came first.
    wait_for(lambda: any("m2" in p for lst, v in inflight_jobs(r, q1).items() for p in v
                         if lst != k or p != payload) or r.exists(key("result", "m2")), 10, 0.01,
             "m2 taken again")
    assert r.llen(qkey("queue", q2)) == 0 and r.zcard(qkey("scheduled", q2)) == 0
    assert stat(r, "processed", q1) == 1 and stat(r, "processed", q2) == 1
    assert schema_violations(r) == []


def test_a_custom_prefix_prefixes_every_key(r, jobqd):
    """[redis] prefix = acme.jobs: jobs are taken from acme.jobs:{default}:queue,
    results written to acme.jobs:result:<id>, and nothing under jobq:."""
    d = jobqd({"redis": {"prefix": "acme.jobs"}, "daemon": {"test_handlers": "yes"}})
    r.rpush("acme.jobs:{default}:queue", job("noop", id="p1"), job("fail", id="p2", args={"message": "m"}))
    r.rpush(qkey("queue"), job("noop", id="not-mine"))
    wait_for(lambda: r.exists("acme.jobs:result:p1") and r.exists("acme.jobs:result:p2"), 10, 0.02,
             "results under acme.jobs:result:")
    assert json.loads(r.get("acme.jobs:result:p1"))["status"] == "ok"
    wait_for(lambda: r.llen("acme.jobs:{default}:dead") == 1, 5, 0.02, "p2 in acme.jobs:{default}:dead")
    wait_for(lambda: r.hget("acme.jobs:{default}:stats", "processed") == "2", 5, 0.02, "acme stats")
    daemon_id = "%s:%d" % (os.uname().nodename, d.pid)
    assert r.zscore("acme.jobs:{default}:leases", daemon_id) is not None
    assert r.hget("acme.jobs:daemons", daemon_id) is not None
    time.sleep(0.3)
    assert r.lrange(qkey("queue"), 0, -1) == [job("noop", id="not-mine")]
    others = sorted(k for k in r.scan_iter(count=1000) if not k.startswith("acme.jobs:"))
    assert others == [qkey("queue")], others


def test_due_job_for_a_queue_key_of_the_wrong_type_goes_to_that_queues_dead_list(r, jobqd):
    """jobq:{other}:queue is a string (someone's mistake): a due job of
    other cannot be delivered, so it goes to jobq:{other}:dead with the
    reason, and default goes on."""
    r.set(qkey("queue", "other"), "oops")
    jobqd({"daemon": dict(TWO_QUEUES["daemon"], shutdown_timeout=1)})
    payload = schedule(r, job("noop", id="undeliverable"), time.time() - 1, queue="other")
    entry = wait_dead(r, payload, queue="other")
    assert entry["queue"] == "other" and entry["id"] == "undeliverable", entry
    assert "not a list" in entry["error"] and qkey("queue", "other") in entry["error"], entry["error"]
    assert r.zcard(qkey("scheduled", "other")) == 0
    assert r.get(qkey("queue", "other")) == "oops"
    push(r, job("noop", id="fine"))
    assert get_result(r, "fine")["status"] == "ok"
