"""Flow control over every daemon serving a queue (README.md, "Flow
control"): pause/resume, the concurrency limit (and its slots coming back
when a worker or a whole daemon dies), the rate limit, weighted queues,
unique enqueues that say whether they queued, and the stored progress of
running jobs. Each rule is checked with two daemons on one Redis."""

import json
import os
import signal
import time

from jobqtest import get_result, job, jobq_cli, key, push, qkey, stat, wait_for

FAST = {"heartbeat_interval": "0.3", "heartbeat_ttl": "1.5"}


def jq(redis_server, *args, timeout=20):
    return jobq_cli(redis_server.url, *args, timeout=timeout)


def ok(p):
    assert p.returncode == 0, "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p.stdout


def two_daemons(jobqd, overrides):
    ds = [jobqd(overrides), jobqd(overrides)]
    for d in ds:
        wait_for(lambda: "ready:" in d.log(), 15, 0.05, d.name + " ready")
    return ds


def results(r, ids, timeout=20):
    return [get_result(r, i, timeout) for i in ids]


def max_overlap(intervals):
    """The most intervals (start, end) open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = cur = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        cur += step
        most = max(most, cur)
    return most


def test_pause_holds_every_daemon_and_resume_releases(r, jobqd, redis_server):
    two_daemons(jobqd, {"daemon": {"workers": 2}})
    time.sleep(0.3)  # every worker is blocked in BLMOVE on the empty queue
    out = ok(jq(redis_server, "pause", "default"))
    assert "paused" in out
    assert "already" in ok(jq(redis_server, "pause", "default"))
    ids = ["p%d" % i for i in range(20)]
    for i in ids:
        push(r, job("noop", id=i))
    time.sleep(1.5)
    # Nothing was taken: no result, no job in flight, all still waiting in order.
    assert r.llen(qkey("queue")) == 20
    assert [json.loads(x)["id"] for x in r.lrange(qkey("queue"), 0, -1)] == ids
    assert not any(r.exists(key("result", i)) for i in ids)
    assert stat(r, "processed") == 0
    status = json.loads(ok(jq(redis_server, "status", "--json")))
    [q] = [q for q in status["queues"] if q["name"] == "default"]
    assert q["paused"] is True and q["waiting"] == 20
    human = ok(jq(redis_server, "status"))
    assert any(l.startswith("default ") and l.rstrip().endswith("paused") for l in human.splitlines()), human
    t0 = time.time()
    assert "resumed" in ok(jq(redis_server, "resume", "default"))
    assert "not paused" in ok(jq(redis_server, "resume", "default"))
    done = results(r, ids, 10)
    assert all(x["status"] == "ok" for x in done)
    assert min(x["started_at"] for x in done) - t0 < 1.0  # resumed within the recheck time


def test_pause_holds_a_worker_blocked_since_its_last_commit(r, jobqd, redis_server):
    """After a job, a worker of one queue blocks in the take it sent with
    that job's commit; a pause that comes meanwhile holds it too."""
    d = jobqd({"daemon": {"workers": 1}})
    wait_for(lambda: "ready:" in d.log(), 15, 0.05, "ready")
    push(r, job("noop", id="before"))
    assert get_result(r, "before", 5)["status"] == "ok"
    time.sleep(0.2)  # the worker now waits in the take that rode with that commit
    assert "paused" in ok(jq(redis_server, "pause", "default"))
    ids = ["h%d" % i for i in range(5)]
    for i in ids:
        push(r, job("noop", id=i))
    time.sleep(1.5)
    assert [json.loads(x)["id"] for x in r.lrange(qkey("queue"), 0, -1)] == ids
    assert not any(r.exists(key("result", i)) for i in ids)
    assert "resumed" in ok(jq(redis_server, "resume", "default"))
    assert all(x["status"] == "ok" for x in results(r, ids, 10))


def test_concurrency_limit_over_two_daemons(r, jobqd):
    two_daemons(jobqd, {"daemon": {"workers": 3}, "queue.default": {"concurrency": 2}})
    ids = ["c%d" % i for i in range(12)]
    t0 = time.time()
    for i in ids:
        push(r, job("sleep", id=i, args={"seconds": 0.25}))
    done = results(r, ids, 20)
    elapsed = max(x["finished_at"] for x in done) - t0
    assert max_overlap([(x["started_at"], x["finished_at"]) for x in done]) == 2
    workers = {x["worker"].rsplit(":", 1)[0] for x in done}
    assert len({x["worker"] for x in done}) >= 2, workers
    assert 1.4 < elapsed < 4.0, elapsed  # 12 x 0.25 s two at a time
    wait_for(lambda: r.hlen(qkey("running")) == 0, 5, 0.05, "every slot freed")


def test_concurrency_slots_come_back_when_workers_or_daemons_die(r, jobqd):
    conf = {"daemon": {"workers": 2, "test_handlers": "yes", **FAST}, "queue.default": {"concurrency": 1}}
    a, b = two_daemons(jobqd, conf)
    # A worker killed under its job: the supervisor settles it and frees the slot.
    push(r, job("crash", id="boom"))
    push(r, job("noop", id="after-crash"))
    assert "worker died" in get_result(r, "boom", 15)["error"]
    assert get_result(r, "after-crash", 10)["status"] == "ok"
    # A whole daemon killed while it holds the only slot: the other one
    # reclaims its in-flight list (and the slot with it) once its lease lapses.
    push(r, job("sleep", id="held", args={"seconds": 1}))

    def holder():
        for d in (a, b):
            info = r.hget(key("daemons"), "%s:%d" % (os.uname().nodename, d.pid)) or ""
            if '"held"' in info:
                return d
        return None

    victim = wait_for(holder, 10, 0.05, "the job holding the slot to run")
    push(r, job("noop", id="after-death"))
    os.kill(victim.pid, signal.SIGKILL)  # its workers die with it (PR_SET_PDEATHSIG)
    victim.proc.wait(10)
    assert get_result(r, "after-death", 20)["status"] == "ok"
    assert get_result(r, "held", 10)["status"] == "ok"  # put back, then run by the survivor
    wait_for(lambda: r.hlen(qkey("running")) == 0, 5, 0.05, "every slot freed")


def test_rate_limit_over_two_daemons(r, jobqd):
    limit, n = 20, 80
    two_daemons(jobqd, {"daemon": {"workers": 2, "queues": "default,slow"},
                        "queue.default": {"rate_limit": "%d/1s" % limit},
                        "queue.slow": {"rate_limit": "15/10s"}})
    # Exactly the limit within a period, counted in Redis over both daemons.
    for i in range(25):
        push(r, job("noop", id="s%d" % i), queue="slow")
    ids = ["r%d" % i for i in range(n)]
    pipe = r.pipeline()
    for i in ids:
        pipe.rpush(qkey("queue"), job("noop", id=i))
    pipe.execute()
    starts = sorted(x["started_at"] for x in results(r, ids, 20))
    # At most `limit` starts in any sliding second. Redis counts the takes
    # (Redis time); a worker stamps started_at a little later, by as much as
    # the machine's scheduling delay, so the window checked is 50 ms short.
    most = max(sum(1 for t in starts[i:] if t < s + 0.95) for i, s in enumerate(starts))
    exact = max(sum(1 for t in starts[i:] if t < s + 1.0) for i, s in enumerate(starts))
    assert most <= limit, (most, exact)
    # The rate achieved: the jobs after the first second's worth, over the
    # time they took; within 5 % of the limit.
    span = starts[-1] - starts[0]
    rate = (n - limit) / span
    print("rate limit %d/1s: %d jobs, achieved %.2f jobs/s, at most %d (%d) in a sliding 0.95 s (1 s)"
          % (limit, n, rate, most, exact))
    assert abs(rate - limit) / limit < 0.05, (rate, span)
    assert stat(r, "processed", "slow") == 15 and r.llen(qkey("queue", "slow")) == 10
    assert r.zcard(qkey("starts", "slow")) == 15


def test_weighted_queues_share_by_weight(r, jobqd):
    n = 3000
    pipe = r.pipeline(transaction=False)
    for q in ("critical", "default", "low"):
        for i in range(n):
            pipe.rpush(qkey("queue", q), job("noop", id="%s%d" % (q, i)))
    pipe.execute()
    two_daemons(jobqd, {"daemon": {"workers": 2, "batch_size": 1, "queues": "critical:6,default:3,low:1"}})
    wait_for(lambda: sum(stat(r, "processed", q) for q in ("critical", "default", "low")) == 3 * n, 60, 0.1,
             "every job done")
    pipe = r.pipeline(transaction=False)
    for q in ("critical", "default", "low"):
        for i in range(n):
            pipe.get(key("result", "%s%d" % (q, i)))
    done = sorted((json.loads(x) for x in pipe.execute()), key=lambda x: x["started_at"])
    first = done[:4000]  # while every queue still had jobs (critical runs dry near 5000)
    share = {q: sum(1 for x in first if x["queue"] == q) / len(first) for q in ("critical", "default", "low")}
    print("weighted 6:3:1 over the first 4000 jobs: %s" % ", ".join("%s %.3f" % kv for kv in share.items()))
    assert abs(share["critical"] - 0.6) < 0.03, share
    assert abs(share["default"] - 0.3) < 0.03, share
    assert abs(share["low"] - 0.1) < 0.03, share


def test_unique_enqueue_answers_queued_or_duplicate(r, redis_server):
    ok(jq(redis_server, "functions", "--load"))
    assert r.execute_command("FCALL", "jobq_version", 0) == 5
    payload = job("noop", id="u1")
    first = r.execute_command("FCALL", "jobq_enqueue_unique_ex", 1, qkey("queue"), payload)
    again = r.execute_command("FCALL", "jobq_enqueue_unique_ex", 1, qkey("queue"), payload)
    assert first == ["u1", "queued"] and again == ["u1", "duplicate"], (first, again)
    assert r.execute_command("FCALL", "jobq_enqueue_unique", 1, qkey("queue"), payload) == "u1"  # unchanged form
    assert r.llen(qkey("queue")) == 1
    p = jq(redis_server, "enqueue", "--unique", "--id", "u2", "noop")
    assert p.returncode == 0 and p.stdout.strip() == "u2" and p.stderr == "", p
    p = jq(redis_server, "enqueue", "--unique", "--id", "u2", "noop")
    assert p.returncode == 0 and p.stdout.strip() == "u2" and "already queued (unique)" in p.stderr, p
    assert r.llen(qkey("queue")) == 2


def test_progress_is_stored_and_shown_while_running(r, jobqd, redis_server):
    jobqd({"daemon": {"workers": 1, "test_handlers": "yes", **FAST}})
    # 50 reports in 0.1 s: most are dropped by the 10-per-second limit, the
    # final 1.0 never is; then the job runs on for 2 s.
    push(r, job("progress", id="pg", args={"steps": 50, "seconds": 0.1, "after": 2}))

    def stored():
        raw = r.get(key("progress", "pg"))
        return json.loads(raw) if raw and json.loads(raw)["progress"] == 1 else None

    p = wait_for(stored, 10, 0.02, "the final progress stored")
    assert p["message"] == "done" and p["id"] == "pg" and p["event"] == "progress", p
    assert 0 < r.ttl(key("progress", "pg")) <= 60 + 60
    assert not r.exists(key("result", "pg"))
    res = jq(redis_server, "result", "pg")
    assert res.returncode == 3 and "running" in res.stderr and "progress 100%: done" in res.stderr, res

    def worker_progress():
        s = json.loads(ok(jq(redis_server, "status", "--json")))
        for d in s["daemons"]:
            for w in d.get("workers", []):
                if w.get("job") == "pg" and "progress" in w:
                    return w["progress"]
        return None

    wp = wait_for(worker_progress, 5, 0.1, "status to show the job's progress")
    assert wp["fraction"] == 1 and wp["message"] == "done", wp
    human = ok(jq(redis_server, "status"))
    assert "PROGRESS" in human and "100% done" in human, human
    assert get_result(r, "pg", 10)["status"] == "ok"


def test_unlimited_queue_keeps_the_blocking_take(r, jobqd):
    """A queue without limits, next to a limited one, is still served by a
    blocking BLMOVE that wakes the moment a job arrives."""
    d = jobqd({"daemon": {"workers": 1, "queues": "limited,default"}, "queue.limited": {"concurrency": 1}})
    wait_for(lambda: "ready:" in d.log(), 15, 0.05, "ready")
    time.sleep(0.3)
    before = r.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0)
    lags = []
    for i in range(20):
        push(r, job("noop", id="b%d" % i, enqueued_at=time.time()))
        res = get_result(r, "b%d" % i, 5)
        lags.append(res["started_at"] - res["enqueued_at"])
        time.sleep(0.02)
    after = r.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0)
    lags.sort()
    print("unlimited next to limited: enqueue -> start median %.2f ms, BLMOVE calls %d" % (lags[10] * 1e3,
                                                                                        after - before))
    assert after - before >= 20
    assert lags[10] < 0.01, lags  # not a poll: a poll of the limited queue is every 50 ms
