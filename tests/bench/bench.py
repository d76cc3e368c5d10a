#!/usr/bin/python3
"""The measuring half of `make bench` (started by tests/bench/run.sh, which
owns redis-server and nginx and has built build/bench/jqload).

Runs, in order, each with its own time limit inside a global budget:
  1. the Redis ceiling (redis-benchmark, -P 1 and -P 16, 50 clients);
  2-5. jobq: no-op throughput (2 and 4 workers), wordcount throughput,
     latency on idle workers, memory of the supervisor and idle workers
     before and after a run of jobs;
  6. the same workloads with rq (forking Worker and SimpleWorker).
Prints one table and writes it to <outdir>/results-<timestamp>.txt and
<outdir>/latest.txt.

Every process this script starts gets its own session (so it can be
stopped as a group), its pid goes to --pids-file (run.sh kills whatever
is left at exit), and it is stopped in a finally block.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import rq
    from rq import Queue
except ImportError:  # reported in the table; the jobq half still runs
    rq = None

MiB = 1024.0 * 1024.0

# The keys of queue default (README.md, "Redis keys": every key of queue Q
# carries the hash tag {Q}); results and events are global.
QUEUE_KEY = "jobq:{default}:queue"
STATS_KEY = "jobq:{default}:stats"        # hash: processed, failed
INFLIGHT_MATCH = "jobq:{default}:inflight:*"
RESULT_PREFIX = "jobq:result:"
EVENTS_CHANNEL = "jobq:events"


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


# Job counts (override with the environment for quicker or longer runs).
COUNTS = {
    "jobq_noop": env_int("BENCH_JOBQ_NOOP", 50000),
    "jobq_wc": env_int("BENCH_JOBQ_WORDCOUNT", 5000),
    "jobq_lat": env_int("BENCH_JOBQ_LATENCY", 1000),
    "jobq_mem": env_int("BENCH_JOBQ_MEMORY", 50000),
    "rqs_noop": env_int("BENCH_RQ_SIMPLE_NOOP", 5000),
    "rqs_wc": env_int("BENCH_RQ_SIMPLE_WORDCOUNT", 1000),
    "rqs_lat": env_int("BENCH_RQ_SIMPLE_LATENCY", 1000),
    "rqs_mem": env_int("BENCH_RQ_SIMPLE_MEMORY", 5000),
    "rqw_noop": env_int("BENCH_RQ_FORK_NOOP", 2000),
    "rqw_wc": env_int("BENCH_RQ_FORK_WORDCOUNT", 500),
    "rqw_lat": env_int("BENCH_RQ_FORK_LATENCY", 500),
    "rqw_mem": env_int("BENCH_RQ_FORK_MEMORY", 2000),
}
WARMUP = 20
IDLE_PROBE_SECONDS = 5.0


class Budget:
    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self):
        return self.deadline - time.monotonic()

    def cap(self, seconds, reserve=0.0):
        """A phase timeout: at most `seconds`, never past the deadline."""
        return max(0.0, min(seconds, self.left() - reserve))


class Bench:
    def __init__(self, a):
        self.a = a
        self.sock = a.sock
        self.r = redis.Redis(unix_socket_path=a.sock, socket_timeout=30, decode_responses=True)
        self.budget = Budget(a.budget)
        self.notes = []
        self.procs = []  # Popen objects still possibly alive
        self.res = {}  # measurement name -> value
        self.logs = os.path.join(a.outdir, "logs")
        os.makedirs(self.logs, exist_ok=True)

    # ---- helpers -----------------------------------------------------------
    def note(self, msg):
        self.notes.append(msg)
        print("bench: " + msg, file=sys.stderr, flush=True)

    def say(self, msg):
        print("bench: " + msg, file=sys.stderr, flush=True)

    def spawn(self, argv, log, env=None, cwd=None):
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True, cwd=cwd or self.a.root)
        f.close()
        self.procs.append(p)
        with open(self.a.pids_file, "a") as pf:
            pf.write("%d\n" % p.pid)
        return p

    def stop(self, p, timeout=8.0):
        """SIGTERM, wait, then SIGKILL the process group. Returns the exit code."""
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.note("pid %d did not stop within %.0f s of SIGTERM; killed" % (p.pid, timeout))
        # The group may hold children (jobqd workers) that outlived their parent.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p, timeout=3)

    def flush(self):
        self.r.flushall()

    @staticmethod
    def children(pid):
        out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
        return sorted(int(x) for x in out.split())

    @staticmethod
    def mem(pid):
        """(rss, pss) in bytes from /proc/<pid>/smaps_rollup, or None."""
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                text = f.read()
        except OSError:
            return None
        vals = {}
        for line in text.splitlines():
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                vals[m.group(1)] = int(m.group(2)) * 1024
        if "Rss" not in vals or "Pss" not in vals:
            return None
        return vals["Rss"], vals["Pss"]

    @staticmethod
    def cpu_seconds(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def nginx_requests(self):
        """Requests nginx has served so far (stub_status), or None."""
        if not self.a.nginx_status:
            return None
        try:
            with urllib.request.urlopen(self.a.nginx_status, timeout=5) as f:
                text = f.read().decode()
            return int(text.splitlines()[2].split()[2])
        except (OSError, ValueError, IndexError):
            return None

    def check_http(self, name, before, n):
        after = self.nginx_requests()
        if before is None or after is None:
            return
        served = after - before - 1  # minus this status request
        self.note("%s: nginx served %d requests for %d wordcount jobs" % (name, served, n))

    def jqload(self, *args, timeout=60):
        p = subprocess.run([self.a.jqload] + [str(x) for x in args], capture_output=True, text=True,
                           timeout=max(1.0, timeout))
        if p.returncode != 0:
            raise RuntimeError("jqload %s failed (%d): %s" % (args[0], p.returncode, p.stderr.strip()))
        if p.stderr.strip():
            self.say("jqload: " + p.stderr.strip())
        return json.loads(p.stdout)

    def stallprobe_start(self, seconds):
        """tests/bench/stallprobe.c for `seconds` beside a measurement: how
        late this machine woke a sleeping thread meanwhile (its own cost: one
        wake-up per CPU and ms). Read with stallprobe_read."""
        return subprocess.Popen([self.a.stallprobe, "%.3f" % seconds], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def stallprobe_read(self, p):
        """The probe's figures, or None (noted) when it failed."""
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.note("stallprobe did not end")
            return None
        if p.returncode != 0:
            self.note("stallprobe failed (%d): %s" % (p.returncode, err.strip()))
            return None
        return json.loads(out)

    # ---- 1. Redis ceiling ------------------------------------------------------
    def redis_ceiling(self):
        self.flush()
        sha = self.r.script_load("redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LPOP', KEYS[1])")
        payload = '{"event":"ok","id":"n12345","queue":"default","handler":"noop","attempt":1,' \
                  '"worker":"host:12345","time":1700000000.123456}'
        tests = [
            ("RPUSH (enqueue)", ["-t", "rpush"], "RPUSH"),
            ("LPOP (take)", ["-t", "lpop"], "LPOP"),
            ("SET 200 B (result)", ["-t", "set"], "SET"),
            ("HINCRBY (stats)", ["HINCRBY", "jobq:{bench}:stats", "processed", "1"], None),
            ("PUBLISH (event)", ["PUBLISH", "jobq:bench:events", payload], None),
            ("EVALSHA push+pop script (take)", ["EVALSHA", sha, "1", "jobq:{bench}:list", "x" * 40], None),
        ]
        out = []
        for label, targs, name in tests:
            row = [label]
            for pipe, n in ((1, self.a.rb_n1), (16, self.a.rb_n16)):
                t = self.budget.cap(30, reserve=120)
                if t < 3:
                    row.append(None)
                    continue
                argv = ["redis-benchmark", "-s", self.sock, "--csv", "-c", "50", "-n", str(n), "-P", str(pipe),
                        "-d", "200", "-r", "100000"] + targs
                try:
                    p = subprocess.run(argv, capture_output=True, text=True, timeout=t)
                    rps = None
                    # CSV: "test","rps",avg,min,p50,p95,p99,max. A custom command's test name
                    # holds its arguments unescaped, so count the fields from the right.
                    for line in p.stdout.replace("\r", "\n").splitlines():
                        cells = line.split(",")
                        if len(cells) >= 8 and not line.startswith('"test"'):
                            try:
                                rps = float(cells[-7].strip('"'))
                            except ValueError:
                                pass
                    row.append(rps)
                    if rps is None:
                        self.note("redis-benchmark %s -P %d: no rate in its output: %s" %
                                  (label, pipe, (p.stdout + p.stderr).strip()[-200:]))
                except subprocess.TimeoutExpired:
                    self.note("redis-benchmark %s -P %d: timed out after %.0f s" % (label, pipe, t))
                    row.append(None)
            out.append(row)
            self.say("redis ceiling %-32s %s" % (label, row[1:]))
        self.res["ceiling"] = out
        # One unpipelined round trip, measured from here (PING, 2000 times).
        t0 = time.perf_counter()
        for _ in range(2000):
            self.r.ping()
        self.res["rtt_py_ms"] = (time.perf_counter() - t0) / 2000 * 1e3
        self.flush()

    # ---- jobq ------------------------------------------------------------------
    def jobq_conf(self, workers, name, queues="default"):
        path = os.path.join(self.a.outdir, "jobq-%s.conf" % name)
        plugdir = os.path.join(self.a.outdir, "plugins-none")
        os.makedirs(plugdir, exist_ok=True)
        lines = [
            "; generated by tests/bench/bench.py for `make bench`",
            "[daemon]",
            "workers = %d" % workers,
            "queues = %s" % queues,
            "log_level = warn",
            "shutdown_timeout = 5",
        ]
        if os.environ.get("JOBQ_BENCH_BATCH_SIZE"):
            lines.append("batch_size = %d" % int(os.environ["JOBQ_BENCH_BATCH_SIZE"]))
        lines += ["[redis]", "url = unix://%s" % self.sock,
                  "[jobs]", "result_ttl = 3600",
                  "[plugins]", "dir = %s" % plugdir, ""]
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    def start_jobqd(self, workers, name, queues="default"):
        conf = self.jobq_conf(workers, name, queues)
        log = os.path.join(self.logs, "jobqd-%s.log" % name)
        if os.path.exists(log):
            os.unlink(log)
        p = self.spawn([self.a.jobqd, "-c", conf, "--redis", "unix://%s" % self.sock], log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError("jobqd exited with %s at start (log %s): %s" %
                                   (p.returncode, log, self.tail(log)))
            kids = self.children(p.pid)
            if len(kids) >= workers:
                return p, kids, log
            time.sleep(0.02)
        raise RuntimeError("jobqd did not fork %d workers within 10 s (log %s)" % (workers, log))

    @staticmethod
    def tail(path, n=5):
        try:
            with open(path, errors="replace") as f:
                return " | ".join(l.strip() for l in f.readlines()[-n:])
        except OSError:
            return ""

    def log_summary(self, log, name):
        try:
            with open(log, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return
        if lines:
            self.note("jobqd %s logged %d line(s) at warn or above, e.g.: %s" % (name, len(lines), lines[0][:200]))

    def wait_processed(self, target, timeout, proc, name, stall=10.0):
        """Poll the processed field of jobq:{default}:stats until >= target.
        Returns (count, ok)."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            n = self.processed()
            if n >= target:
                return n, True
            now = time.monotonic()
            if n != last:
                last, last_change = n, now
            if proc.poll() is not None:
                self.note("jobqd %s EXITED (status %s) after %d of %d jobs" % (name, proc.returncode, n, target))
                return n, False
            if now - last_change > stall:
                self.note("jobqd %s STALLED: no progress for %.0f s at %d of %d jobs (queue %d, in-flight %s)" %
                          (name, stall, n, target, self.r.llen(QUEUE_KEY), self.inflight_count()))
                return n, False
            if now > deadline:
                self.note("jobqd %s TIMED OUT after %.0f s at %d of %d jobs" % (name, timeout, n, target))
                return n, False
            time.sleep(0.02)

    def processed(self):
        return int(self.r.hget(STATS_KEY, "processed") or 0)

    def inflight_count(self):
        total = 0
        for k in self.r.scan_iter(INFLIGHT_MATCH, count=1000):
            total += self.r.llen(k)
        return total

    def jobq_throughput(self, workers, n, handler, key, args=None, expect_words=None, mem_after=False):
        name = "%s-%dw" % (handler, workers)
        t = self.budget.cap(90, reserve=100)
        if t < 10:
            self.note("jobq %s skipped: out of time" % name)
            return
        self.flush()
        prefix = "w" if handler == "wordcount" else "n"
        enq = ["enqueue", self.sock, QUEUE_KEY, n, prefix, handler] + ([args] if args else [])
        e = self.jqload(*enq, timeout=60)
        self.say("jobq %s: %d jobs enqueued in %.2f s" % (name, n, e["seconds"]))
        http0 = self.nginx_requests() if handler == "wordcount" else None
        redis_cpu0 = self.cpu_seconds(self.a.redis_pid)
        t_spawn = time.monotonic()
        p, kids, log = self.start_jobqd(workers, name)
        done, ok = self.wait_processed(n, t, p, name)
        wall = time.monotonic() - t_spawn
        redis_cpu = (self.cpu_seconds(self.a.redis_pid) or 0) - (redis_cpu0 or 0)
        kids_end = self.children(p.pid)
        wcpu = sum(self.cpu_seconds(k) or 0 for k in kids_end)
        scpu = self.cpu_seconds(p.pid) or 0
        if kids_end != kids:
            self.note("jobqd %s: worker pids changed during the run (%s -> %s): a worker died or was replaced" %
                      (name, kids, kids_end))
        if mem_after:
            time.sleep(0.5)
            self.res["jobq_mem_after_tp"] = self.memory_of(p.pid)
        rc = self.stop(p)
        if rc not in (0, None):
            self.note("jobqd %s exited with status %s on SIGTERM" % (name, rc))
        self.log_summary(log, name)
        if handler == "wordcount":
            self.check_http("jobq " + name, http0, n)
        c = self.jqload("collect", self.sock, RESULT_PREFIX, prefix, n,
                        *([expect_words] if expect_words is not None else []), timeout=60)
        window = c["last_finish"] - c["first_start"]
        rate = c["ok"] / window if window > 0 and c["ok"] else None
        if c["ok"] != n:
            self.note("jobq %s: %d of %d results ok (%d found, %d failed, first error: %s)%s" %
                      (name, c["ok"], n, c["found"], c["failed"], c["first_error"] or "-",
                       "; rate over the jobs that finished" if rate else ""))
        if c.get("bad_words"):
            self.note("jobq %s: %d wordcount results with a word count other than %s" %
                      (name, c["bad_words"], expect_words))
        if rate:
            self.note("jobq %s: %d jobs, %.3f s first start -> last finish; %.3f s from spawn to the "
                      "counter (%.0f jobs/s incl. startup); CPU: workers %.2f s, supervisor %.2f s, "
                      "redis %.2f s (%.0f%% of the window); %d distinct workers" %
                      (name, c["ok"], window, wall, done / wall if wall > 0 else 0, wcpu, scpu, redis_cpu,
                       100 * redis_cpu / window, c["workers"]))
        self.res["jobq_tp_" + name] = rate
        self.res["jobq_tp_n_" + name] = c["ok"]

    def memory_of(self, sup_pid):
        kids = self.children(sup_pid)
        return {"supervisor": self.mem(sup_pid), "workers": [(k, self.mem(k)) for k in kids]}

    def jobq_idle(self, n_lat, n_mem):
        name = "idle-2w"
        if self.budget.left() < 60:
            self.note("jobq latency/memory skipped: out of time")
            return
        self.flush()
        p, kids, log = self.start_jobqd(2, name)
        try:
            time.sleep(0.5)
            self.res["jobq_mem_before"] = self.memory_of(p.pid)
            lat = self.jqload("latency", self.sock, QUEUE_KEY, EVENTS_CHANNEL, RESULT_PREFIX,
                              n_lat, WARMUP, self.budget.cap(60, reserve=60), timeout=self.budget.cap(70, 50))
            self.record_latency("jobq", lat, n_lat)
            if n_mem > 0:
                base = self.processed()
                self.jqload("enqueue", self.sock, QUEUE_KEY, n_mem, "m", "noop", timeout=60)
                done, ok = self.wait_processed(base + n_mem, self.budget.cap(60, 40), p, name)
                time.sleep(0.5)
                self.res["jobq_mem_after"] = self.memory_of(p.pid)
                self.res["jobq_mem_n"] = done - base
                # A second run of the same size tells warm-up (first run only) from a leak (both).
                if self.budget.left() > 45:
                    self.jqload("enqueue", self.sock, QUEUE_KEY, n_mem, "mm", "noop", timeout=60)
                    done2, ok = self.wait_processed(done + n_mem, self.budget.cap(60, 40), p, name)
                    time.sleep(0.5)
                    self.res["jobq_mem_after2"] = self.memory_of(p.pid)
                    self.res["jobq_mem_n2"] = done2 - base
            kids_end = self.children(p.pid)
            if kids_end != kids:
                self.note("jobqd %s: worker pids changed (%s -> %s): a worker died or was replaced" %
                          (name, kids, kids_end))
        finally:
            rc = self.stop(p)
            if rc not in (0, None):
                self.note("jobqd %s exited with status %s on SIGTERM" % (name, rc))
            self.log_summary(log, name)

    def record_latency(self, who, lat, n):
        if lat.get("timeouts") or lat.get("missing_result") or lat.get("not_ok"):
            self.note("%s latency: %d timeouts, %d results missing at the event, %d not ok" %
                      (who, lat.get("timeouts", 0), lat.get("missing_result", 0), lat.get("not_ok", 0)))
        if lat["done"] < n:
            self.note("%s latency: only %d of %d samples (time limit)" % (who, lat["done"], n))
        self.res[who + "_lat"] = {"n": lat["done"], "start": pcts(lat["start"]), "visible": pcts(lat["visible"])}

    def run_jobq(self):
        if not self.a.jobqd or not os.access(self.a.jobqd, os.X_OK):
            self.note("jobq: %s is missing; jobq columns empty" % self.a.jobqd)
            return
        steps = [
            lambda: self.jobq_throughput(2, COUNTS["jobq_noop"], "noop", "n", mem_after=True),
            lambda: self.jobq_throughput(4, COUNTS["jobq_noop"], "noop", "n"),
            lambda: self.jobq_throughput(2, COUNTS["jobq_wc"], "wordcount", "w",
                                         args=json.dumps({"url": self.a.http_url}), expect_words=self.a.words),
            lambda: self.jobq_idle(COUNTS["jobq_lat"], COUNTS["jobq_mem"]),
        ]
        for s in steps:
            try:
                s()
            except (RuntimeError, subprocess.TimeoutExpired, redis.RedisError, ValueError) as e:
                self.note("jobq step failed: %s" % e)
            finally:
                self.stop_all()

    # ---- jobq and the peers in the same run (peers.py) ----------------------------
    def run_peers(self):
        import peers
        avail, self.peer_lines = {}, []
        try:
            with open(self.a.peers_file) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    self.peer_lines.append(line)
                    name, _, rest = line.partition(" ")
                    avail[name] = rest[3:] if rest.startswith("ok ") else None
                    if not rest.startswith("ok "):
                        self.note("peer %s %s" % (name, rest))
        except OSError:
            self.note("no peer list (%s): only jobq in the peers table" % self.a.peers_file)
        order = ["jobq"] + [n for n in peers.SYSTEMS if n != "jobq" and n in avail]
        self.peers = peers.PeerBench(self, avail)
        self.peers.run(order)
        self.res["peers"] = self.peers.res
        self.res["peer_order"] = [n for n in order if n in self.peers.res]
        self.res["peer_versions"] = avail

    # ---- rq --------------------------------------------------------------------
    def rq_env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = self.a.bench_dir + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def rq_argv(self, cls, burst):
        argv = ["/usr/bin/python3", "/usr/bin/rq", "worker", "--url", "unix://%s" % self.sock, "--quiet",
                "--path", self.a.bench_dir]
        if cls == "simple":
            argv += ["--worker-class", "rq.worker.SimpleWorker"]
        if burst:
            argv.append("--burst")
        return argv + ["default"]

    def rq_enqueue(self, q, n, prefix, func, args=()):
        raw = redis.Redis(unix_socket_path=self.sock, socket_timeout=30)
        q = Queue("default", connection=raw)
        for base in range(0, n, 1000):
            datas = [Queue.prepare_data(func, args=args, job_id="%s%d" % (prefix, i), result_ttl=3600)
                     for i in range(base, min(n, base + 1000))]
            with raw.pipeline() as pipe:
                q.enqueue_many(datas, pipeline=pipe)
                pipe.execute()

    def rq_collect(self, prefix, n, expect_words=None):
        done, starts, ends, bad = [], [], [], 0
        ids = ["rq:job:%s%d" % (prefix, i) for i in range(n)]
        for base in range(0, n, 1000):
            with self.r.pipeline(transaction=False) as pipe:
                for k in ids[base:base + 1000]:
                    pipe.hmget(k, "status", "started_at", "ended_at")
                for i, (status, s, e) in enumerate(pipe.execute(), base):
                    if status == "finished" and s and e:
                        done.append(i)
                        starts.append(parse_rq_time(s))
                        ends.append(parse_rq_time(e))
        finished = len(done)
        if expect_words is not None and finished:
            from rq.job import Job
            raw = redis.Redis(unix_socket_path=self.sock, socket_timeout=30)
            # A sample of 20 of the finished jobs (an unfinished one has no
            # result to check: the time limit, not a wrong count).
            for i in done[::max(1, finished // 20)][:20]:
                try:
                    v = Job.fetch("%s%d" % (prefix, i), connection=raw).return_value()
                    if not isinstance(v, dict) or v.get("words") != expect_words:
                        bad += 1
                except Exception:  # noqa: BLE001 - reported as a bad result
                    bad += 1
        return finished, (min(starts) if starts else 0), (max(ends) if ends else 0), bad

    def rq_throughput(self, cls, n, kind):
        name = "rq-%s-%s" % (cls, kind)
        t = self.budget.cap(20, reserve=10)
        if t < 10:
            self.note("%s skipped: out of time" % name)
            return
        self.flush()
        prefix = "w" if kind == "wordcount" else "n"
        func = "rqjobs.wordcount" if kind == "wordcount" else "rqjobs.noop"
        args = (self.a.http_url,) if kind == "wordcount" else ()
        t0 = time.monotonic()
        self.rq_enqueue(None, n, prefix, func, args)
        self.say("%s: %d jobs enqueued in %.2f s" % (name, n, time.monotonic() - t0))
        http0 = self.nginx_requests() if kind == "wordcount" else None
        redis_cpu0 = self.cpu_seconds(self.a.redis_pid)
        ws = [self.spawn(self.rq_argv(cls, burst=True), os.path.join(self.logs, "%s-%d.log" % (name, i)),
                         env=self.rq_env()) for i in range(2)]
        deadline = time.monotonic() + t
        timed_out = False
        for w in ws:
            try:
                w.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        for w in ws:
            self.stop(w)
            if w.returncode not in (0, None) and not timed_out:
                self.note("%s: a worker exited with status %s" % (name, w.returncode))
        redis_cpu = (self.cpu_seconds(self.a.redis_pid) or 0) - (redis_cpu0 or 0)
        if kind == "wordcount":
            self.check_http(name, http0, n)
        finished, first, last, bad = self.rq_collect(prefix, n, self.a.words if kind == "wordcount" else None)
        window = last - first
        rate = finished / window if finished and window > 0 else None
        if timed_out:
            self.note("%s: time limit (%.0f s) reached with %d of %d jobs finished; rate over those" %
                      (name, t, finished, n))
        elif finished != n:
            self.note("%s: %d of %d jobs finished" % (name, finished, n))
        if bad:
            self.note("%s: %d of %d sampled finished results had the wrong word count" % (name, bad, min(20, finished)))
        if rate:
            self.note("%s: %d jobs, %.3f s first start -> last end; redis CPU %.2f s (%.0f%%)" %
                      (name, finished, window, redis_cpu, 100 * redis_cpu / window))
        self.res["%s_tp_%s" % (cls, kind)] = rate
        self.res["%s_tp_n_%s" % (cls, kind)] = finished

    def rq_idle(self, cls, n_lat, n_mem):
        name = "rq-%s-idle" % cls
        if self.budget.left() < 20:
            self.note("%s latency/memory skipped: out of time" % name)
            return
        self.flush()
        ws = [self.spawn(self.rq_argv(cls, burst=False), os.path.join(self.logs, "%s-%d.log" % (name, i)),
                         env=self.rq_env()) for i in range(2)]
        try:
            self.rq_wait_idle(ws, 15)
            time.sleep(0.5)
            self.res[cls + "_mem_before"] = {"workers": [(w.pid, self.mem(w.pid)) for w in ws]}
            self.rq_latency(cls, n_lat)
            if n_mem > 0:
                base = self.r.zcard("rq:finished:default")
                self.rq_enqueue(None, n_mem, "m", "rqjobs.noop")
                deadline = time.monotonic() + self.budget.cap(20, 15)
                while time.monotonic() < deadline:
                    if self.r.zcard("rq:finished:default") >= base + n_mem:
                        break
                    time.sleep(0.05)
                done = self.r.zcard("rq:finished:default") - base
                if done < n_mem:
                    self.note("%s: memory run stopped at %d of %d jobs (time limit)" % (name, done, n_mem))
                    self.r.delete("rq:queue:default")  # the rest would keep the workers busy
                self.rq_wait_idle(ws, 10)
                time.sleep(0.5)
                self.res[cls + "_mem_after"] = {"workers": [(w.pid, self.mem(w.pid)) for w in ws]}
                self.res[cls + "_mem_n"] = done
        finally:
            for w in ws:
                self.stop(w)

    def rq_wait_idle(self, ws, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in ws:
                if w.poll() is not None:
                    raise RuntimeError("an rq worker exited with %s" % w.returncode)
            names = self.r.smembers("rq:workers")
            states = [self.r.hget(n, "state") for n in names]
            if len(states) >= len(ws) and all(s == "idle" for s in states):
                return
            time.sleep(0.05)
        raise RuntimeError("rq workers not idle within %.0f s" % timeout)

    def rq_latency(self, cls, n):
        """As jqload latency, for rq: t0 just before Queue.enqueue; start = job started_at - t0; visible =
        arrival of the keyspace event of the XADD that stores the result (rq writes the result, status and
        registry in one MULTI), cross-checked with the job's status."""
        raw = redis.Redis(unix_socket_path=self.sock, socket_timeout=30)
        q = Queue("default", connection=raw)
        self.r.config_set("notify-keyspace-events", "Et")
        ps = self.r.pubsub(ignore_subscribe_messages=True)
        ps.subscribe("__keyevent@0__:xadd")
        ps.get_message(timeout=1)
        start, visible = [], []
        timeouts = not_ok = 0
        deadline = time.monotonic() + self.budget.cap(20, 10)
        try:
            for i in range(WARMUP + n):
                if time.monotonic() > deadline:
                    break
                jid = "lat%d" % i
                want = "rq:results:" + jid
                t0 = time.time()
                q.enqueue("rqjobs.noop", job_id=jid, result_ttl=3600)
                t1 = None
                wait_until = time.monotonic() + 10
                while time.monotonic() < wait_until:
                    m = ps.get_message(timeout=max(0.001, wait_until - time.monotonic()))
                    if m and m.get("type") == "message" and m.get("data") == want:
                        t1 = time.time()
                        break
                if t1 is None:
                    timeouts += 1
                    self.note("rq %s latency: no result event for %s within 10 s" % (cls, jid))
                    break
                status, s = self.r.hmget("rq:job:" + jid, "status", "started_at")
                if status != "finished" or not s:
                    not_ok += 1
                    continue
                if i >= WARMUP:
                    start.append((parse_rq_time(s) - t0) * 1e3)
                    visible.append((t1 - t0) * 1e3)
        finally:
            ps.close()
            self.r.config_set("notify-keyspace-events", "")
        self.record_latency(cls, {"done": len(start), "start": start, "visible": visible, "timeouts": timeouts,
                                  "not_ok": not_ok}, n)

    def run_rq(self):
        if rq is None:
            self.note("rq: python3-rq is not importable; rq columns empty")
            return
        for cls, p in (("simple", "rqs"), ("fork", "rqw")):
            steps = [
                lambda: self.rq_throughput(cls, COUNTS[p + "_noop"], "noop"),
                lambda: self.rq_throughput(cls, COUNTS[p + "_wc"], "wordcount"),
                lambda: self.rq_idle(cls, COUNTS[p + "_lat"], COUNTS[p + "_mem"]),
            ]
            for s in steps:
                try:
                    s()
                except (RuntimeError, subprocess.TimeoutExpired, redis.RedisError, ValueError) as e:
                    self.note("rq %s step failed: %s" % (cls, e))
                finally:
                    self.stop_all()


# ---- numbers and the table -------------------------------------------------------
def parse_rq_time(s):
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def pcts(vals):
    s = sorted(vals)
    return {"p50": pct(s, 50), "p99": pct(s, 99), "max": s[-1] if s else None}


def fnum(v, digits=None):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int) and digits is None:
        return "{:,}".format(v)
    if digits is None:
        digits = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return "{:,.{}f}".format(v, digits)


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        r = a / b
        if 0 < r < 0.01:
            return "1/{:,.0f}".format(1 / r)
        return "%.2f" % r if r < 10 else "{:,.0f}".format(r)
    return "n/a"


def mib(b):
    return None if b is None else b / MiB


def build_table(b, a, header):
    R = b.res
    W = [46, 13, 13, 13, 9, 9]
    lines = list(header)

    def row(label, j, w, s, goal="", jr=None):
        """jr: the value to compare (when j is a string listing several)."""
        cmpv = j if jr is None else jr
        cells = [label.ljust(W[0]), fnum(j).rjust(W[1]), fnum(w).rjust(W[2]), fnum(s).rjust(W[3]),
                 ratio(cmpv, w[1] if isinstance(w, tuple) else w).rjust(W[4]),
                 ratio(cmpv, s).rjust(W[5])]
        lines.append(" ".join(cells) + ("  " + goal if goal else ""))

    def sep(title):
        lines.append("")
        lines.append(title)

    # 1. Redis ceiling
    sep("1. Redis ceiling: redis-benchmark, 50 clients, unix socket, -d 200, -r 100000 (ops/s)")
    lines.append("   %-43s %13s %13s   (-n %s / %s)" % ("command", "-P 1", "-P 16", fnum(a.rb_n1), fnum(a.rb_n16)))
    for label, p1, p16 in R.get("ceiling", []):
        lines.append("   %-43s %13s %13s" % (label, fnum(p1), fnum(p16)))
    if R.get("rtt_py_ms"):
        lines.append("   %-43s %13s" % ("PING round trip from redis-py, ms", fnum(R["rtt_py_ms"], 3)))

    hdr = " ".join(["".ljust(W[0]), "jobq".rjust(W[1]), "rq Worker".rjust(W[2]), "rq Simple".rjust(W[3]),
                    "jobq/rqW".rjust(W[4]), "jobq/rqS".rjust(W[5])]) + "  goal (issue 7)"

    sep("2-3. Throughput, jobs/s, first start -> last finish, jobs pre-enqueued, rq: 2 workers, burst mode")
    lines.append(hdr)
    lines.append("   jobs measured: no-op %s / %s / %s; wordcount %s / %s / %s" % (
        fnum(R.get("jobq_tp_n_noop-2w")), fnum(R.get("fork_tp_n_noop")), fnum(R.get("simple_tp_n_noop")),
        fnum(R.get("jobq_tp_n_wordcount-2w")), fnum(R.get("fork_tp_n_wordcount")),
        fnum(R.get("simple_tp_n_wordcount"))))
    row("no-op, 2 workers", R.get("jobq_tp_noop-2w"), R.get("fork_tp_noop"), R.get("simple_tp_noop"),
        ">= 40,000 and >= 80x rqS")
    row("no-op, jobq 4 workers (vs rq 2 workers)", R.get("jobq_tp_noop-4w"), R.get("fork_tp_noop"),
        R.get("simple_tp_noop"))
    row("wordcount 64 KiB via nginx, 2 workers", R.get("jobq_tp_wordcount-2w"), R.get("fork_tp_wordcount"),
        R.get("simple_tp_wordcount"), ">= 2,000")

    sep("4. Latency, ms, idle workers (2), one job at a time, %d warm-up jobs not counted" % WARMUP)
    lines.append(hdr)
    lj, lw, ls = R.get("jobq_lat"), R.get("fork_lat"), R.get("simple_lat")
    lines.append("   samples: %s / %s / %s" % tuple(fnum(x["n"]) if x else "-" for x in (lj, lw, ls)))
    goals = {("start", "p50"): "<= 0.25", ("start", "p99"): "<= 1", ("visible", "p50"): "<= 0.5"}
    for kind, label in (("start", "enqueue -> handler start"), ("visible", "enqueue -> result visible")):
        for p in ("p50", "p99", "max"):
            g = lambda x: x[kind][p] if x else None  # noqa: E731
            row("%s %s" % (label, p), g(lj), g(lw), g(ls), goals.get((kind, p), ""))

    sep("5. Memory, MiB, from /proc/<pid>/smaps_rollup (each idle worker listed; ratios use the mean)")
    lines.append(hdr)
    lines.append("   after: jobq %s jobs, rq Worker %s, rq Simple %s (no-op, same processes as 'idle')" % (
        fnum(R.get("jobq_mem_n")), fnum(R.get("fork_mem_n")), fnum(R.get("simple_mem_n"))))

    def sup(key, idx):
        m = R.get(key)
        v = m and m.get("supervisor")
        return mib(v[idx]) if v else None

    def workers(key, idx):
        m = R.get(key)
        if not m or not m.get("workers"):
            return None, None
        vals = [mib(x[1][idx]) for x in m["workers"] if x[1]]
        if not vals:
            return None, None
        return " ".join(fnum(v, 2) for v in vals), sum(vals) / len(vals)

    def wrow(label, idx, when, goal=""):
        j, jm = workers("jobq_mem_" + when, idx)
        w, wm = workers("fork_mem_" + when, idx)
        s, sm = workers("simple_mem_" + when, idx)
        cells = [label.ljust(W[0]), fnum(j).rjust(W[1]), fnum(w).rjust(W[2]), fnum(s).rjust(W[3]),
                 ratio(jm, wm).rjust(W[4]), ratio(jm, sm).rjust(W[5])]
        lines.append(" ".join(cells) + ("  " + goal if goal else ""))

    whens = [("before", "idle, before"), ("after", "idle, after")]
    if R.get("jobq_mem_after2"):
        lines.append("   after 2x: jobq only, %s jobs in all, same processes" % fnum(R.get("jobq_mem_n2")))
        whens.append(("after2", "idle, after 2x"))
    for when, wlabel in whens:
        lines.append(" ".join([("supervisor RSS / PSS, " + wlabel).ljust(W[0]),
                               ("%s / %s" % (fnum(sup("jobq_mem_" + when, 0), 2),
                                             fnum(sup("jobq_mem_" + when, 1), 2))).rjust(W[1]),
                               "n/a".rjust(W[2]), "n/a".rjust(W[3]), "n/a".rjust(W[4]), "n/a".rjust(W[5])]))
        wrow("worker RSS, " + wlabel, 0, when)
        wrow("worker PSS, " + wlabel, 1, when, "<= 1 MiB, no growth")
    if R.get("jobq_mem_after_tp"):
        m = R["jobq_mem_after_tp"]
        lines.append("   jobq after the 2-worker no-op run: supervisor RSS/PSS %s/%s, workers PSS %s" % (
            fnum(mib(m["supervisor"][0]) if m["supervisor"] else None, 2),
            fnum(mib(m["supervisor"][1]) if m["supervisor"] else None, 2),
            " ".join(fnum(mib(x[1][1]), 2) for x in m["workers"] if x[1])))
    if R.get("peers"):
        peer_table(b, R, lines)
    lines.append("")
    lines.append("ratios are jobq/rq: above 1 is better for jobq on throughput, below 1 on latency and memory.")
    lines.append("rq latency: t0 is taken before Queue.enqueue (so it includes rq's client-side work); the result")
    lines.append("is visible at the keyspace event of its XADD (same MULTI as the status), jobq at its 'ok' event.")
    if b.notes:
        lines.append("")
        lines.append("notes:")
        for n in b.notes:
            lines.append("  - " + n)
    return lines


def peer_table(b, R, lines):
    """6. jobq and the peers in the same run (tests/bench/peers.py)."""
    P, order = R["peers"], R["peer_order"]
    peers_ = [n for n in order if n != "jobq"]
    W0, WC = 34, 16
    drain = b.peers.drain if getattr(b, "peers", None) else 12

    def cell(v, digits=None):
        return fnum(v, digits).rjust(WC)

    def best(vals, low):
        vals = [v for v in vals if isinstance(v, (int, float))]
        if not vals:
            return None
        return min(vals) if low else max(vals)

    def row(label, vals, low=False, digits=None, ratio_ok=True, fmt=None):
        cells = [(fmt(v) if fmt else fnum(v, digits)).rjust(WC) for v in vals]
        j = vals[0] if order and order[0] == "jobq" else None
        bp = best(vals[1:], low)
        rt = ratio(j, bp) if ratio_ok else ""
        lines.append(label.ljust(W0) + "".join(cells) + rt.rjust(12))

    lines.append("")
    lines.append("6. jobq and its peers in the same run: same redis-server, same jobs, 2 worker processes each")
    for n in peers_:
        lines.append("   %-8s %s" % (n, R["peer_versions"].get(n) or "-"))
    lines.append("   rq: SimpleWorker; celery: prefork, concurrency 2; sidekiq: 2 processes x %d threads; "
                 "bullmq: 2 node processes, concurrency %d" % (env_int("BENCH_SIDEKIQ_CONCURRENCY", 10),
                                                            env_int("BENCH_BULLMQ_CONCURRENCY", 1)))
    lines.append("".ljust(W0) + "".join(n.rjust(WC) for n in order) + "jobq/best".rjust(12))

    def get(n, *path):
        v = P.get(n, {})
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    row("no-op throughput, jobs/s", [get(n, "noop", "throughput") for n in order])
    row("wordcount 64 KiB, jobs/s", [get(n, "wordcount", "throughput") for n in order])
    row("  jobs measured no-op / wordcount", [None] * 0 + [
        "%s/%s" % (fnum(get(n, "noop", "ok")), fnum(get(n, "wordcount", "ok"))) for n in order], ratio_ok=False,
        fmt=lambda v: v)
    row("Redis CPU us/job, no-op drain", [get(n, "noop", "redis_cpu_us") for n in order], low=True, digits=1)
    row("Redis CPU us/job, wordcount", [get(n, "wordcount", "redis_cpu_us") for n in order], low=True, digits=1)

    def open_run(n, label):
        for r in P.get(n, {}).get("open", []):
            if r.get("label") == label:
                return r
        return None

    labels = []
    for n in order:
        for r in P.get(n, {}).get("open", []):
            if r["label"] not in labels:
                labels.append(r["label"])

    def lat(v):
        if v is None:
            return "> %.0f s" % drain
        return fnum(v, 2 if v < 10 else None)

    def stalls(r):
        """A run's host stalls over 2 ms, and the worst in ms."""
        h = r and r.get("host")
        return "%d, %.1f" % (h["episodes_2ms"], h["max_ms"]) if h else "-"

    lines.append("")
    lines.append("   open loop, no-op jobs offered by the clock (not by completions), ms from enqueue "
                 "(a job unfinished %.0f s after the offered load counts as infinitely late)" % drain)
    for label in labels:
        runs = [open_run(n, label) for n in order]
        offered = [r["rate"] if r else None for r in runs]
        lines.append("")
        lines.append(("offered " + label).ljust(W0) + "".join(n.rjust(WC) for n in order) + "jobq/best".rjust(12))
        if not label.endswith("/s"):
            row("  offered, jobs/s", offered, ratio_ok=False)
        row("  achieved enqueue rate, jobs/s", [r["push"].get("achieved_rate") if r and r["push"] else None
                                                for r in runs],
            ratio_ok=False)
        row("  jobs (unfinished)", [("not run" if r.get("skipped") else
                                     "%s (%s)" % (fnum(r["n"]), fnum(r["unfinished"]))) if r else "-"
                                    for r in runs], ratio_ok=False, fmt=lambda v: v)
        for kind, p_ in (("start", "p50"), ("start", "p99"), ("start", "p999"), ("start", "max"),
                         ("finish", "p99")):
            vals = [r[kind][p_] if r else None for r in runs]
            cells = ["-" if r is None else lat(v) for v, r in zip(vals, runs)]
            rt = ratio(vals[0], best(vals[1:], True)) if runs[0] else "n/a"
            lines.append(("  enqueue -> %s %s" % (kind, p_)).ljust(W0) + "".join(c.rjust(WC) for c in cells) +
                         rt.rjust(12))
        row("  Redis CPU us/job", [r["redis_cpu_us"] if r else None for r in runs], low=True, digits=1)
        row("  host stalls > 2 ms (stallprobe)", [stalls(r) for r in runs], ratio_ok=False, fmt=lambda v: v)
    # Issue 17's targets, reported (not asserted).
    def jopen(label, kind, p_):
        r = open_run("jobq", label)
        return r[kind][p_] if r and not r.get("skipped") else None

    def tcheck(ok):
        return "met" if ok else "NOT met"

    fast = best([get(n, "noop", "throughput") for n in peers_], False)
    fastw = best([get(n, "wordcount", "throughput") for n in peers_], False)
    jn, jw = get("jobq", "noop", "throughput"), get("jobq", "wordcount", "throughput")
    lines.append("")
    lines.append("   targets (issue 17; reported, not asserted):")
    if jn and fast:
        lines.append("   - no-op throughput >= 10x the fastest peer: %.1fx (%s)" % (jn / fast, tcheck(jn >= 10 * fast)))
    if jw and fastw:
        lines.append("   - wordcount throughput >= 5x the fastest peer: %.1fx (%s)" % (jw / fastw,
                                                                                  tcheck(jw >= 5 * fastw)))
    p99, p999 = jopen("10,000/s", "start", "p99"), jopen("10,000/s", "start", "p999")
    if p99 is not None and p999 is not None:
        lines.append("   - 10,000/s offered: enqueue -> start p99 <= 1 ms and p999 <= 2 ms: %.2f / %.2f ms (%s; "
                     "host stalls over 2 ms during it: %s)" % (
                         p99, p999, tcheck(p99 <= 1 and p999 <= 2), stalls(open_run("jobq", "10,000/s"))))
    p99 = jopen("5,000/s", "start", "p99")
    if p99 is not None:
        lines.append("   - 5,000/s offered: enqueue -> start p99 <= 0.5 ms: %.2f ms (%s)" % (p99, tcheck(p99 <= 0.5)))
    extras = P.get("jobq", {}).get("extras")
    if extras:
        lines.append("")
        lines.append("7. Where jobq's tail comes from: the same open loop, no-op, jobq alone")
        lines.append("   %-54s %9s %9s %9s %9s %9s %9s %9s %10s" % ("", "achieved", "p50", "p99", "p999", "max",
                                                                     "fin. p99", "Redis us", "stalls"))
        for r in extras:
            st = r["start"]
            lines.append("   %-54s %9s %9s %9s %9s %9s %9s %9s %10s" % (
                r["label"], fnum(r["push"].get("achieved_rate")), lat(st["p50"]), lat(st["p99"]),
                lat(st["p999"]), lat(st["max"]), lat(r["finish"]["p99"]), fnum(r["redis_cpu_us"], 1), stalls(r)))
        lines.append("   (enqueue -> start in ms; Redis us = Redis CPU per job, enqueue and work; stalls = host")
        lines.append("   stalls over 2 ms during the push, and the worst in ms)")
    lines.append("")
    lines.append("   jobq/best: jobq divided by the best peer (throughput: the fastest; latency and CPU: the lowest).")
    lines.append("   start = the handler's start as the result records it (jobq started_at, rq started_at, the task's")
    lines.append("   own clock for celery, sidekiq and bullmq); finish = jobq finished_at, rq ended_at, celery date_done,")
    lines.append("   bullmq finishedOn (ms), sidekiq the job's clock after writing its result.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--sock", required=True)
    ap.add_argument("--redis-pid", type=int, required=True)
    ap.add_argument("--http-url", required=True)
    ap.add_argument("--words", type=int, required=True)
    ap.add_argument("--nginx-status", default="")
    ap.add_argument("--jobqd", default="")
    ap.add_argument("--jqload", required=True)
    ap.add_argument("--stallprobe", required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--bench-dir", required=True)
    ap.add_argument("--pids-file", required=True)
    ap.add_argument("--budget", type=float, default=240)
    ap.add_argument("--rb-n1", type=int, default=100000)
    ap.add_argument("--rb-n16", type=int, default=500000)
    ap.add_argument("--header-file", required=True)
    ap.add_argument("--peers-file", default="")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench(a)
    started = datetime.datetime.now()
    t0 = time.monotonic()
    load0 = os.getloadavg()
    # The machine's own floor, before anything runs (see stallprobe.c).
    idle = b.stallprobe_read(b.stallprobe_start(IDLE_PROBE_SECONDS))
    b.res["idle_stalls"] = idle
    status = 0
    parts = [x.strip() for x in os.environ.get("BENCH_PARTS", "ceiling,jobq,rq,peers").split(",") if x.strip()]
    try:
        if "ceiling" in parts:
            b.redis_ceiling()
        if "jobq" in parts:
            b.run_jobq()
        # The peers before rq's forking Worker and memory sections: those are
        # the first to go when the budget runs short.
        if "peers" in parts:
            b.run_peers()
        if "rq" in parts:
            b.run_rq()
    except (KeyboardInterrupt, SystemExit) as e:
        # Still print what was measured, marked as partial.
        b.note("INTERRUPTED (%s): the table is partial" % type(e).__name__)
        status = 130 if isinstance(e, KeyboardInterrupt) else (e.code if isinstance(e.code, int) else 1)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    finally:
        b.stop_all()
    load1 = os.getloadavg()
    with open(a.header_file) as f:
        header = [l.rstrip("\n") for l in f]
    header.append("run: %s, %.0f s; load average at start %.2f %.2f %.2f, at end %.2f %.2f %.2f" % (
        started.strftime("%Y-%m-%d %H:%M:%S"), time.monotonic() - t0, *load0, *load1))
    header.append("python %s, redis-py %s" % (platform.python_version(), redis.__version__))
    if idle:
        header.append("machine, idle for %.0f s before the runs: a thread per CPU sleeping 1 ms woke over 2 ms late "
                      "%d times (%d distinct stalls), at worst %.1f ms late" % (
                          idle["seconds"], idle["late_2ms"], idle["episodes_2ms"], idle["max_ms"]))
    lines = build_table(b, a, header)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    for name in ("results-%s.txt" % stamp, "latest.txt"):
        with open(os.path.join(a.outdir, name), "w") as f:
            f.write(text)
    # The measurements as JSON too (tests/bench/medians.py combines runs).
    for name in ("results-%s.json" % stamp, "latest.json"):
        with open(os.path.join(a.outdir, name), "w") as f:
            json.dump({"res": b.res, "notes": b.notes, "header": header}, f, default=str)
    print("bench: table written to %s and %s" % (os.path.join(a.outdir, "results-%s.txt" % stamp),
                                                 os.path.join(a.outdir, "latest.txt")), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
