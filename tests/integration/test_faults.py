"""The fault suite: jobq's promise that a job taken by a worker is never
lost, proven by injecting the faults (issue 3).

1. 2,000 short jobs, 20 random workers SIGKILLed while they run, then the
   whole daemon SIGKILLed with its workers and started again.
2. Redis SIGKILLed and restarted (appendonly yes, appendfsync always) in the
   middle of 1,000 jobs; CLIENT KILL TYPE normal in the middle of 1,000 more.
3. A hung handler killed at its timeout, crashing handlers, a failing job
   retried into jobq:{default}:dead, a poison job quarantined after
   poison_limit.
4. Two daemons on one Redis, one SIGKILLed: the other reclaims its jobs (at
   once for a dead pid on this host, else when its lease on the queue in
   jobq:{default}:leases lapses); a daemon whose lease lapsed takes no job.
5. SIGTERM under load: exit 0 after shutdown_timeout, unfinished jobs back.
6. Delayed jobs run on time; retry backoff (with jitter) is honoured.
7. Worker recycling (max_jobs_per_worker).
8. Time to redeliver a job whose worker was SIGKILLed.

How executions are counted (duplicates): the jobs of cases 1 and 2 are
`wordcount` jobs whose URL names the job (http://127.0.0.1:P/run/<id>) on
an HTTP server inside the test process; the server counts requests per id,
so it sees every run of the handler that started, including runs whose
worker was killed before their outcome was written. "duplicates" is the
number of jobs that ran more than once. Figures are printed (pytest -s) and
appended to <JOBQ_BUILD>/fault-figures.txt.

Each test has its own time budget (SIGALRM) within conftest's limit, and
every wait in it is bounded.
"""

import json
import os
import random
import re
import signal
import statistics
import time
from collections import Counter

import pytest

import faultlib
import jobqtest
from faultlib import (CountingHttpServer, EventCollector, FaultRedis, children, cpu_seconds, figures,
                      kill_daemon_hard, mget_results, queue_state, retrying, wait_all_results,
                      wait_workers, worker_of_job)
from jobqtest import (dead_entries, get_result, holders, inflight_jobs, job, key, leases, push, qkey, redis_time_ms,
                      schedule, stat, wait_for, worker_pid_of_key)

QUEUE = qkey("queue", "default")


# ---------------------------------------------------------------- fixtures

def budget(seconds):
    """Time budget of a test (seconds, for the plain build; doubled for a
    sanitizer build)."""
    def deco(fn):
        fn.fault_budget = seconds
        return fn
    return deco


def persistent_redis(fn):
    """The test's redis-server runs with appendonly yes, appendfsync always."""
    fn.persistent_redis = True
    return fn


class FaultBudgetExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _fault_budget(request, _time_limit):
    """A tighter alarm than conftest's per-test limit (it replaces that
    alarm; conftest's teardown cancels it)."""
    seconds = getattr(request.function, "fault_budget", 60)
    if "san" in jobqtest.build_dir().name:
        seconds *= 2
    seconds = int(min(seconds, int(os.environ.get("JOBQ_TEST_TIMEOUT", "120"))))

    def expired(signum, frame):
        raise FaultBudgetExceeded("fault test exceeded its budget of %d s" % seconds)

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    yield
    signal.alarm(0)


@pytest.fixture
def redis_server(request, tmp_path):
    """Overrides conftest's: a FaultRedis (restartable; persistent for tests
    marked @persistent_redis). conftest's r and jobqd use it."""
    server = FaultRedis(tmp_path / "redis", appendonly=getattr(request.function, "persistent_redis", False))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def counting_http():
    server = CountingHttpServer().start()
    yield server
    server.stop()


@pytest.fixture
def events(redis_server):
    collector = EventCollector(redis_server).start()
    yield collector
    collector.stop()


# ---------------------------------------------------------------- helpers

def ready(r, d, job_id=None):
    """Wait until daemon d serves jobs (one noop round trip)."""
    job_id = job_id or "warm-" + d.name
    r.rpush(QUEUE, job("noop", id=job_id))
    res = get_result(r, job_id, timeout=15)
    assert res["status"] == "ok", res


def push_all(r, payloads, chunk=500):
    for i in range(0, len(payloads), chunk):
        retrying(r.rpush, QUEUE, *payloads[i:i + chunk])


def processed(r):
    return retrying(stat, r, "processed")


def log_lines(text, pattern):
    return [line for line in text.splitlines() if re.search(pattern, line)]


def pid_of_worker(worker_id):
    """The pid in a worker id (host:pid) or an in-flight list's name."""
    return worker_pid_of_key(worker_id)


def held_by(r, daemon_id, queue="default"):
    """What daemon_id holds of queue: (its in-flight lists in
    jobq:{queue}:holders, its lease in jobq:{queue}:leases or None)."""
    lists = sorted(k for k, d in retrying(holders, r, queue).items() if d == daemon_id)
    return lists, retrying(leases, r, queue).get(daemon_id)


def executions(http, ids):
    """(never ran, ran more than once, extra runs) from the HTTP counts."""
    counts = http.snapshot()
    never = [i for i in ids if counts[i] == 0]
    dups = [i for i in ids if counts[i] > 1]
    extra = sum(counts[i] - 1 for i in dups)
    return never, dups, extra


# ---------------------------------------------------------------- 1. kills

@budget(110)
def test_worker_and_daemon_kills_lose_no_job(r, redis_server, jobqd, counting_http, events):
    N, KILLS = 2000, 20
    rng = random.Random(int(os.environ.get("JOBQ_FAULT_SEED", "0")) or None)
    overrides = {
        "daemon": {"workers": 4, "heartbeat_interval": 1, "heartbeat_ttl": 3, "shutdown_timeout": 5},
        # Enough attempts and poison headroom that random kills cannot
        # legitimately fail a job: every job must end ok.
        "jobs": {"max_attempts": 10, "poison_limit": 10, "retry_backoff_base": 0.02,
                 "retry_backoff_max": 0.2, "timeout": 30},
    }
    d = jobqd(overrides)
    ready(r, d)
    ids = ["k%04d" % i for i in range(N)]
    payloads = [job("wordcount", id=i, args={"url": counting_http.url(i, round(rng.uniform(2, 10), 1))})
                for i in ids]
    t_start = time.monotonic()
    push_all(r, payloads)

    # 20 random workers SIGKILLed while they run: only workers that have been
    # up for 50 ms (a worker killed before doing anything is not "running" a
    # job and would only make the supervisor back off).
    kills = []
    first_seen = {}
    while len(kills) < KILLS:
        assert time.monotonic() - t_start < 30, "could not make %d kills in 30 s" % KILLS
        now = time.monotonic()
        kids = children(d.pid)
        for k in kids:
            first_seen.setdefault(k, now)
        eligible = [k for k in kids if now - first_seen[k] >= 0.05]
        if eligible:
            victim = rng.choice(eligible)
            try:
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)
            except ProcessLookupError:
                pass
        time.sleep(rng.uniform(0.03, 0.06))
    before_daemon_kill = queue_state(r)
    assert before_daemon_kill["queue"] > 0, (
        "the queue drained before the daemon kill (%r): the test needs more or longer jobs"
        % before_daemon_kill)

    # The whole daemon with its workers, like a power cut.
    held = {}

    def note_inflight():
        held.update(jobqtest.inflight_jobs(r))

    old_id = "%s:%d" % (os.uname().nodename, d.pid)
    kill_daemon_hard(d, r, before_kill=note_inflight)
    t_daemon_kill = time.monotonic()
    at_kill = queue_state(r)
    held_jobs = sum(len(v) for v in held.values())
    assert at_kill["inflight"] == held_jobs > 0, (
        "expected jobs in the killed workers' in-flight lists: %r, %r" % (held, at_kill))
    time.sleep(0.2)
    assert queue_state(r) == at_kill, "something moved jobs while no jobqd was running"

    d2 = jobqd(overrides, name="jobqd-restarted")
    wait_all_results(r, ids, timeout=60, status="ok")
    t_done = time.monotonic()

    # The restarted daemon reclaimed its predecessor's in-flight lists (a
    # dead pid on its own host: at once, at its start).
    log2 = d2.log()
    assert "daemon %s is gone; its lease on queue default is dropped" % old_id in log2, (
        "the restarted jobqd did not log dropping %s:\n%s" % (old_id, log2[-3000:]))
    put_back = [int(n) for n in re.findall(
        r"put (\d+) in-flight job\(s\) of gone daemon\(s\) back on queue default", log2)]
    assert sum(put_back) == at_kill["inflight"], (put_back, at_kill)
    assert retrying(r.hget, key("daemons"), old_id) is None, "dead daemon still registered"
    assert held_by(r, old_id) == ([], None), "the dead daemon still holds lists or a lease"
    assert not [k for k in held if retrying(r.exists, k)], "a dead worker's in-flight list is left"

    results = mget_results(r, ids)
    not_ok = {i: v for i, v in results.items() if not v or v.get("status") != "ok"}
    lost = len(not_ok)
    assert lost == 0, "lost or failed jobs: %r" % dict(list(not_ok.items())[:5])
    final = queue_state(r)
    assert final == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}, final

    never, dups, extra = executions(counting_http, ids)
    assert not never, "jobs with an ok result whose handler never ran: %r" % never[:10]
    evs = events.snapshot()
    died = [e for e in evs if e.get("event") == "retrying" and "worker died" in (e.get("error") or "")]
    for e in died:
        assert "killed by signal SIGKILL" in e["error"], e
    ok_events = Counter(e["id"] for e in evs if e.get("event") == "ok" and e.get("id") in results)
    retried = sum(1 for v in results.values() if v["attempts"] > 1)
    # Most random kills land while a 2-10 ms handler runs (the rest between
    # two jobs): the suite must really have killed running jobs.
    assert len(died) >= KILLS // 2, "only %d of %d kills hit a running job" % (len(died), KILLS)
    assert retried == len({e["id"] for e in died}), (retried, len(died))
    figures("kills", jobs=N, worker_kills=len(kills), kills_during_a_job=len(died),
            daemon_kills=1, inflight_at_daemon_kill=at_kill["inflight"],
            waiting_at_daemon_kill=at_kill["queue"], lost=lost,
            duplicates=len(dups), extra_runs=extra, results_with_attempts_gt_1=retried,
            duplicate_ok_events=sum(1 for c in ok_events.values() if c > 1),
            ok_events=sum(ok_events.values()),
            restart_to_all_done_s=t_done - t_daemon_kill, total_s=t_done - t_start,
            method="executions counted per job by the HTTP server its wordcount job fetches")


# ---------------------------------------------------------------- 2. Redis

@persistent_redis
@budget(100)
def test_redis_restart_and_client_kill_lose_no_job(r, redis_server, jobqd, counting_http):
    workers = 4
    d = jobqd({"daemon": {"workers": workers, "heartbeat_interval": 1, "heartbeat_ttl": 5},
               "jobs": {"max_attempts": 1}})  # an outage must not cost an attempt
    ready(r, d)
    pid0 = d.pid
    workers0 = wait_workers(d, workers)

    # Phase 1: Redis SIGKILLed (appendfsync always keeps every acknowledged
    # write) and started again 1.5 s later, in the middle of 1,000 jobs.
    ids = ["r%04d" % i for i in range(1000)]
    push_all(r, [job("wordcount", id=i, args={"url": counting_http.url(i, 3)}) for i in ids])
    base = processed(r)
    wait_for(lambda: processed(r) - base >= 250, 30, 0.01, "250 jobs done")
    mark = len(d.log())
    cpu0 = cpu_seconds([d.pid] + workers0)
    redis_server.kill(signal.SIGKILL)
    t_down = time.monotonic()
    time.sleep(1.5)
    outage_cpu = cpu_seconds([d.pid] + workers0) - cpu0
    outage = time.monotonic() - t_down
    d.assert_running()
    assert children(d.pid) == workers0, "workers exited or were replaced during the outage"
    redis_server.start()
    t_up = time.monotonic()
    wait_all_results(r, ids, timeout=30, status="ok")
    t_all = time.monotonic() - t_up
    d.assert_running()
    assert d.pid == pid0
    log = d.log()[mark:]
    down_lines = log_lines(log, r"Redis unavailable|lost Redis connection")
    again_lines = log_lines(log, r"connected to Redis again")
    assert again_lines, "no 'connected to Redis again' in the log:\n%s" % log[-3000:]
    assert 1 <= len(down_lines) <= 2 * (workers + 1), (
        "want one line per process when Redis goes away, got %d:\n%s"
        % (len(down_lines), "\n".join(down_lines[:40])))
    assert len(again_lines) <= 2 * (workers + 1), "\n".join(again_lines[:40])
    # Reconnecting with backoff, not busy-looping: all jobqd processes
    # together used well under a third of a core while Redis was away.
    assert outage_cpu / outage < 0.33, "jobqd used %.2f s of CPU during a %.1f s outage" % (
        outage_cpu, outage)
    never, dups, extra = executions(counting_http, ids)
    assert not never, never[:10]
    # A result computed while Redis was away is written when it is back, and
    # a take whose reply was lost never ran: nothing needs to run twice.
    assert not dups, "jobs run more than once across the Redis restart: %r" % dups[:10]
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}

    # Phase 2: CLIENT KILL TYPE normal twice in the middle of 1,000 more.
    ids2 = ["c%04d" % i for i in range(1000)]
    mark2 = len(d.log())
    push_all(r, [job("wordcount", id=i, args={"url": counting_http.url(i, 3)}) for i in ids2])
    base = processed(r)
    killed_clients = 0
    # Many kills: each is a chance to cut a worker's connection between a
    # take (or commit) that Redis executed and its reply.
    client_kill_at = range(50, 950, 50)
    for at in client_kill_at:
        wait_for(lambda: processed(r) - base >= at, 30, 0.01, "%d jobs done" % at)
        killed_clients += int(redis_server.cli("CLIENT", "KILL", "TYPE", "normal"))
    # 1,000 jobs of 3 ms on 4 workers take ~1 s: 20 s means stuck.
    wait_all_results(r, ids2, timeout=20, status="ok")
    d.assert_running()
    assert d.pid == pid0
    assert killed_clients >= workers + 1, "CLIENT KILL killed only %d clients" % killed_clients
    log2 = d.log()[mark2:]
    assert log_lines(log2, r"lost Redis connection"), log2[-3000:]
    assert log_lines(log2, r"connected to Redis again"), log2[-3000:]
    never2, dups2, extra2 = executions(counting_http, ids2)
    assert not never2, never2[:10]
    assert not dups2, "jobs run more than once across CLIENT KILLs: %r" % dups2[:10]
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}
    assert len(log_lines(d.log(), r"jobqd .* starting")) == 1, "jobqd restarted itself"
    figures("redis", jobs=len(ids) + len(ids2), redis_restarts=1, outage_s=outage,
            outage_cpu_s=outage_cpu, all_done_after_restart_s=t_all,
            log_lines_down=len(down_lines), log_lines_again=len(again_lines),
            client_kills=len(client_kill_at), clients_killed=killed_clients, lost=0,
            duplicates_restart=len(dups), duplicates_client_kill=len(dups2), jobqd_restarted=0)


# ---------------------------------------------------------------- 3. failures

TEST_HANDLERS = {"daemon": {"workers": 2, "test_handlers": "yes", "kill_grace": 1, "shutdown_timeout": 2},
                 "jobs": {"retry_backoff_base": 0.1, "retry_backoff_max": 1}}


@budget(30)
def test_hung_handler_killed_at_timeout(r, jobqd):
    d = jobqd(TEST_HANDLERS)
    ready(r, d)
    workers0 = wait_workers(d, 2)
    r.rpush(QUEUE, job("hang", id="h1", timeout=1, max_attempts=1))
    t0 = time.time()
    res = get_result(r, "h1", timeout=10)
    assert res["status"] == "failed", res
    assert "timed out after 1" in res["error"], res["error"]
    assert res["attempts"] == 1
    took = res["finished_at"] - res["started_at"]
    # SIGTERM at 1 s; the hang handler dies of it (else SIGKILL at 1 + 1 s).
    assert 1.0 <= took <= 1.0 + 1.0 + 0.5, "killed %.2f s after its start, want ~1 s" % took
    assert not faultlib.alive(pid_of_worker(res["worker"])), "the hung worker is still alive"
    dead = wait_for(lambda: [e for e in dead_entries(r) if e.get("id") == "h1"], 5, 0.02, "h1's dead entry")
    assert len(dead) == 1 and "timed out after 1" in dead[0]["error"], dead
    # A new worker replaced it and the daemon goes on.
    ready(r, d, "after-hang")
    assert len(wait_workers(d, 2)) == 2 and children(d.pid) != workers0
    print("\nhung job stopped %.3f s after it started (%.3f s after push)" % (took, res["finished_at"] - t0))


@budget(30)
def test_crashing_handlers_fail_with_their_signal(r, jobqd):
    d = jobqd(TEST_HANDLERS)
    ready(r, d)
    r.rpush(QUEUE, job("crash", id="segv1", max_attempts=1), job("abort", id="abrt1", max_attempts=1))
    segv = get_result(r, "segv1", timeout=10)
    abrt = get_result(r, "abrt1", timeout=10)
    assert segv["status"] == "failed" and segv["attempts"] == 1, segv
    assert "worker died" in segv["error"] and "SIGSEGV" in segv["error"], segv["error"]
    assert re.search(r"max RSS \d+ KiB, CPU [\d.]+ s", segv["error"]), segv["error"]
    assert abrt["status"] == "failed" and "SIGABRT" in abrt["error"], abrt
    d.assert_running()
    ready(r, d, "after-crash")
    wait_workers(d, 2)


@budget(30)
def test_failing_job_retried_then_dead_letter(r, jobqd, events):
    d = jobqd(TEST_HANDLERS)
    ready(r, d)
    message = "boom: disk on fire (f1)"
    r.rpush(QUEUE, job("fail", id="f1", args={"message": message}, max_attempts=3))
    res = get_result(r, "f1", timeout=15)
    assert res["status"] == "failed", res
    assert res["attempts"] == 3, res
    assert message in res["error"], res["error"]
    dead = wait_for(lambda: [e for e in dead_entries(r) if e.get("id") == "f1"], 5, 0.02, "dead entry of f1")
    assert len(dead) == 1, dead
    entry = dead[0]
    assert entry["attempts"] == 3, entry
    errors = entry["errors"]
    assert [e["attempt"] for e in errors] == [1, 2, 3], errors
    for e in errors:
        assert message in e["error"], e
    ats = [e["at"] for e in errors]
    assert ats == sorted(ats), ats
    retrying_events = events.of("retrying", "f1")
    assert [e["attempt"] for e in retrying_events] == [1, 2], retrying_events
    assert all(message in e["error"] for e in retrying_events), retrying_events
    assert retrying(r.zcard, qkey("scheduled")) == 0


@budget(30)
def test_poison_job_quarantined_after_poison_limit(r, jobqd, events):
    d = jobqd({"daemon": TEST_HANDLERS["daemon"],
               "jobs": {"retry_backoff_base": 0.05, "retry_backoff_max": 0.2, "poison_limit": 3}})
    ready(r, d)
    r.rpush(QUEUE, job("crash", id="p1", max_attempts=10))
    dead = wait_for(lambda: [e for e in dead_entries(r) if e.get("id") == "p1"], 15, 0.02,
                    "dead entry of p1")
    entry = dead[0]
    assert len(dead) == 1, dead
    assert entry["error"].startswith("poison job:"), entry["error"]
    assert "SIGSEGV" in entry["error"], entry["error"]
    assert entry["attempts"] == 3, entry
    assert len(entry["errors"]) == 3 and all("SIGSEGV" in e["error"] for e in entry["errors"]), entry
    res = get_result(r, "p1", timeout=5)
    assert res["status"] == "failed" and res["attempts"] == 3 and "poison" in res["error"], res
    time.sleep(0.5)  # nothing runs it a fourth time
    assert [e["attempt"] for e in events.of("retrying", "p1")] == [1, 2], events.of(job_id="p1")
    assert len(events.of("failed", "p1")) == 1
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 1}
    d.assert_running()
    ready(r, d, "after-poison")


# ---------------------------------------------------------------- 4. daemons

@pytest.mark.parametrize("path", ["same-host", "other-host"])
@budget(40)
def test_other_daemon_reclaims_a_killed_daemons_jobs(r, jobqd, path):
    """same-host: the killed daemon's pid is dead on this host, so the other
    daemon reclaims at once, long before its lease on the queue lapses.
    other-host: the killed daemon's registry entry is rewritten (while it is
    frozen, before its death) to name another host, as if that host had
    vanished: only the lapse of its lease in jobq:{default}:leases
    (heartbeat_ttl 2 s after its last renewal) lets the other daemon put
    back the jobs that jobq:{default}:holders says it holds."""
    ttl, interval = 2, 0.5
    overrides = {"daemon": {"workers": 2, "heartbeat_interval": interval, "heartbeat_ttl": ttl,
                            "shutdown_timeout": 2},
                 "jobs": {"max_attempts": 1}}
    a = jobqd(overrides, name="jobqd-a")
    b = jobqd(overrides, name="jobqd-b")
    ready(r, a, "warm-1")
    wait_for(lambda: retrying(r.hlen, key("daemons")) == 2, 10, 0.05, "both daemons registered")
    a_workers = wait_workers(a, 2)
    b_workers = wait_workers(b, 2)
    a_id = "%s:%d" % (os.uname().nodename, a.pid)
    b_id = "%s:%d" % (os.uname().nodename, b.pid)
    wait_for(lambda: set(retrying(leases, r)) == {a_id, b_id}, 10, 0.05, "a lease of each daemon")
    ids = ["d%d" % i for i in range(8)]
    push_all(r, [job("sleep", id=i, args={"seconds": 1.0}) for i in ids])

    def a_busy():
        lists = {k: v for k, v in jobqtest.inflight_jobs(r).items() if pid_of_worker(k) in a_workers}
        return lists if sum(len(v) for v in lists.values()) == 2 else None

    wait_for(a_busy, 10, 0.01, "both of jobqd-a's workers running a job")
    time.sleep(0.1)
    held = {}
    lease_left = [None]
    heartbeat_left = [None]
    registered = [None]

    def before_kill():
        held.update({k: v for k, v in jobqtest.inflight_jobs(r).items() if pid_of_worker(k) in a_workers})
        registered[0] = held_by(r, a_id)
        if path == "other-host":
            info = json.loads(r.hget(key("daemons"), a_id))
            info["host"] = "vanished-host.invalid"
            r.hset(key("daemons"), a_id, json.dumps(info))
        lease_left[0] = (r.zscore(qkey("leases"), a_id) - redis_time_ms(r)) / 1000.0
        heartbeat_left[0] = r.pttl(key("daemon", a_id)) / 1000.0

    kill_daemon_hard(a, r, before_kill=before_kill)
    t_kill = time.time()
    held_ids = [json.loads(p)["id"] for v in held.values() for p in v]
    assert len(held_ids) == 2, held
    # What the reclaim goes by: jobqd-a's lists, registered as its own, and
    # a live lease.
    lists, lease = registered[0]
    assert set(held) <= set(lists), ("jobqd-a's busy in-flight lists are not in jobq:{default}:holders "
                                     "under its id", held, lists)
    assert lease is not None and 0 < lease_left[0] <= ttl + 0.05, (
        "jobqd-a had no live lease on default: %r, %r s left" % (lease, lease_left[0]))
    assert heartbeat_left[0] > 0, "jobqd-a had no live heartbeat key"

    def reclaimed():
        return (not any(retrying(r.llen, k) for k in held)
                and not set(held) & set(retrying(holders, r)))

    wait_for(reclaimed, 10, 0.01, "jobqd-b to reclaim jobqd-a's in-flight jobs")
    t_reclaimed = time.time() - t_kill
    results = wait_all_results(r, ids, timeout=20, status="ok")
    b_ids = {"%s:%d" % (os.uname().nodename, p) for p in b_workers}
    for i in held_ids:
        assert results[i]["worker"] in b_ids, (i, results[i], b_ids)
    redeliver = [results[i]["started_at"] - t_kill for i in held_ids]
    if path == "same-host":
        # Dead pid on this host: reclaimed at jobqd-b's next check, while
        # jobqd-a's lease still runs.
        assert t_reclaimed <= interval + 0.5, "reclaim took %.2f s" % t_reclaimed
        assert t_reclaimed < lease_left[0] - 0.05, (
            "reclaimed %.2f s after the kill, not before the lease lapsed (%.2f s left): the dead pid "
            "was not noticed" % (t_reclaimed, lease_left[0]))
    else:
        # Not before the lease lapses, and at the first check after.
        assert t_reclaimed >= lease_left[0] - 0.05, (
            "reclaimed %.2f s after the kill, but the lease had %.2f s left"
            % (t_reclaimed, lease_left[0]))
        assert t_reclaimed <= lease_left[0] + interval + 0.5, (
            "reclaimed %.2f s after the kill; the lease lapsed after %.2f s"
            % (t_reclaimed, lease_left[0]))
    wait_for(lambda: retrying(r.hget, key("daemons"), a_id) is None, 5, 0.05,
             "jobqd-a forgotten from jobq:daemons")
    assert held_by(r, a_id) == ([], None), "jobqd-a still holds lists or a lease on default"
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}
    b.assert_running()
    blog = b.log()
    assert "daemon %s is gone; its lease on queue default is dropped" % a_id in blog, blog[-3000:]
    put_back = [int(n) for n in re.findall(
        r"put (\d+) in-flight job\(s\) of gone daemon\(s\) back on queue default", blog)]
    assert sum(put_back) == len(held_ids), (put_back, held_ids)
    figures("daemon-reclaim-" + path, daemons=2, killed=1, jobs=len(ids), held_by_killed=len(held_ids),
            lease_left_at_kill_s=lease_left[0], heartbeat_left_at_kill_s=heartbeat_left[0],
            reclaim_s=t_reclaimed, held_jobs_started_again_after_s=max(redeliver), lost=0)


@pytest.mark.parametrize("path", ["same-host", "other-host"])
@budget(40)
def test_reclaim_covers_the_queues_only_the_dead_daemon_served(r, jobqd, path):
    """jobqd-a serves default and other, jobqd-b default only. jobqd-a is
    killed while it runs a job of other: jobqd-b puts that job back on
    jobq:{other}:queue (without running it), and drops jobqd-a's lease and
    holders there, at once for a dead pid on this host, after the lease
    lapses for another host. A daemon serving other then runs it."""
    ttl, interval = 2, 0.5
    common = {"heartbeat_interval": interval, "heartbeat_ttl": ttl, "shutdown_timeout": 2}
    a = jobqd({"daemon": dict(common, workers=2, queues="default,other"), "jobs": {"max_attempts": 1}},
              name="jobqd-a")
    b = jobqd({"daemon": dict(common, workers=2, queues="default"), "jobs": {"max_attempts": 1}},
              name="jobqd-b")
    ready(r, a, "warm-1")
    wait_for(lambda: retrying(r.hlen, key("daemons")) == 2, 10, 0.05, "both daemons registered")
    a_id = "%s:%d" % (os.uname().nodename, a.pid)
    a_workers = wait_workers(a, 2)
    payload = job("sleep", id="o1", args={"seconds": 5})
    r.rpush(qkey("queue", "other"), payload)
    k, pid = worker_of_job(r, payload)
    assert pid in a_workers and k.startswith(qkey("inflight", "other") + ":"), (k, pid)
    lease_left = [None]

    def before_kill():
        if path == "other-host":
            info = json.loads(r.hget(key("daemons"), a_id))
            info["host"] = "vanished-host.invalid"
            r.hset(key("daemons"), a_id, json.dumps(info))
        lease_left[0] = (r.zscore(qkey("leases", "other"), a_id) - redis_time_ms(r)) / 1000.0

    kill_daemon_hard(a, r, before_kill=before_kill)
    t_kill = time.time()
    assert retrying(r.lrange, k, 0, -1) == [payload]
    wait_for(lambda: retrying(r.lrange, qkey("queue", "other"), 0, -1) == [payload], ttl + 5, 0.01,
             "jobqd-b to put o1 back on jobq:{other}:queue")
    t_reclaimed = time.time() - t_kill
    if path == "same-host":
        assert t_reclaimed <= interval + 0.5, "reclaim took %.2f s" % t_reclaimed
    else:
        assert lease_left[0] - 0.05 <= t_reclaimed <= lease_left[0] + interval + 0.5, (
            "reclaimed %.2f s after the kill, the lease had %.2f s left" % (t_reclaimed, lease_left[0]))
    assert not retrying(r.exists, k)
    assert held_by(r, a_id, "other") == ([], None), "jobqd-a still holds lists or a lease on other"
    assert held_by(r, a_id, "default") == ([], None), "jobqd-a still holds lists or a lease on default"
    time.sleep(0.5)
    assert retrying(r.get, key("result", "o1")) is None, "a daemon that does not serve other ran o1"
    assert retrying(r.llen, qkey("queue", "other")) == 1
    c = jobqd({"daemon": dict(common, workers=1, queues="other")}, name="jobqd-c")
    res = get_result(r, "o1", timeout=15)
    assert res["status"] == "ok" and res["queue"] == "other", res
    assert pid_of_worker(res["worker"]) in children(c.pid), res
    b.assert_running()
    figures("reclaim-unserved-queue-" + path, lease_left_at_kill_s=lease_left[0], reclaim_s=t_reclaimed)


@budget(40)
def test_reclaim_waits_for_the_lease_when_the_heartbeat_goes_first(r, jobqd):
    """A dead daemon's heartbeat key can vanish before its lease lapses (it
    is set a round trip before the leases are renewed, and a key with a TTL
    can be evicted under a volatile-* maxmemory policy). jobqd-a (serving
    other only, on a vanished host) dies holding a job; its heartbeat key
    is gone at once while its lease on other still runs. jobqd-b (default
    only) must still put the job back on jobq:{other}:queue once the lease
    lapses, not forget jobqd-a before that and leave the job in flight."""
    ttl, interval = 2, 0.5
    common = {"heartbeat_interval": interval, "heartbeat_ttl": ttl, "shutdown_timeout": 2}
    a = jobqd({"daemon": dict(common, workers=1, queues="other")}, name="jobqd-a")
    b = jobqd({"daemon": dict(common, workers=1, queues="default")}, name="jobqd-b")
    ready(r, b, "warm-b")
    wait_for(lambda: retrying(r.hlen, key("daemons")) == 2, 10, 0.05, "both daemons registered")
    a_id = "%s:%d" % (os.uname().nodename, a.pid)
    payload = job("sleep", id="o1", args={"seconds": 30})
    r.rpush(qkey("queue", "other"), payload)
    k, _ = worker_of_job(r, payload)
    lease_left = [None]

    def before_kill():
        info = json.loads(r.hget(key("daemons"), a_id))
        info["host"] = "vanished-host.invalid"
        r.hset(key("daemons"), a_id, json.dumps(info))
        r.delete(key("daemon", a_id))
        lease_left[0] = (r.zscore(qkey("leases", "other"), a_id) - redis_time_ms(r)) / 1000.0

    kill_daemon_hard(a, r, before_kill=before_kill)
    t_kill = time.time()
    assert lease_left[0] > interval + 0.2, lease_left
    wait_for(lambda: retrying(r.lrange, qkey("queue", "other"), 0, -1) == [payload],
             lease_left[0] + interval + 3, 0.02, "jobqd-b to put o1 back on jobq:{other}:queue")
    t_back = time.time() - t_kill
    assert t_back >= lease_left[0] - 0.05, "put back %.2f s after the kill, before the lease lapsed" % t_back
    assert not retrying(r.exists, k)
    assert held_by(r, a_id, "other") == ([], None)
    b.assert_running()


@budget(40)
def test_stalled_daemon_is_fenced_and_its_job_recorded_once(r, jobqd, events):
    """jobqd-a's supervisor is frozen (SIGSTOP; its workers go on) while one
    of its workers runs a 3 s job. Its lease lapses after heartbeat_ttl, so
    jobqd-b puts the job back and runs it again, and jobqd-a's workers take
    no job meanwhile (fenced). When jobqd-a's worker ends the job its outcome
    is not recorded a second time: one ok event, processed + 1. Once thawed,
    jobqd-a renews its lease and serves again."""
    ttl, interval = 2, 0.5
    overrides = {"daemon": {"workers": 2, "heartbeat_interval": interval, "heartbeat_ttl": ttl,
                            "shutdown_timeout": 5},
                 "jobs": {"max_attempts": 1}}
    a = jobqd(overrides, name="jobqd-a")
    a_workers = wait_workers(a, 2)
    ready(r, a, "warm-a")
    a_id = "%s:%d" % (os.uname().nodename, a.pid)
    a_worker_ids = {"%s:%d" % (os.uname().nodename, p) for p in a_workers}
    payload = job("sleep", id="stalled", args={"seconds": 3})
    r.rpush(QUEUE, payload)
    k, pid = worker_of_job(r, payload)
    assert pid in a_workers
    b = jobqd(overrides, name="jobqd-b")
    ready(r, b, "warm-b")
    b_workers = wait_workers(b, 2)
    b_worker_ids = {"%s:%d" % (os.uname().nodename, p) for p in b_workers}
    base = processed(r)
    os.kill(a.pid, signal.SIGSTOP)
    t_stop = time.time()
    try:
        # jobqd-b reclaims the job once the lease lapses and runs it again.
        wait_for(lambda: any(e.get("id") == "stalled" and e.get("event") == "started"
                             and e.get("worker") in b_worker_ids for e in events.snapshot()),
                 ttl + 3, 0.02, "jobqd-b to start the stalled daemon's job")
        t_again = time.time() - t_stop
        assert t_again >= ttl - interval - 0.1, "the job was taken from a live lease after %.2f s" % t_again
        # Fenced: jobs pushed now all run on jobqd-b, though jobqd-a's
        # workers (one idle, one about to finish) are alive and asking.
        ids = ["f%d" % i for i in range(12)]
        push_all(r, [job("sleep", id=i, args={"seconds": 0.1}) for i in ids])
        results = wait_all_results(r, ids, timeout=15, status="ok")
        ran_on_a = [i for i, v in results.items() if v["worker"] not in b_worker_ids]
        assert not ran_on_a, "a fenced daemon's workers ran %r: %r" % (ran_on_a, [results[i] for i in ran_on_a])
        assert all(faultlib.alive(p) for p in a_workers), "jobqd-a's workers died while it was frozen"
        # jobqd-a's worker ended its copy (3 s) and jobqd-b its own.
        res = get_result(r, "stalled", timeout=10)
        wait_for(lambda: len(events.of("ok", "stalled")) >= 1, 10, 0.02, "an ok event for the stalled job")
        time.sleep(max(0.0, t_stop + 3.5 - time.time()))
        wait_for(lambda: not any(retrying(r.llen, x) for x in jobqtest.inflight_keys(r)), 10, 0.02,
                 "nothing in flight")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    time.sleep(0.2)
    res = get_result(r, "stalled")
    assert res["worker"] in b_worker_ids | a_worker_ids, res
    oks = events.of("ok", "stalled")
    assert len(oks) == 1, events.of(job_id="stalled")
    assert oks[0]["worker"] in b_worker_ids, ("the outcome recorded is not jobqd-b's run", oks)
    assert processed(r) - base == len(ids) + 1, (processed(r) - base, len(ids) + 1)
    fenced_lines = log_lines(a.log(), r"lease of daemon %s on queue default has lapsed" % re.escape(a_id))
    assert fenced_lines, "jobqd-a's workers did not log being fenced:\n%s" % a.log_tail(3000)
    # Thawed, jobqd-a renews its lease (it was dropped) and serves again.
    wait_for(lambda: log_lines(a.log(), r"lease on queue default had been taken away"), 5, 0.05,
             "jobqd-a to notice its lease was taken away")
    wait_for(lambda: a_id in retrying(leases, r), 5, 0.05, "jobqd-a's lease renewed")
    more = ["g%d" % i for i in range(8)]
    push_all(r, [job("sleep", id=i, args={"seconds": 0.4}) for i in more])
    results = wait_all_results(r, more, timeout=15, status="ok")
    assert {v["worker"] for v in results.values()} & a_worker_ids, (
        "jobqd-a did not serve again after its lease was renewed: %r" % results)
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}
    a.assert_running()
    b.assert_running()


# ---------------------------------------------------------------- 5. SIGTERM

@budget(30)
def test_sigterm_under_load_puts_unfinished_jobs_back(r, jobqd):
    d = jobqd({"daemon": {"workers": 4, "shutdown_timeout": 2}, "jobs": {"max_attempts": 3}})
    ready(r, d)
    ids = ["s%d" % i for i in range(10)]
    push_all(r, [job("sleep", id=i, args={"seconds": 5}) for i in ids])
    wait_for(lambda: queue_state(r)["inflight"] == 4 and retrying(r.llen, QUEUE) == 6, 10, 0.01,
             "4 running jobs and 6 waiting")
    running = {json.loads(p)["id"] for v in jobqtest.inflight_jobs(r).values() for p in v}
    time.sleep(0.2)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    rc = d.wait_exit(2 + 5)
    took = time.monotonic() - t0
    assert rc == 0, "jobqd exited with %s on SIGTERM:\n%s" % (rc, d.log_tail())
    assert took >= 1.9, "jobqd gave running jobs only %.2f s of their 2 s" % took
    assert took <= 2 + 1.5, "jobqd took %.2f s to exit with shutdown_timeout 2" % took
    queued = [json.loads(p)["id"] for p in r.lrange(QUEUE, 0, -1)]
    assert sorted(queued) == sorted(ids), "queue after SIGTERM: %r" % queued
    assert set(queued[:4]) == running, "the killed jobs %r are not at the head: %r" % (running, queued)
    assert queued[4:] == [i for i in ids if i not in running]
    assert queue_state(r) == {"queue": 10, "inflight": 0, "scheduled": 0, "dead": 0}
    assert not [i for i in ids if r.exists(key("result", i))], "some 5 s job has a result"
    assert log_lines(d.log(), r"shutdown deadline"), d.log_tail()
    figures("sigterm", shutdown_timeout=2, exit_s=took, running_killed=len(running), back_in_queue=len(queued),
            lost=0)


# ---------------------------------------------------------------- 6. timing

@budget(30)
def test_delayed_jobs_run_on_time(r, jobqd):
    d = jobqd({"daemon": {"workers": 2}})
    ready(r, d)
    now = time.time()
    due = {"later%d" % i: now + 0.5 + 0.137 * i for i in range(6)}
    for i, t in due.items():
        # A scheduled job belongs to the queue of its set: no "queue" field.
        schedule(r, job("noop", id=i), t)
    late = []
    for i, t in due.items():
        res = get_result(r, i, timeout=10)
        assert res["status"] == "ok", res
        lateness = res["started_at"] - t
        assert lateness >= 0, "%s started %.3f s before its due time" % (i, -lateness)
        assert lateness <= 0.1, "%s started %.3f s after its due time" % (i, lateness)
        late.append(lateness)
    figures("delayed", jobs=len(due), max_lateness_s=max(late), median_lateness_s=statistics.median(late))


@budget(30)
def test_retry_backoff_with_jitter_is_honoured(r, jobqd, events):
    base = 0.5
    d = jobqd({"daemon": {"workers": 2, "test_handlers": "yes"},
               "jobs": {"retry_backoff_base": base, "retry_backoff_max": 60}})
    ready(r, d)
    r.rpush(QUEUE, job("fail", id="b1", args={"message": "try again"}, max_attempts=3))
    # The first retry sits in jobq:{default}:scheduled, due base/2..base
    # after the failure (the event carries the failure time).
    ev = events.wait(lambda e: e.get("id") == "b1" and e.get("event") == "retrying", 10, "retrying b1")
    scheduled = r.zrange(qkey("scheduled"), 0, -1, withscores=True)
    assert len(scheduled) == 1 and json.loads(scheduled[0][0])["id"] == "b1", scheduled
    delay1 = scheduled[0][1] - ev["time"]
    assert base / 2 <= delay1 <= base + 1e-3, "first retry delay %.3f s, want %.2f..%.2f" % (delay1, base / 2, base)
    res = get_result(r, "b1", timeout=15)
    assert res["status"] == "failed" and res["attempts"] == 3, res
    # The result is written just before the commit that adds the dead entry.
    entry = wait_for(lambda: [e for e in dead_entries(r) if e.get("id") == "b1"], 5, 0.02, "b1's dead entry")[0]
    at = [e["at"] for e in entry["errors"]]
    gap1 = at[1] - at[0]            # >= start of attempt 2 - end of attempt 1
    gap2 = res["started_at"] - at[1]  # start of attempt 3 - end of attempt 2
    assert base / 2 <= gap1 <= base + 0.15, "attempt 2 ran %.3f s after attempt 1 failed" % gap1
    assert base <= gap2 <= 2 * base + 0.15, "attempt 3 ran %.3f s after attempt 2 failed" % gap2
    figures("backoff", base=base, first_delay_s=delay1, gap1_s=gap1, gap2_s=gap2)


# ---------------------------------------------------------------- 7. recycling

@pytest.mark.parametrize("batch_size", [1, 64])
@budget(30)
def test_workers_recycled_after_max_jobs(r, jobqd, batch_size):
    d = jobqd({"daemon": {"workers": 2, "max_jobs_per_worker": 5, "batch_size": batch_size}})
    ids = ["n%02d" % i for i in range(30)]
    push_all(r, [job("noop", id=i) for i in ids])
    results = wait_all_results(r, ids, timeout=20, status="ok")
    per_worker = Counter(v["worker"] for v in results.values())
    if batch_size == 1:
        # 5 jobs per worker life, except for the two lives still running at
        # the end, which share what is left.
        lives = sorted(per_worker.values())
        assert max(lives) == 5 and all(n == 5 for n in lives[2:]), per_worker
    else:
        # A batch in hand is finished before the worker is recycled.
        assert len(per_worker) >= 3, per_worker
        assert max(per_worker.values()) < 5 + batch_size, per_worker
    log = d.log()
    assert len(log_lines(log, r"recycling after \d+ jobs")) >= len(per_worker) - 2, log[-3000:]
    assert not log_lines(log, r"keep dying"), log[-3000:]
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 0}
    wait_workers(d, 2)
    print("\nbatch_size %d: 30 jobs ran on %d worker lives: %s" % (batch_size, len(per_worker),
                                                                sorted(per_worker.values())))


# ---------------------------------------------------------------- 8. redelivery

@budget(40)
def test_redelivery_time_after_worker_kill(r, jobqd, events):
    d = jobqd({"daemon": {"workers": 2, "shutdown_timeout": 2},
               "jobs": {"max_attempts": 2, "retry_backoff_base": 0}})
    ready(r, d)
    latencies = []
    for n in range(5):
        jid = "rd%d" % n
        payload = job("sleep", id=jid, args={"seconds": 0.5})
        r.rpush(QUEUE, payload)
        _, pid = worker_of_job(r, payload)
        time.sleep(0.1)  # well inside its handler
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        res = get_result(r, jid, timeout=10)
        assert res["status"] == "ok" and res["attempts"] == 2, res
        assert pid_of_worker(res["worker"]) != pid
        ev = events.wait(lambda e: e.get("id") == jid and e.get("event") == "retrying", 5, "retrying " + jid)
        assert "worker died: killed by signal SIGKILL" in ev["error"], ev
        latencies.append(res["started_at"] - t_kill)
    assert max(latencies) < 0.5, "redelivery after a worker kill took %r s" % latencies
    figures("redeliver-after-worker-kill", kills=len(latencies), median_s=statistics.median(latencies),
            max_s=max(latencies), min_s=min(latencies), retry_backoff_base=0)


# ---------------------------------------------------------------- 9. a key of the wrong type

BAD_OTHER = "other"  # its queue key is made a string: a producer's or an admin's mistake


def break_queue_key(r, queue=BAD_OTHER):
    r.set(qkey("queue", queue), "not a list")


@budget(30)
def test_wrong_type_key_of_the_first_queue_does_not_stop_the_others(r, jobqd):
    """queues = other,default with jobq:{other}:queue a string: the workers
    still serve default (taking from other fails, default has jobs)."""
    break_queue_key(r)
    jobqd({"daemon": {"queues": "other,default", "workers": 2}})
    r.rpush(QUEUE, job("noop", id="n1"), job("noop", id="n2"))
    for i in ("n1", "n2"):
        assert get_result(r, i, timeout=10)["status"] == "ok"


@budget(30)
def test_wrong_type_key_of_a_later_queue_keeps_pickup_quick(r, jobqd):
    """queues = default,other with jobq:{other}:queue a string: an idle
    worker still picks up a job of default at once (as in
    test_handlers.py::test_idle_worker_picks_up_quickly), not after a
    pause for the failing queue."""
    break_queue_key(r)
    d = jobqd({"daemon": {"queues": "default,other", "workers": 1}})
    ready(r, d)
    took = []
    for i in range(8):
        time.sleep(0.3 + 0.13 * i)  # at several phases of whatever the worker does when idle
        t0 = time.monotonic()
        r.rpush(QUEUE, job("noop", id="q%d" % i))
        get_result(r, "q%d" % i, timeout=5)
        took.append(time.monotonic() - t0)
    assert max(took) < 0.5, "an idle worker took %r s to run a noop (want < 0.5 s)" % took


@budget(40)
def test_wrong_type_queue_key_does_not_stall_recovery_on_other_queues(r, jobqd):
    """queues = default,other with jobq:{other}:queue a string: the job of
    default a dead worker held is retried, the worker replaced, and the
    dead worker's recovery is done (its in-flight list of other is empty:
    there is nothing to put back there)."""
    break_queue_key(r)
    d = jobqd({"daemon": {"queues": "default,other", "workers": 2, "test_handlers": "yes"},
               "jobs": {"retry_backoff_base": 0, "poison_limit": 5, "max_attempts": 2}})
    ready(r, d)
    payload = job("sleep", id="k1", args={"seconds": 1})
    r.rpush(QUEUE, payload)
    _, pid = worker_of_job(r, payload)
    time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    res = get_result(r, "k1", timeout=10)
    assert res["status"] == "ok" and res["attempts"] == 2, res
    r.rpush(QUEUE, job("crash", id="c1"))
    res = get_result(r, "c1", timeout=10)
    assert res["status"] == "failed" and res["attempts"] == 2 and "SIGSEGV" in res["error"], res
    wait_workers(d, 2)
    time.sleep(1)
    assert not log_lines(d.log(), r"cannot put back the in-flight jobs of worker"), d.log_tail(3000)
    assert queue_state(r) == {"queue": 0, "inflight": 0, "scheduled": 0, "dead": 1}


@budget(40)
def test_wrong_type_queue_key_does_not_stall_reclaim_on_other_queues(r, jobqd):
    """jobqd-a serves default and is killed holding a job; jobqd-b serves
    other,default with jobq:{other}:queue a string: jobqd-b still puts the
    job back on default (a dead pid on this host: at its next heartbeat)."""
    break_queue_key(r)
    ttl, interval = 2, 0.5
    common = {"heartbeat_interval": interval, "heartbeat_ttl": ttl, "shutdown_timeout": 2}
    a = jobqd({"daemon": dict(common, workers=1, queues="default")}, name="jobqd-a")
    ready(r, a, "warm-a")
    payload = job("sleep", id="held", args={"seconds": 30})
    r.rpush(QUEUE, payload)
    k, pid = worker_of_job(r, payload)
    assert pid in children(a.pid)
    b = jobqd({"daemon": dict(common, workers=1, queues="other,default")}, name="jobqd-b")
    wait_for(lambda: retrying(r.hlen, key("daemons")) == 2, 10, 0.05, "both daemons registered")
    a_id = "%s:%d" % (os.uname().nodename, a.pid)
    kill_daemon_hard(a, r)
    t_kill = time.time()

    def back():
        return (not retrying(r.exists, k)
                and any(payload in v for v in [retrying(r.lrange, QUEUE, 0, -1)]
                        + list(jobqtest.inflight_jobs(r).values())))

    wait_for(back, interval + 5, 0.02, "jobqd-b to put the held job back on jobq:{default}:queue")
    assert time.time() - t_kill <= interval + 0.5 + 0.5
    assert held_by(r, a_id) == ([], None)
    b.assert_running()


@budget(40)
def test_sigterm_with_a_wrong_type_queue_key_exits_promptly(r, jobqd):
    """An idle daemon exits at once on SIGTERM even when one of its queue
    keys has the wrong type: its workers' in-flight lists are empty, there
    is nothing to put back. It says nothing about Redis being unreachable
    (it is not) and deregisters."""
    break_queue_key(r)
    d = jobqd({"daemon": {"queues": "default,other", "workers": 2, "shutdown_timeout": 10}})
    ready(r, d)
    d_id = "%s:%d" % (os.uname().nodename, d.pid)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    rc = d.wait_exit(30)
    took = time.monotonic() - t0
    assert rc == 0, d.log_tail()
    assert took < 5, "an idle jobqd took %.1f s to exit on SIGTERM:\n%s" % (took, d.log_tail(3000))
    assert not log_lines(d.log(), r"Redis unreachable"), d.log_tail(3000)
    assert retrying(r.hget, key("daemons"), d_id) is None, "the stopped daemon is still registered"


def test_scripts_flushed_under_a_running_daemon_lose_no_job(r, jobqd):
    """SCRIPT FLUSH while workers wait in the take sent with their last
    commit: the next job's confirm and commit find their scripts gone; the
    commit cannot be sent again on that connection (the take's replies are
    still to come), so it is sent on a fresh one, and every job ends once."""
    d = jobqd({"daemon": {"workers": 2}})
    push(r, job("noop", id="sf-warm"))
    assert get_result(r, "sf-warm", 10)["status"] == "ok"
    time.sleep(0.2)  # both workers wait in a take (one sent with sf-warm's commit)
    ids = []
    for round_ in range(3):
        r.script_flush()
        for i in range(5):
            ids.append("sf-%d-%d" % (round_, i))
            push(r, job("noop", id=ids[-1]))
            time.sleep(0.05)
    for i in ids:
        assert get_result(r, i, 15)["status"] == "ok"
    assert stat(r, "processed") == len(ids) + 1
    assert "lost jobq's scripts" in d.log(), d.log_tail()
    wait_for(lambda: not any(inflight_jobs(r).values()), 10, what="in-flight lists empty")
