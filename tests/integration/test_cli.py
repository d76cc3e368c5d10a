"""The command lines: jobqd's flags (--check-config, --version, --help), and
the jobq client against a real redis-server and a running jobqd: every
subcommand with its exit statuses (0 ok, 1 the job failed, 2 usage or
connection error, 3 a wait timed out), --json parsed as JSON, metrics parsed
line by line, and the Redis function library (FCALL jobq_enqueue, the
unique form) as redis-cli and other clients use it."""

import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest
import redis

from jobqtest import (Daemon, Events, build_dir, free_port, get_result, job, jobqd_path, key,
                      makefile_version, wait_for)


def run(*args, timeout=15):
    return subprocess.run([str(jobqd_path()), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def closed_url():
    return "redis://127.0.0.1:%d/0" % free_port()


# The {queue} key schema (README.md, "Redis keys"); key() above still names
# the keys outside any queue (result:ID, events, daemons).

def qkey(queue, kind):
    """The key of kind ("queue", "scheduled", "dead", "stats"...) of queue."""
    return "jobq:{%s}:%s" % (queue, kind)


def push(r, payload, queue="default"):
    r.rpush(qkey(queue, "queue"), payload)
    return payload


def dead_entries(r, queue="default"):
    """The dead list of queue, decoded, newest first."""
    return [json.loads(e) for e in r.lrange(qkey(queue, "dead"), 0, -1)]


# ---------------------------------------------------------------- jobqd

def test_check_config_good(tmp_path):
    url = closed_url()
    d = Daemon(tmp_path, url)
    conf = d.write_config()
    p = run("--check-config", "-c", str(conf), "--redis", url)
    assert p.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (p.stdout, p.stderr)


@pytest.mark.parametrize("overrides,needles", [
    ({"daemon": {"workers": "abc"}}, ["workers = abc"]),
    ({"daemon": {"no_such_key": "1"}}, ["no_such_key = 1"]),
    # The header's line or the line of the first key in it.
    ({"no_such_section": {"x": "1"}}, ["[no_such_section]", "x = 1"]),
], ids=["bad_value", "unknown_key", "unknown_section"])
def test_check_config_bad(tmp_path, overrides, needles):
    url = closed_url()
    d = Daemon(tmp_path, url)
    conf = d.write_config(overrides)
    wheres = ["%s:%d" % (conf.name, d.config_line(n)) for n in needles]
    p = run("--check-config", "-c", str(conf), "--redis", url)
    assert p.returncode != 0, "a bad config passed --check-config"
    assert any(w in p.stderr for w in wheres), \
        "stderr names none of %s:\n%s" % (wheres, p.stderr)


def test_version():
    p = run("--version")
    assert p.returncode == 0, p.stderr
    version = makefile_version()
    assert version and version in p.stdout + p.stderr


def test_help():
    p = run("--help")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    for flag in ("--check-config", "--redis", "--version"):
        assert flag in out, "--help does not mention %s" % flag


# ---------------------------------------------------------------- jobq helpers

HOST = socket.gethostname()
SUBCOMMANDS = ("enqueue", "result", "status", "dead", "cancel", "events", "metrics", "functions",
               "migrate")
TEST_HANDLERS = {"daemon": {"test_handlers": "yes"}}
FAST_HEARTBEAT = {"daemon": {"heartbeat_interval": "0.2", "test_handlers": "yes"}}


def jobq_path():
    return build_dir() / "jobq"


def run_jobq(url, *args, timeout=30, env_url=None):
    """Run jobq (with --redis url unless url is None); JOBQ_REDIS_URL is
    env_url or unset. Returns the CompletedProcess (text)."""
    assert os.access(jobq_path(), os.X_OK), "%s is not built (make all)" % jobq_path()
    argv = [str(jobq_path())]
    if url is not None:
        argv += ["--redis", url, "--prefix", "jobq"]
    env = dict(os.environ)
    env.pop("JOBQ_REDIS_URL", None)
    if env_url is not None:
        env["JOBQ_REDIS_URL"] = env_url
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


@pytest.fixture
def jq(redis_server):
    """jq(*args, timeout=30): run jobq against the test's redis-server."""
    return lambda *args, **kw: run_jobq(redis_server.url, *args, **kw)


def show(p):
    return "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)


def ok(p, status=0):
    assert p.returncode == status, show(p)
    return p.stdout


def usage_error(p, *needles):
    """Exit 2 with one line 'jobq: ...' on stderr (mentioning needles)."""
    assert p.returncode == 2, show(p)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobq: "), show(p)
    for n in needles:
        assert n in lines[0], "%r not in %r" % (n, lines[0])
    return lines[0]


def json_out(p, status=0):
    ok(p, status)
    return json.loads(p.stdout)


def wait_inflight(r, job_id, timeout=10):
    """Wait until job_id sits in some in-flight list (a worker took it)."""
    def taken():
        for k in r.scan_iter(match="jobq:{*}:inflight:*"):
            for payload in r.lrange(k, 0, -1):
                if json.loads(payload).get("id") == job_id:
                    return True
        return False
    wait_for(taken, timeout, 0.02, "job %s taken by a worker" % job_id)


def wait_functions(r, timeout=10):
    wait_for(lambda: r.function_list(library="jobq"), timeout, 0.05,
             "jobqd to install the jobq function library")


def wait_subscribers(r, n=1, timeout=10):
    wait_for(lambda: r.pubsub_numsub(key("events"))[0][1] >= n, timeout, 0.02,
             "%d subscriber(s) on jobq:events" % n)


def wait_busy(jq, job_id, timeout=10):
    """status --json until a live worker reports job_id (heartbeat 0.2 s)."""
    def busy():
        s = json_out(jq("status", "--json"))
        for d in s["daemons"]:
            for w in d.get("workers", []):
                if d["alive"] and w.get("job") == job_id:
                    return s
        return None
    return wait_for(busy, timeout, 0.1, "a worker running %s in jobq status" % job_id)


# ---------------------------------------------------------------- usage

def test_jobq_version_and_help():
    p = run_jobq(None, "--version")
    assert makefile_version() in ok(p)
    out = ok(run_jobq(None, "--help"))
    for sub in SUBCOMMANDS:
        assert sub in out, "jobq --help does not mention %s" % sub
    for sub in SUBCOMMANDS:
        out = ok(run_jobq(closed_url(), sub, "--help"))
        assert out.startswith("Usage: jobq %s" % sub), out


@pytest.mark.parametrize("args,needles", [
    ((), ["missing command"]),
    (("frobnicate",), ["unknown command", "frobnicate"]),
    (("--bogus", "status"), ["unknown option", "--bogus"]),
    (("status", "--bogus"), ["unknown option", "--bogus"]),
    (("enqueue",), ["missing HANDLER"]),
    (("enqueue", "echo", "{not json"), ["ARGS-JSON is not valid JSON"]),
    (("enqueue", "echo", "{}", "extra"), ["unexpected argument", "extra"]),
    (("enqueue", "--timeout", "-1", "echo"), ["--timeout"]),
    (("enqueue", "--attempts", "two", "echo"), ["--attempts"]),
    (("enqueue", "--wait=soon", "echo"), ["--wait"]),
    (("enqueue", "-q", "bad queue", "echo"), ["bad queue name"]),
    (("enqueue", "--id", "", "echo"), ["--id"]),
    (("enqueue", "--queue"), ["--queue needs a value"]),
    (("result",), ["missing ID"]),
    (("cancel",), ["missing ID"]),
    (("dead", "frob"), ["unknown action", "frob"]),
    (("dead", "show"), ["missing ID"]),
    (("dead", "retry"), ["missing ID"]),
    (("dead", "retry", "x", "--all"), ["not both"]),
    (("events", "--count", "0"), ["--count"]),
    (("enqueue", "--attempts", "2.5", "echo"), ["--attempts"]),
    (("enqueue", "--id", "a\x1bb", "echo"), ["--id", "control characters"]),
    (("dead", "-q", "bad queue", "list"), ["bad queue name"]),
    (("dead", "purge", "--all"), ["--all goes with retry"]),
    (("dead", "list", "x"), ["unexpected argument", "x"]),
    (("migrate", "x"), ["unexpected argument", "x"]),
    (("--prefix", "a b", "status"), ["--prefix"]),
    (("status", "--json=yes"), ["takes no value"]),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_usage_errors(args, needles):
    """Caught before any connection: one line on stderr, exit 2."""
    p = run_jobq(closed_url(), *args)
    usage_error(p, *needles)
    assert p.stdout == ""


@pytest.mark.parametrize("args", [("status",), ("enqueue", "noop"), ("result", "x"),
                                  ("dead", "list"), ("metrics",), ("events",)])
def test_unreachable_redis_is_exit_2(args):
    url = closed_url()
    p = run_jobq(url, *args)
    usage_error(p, "cannot connect", url)


def test_bad_url_is_exit_2():
    usage_error(run_jobq("foo://nowhere", "status"), "--redis")
    usage_error(run_jobq(None, "status", env_url="redis://:1"), "JOBQ_REDIS_URL")


def test_url_from_environment(redis_server, jobqd):
    jobqd()
    p = run_jobq(None, "enqueue", "--wait=10", "echo", "[1]", env_url=redis_server.url)
    assert json_out(p)["result"] == [1]
    # --redis beats the environment.
    p = run_jobq(None, "--redis", redis_server.url, "status", "--json", env_url=closed_url())
    json_out(p)


# ---------------------------------------------------------------- enqueue, result

def test_enqueue_prints_id_and_result_reads_it(r, jq, jobqd):
    jobqd()
    args = {"a": [1, 2.5, {"b": "café"}], "n": None, "e": []}
    job_id = ok(jq("enqueue", "echo", json.dumps(args))).strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id), job_id
    res = json_out(jq("result", job_id, "--wait", "10"))
    assert res["id"] == job_id and res["status"] == "ok" and res["result"] == args
    assert isinstance(res["enqueued_at"], float) and res["enqueued_at"] <= res["started_at"]
    # Without --wait once it is there.
    assert json_out(jq("result", job_id)) == res


def test_enqueue_fields(r, jq):
    """No daemon: the payload stays on its queue exactly as built."""
    before = time.time()
    job_id = ok(jq("enqueue", "-q", "high", "--id", "my-1", "--timeout", "2.5", "--attempts", "4",
                   "--result-ttl", "60", "echo", '"hi"')).strip()
    assert job_id == "my-1"
    payloads = r.lrange(qkey("high", "queue"), 0, -1)
    assert len(payloads) == 1
    p = json.loads(payloads[0])
    assert p["id"] == "my-1" and p["handler"] == "echo" and p["args"] == "hi"
    assert p["timeout"] == 2.5 and p["max_attempts"] == 4 and p["result_ttl"] == 60
    assert before - 1 <= p["enqueued_at"] <= time.time() + 1
    assert "queue" not in p
    # No args: none in the payload.
    ok(jq("enqueue", "--id", "bare", "noop"))
    assert "args" not in json.loads(r.lrange(qkey("default", "queue"), 0, -1)[0])


def test_enqueue_wait_exit_statuses(r, jq, jobqd):
    jobqd(TEST_HANDLERS)
    res = json_out(jq("enqueue", "--wait=10", "echo", '{"x": 1}'))
    assert res["status"] == "ok" and res["result"] == {"x": 1}

    p = jq("enqueue", "--id", "f1", "-w", "10", "fail", '{"message": "boom"}')
    res = json_out(p, status=1)
    assert res["id"] == "f1" and res["status"] == "failed" and res["error"] == "boom"

    # An unknown handler is dead-lettered at once: still a failed result.
    res = json_out(jq("enqueue", "--wait", "10", "no_such_handler"), status=1)
    assert "no_such_handler" in res["error"]

    started = time.monotonic()
    p = jq("enqueue", "--id", "slow", "--wait", "0.5", "sleep", '{"seconds": 5}')
    elapsed = time.monotonic() - started
    assert p.returncode == 3, show(p)
    assert "timed out" in p.stderr and "slow" in p.stderr
    assert elapsed < 4, "--wait 0.5 took %.1f s" % elapsed
    # result --wait picks it up later.
    assert json_out(jq("result", "slow", "--wait=15"))["result"] == {"slept": 5}


def test_enqueue_wait_ignores_an_older_result_of_the_same_id(r, jq, jobqd):
    jobqd()
    assert json_out(jq("enqueue", "--id", "same", "--wait=10", "echo", "1"))["result"] == 1
    assert json_out(jq("enqueue", "--id", "same", "--wait=10", "echo", "2"))["result"] == 2


def test_enqueue_args_from_stdin(r, redis_server):
    argv = [str(jobq_path()), "--redis", redis_server.url, "enqueue", "--id", "in", "echo", "-"]
    p = subprocess.run(argv, input='{"from": "stdin"}', capture_output=True, text=True, timeout=10)
    assert ok(p).strip() == "in"
    assert json.loads(r.lrange(qkey("default", "queue"), 0, -1)[0])["args"] == {"from": "stdin"}


def test_wait_does_not_poll_the_result(r, jq, jobqd):
    jobqd()
    time.sleep(0.5)
    r.config_resetstat()
    res = json_out(jq("enqueue", "--wait", "15", "sleep", '{"seconds": 2}'))
    assert res["status"] == "ok"
    gets = r.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    assert gets <= 3, "jobq read the result %d times in 2 s: it polls" % gets


def test_result_exit_statuses(r, jq):
    usage_error(jq("result", "nope"), "no job nope")
    ok(jq("enqueue", "--id", "w1", "-q", "unserved", "noop"))
    p = jq("result", "w1")
    assert p.returncode == 3, show(p)
    assert "waiting in queue unserved" in p.stderr, show(p)
    p = jq("result", "w1", "--wait", "0.3")
    assert p.returncode == 3 and "timed out" in p.stderr, show(p)
    r.set(key("result", "w1"), json.dumps({"id": "w1", "status": "failed", "error": "x"}))
    assert json_out(jq("result", "w1"), status=1)["error"] == "x"


def test_delayed_enqueue(r, jq, jobqd):
    jobqd()
    before = time.time()
    job_id = ok(jq("enqueue", "--delay", "1.5", "-q", "default", "echo", '"later"')).strip()
    members = r.zrange(qkey("default", "scheduled"), 0, -1, withscores=True)
    assert len(members) == 1
    payload, due = members[0]
    # The queue's own scheduled set: the payload needs no "queue" field.
    assert "queue" not in json.loads(payload) and json.loads(payload)["id"] == job_id
    assert before + 1.4 <= due <= time.time() + 1.6
    time.sleep(0.5)
    assert r.get(key("result", job_id)) is None, "a delayed job ran early"
    res = json_out(jq("result", job_id, "--wait", "10"))
    assert res["result"] == "later"
    assert res["started_at"] >= before + 1.4


def test_prefix(redis_server, r, jobqd):
    jobqd({"redis": {"prefix": "alt"}})
    p = run_jobq(None, "--redis", redis_server.url, "--prefix", "alt", "enqueue", "--wait=10",
                 "echo", "7")
    assert json_out(p)["result"] == 7
    assert r.keys("alt:result:*") and not r.keys("jobq:*")


# ---------------------------------------------------------------- status, metrics

def setup_queues(r, jq, jobqd):
    """A daemon serving default (2 workers, fast heartbeat) with one job
    running; 2 jobs waiting on unserved (not served), 1 scheduled, 1 dead."""
    d = jobqd(FAST_HEARTBEAT)
    ok(jq("enqueue", "--id", "runner", "sleep", '{"seconds": 30}'))
    ok(jq("enqueue", "-q", "unserved", "noop"))
    ok(jq("enqueue", "-q", "unserved", "noop"))
    ok(jq("enqueue", "--delay", "3600", "-q", "unserved", "noop"))
    ok(jq("enqueue", "--id", "bad", "--wait=10", "fail"), status=1)
    wait_inflight(r, "runner")
    return d


def test_status_json(r, jq, jobqd):
    d = setup_queues(r, jq, jobqd)
    s = wait_busy(jq, "runner")
    queues = {q["name"]: q for q in s["queues"]}
    assert queues["unserved"] == {"name": "unserved", "waiting": 2, "inflight": 0, "scheduled": 1,
                                  "parked": 0, "dead": 0, "processed": 0, "failed": 0, "retried": 0,
                                  "rejected": 0, "cancelled": 0, "paused": False}
    assert queues["default"]["processed"] == 1 and queues["default"]["failed"] == 1
    assert queues["default"]["inflight"] == 1 and queues["default"]["dead"] == 1
    assert s["totals"] == {"waiting": 2, "inflight": 1, "scheduled": 1, "parked": 0, "dead": 1}
    assert s["prefix"] == "jobq"
    [daemon] = s["daemons"]
    assert daemon["alive"] is True and daemon["id"] == "%s:%d" % (HOST, d.pid)
    assert daemon["queues"] == ["default"]
    assert s["workers"] == {"total": 2, "busy": 1}
    [w] = [w for w in daemon["workers"] if w.get("job")]
    assert w["job"] == "runner" and w["queue"] == "default" and 0 <= w["running_for"] < 30
    assert s["jobs"]["processed"] == 1 and s["jobs"]["failed"] == 1

    # The daemon reports its rates over the last minute (here: since it
    # started): one job done, and it failed.
    def rates_seen():
        jobs = json_out(jq("status", "--json"))["jobs"]
        window = jobs["rate_window"]
        if window is None:
            return None
        done = round(jobs["processed_per_minute"] * window / 60, 6)
        failed = round(jobs["failed_per_minute"] * window / 60, 6)
        return (done, failed, window) if (done, failed) == (1, 1) else None

    done, failed, window = wait_for(rates_seen, 10, 0.1, "the daemon's rates to count the failed job")
    assert 0.5 <= window <= 61, window


def test_status_human(r, jq, jobqd):
    d = setup_queues(r, jq, jobqd)
    wait_busy(jq, "runner")
    out = ok(jq("status"))
    lines = out.splitlines()
    header = next(l for l in lines if l.startswith("QUEUE"))
    assert header.split() == ["QUEUE", "WAITING", "IN-FLIGHT", "SCHEDULED", "DEAD"]
    unserved = next(l for l in lines if l.startswith("unserved "))
    assert unserved.split() == ["unserved", "2", "0", "1", "0"]
    # Right-aligned numbers: each ends where its header does.
    assert len(unserved) == len(header)
    daemon_line = next(l for l in lines if l.startswith("%s:%d " % (HOST, d.pid)))
    assert "alive" in daemon_line
    runner = next(l for l in lines if "runner" in l)
    assert "busy" in runner and "default" in runner
    assert re.search(r"jobs: 1 processed, 1 failed; (last minute: [0-9.]+/min processed, "
                     r"[0-9.]+/min failed \(measured over [^)]+\)|rate: n/a)", out), out


def test_status_shows_dead_daemon(r, jq, jobqd):
    """A registry entry whose heartbeat key is gone is a dead daemon."""
    info = {"host": "gone-host", "pid": 4242, "started_at": time.time() - 600,
            "heartbeat_at": time.time() - 120, "version": "0.0.1", "queues": ["default"],
            "workers": [{"number": 1, "pid": 4243, "job": "zombie", "queue": "default",
                         "job_started_at": time.time() - 130, "jobs_done": 9}], "busy": 1}
    r.hset(key("daemons"), "gone-host:4242", json.dumps(info))
    s = json_out(jq("status", "--json"))
    [d] = s["daemons"]
    assert d["id"] == "gone-host:4242" and d["alive"] is False
    assert s["workers"] == {"total": 0, "busy": 0}
    out = ok(jq("status"))
    line = next(l for l in out.splitlines() if l.startswith("gone-host:4242"))
    assert " dead " in line and "ago" in line
    assert "zombie" not in out


def test_status_watch(r, jq, redis_server, jobqd):
    jobqd(FAST_HEARTBEAT)
    proc = subprocess.Popen([str(jobq_path()), "--redis", redis_server.url, "status", "--watch",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    docs = []
    try:
        deadline = time.monotonic() + 15
        while len(docs) < 4 and time.monotonic() < deadline:
            ok(jq("enqueue", "noop"))
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                docs.append(json.loads(proc.stdout.readline()))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert len(docs) >= 4, "status --watch printed %d documents" % len(docs)
    last = docs[-1]["jobs"]
    assert last["rate_window"] >= 2 and last["processed_per_minute"] > 0
    assert last["failed_per_minute"] == 0
    assert docs[-1]["time"] - docs[0]["time"] >= 2.5


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse_metrics(text):
    """{(name, labels): value} from Prometheus text; checks every line."""
    samples, typed = {}, {}
    for line in text.splitlines():
        assert line.strip(), "blank line in metrics output"
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter", "histogram"), line
            assert name not in typed, "two TYPE lines for %s" % name
            typed[name] = kind
            continue
        if line.startswith("# HELP "):
            assert len(line.split(None, 3)) == 4, line
            continue
        assert not line.startswith("#"), line
        m = METRIC_LINE.match(line)
        assert m, "not a metric line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, "%s has no # TYPE line before it" % name
        v = float(value)
        assert math.isfinite(v), line
        samples[(name, labels)] = v
    return samples, typed


def test_metrics(r, jq, jobqd, tmp_path):
    setup_queues(r, jq, jobqd)
    wait_busy(jq, "runner")
    # Workers send histogram increments with a commit at most once a second,
    # or when they find nothing to do: the failed job's come within ~2 s.
    labels = '{queue="default",handler="fail"}'
    deadline = time.monotonic() + 10
    samples, typed = parse_metrics(ok(jq("metrics")))
    while ("jobq_job_run_seconds_count", labels) not in samples and time.monotonic() < deadline:
        time.sleep(0.1)
        samples, typed = parse_metrics(ok(jq("metrics")))
    assert samples[("jobq_queue_jobs", '{queue="unserved",state="waiting"}')] == 2
    assert samples[("jobq_queue_jobs", '{queue="unserved",state="scheduled"}')] == 1
    assert samples[("jobq_queue_jobs", '{queue="default",state="waiting"}')] == 0
    assert samples[("jobq_queue_jobs", '{queue="default",state="running"}')] == 1
    assert samples[("jobq_queue_jobs", '{queue="default",state="dead"}')] == 1
    assert samples[("jobq_jobs_total", '{queue="default",outcome="failed"}')] == 1
    assert samples[("jobq_jobs_total", '{queue="default",outcome="ok"}')] == 0
    assert samples[("jobq_jobs_total", '{queue="default",outcome="dead"}')] == 0
    assert samples[("jobq_workers", '{state="busy"}')] == 1
    assert samples[("jobq_workers", '{state="idle"}')] == 1
    assert samples[("jobq_daemons", "")] == 1
    assert typed["jobq_jobs_total"] == "counter"
    assert typed["jobq_queue_jobs"] == "gauge"
    assert typed["jobq_job_run_seconds"] == "histogram"
    # The failed job ran once: one observation of each kind.
    assert samples[("jobq_job_run_seconds_count", labels)] == 1
    assert samples[("jobq_job_wait_seconds_count", labels)] == 1
    assert samples[("jobq_job_run_seconds_bucket", '{queue="default",handler="fail",le="+Inf"}')] == 1
    # -o writes the same, atomically, for the textfile collector.
    out = tmp_path / "jobq.prom"
    assert ok(jq("metrics", "-o", str(out))) == ""
    samples2, _ = parse_metrics(out.read_text())
    assert samples2.keys() == samples.keys()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("jobq.prom")] == ["jobq.prom"]


def test_metrics_escapes_labels(r, jq):
    r.rpush(qkey('we"ird\\q', "queue"), job("noop"))
    samples, _ = parse_metrics(ok(jq("metrics")))
    assert samples[("jobq_queue_jobs", '{queue="we\\"ird\\\\q",state="waiting"}')] == 1
    assert samples[("jobq_daemons", "")] == 0


# ---------------------------------------------------------------- dead

def fail_config():
    return {"daemon": {"test_handlers": "yes"},
            "jobs": {"max_attempts": "2", "retry_backoff_base": "0.05", "retry_backoff_max": "0.1"}}


def test_dead_list_show_retry_purge(r, jq, jobqd):
    jobqd(fail_config())
    ok(jq("enqueue", "--id", "f1", "--wait=10", "fail", '{"message": "boom 1"}'), status=1)
    ok(jq("enqueue", "--id", "f2", "--wait=10", "fail", '{"message": "boom\\n2"}'), status=1)
    assert ok(jq("dead", "list")).splitlines()[0].split()[:3] == ["ID", "QUEUE", "HANDLER"]
    out = ok(jq("dead"))  # list is the default
    f1 = next(l for l in out.splitlines() if l.startswith("f1 "))
    assert "boom 1" in f1 and "fail" in f1 and "default" in f1
    entries = json_out(jq("dead", "list", "--json"))
    assert [e["id"] for e in entries] == ["f2", "f1"]
    assert len(json_out(jq("dead", "list", "--json", "--limit", "1"))) == 1
    assert "showing the newest 1 of 2" in ok(jq("dead", "list", "--limit", "1"))

    shown = json_out(jq("dead", "show", "f1"))
    assert shown["error"] == "boom 1" and shown["attempts"] == 2
    assert [e["attempt"] for e in shown["errors"]] == [1, 2]
    usage_error(jq("dead", "show", "nope"), "no dead job nope")

    # Retry: the entry goes, the job runs again with fresh attempts.
    events = Events(r)
    try:
        out = ok(jq("dead", "retry", "f1"))
        assert "f1" in out and "default" in out
        fails = events.wait(lambda e: e["id"] == "f1" and e["event"] == "failed")
        retrying = [e for e in events.seen if e["id"] == "f1" and e["event"] == "retrying"]
        assert [e["attempt"] for e in retrying] == [1] and fails["attempt"] == 2
    finally:
        events.close()
    assert [e["id"] for e in dead_entries(r)].count("f1") == 1
    assert get_result(r, "f1")["attempts"] == 2
    usage_error(jq("dead", "retry", "nope"), "no dead job nope")

    r.delete(qkey("default", "dead"))
    assert ok(jq("dead", "purge")) == "removed 0 dead job(s)\n"


def test_dead_retry_keeps_assigned_id_and_all(r, jq, jobqd):
    jobqd({"daemon": {"test_handlers": "yes"}})
    push(r, job("fail", args={"message": "no id"}))
    push(r, "this is not json")
    wait_for(lambda: len(dead_entries(r)) == 2, 10, 0.02, "two dead entries")
    assigned = next(e["id"] for e in dead_entries(r) if e["payload"] != "this is not json")
    rows = ok(jq("dead", "list")).splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted(["-", assigned])  # no id: "-"

    p = jq("dead", "retry", "--all")
    out = ok(p)
    assert "retried 1" in out and "kept 1" in out
    # The job without an id keeps the id the worker gave it.
    wait_for(lambda: any(e["id"] == assigned for e in dead_entries(r)), 10, 0.02,
             "the retried job to die again")
    assert get_result(r, assigned)["status"] == "failed"
    assert "removed 2 dead job(s)" in ok(jq("dead", "purge"))
    assert ok(jq("dead", "list")) == "no dead jobs\n"
    assert r.llen(qkey("default", "dead")) == 0


def test_dead_per_queue(r, jq, jobqd):
    """Each queue has its own dead list: merged newest first without -q,
    one queue's with -q; retry goes back to the entry's own queue."""
    jobqd({"daemon": {"test_handlers": "yes", "queues": "default,high"}})
    ok(jq("enqueue", "--id", "a1", "--wait=10", "fail"), status=1)
    ok(jq("enqueue", "--id", "h1", "-q", "high", "--wait=10", "fail"), status=1)
    ok(jq("enqueue", "--id", "a2", "--wait=10", "fail"), status=1)
    assert [e["id"] for e in dead_entries(r, "high")] == ["h1"]
    assert [e["id"] for e in json_out(jq("dead", "list", "--json"))] == ["a2", "h1", "a1"]
    assert [e["id"] for e in json_out(jq("dead", "list", "--json", "--limit", "2"))] == ["a2", "h1"]
    assert [e["id"] for e in json_out(jq("dead", "-q", "high", "list", "--json"))] == ["h1"]
    rows = ok(jq("dead", "list")).splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [["a2", "default"], ["h1", "high"], ["a1", "default"]]
    assert json_out(jq("dead", "show", "h1"))["queue"] == "high"
    usage_error(jq("dead", "--queue", "default", "show", "h1"), "no dead job h1")
    usage_error(jq("dead", "-q", "high", "retry", "a1"), "no dead job a1")

    out = ok(jq("dead", "retry", "h1"))
    assert "h1" in out and "high" in out
    wait_for(lambda: [e["id"] for e in dead_entries(r, "high")] == ["h1"] and
             get_result(r, "h1")["queue"] == "high", 10, 0.05, "h1 to die again on high")

    assert ok(jq("dead", "-q", "high", "purge")) == "removed 1 dead job(s)\n"
    assert r.llen(qkey("default", "dead")) == 2
    assert ok(jq("dead", "purge")) == "removed 2 dead job(s)\n"
    assert ok(jq("dead", "list")) == "no dead jobs\n"


# ---------------------------------------------------------------- cancel

def test_cancel_waiting_and_scheduled(r, jq):
    ok(jq("enqueue", "--id", "w1", "-q", "unserved", "noop"))
    ok(jq("enqueue", "--id", "w2", "-q", "unserved", "noop"))
    ok(jq("enqueue", "--id", "s1", "--delay", "600", "noop"))
    events = Events(r)
    try:
        out = ok(jq("cancel", "w1"))
        assert out.strip() == "cancelled job w1 (it was waiting in queue unserved)", out
        e = events.wait(lambda e: e["id"] == "w1")
        assert e["event"] == "cancelled" and e["queue"] == "unserved"
        out = ok(jq("cancel", "s1"))
        assert "scheduled" in out
    finally:
        events.close()
    assert [json.loads(p)["id"] for p in r.lrange(qkey("unserved", "queue"), 0, -1)] == ["w2"]
    assert r.zcard(qkey("default", "scheduled")) == 0
    res = json_out(jq("result", "w1"), status=1)
    assert res["status"] == "failed" and res["error"] == "cancelled" and res["queue"] == "unserved"
    assert res["handler"] == "noop" and isinstance(res["enqueued_at"], float)
    # Gone: nothing more to cancel.
    usage_error(jq("cancel", "w1"), "already finished")
    usage_error(jq("cancel", "nope"), "no job nope")


def test_cancel_running_job(r, jq, jobqd):
    """Needs the supervisor side: it reads <prefix>:cancel, kills the worker
    and records the job as failed with error "cancelled"."""
    jobqd({"daemon": {"workers": "2", "heartbeat_interval": "0.2"}})
    ok(jq("enqueue", "--id", "long", "sleep", '{"seconds": 60}'))
    wait_inflight(r, "long")
    started = time.monotonic()
    res = json_out(jq("cancel", "long", "--wait", "20"))
    assert time.monotonic() - started < 15
    assert res["id"] == "long" and res["status"] == "failed" and res["error"] == "cancelled"
    assert json_out(jq("result", "long"), status=1)["error"] == "cancelled"
    # The daemon replaced the worker and goes on.
    assert json_out(jq("enqueue", "--wait=10", "echo", "1"))["result"] == 1
    wait_for(lambda: json_out(jq("status", "--json"))["workers"]["total"] == 2, 10, 0.1,
             "two workers again")


def test_cancel_running_job_without_wait(r, jq, jobqd):
    jobqd()
    ok(jq("enqueue", "--id", "long2", "sleep", '{"seconds": 60}'))
    wait_inflight(r, "long2")
    out = ok(jq("cancel", "long2"))
    assert "running" in out
    assert get_result(r, "long2", 15)["error"] == "cancelled"


# ---------------------------------------------------------------- events

def read_lines(proc, n, timeout=15):
    lines, deadline = [], time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    return lines


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_events(r, jq, redis_server, jobqd, as_json):
    jobqd(TEST_HANDLERS)
    argv = [str(jobq_path()), "--redis", redis_server.url, "events", "--count", "6"]
    if as_json:
        argv.append("--json")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        wait_subscribers(r)
        ok(jq("enqueue", "--id", "ev1", "--wait=10", "echo", "1"))
        ok(jq("enqueue", "--id", "ev2", "--wait=10", "fail"), status=1)
        lines = read_lines(proc, 6)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(lines) == 6, lines
    if as_json:
        events = [json.loads(l) for l in lines]
        assert [(e["event"], e["id"]) for e in events] == [
            ("queued", "ev1"), ("started", "ev1"), ("ok", "ev1"),
            ("queued", "ev2"), ("started", "ev2"), ("failed", "ev2")]
        assert events[2]["worker"].startswith(HOST + ":") and events[2]["attempt"] == 1
        assert events[1]["worker"] == events[2]["worker"]
    else:
        assert [l.split()[2] for l in lines] == ["queued", "started", "ok", "queued", "started", "failed"]
        assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  ", l) for l in lines), lines
        assert "id=ev1" in lines[2] and "handler=echo" in lines[2] and "queue=default" in lines[2]
        assert "id=ev2" in lines[5] and "error=" in lines[5]


# ---------------------------------------------------------------- FCALL

def test_daemon_installs_functions(r, jobqd):
    jobqd()
    wait_functions(r)
    assert r.fcall("jobq_version", 0) >= 1


def test_fcall_enqueue_from_redis_cli(r, redis_server, jobqd):
    jobqd()
    wait_functions(r)
    events = Events(r)
    try:
        job_id = redis_server.cli("FCALL", "jobq_enqueue", "1", "jobq:{default}:queue",
                                  '{"handler": "echo", "args": {"a": [1, 2]}}')
        assert re.fullmatch(r"[0-9a-f]{14,}-default", job_id), job_id
        queued = events.wait(lambda e: e["id"] == job_id and e["event"] == "queued")
        assert queued["queue"] == "default" and queued["handler"] == "echo"
        res = get_result(r, job_id)
        assert res["status"] == "ok" and res["result"] == {"a": [1, 2]}
        assert abs(res["enqueued_at"] - time.time()) < 60
    finally:
        events.close()
    # Ids are unique across calls.
    ids = {redis_server.cli("FCALL", "jobq_enqueue", "1", "jobq:{unserved}:queue", '{"handler":"noop"}')
           for _ in range(20)}
    assert len(ids) == 20
    # A given id is kept; any prefix works.
    assert redis_server.cli("FCALL", "jobq_enqueue", "1", "jobq:{default}:queue",
                            '{"id": "mine", "handler": "echo", "args": 5}') == "mine"
    assert get_result(r, "mine")["result"] == 5
    assert redis_server.cli("FCALL", "jobq_enqueue", "1", "other:{q}:queue", '{"handler":"noop"}')
    assert r.llen("other:{q}:queue") == 1


def test_fcall_keeps_the_payload_text(r, redis_server, jobqd):
    jobqd()
    wait_functions(r)
    text = '{"handler":"echo","args":[],"big":12345678901234567890,"x":{}}'
    job_id = redis_server.cli("FCALL", "jobq_enqueue", "1", "jobq:{unserved}:queue", text)
    [payload] = r.lrange(qkey("unserved", "queue"), 0, -1)
    assert payload.endswith(text[1:]), payload  # the producer's bytes, after id and enqueued_at
    doc = json.loads(payload)
    assert doc["id"] == job_id and doc["args"] == [] and doc["x"] == {}
    assert isinstance(doc["enqueued_at"], float)


@pytest.mark.parametrize("numkeys,args,needle", [
    (1, ["jobq:{default}:queue", "not json"], "not valid JSON"),
    (1, ["jobq:{default}:queue", "[1, 2]"], "must be a JSON object"),
    (1, ["jobq:{default}:queue", '{"args": 1}'], "'handler'"),
    (1, ["jobq:{default}:queue", '{"handler": ""}'], "'handler'"),
    (1, ["jobq:{default}:queue", '{"handler": "x", "id": 5}'], "'id'"),
    (1, ["jobq:{default}:queue", '{"handler": "x", "_jobq": {}}'], "'_jobq' is reserved"),
    (1, ["jobq:{bad queue}:queue", '{"handler": "x"}'], "PREFIX:{QUEUE}:queue"),
    (0, ['{"handler": "x"}'], "usage"),
    # The 0-key form of 0.1.0 says what to write instead.
    (0, ["default", '{"handler": "x"}'], "FCALL jobq_enqueue 1 'jobq:{default}:queue'"),
    (1, ["jobq", '{"handler": "x"}'], "PREFIX:{QUEUE}:queue"),
])
def test_fcall_enqueue_errors(r, redis_server, jobqd, numkeys, args, needle):
    jobqd()
    wait_functions(r)
    with pytest.raises(redis.ResponseError) as info:
        r.fcall("jobq_enqueue", numkeys, *args)
    assert "jobq: " in str(info.value) and needle in str(info.value), str(info.value)
    assert not r.keys("jobq:{*}:queue")
    # redis-cli shows the same message.
    out = subprocess.run(["redis-cli", "-s", redis_server.sock, "FCALL", "jobq_enqueue",
                          str(numkeys), *args], capture_output=True, text=True, timeout=10)
    assert needle in out.stdout + out.stderr


def test_fcall_enqueue_unique(r, redis_server, jobqd):
    jobqd()
    wait_functions(r)
    events = Events(r)
    cli = lambda text: redis_server.cli("FCALL", "jobq_enqueue_unique", "1", "jobq:{default}:queue", text)
    try:
        first = '{"id": "u1", "handler": "sleep", "args": {"seconds": 1.5}}'
        assert cli(first) == "u1"
        wait_inflight(r, "u1")
        # Running: not queued again.
        assert cli(first) == "u1"
        assert r.llen(qkey("default", "queue")) == 0
        assert get_result(r, "u1")["status"] == "ok"
        events.wait(lambda e: e["event"] == "ok")
        assert [e["event"] for e in events.seen] == ["queued", "started", "ok"], events.seen
        # Finished: a new one is queued.
        assert cli('{"id": "u1", "handler": "echo", "args": "again"}') == "u1"
        wait_for(lambda: json.loads(r.get(key("result", "u1")))["result"] == "again", 10, 0.02,
                 "the second u1 to run")
    finally:
        events.close()
    # Waiting: not queued twice.
    cli_unique = lambda: redis_server.cli("FCALL", "jobq_enqueue_unique", "1", "jobq:{unserved}:queue",
                                          '{"id": "u2", "handler": "noop"}')
    assert cli_unique() == "u2" and cli_unique() == "u2"
    assert r.llen(qkey("unserved", "queue")) == 1
    with pytest.raises(redis.ResponseError, match="needs its own 'id'"):
        r.fcall("jobq_enqueue_unique", 1, "jobq:{default}:queue", '{"handler": "noop"}')


def test_functions_subcommand(r, jq):
    src = ok(jq("functions"))
    assert src.startswith("#!lua name=jobq\n")
    assert "installed" in ok(jq("functions", "--load"))
    assert "up to date" in ok(jq("functions", "--load"))
    job_id = r.fcall("jobq_enqueue", 1, "jobq:{default}:queue", '{"handler": "noop"}')
    assert r.lrange(qkey("default", "queue"), 0, -1)[0].startswith('{"id":"%s"' % job_id)
    # An older library is replaced; a newer one is kept.
    r.function_load(src.replace("local VERSION = ", "local VERSION = -1 + "), replace=True)
    assert "installed" in ok(jq("functions", "--load"))
    r.function_load(src.replace("local VERSION = ", "local VERSION = 1000 + "), replace=True)
    assert "up to date" in ok(jq("functions", "--load"))
    assert r.fcall("jobq_version", 0) > 1000


# ---------------------------------------------------------------- enqueue --unique

def test_enqueue_unique(r, jq, jobqd):
    """--unique queues a job only when no job of that id queued with
    --unique (or FCALL jobq_enqueue_unique) is waiting or running; a
    duplicate prints the id, says so on stderr and exits 0."""
    ok(jq("enqueue", "--unique", "--id", "u1", "-q", "unserved", "noop"))
    p = jq("enqueue", "-u", "--id", "u1", "-q", "unserved", "noop")
    assert ok(p) == "u1\n"
    assert p.stderr == "jobq: job u1 is already queued (unique): nothing queued\n"
    assert r.llen(qkey("unserved", "queue")) == 1
    # Without --unique it is not checked.
    ok(jq("enqueue", "--id", "u1", "-q", "unserved", "noop"))
    assert r.llen(qkey("unserved", "queue")) == 2
    usage_error(jq("enqueue", "--unique", "-q", "unserved"), "missing HANDLER")

    jobqd()
    ok(jq("enqueue", "--unique", "--id", "u2", "sleep", '{"seconds": 1.5}'))
    wait_inflight(r, "u2")
    # Running: a duplicate with --wait waits for the running job.
    p = jq("enqueue", "--unique", "--id", "u2", "--wait=10", "echo", '"other"')
    assert json_out(p)["result"] == {"slept": 1.5}
    assert "already queued" in p.stderr
    # Finished: queued again.
    p = jq("enqueue", "--unique", "--id", "u2", "--wait=10", "echo", '"again"')
    assert json_out(p)["result"] == "again" and p.stderr == ""


# ---------------------------------------------------------------- migrate

def seed_0_1_0(r, prefix="jobq"):
    """Keys as jobq 0.1.0 left them."""
    p = prefix + ":"
    r.rpush(p + "queue:q1", *[job("noop", id=i) for i in ("a", "b", "c")])
    r.rpush(p + "inflight:q1:host:123", job("noop", id="i1"), job("noop", id="i2"))
    r.hset(p + "daemon:host:123:inflight", p + "inflight:q1:host:123", "q1")
    r.zadd(p + "scheduled", {job("noop", id="s1", queue="q1"): 100,
                             job("noop", id="s2", queue="q1", _jobq={"queue": "q2", "attempts": 1}): 200.5,
                             job("noop", id="s3"): 300})
    for e in ({"id": "d1", "queue": "q1"}, {"id": "d2"}, {"id": "d3", "queue": "q1"}):
        r.lpush(p + "dead", json.dumps(e))  # newest first: d3, d2, d1
    r.set(p + "stats:processed", 5)
    r.set(p + "stats:failed", 2)
    r.set(p + "ids", 42)
    r.set(p + "unique:x", 1)
    r.zadd(p + "cancel", {"x": 1})


def test_migrate(r, jq):
    seed_0_1_0(r)
    r.rpush(qkey("q1", "queue"), job("noop", id="new"))
    before = sorted(r.keys("*"))
    out = ok(jq("migrate", "--dry-run"))
    assert "would move 3 waiting job(s): jobq:queue:q1 -> jobq:{q1}:queue" in out, out
    assert "dry run" in out
    assert sorted(r.keys("*")) == before

    out = ok(jq("migrate"))
    assert "moved 3 waiting job(s): jobq:queue:q1 -> jobq:{q1}:queue" in out, out
    assert "put back 2 in-flight job(s): jobq:inflight:q1:host:123 -> the head of jobq:{q1}:queue" in out
    assert "moved 1 scheduled job: jobq:scheduled -> jobq:{q2}:scheduled" in out
    assert "moved 2 dead entries: jobq:dead -> jobq:{q1}:dead" in out
    ids = lambda key: [json.loads(x)["id"] for x in r.lrange(key, 0, -1)]
    # In-flight jobs first (they were taken first), then what was there, then the waiting ones.
    assert ids(qkey("q1", "queue")) == ["i1", "i2", "new", "a", "b", "c"]
    assert r.zrange(qkey("q1", "scheduled"), 0, -1, withscores=True) == [(job("noop", id="s1", queue="q1"), 100)]
    assert r.zrange(qkey("q2", "scheduled"), 0, -1, withscores=True)[0][1] == 200.5
    assert [json.loads(m)["id"] for m in r.zrange(qkey("default", "scheduled"), 0, -1)] == ["s3"]
    assert ids(qkey("q1", "dead")) == ["d3", "d1"] and ids(qkey("default", "dead")) == ["d2"]
    assert r.hgetall(qkey("default", "stats")) == {"processed": "5", "failed": "2"}
    assert sorted(k for k in r.keys("*") if "{" not in k) == [], r.keys("*")
    assert ok(jq("migrate")).startswith("nothing to migrate")
    # The migrated jobs are where jobq looks for them.
    s = json_out(jq("status", "--json"))
    assert {q["name"]: q["waiting"] for q in s["queues"]}["q1"] == 6
    assert s["jobs"]["processed"] == 5 and s["totals"]["dead"] == 3


def test_migrate_leaves_what_it_cannot_move(r, jq):
    r.zadd("jobq:scheduled", {job("noop", id="bad", queue="no good"): 1, job("noop", id="ok"): 2})
    r.set("jobq:queue:q9", "not a list")
    p = jq("migrate")
    assert p.returncode == 2, show(p)
    assert "left jobq:scheduled" in p.stdout and "left jobq:queue:q9: a string" in p.stdout
    assert r.zcard("jobq:scheduled") == 1 and r.zcard(qkey("default", "scheduled")) == 1


def test_migrate_refuses_while_an_old_daemon_runs(r, jq):
    seed_0_1_0(r)
    r.set("jobq:daemon:host:123", "{}", px=60000)  # its heartbeat
    usage_error(jq("migrate"), "0.1.0 daemon host:123 is still running")
    assert r.llen("jobq:inflight:q1:host:123") == 2 and r.llen("jobq:queue:q1") == 3
    r.delete("jobq:daemon:host:123")
    ok(jq("migrate"))
    assert r.llen(qkey("q1", "queue")) == 5


def test_migrate_other_prefix(r, redis_server):
    seed_0_1_0(r, "alt")
    p = run_jobq(redis_server.url, "--prefix", "alt", "migrate")
    assert ok(p).count("\n") >= 10
    assert r.llen("alt:{q1}:queue") == 5 and not r.keys("jobq*")


# ---------------------------------------------------------------- control characters

def test_control_characters_are_escaped(r, jq, redis_server, jobqd):
    """Nothing from Redis reaches the terminal raw: ids, queue names,
    handlers and errors with control characters print as \\xNN."""
    esc = "\x1b[2J\x9b"
    jobqd(TEST_HANDLERS)
    ok(jq("enqueue", "--id", "f1", "--wait=10", "fail", json.dumps({"message": "boom" + esc})), status=1)
    r.rpush(qkey("we\x1bird", "queue"), job("noop", id="w1"))
    argv = [str(jobq_path()), "--redis", redis_server.url, "events", "--count", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        wait_subscribers(r)
        r.publish(key("events"), json.dumps({"event": "ok", "id": "e" + esc, "queue": "q\x1b",
                                             "handler": "h\x7f", "time": time.time()}, ensure_ascii=False))
        [line] = read_lines(proc, 1)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    outputs = {"events": line, "dead list": ok(jq("dead", "list")), "status": ok(jq("status")),
               "result": jq("result", "w1").stderr}
    for name, text in outputs.items():
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), "%s: %r" % (name, text)
    assert "id=e\\x1b[2J\\xc2\\x9b" in line and "queue=q\\x1b" in line and "handler=h\\x7f" in line, line
    assert "boom\\x1b[2J\\xc2\\x9b" in outputs["dead list"]
    assert "we\\x1bird" in outputs["status"]
    assert "waiting in queue we\\x1bird" in outputs["result"]
    # JSON output stays JSON.
    assert json_out(jq("dead", "list", "--json"))[0]["error"] == "boom" + esc
