"""jobq and its peers in the same run (issue 17), for tests/bench/bench.py.

Every system runs on the bench's private redis-server with 2 worker
processes, the same no-op and 64 KiB wordcount jobs, and the same open-loop
rates:

  jobq     jobqd, workers = 2
  rq       2 x `rq worker` SimpleWorker (Debian python3-rq)
  celery   1 x `celery worker --pool prefork --concurrency 2` (Debian python3-celery)
  sidekiq  2 x `sidekiq -c BENCH_SIDEKIQ_CONCURRENCY` (default 10, Sidekiq 6's default; Debian ruby-sidekiq)
  bullmq   2 x node tests/bench/peers/bullmq_worker.js, concurrency BENCH_BULLMQ_CONCURRENCY
           (default 1, BullMQ's default; npm bullmq under build/bench/peers)

Per system, in order (workers started once for 1-2, again for 3):
  1. no-op throughput: N jobs enqueued first, then the workers start;
     jobs / (last finish - first start) from the result documents;
  2. open loop: at 1k, 5k, 10k and 20k jobs/s, then at 50 % and 90 % of
     the system's own throughput from 1, a producer enqueues by the clock
     (tests/bench/jqload.c `push`, the enqueue commands of each system's own
     client as templates from peers/templates.py; BullMQ through its client,
     peers/bullmq_load.js), never waiting for completions; afterwards the
     result documents are read (`jqload results`, pipelined MGET/HMGET) for
     enqueue -> start and enqueue -> finish percentiles;
  3. wordcount throughput, results checked against the known word count.
Beside each open-loop push, tests/bench/stallprobe.c counts the moments
this machine woke a sleeping thread over 2 ms late ("host stalls"): every
job enqueued in such a moment is late too, whatever the system.
Redis CPU per job is `INFO cpu` (used_cpu_sys + used_cpu_user) before and
after, divided by the jobs: over the drain in 1 (the workers' side only)
and over each open-loop run (enqueue and work).

A rate far above what a system can do would leave it a backlog of many
seconds: such runs (above 1.2x its throughput) offer load for 1 s instead
of 3, and jobs not finished BENCH_DRAIN seconds after (default 8) count as
infinitely late (the percentiles they reach print as "> N s"). Once a fixed
rate left jobs unfinished, the higher fixed rates are not run: they are
shown as "> N s" too, with "not run" in the jobs row.
"""
import json
import os
import subprocess
import time

import redis


def fnum(v):
    return "-" if v is None else "%.1f" % v

OPEN_RATES = [1000, 5000, 10000, 20000]
SYSTEMS = ["jobq", "rq", "celery", "sidekiq", "bullmq"]


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class System:
    """One queue system on the bench's Redis: its workers, its producer and
    where its results are."""
    scheme = None
    noop_n = 5000
    wc_n = 1000

    def __init__(self, pb):
        self.pb = pb            # PeerBench
        self.b = pb.b           # Bench
        self.a = pb.b.a

    # -- workers
    def start(self, kind):
        raise NotImplementedError

    def wait_ready(self, procs, timeout=20):
        """Until the workers run (their processes alive after a moment)."""
        self.poll_ready(procs, lambda: False, 1.0, None)

    def poll_ready(self, procs, ready, timeout, what, settle=0.0):
        """Poll ready() until it holds (then wait settle seconds) or timeout
        passes: a RuntimeError saying what was not ready, or that a worker
        process exited meanwhile. what=None: no readiness to wait for, only
        that the processes stay alive for timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError("%s: a worker exited with %s at start" % (self.name, p.returncode))
            if ready():
                time.sleep(settle)
                return
            time.sleep(0.05)
        if what is not None:
            raise RuntimeError("%s: %s within %.0f s" % (self.name, what, timeout))

    def stop(self, procs):
        for p in procs:
            self.b.stop(p, timeout=10)

    # -- producer
    def template(self, kind):
        path = os.path.join(self.pb.tdir, "%s-%s.json" % (self.name, kind))
        if not os.path.exists(path):
            p = subprocess.run(["/usr/bin/python3", os.path.join(self.a.bench_dir, "peers", "templates.py"),
                                self.name, kind, self.a.sock, self.a.http_url, path],
                               capture_output=True, text=True, timeout=60, env=self.pb.py_env())
            if p.returncode != 0:
                raise RuntimeError("%s: template: %s" % (self.name, (p.stderr or p.stdout).strip()[-300:]))
        return path

    def push(self, kind, n, prefix, rate, t0file, timeout, template=None):
        return self.b.jqload("push", self.a.sock, template or self.template(kind), n, prefix, rate, t0file,
                             timeout=timeout)

    def purge(self):
        """Drop the backlog an overloaded run left (its jobs count as unfinished)."""
        self.b.r.delete(self.queue_key)

    # -- results
    def last_done(self, r, jid):
        raise NotImplementedError

    def results(self, prefix, n, t0file, expect_words=None):
        args = ["results", self.a.sock, self.scheme, prefix, n, t0file]
        if expect_words is not None:
            args.append(expect_words)
        return self.b.jqload(*args, timeout=120)


class Jobq(System):
    name = "jobq"
    scheme = "jobq"
    queue_key = "jobq:{default}:queue"
    noop_n = 50000
    wc_n = 5000

    def start(self, kind):
        p, kids, log = self.b.start_jobqd(2, "peers-" + kind)
        return [p]

    def last_done(self, r, jid):
        return r.exists("jobq:result:" + jid)


class Rq(System):
    name = "rq"
    scheme = "rq"
    queue_key = "rq:queue:default"
    noop_n = 3000
    wc_n = 1000

    def start(self, kind):
        argv = ["/usr/bin/python3", "/usr/bin/rq", "worker", "--url", "unix://%s" % self.a.sock, "--quiet",
                "--path", self.a.bench_dir, "--worker-class", "rq.worker.SimpleWorker", "default"]
        return [self.b.spawn(argv, self.pb.log("rq-%s-%d" % (kind, i)), env=self.pb.py_env()) for i in range(2)]

    def wait_ready(self, procs, timeout=20):
        self.poll_ready(procs, lambda: self.b.r.scard("rq:workers") >= len(procs), timeout,
                        "workers not registered")

    def last_done(self, r, jid):
        return r.hget("rq:job:" + jid, "status") in ("finished", "failed")


class Celery(System):
    name = "celery"
    scheme = "celery"
    queue_key = "default"
    noop_n = 5000
    wc_n = 1000

    def start(self, kind):
        argv = ["/usr/bin/python3", "-m", "celery", "-A", "celery_jobs", "worker", "--pool", "prefork",
                "--concurrency", "2", "-Q", "default", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--loglevel", "WARNING", "-n", "bench@%h"]
        return [self.b.spawn(argv, self.pb.log("celery-" + kind), env=self.pb.py_env(), cwd=self.pb.peers_dir)]

    def wait_ready(self, procs, timeout=30):
        # The prefork children exist once the worker is ready to consume.
        self.poll_ready(procs, lambda: len(self.b.children(procs[0].pid)) >= 2 and
                        self.b.r.exists("_kombu.binding.default"), timeout,
                        "worker not ready (log %s)" % self.pb.log("celery"), settle=0.5)

    def last_done(self, r, jid):
        return r.exists("celery-task-meta-" + jid)


class Sidekiq(System):
    name = "sidekiq"
    scheme = "sidekiq"
    queue_key = "queue:default"
    noop_n = 10000
    wc_n = 2000

    def start(self, kind):
        conc = str(env_int("BENCH_SIDEKIQ_CONCURRENCY", 10))
        argv = ["sidekiq", "-r", os.path.join(self.pb.peers_dir, "sidekiq_jobs.rb"), "-q", "default", "-c", conc,
                "-e", "production", "-t", "5"]
        return [self.b.spawn(argv, self.pb.log("sidekiq-%s-%d" % (kind, i)), env=self.pb.py_env())
                for i in range(2)]

    def wait_ready(self, procs, timeout=30):
        # Each process registers itself in the "processes" set when it runs.
        self.poll_ready(procs, lambda: self.b.r.scard("processes") >= len(procs), timeout,
                        "processes not registered", settle=0.3)

    def last_done(self, r, jid):
        return r.exists("bench:result:" + jid)


class Bullmq(System):
    name = "bullmq"
    scheme = "bullmq"
    queue_key = "bull:default:wait"
    noop_n = 10000
    wc_n = 2000

    def node_env(self):
        env = self.pb.py_env()
        env["NODE_PATH"] = os.path.join(self.a.outdir, "peers", "node_modules")
        return env

    def start(self, kind):
        argv = ["node", os.path.join(self.pb.peers_dir, "bullmq_worker.js")]
        return [self.b.spawn(argv, self.pb.log("bullmq-%s-%d" % (kind, i)), env=self.node_env()) for i in range(2)]

    def wait_ready(self, procs, timeout=20):
        # A BullMQ worker names its connection "bull:<base64 of the queue name>..."
        def connected():
            return sum(1 for c in self.b.r.client_list() if c.get("name", "").startswith("bull:")) >= len(procs)
        self.poll_ready(procs, connected, timeout, "workers not connected", settle=0.3)

    def push(self, kind, n, prefix, rate, t0file, timeout):
        data = json.dumps({"url": self.a.http_url}) if kind == "wordcount" else "{}"
        argv = ["node", os.path.join(self.pb.peers_dir, "bullmq_load.js"), self.a.sock, str(n), prefix, str(rate),
                t0file, kind, data]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=max(5.0, timeout), env=self.node_env())
        if p.returncode != 0:
            raise RuntimeError("bullmq_load failed (%d): %s" % (p.returncode, p.stderr.strip()[-300:]))
        return json.loads(p.stdout.strip().splitlines()[-1])

    def last_done(self, r, jid):
        return bool(r.hget("bull:default:" + jid, "finishedOn") or r.hget("bull:default:" + jid, "failedReason"))


CLASSES = {"jobq": Jobq, "rq": Rq, "celery": Celery, "sidekiq": Sidekiq, "bullmq": Bullmq}


class PeerBench:
    def __init__(self, bench, available):
        self.b = bench
        self.a = bench.a
        self.available = available   # name -> version or None; reasons for skipped ones
        self.peers_dir = os.path.join(self.a.bench_dir, "peers")
        self.tdir = os.path.join(self.a.outdir, "templates")
        os.makedirs(self.tdir, exist_ok=True)
        for f in os.listdir(self.tdir):
            os.unlink(os.path.join(self.tdir, f))
        self.res = {}                # name -> dict of measurements
        self.drain = env_float("BENCH_DRAIN", 8)

    def log(self, name):
        return os.path.join(self.b.logs, "peer-%s.log" % name)

    def py_env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = self.a.bench_dir + ":" + self.peers_dir
        env["BENCH_REDIS_SOCK"] = self.a.sock
        return env

    def redis_cpu(self):
        info = self.b.r.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def wait_results(self, sysm, prefix, n, t0file, deadline, expect_words=None):
        """Until the last job is done (then every result is read) or the deadline."""
        last = "%s%d" % (prefix, n - 1)
        while time.monotonic() < deadline:
            if sysm.last_done(self.b.r, last):
                break
            time.sleep(0.02)
        while True:
            res = sysm.results(prefix, n, t0file, expect_words)
            if res["found"] >= n or time.monotonic() >= deadline:
                return res
            time.sleep(0.25)

    # -- the three steps
    def throughput(self, sysm, kind, n, budget_s):
        """Enqueue n, start the workers, wait. Returns (procs, result dict)."""
        prefix = "t%s_" % kind[0]
        t0file = os.path.join(self.tdir, "t0-%s-%s.bin" % (sysm.name, kind))
        push = sysm.push(kind, n, prefix, 0, t0file, timeout=60)
        http0 = self.b.nginx_requests() if kind == "wordcount" else None
        cpu0 = self.redis_cpu()
        procs = sysm.start(kind)
        try:
            sysm.wait_ready(procs)
        except Exception:
            sysm.stop(procs)
            raise
        res = self.wait_results(sysm, prefix, n, t0file, time.monotonic() + budget_s,
                                self.a.words if kind == "wordcount" else None)
        cpu = self.redis_cpu() - cpu0
        if kind == "wordcount":
            self.b.check_http("%s wordcount" % sysm.name, http0, n)
        res["push"] = push
        res["redis_cpu_us"] = cpu / res["ok"] * 1e6 if res["ok"] else None
        if res["found"] < n:
            sysm.purge()  # the rest must not load what comes next
            time.sleep(1.5)
        if res["ok"] < n:
            self.b.note("%s %s throughput: %d of %d jobs ok within %.0f s (%d failed, first error: %s); "
                        "rate over those" % (sysm.name, kind, res["ok"], n, budget_s, res["failed"],
                                             res.get("first_error") or "-"))
        if res.get("bad_words"):
            self.b.note("%s wordcount: %d results with the wrong word count" % (sysm.name, res["bad_words"]))
        return procs, res

    def open_loop(self, sysm, rate, k, tmax, template=None):
        prefix = "o%d_" % k
        overloaded = tmax and rate > 1.2 * tmax
        duration = 1.0 if overloaded else 3.0
        n = max(1, int(rate * duration))
        t0file = os.path.join(self.tdir, "t0-%s-open.bin" % sysm.name)
        cpu0 = self.redis_cpu()
        probe = self.b.stallprobe_start(duration)
        try:
            if template:
                push = sysm.push("noop", n, prefix, rate, t0file, timeout=duration * 4 + 20, template=template)
            else:
                push = sysm.push("noop", n, prefix, rate, t0file, timeout=duration * 4 + 20)
        finally:
            host = self.b.stallprobe_read(probe)
        drain = self.drain if overloaded else 5.0
        res = self.wait_results(sysm, prefix, n, t0file, time.monotonic() + drain)
        cpu = self.redis_cpu() - cpu0
        res.update(rate=rate, duration=duration, push=push, overloaded=bool(overloaded), host=host,
                   redis_cpu_us=cpu / res["ok"] * 1e6 if res["ok"] else None, unfinished=n - res["found"])
        self.b.say("%s open loop %6d/s: achieved %.0f/s, start p50 %s p99 %s p999 %s max %s ms, %d unfinished; "
                   "host stalls > 2 ms: %s" % (
                       sysm.name, rate, push.get("achieved_rate", 0), res["start"]["p50"], res["start"]["p99"],
                       res["start"]["p999"], res["start"]["max"], res["unfinished"],
                       host["episodes_2ms"] if host else "?"))
        return res

    def run_system(self, name):
        sysm = CLASSES[name](self)
        out = self.res.setdefault(name, {"open": []})
        b = self.b
        mult = env_float("BENCH_PEERS_SCALE", 1.0)
        # 1 + 2: no-op throughput, then the open loop on the same workers.
        b.flush()
        procs = []
        try:
            procs, res = self.throughput(sysm, "noop", max(100, int(sysm.noop_n * mult)), 25)
            out["noop"] = res
            tmax = res["throughput"] or None
            b.say("%s no-op: %.0f jobs/s (%d ok), redis %s us/job" % (name, res["throughput"], res["ok"],
                                                                    fnum(res["redis_cpu_us"])))
            # The fixed rates first: the runs at 50 % and 90 % of a fast
            # system's maximum leave hundreds of thousands of results in
            # Redis, and a Redis that grows its heap under a run answers
            # late (see "Redis's keyspace" in README.md), which would charge
            # the fastest system for its own speed at the rates that compare.
            rates = [(r, "%s/s" % "{:,}".format(r)) for r in OPEN_RATES]
            if tmax:
                rates += [(int(tmax * 0.5), "50% of max"), (int(tmax * 0.9), "90% of max")]
            overloaded_at = None
            for k, (rate, label) in enumerate(rates):
                if rate < 1:
                    continue
                if overloaded_at is not None and rate > overloaded_at:
                    # Left jobs unfinished at a lower rate: this one would too
                    # (recorded as unfinished, not run, to keep the budget).
                    out["open"].append({"label": label, "rate": rate, "skipped": True, "n": 0,
                                        "unfinished": None, "push": {}, "redis_cpu_us": None,
                                        "start": dict.fromkeys(("p50", "p99", "p999", "max")),
                                        "finish": dict.fromkeys(("p50", "p99", "p999", "max"))})
                    continue
                if b.budget.left() < 40:
                    b.note("%s open loop at %s skipped: out of time" % (name, label))
                    continue
                r = self.open_loop(sysm, rate, k, tmax)
                r["label"] = label
                out["open"].append(r)
                if r["unfinished"]:
                    # What is left must not load the next run: drop the
                    # waiting jobs and let the running ones end.
                    sysm.purge()
                    time.sleep(1.5)
                    if label.endswith("/s"):
                        overloaded_at = rate
                time.sleep(0.3)
        finally:
            sysm.stop(procs)
        # 3: wordcount.
        if b.budget.left() < 30:
            b.note("%s wordcount skipped: out of time" % name)
            return
        b.flush()
        procs = []
        try:
            procs, res = self.throughput(sysm, "wordcount", max(50, int(sysm.wc_n * mult)), 20)
            out["wordcount"] = res
            b.say("%s wordcount: %.0f jobs/s" % (name, res["throughput"]))
        finally:
            sysm.stop(procs)
        b.flush()

    def jobq_extras(self):
        """Where jobq's tail comes from: the same open loop with Redis
        appendonly yes (appendfsync everysec) against no, and a worker of
        several queues: 2 workers serving a,b,c block on a and b (one home
        each), so a job on c waits until a worker looks."""
        b = self.b
        sysm = Jobq(self)
        out = self.res.setdefault("jobq", {}).setdefault("extras", [])
        b.flush()
        p, kids, log = b.start_jobqd(2, "extras-aof")
        try:
            time.sleep(1.0)
            for aof in ("no", "yes"):
                if aof == "yes":
                    b.r.config_set("appendfsync", "everysec")
                    b.r.config_set("appendonly", "yes")
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline:
                        info = b.r.info("persistence")
                        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                            break
                        time.sleep(0.05)
                for k, rate in enumerate((5000, 10000)):
                    if b.budget.left() < 30:
                        b.note("jobq appendonly experiment skipped: out of time")
                        break
                    r = self.open_loop(sysm, rate, 100 + k + (10 if aof == "yes" else 0), None)
                    r["label"] = "%s/s, appendonly %s" % ("{:,}".format(rate), aof)
                    out.append(r)
        finally:
            try:
                b.r.config_set("appendonly", "no")
            except redis.RedisError as e:
                b.note("CONFIG SET appendonly no: %s" % e)
            b.stop(p)
        b.flush()
        p, kids, log = b.start_jobqd(2, "extras-queues", queues="a,b,c")
        try:
            time.sleep(1.0)
            for k, q in enumerate(("a", "c")):
                if b.budget.left() < 30:
                    b.note("jobq multi-queue experiment skipped: out of time")
                    break
                path = os.path.join(self.tdir, "jobq-queue-%s.json" % q)
                with open(path, "w") as f:
                    json.dump([["RPUSH", "jobq:{%s}:queue" % q,
                                '{"id":"@@ID@@","handler":"noop","enqueued_at":@@T0@@}']], f)
                r = self.open_loop(sysm, 1000, 120 + k, None, template=path)
                r["label"] = "1,000/s on queue %s of a,b,c (%s)" % (
                    q, "a worker blocks on it" if q == "a" else "no worker blocks on it")
                out.append(r)
        finally:
            b.stop(p)
        b.flush()

    def run(self, names):
        for name in names:
            if name != "jobq" and not self.available.get(name):
                continue
            if self.b.budget.left() < 45:
                self.b.note("%s skipped: out of time" % name)
                continue
            t0 = time.monotonic()
            try:
                self.run_system(name)
                if name == "jobq" and os.environ.get("BENCH_JOBQ_EXTRAS", "1") != "0":
                    self.jobq_extras()
            except (RuntimeError, subprocess.TimeoutExpired, redis.RedisError, ValueError, OSError) as e:
                self.b.note("%s: step failed: %s" % (name, e))
            finally:
                self.b.stop_all()
            self.res.setdefault(name, {})["seconds"] = time.monotonic() - t0
