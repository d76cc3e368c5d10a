"""Helpers for the fault suite (test_faults.py): a restartable redis-server
with optional append-only persistence, an HTTP server that counts how many
times each job really ran, a jobq:events collector running in a thread,
process surgery on jobqd (its workers, a whole-daemon SIGKILL), per-process
CPU time, and the figures file the suite appends to."""

import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter

import jobqtest
from jobqtest import key, qkey, wait_for


# ---------------------------------------------------------------- redis

class FaultRedis(jobqtest.RedisServer):
    """A private redis-server on a unix socket that can be killed and
    started again on the same socket and data directory. With
    appendonly=True it runs with appendonly yes + appendfsync always, so a
    restart (even after SIGKILL) keeps every acknowledged write."""

    def __init__(self, directory, appendonly=False):
        super().__init__(directory)
        self.appendonly = appendonly
        self.starts = 0

    def start(self, timeout=5.0):
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                       else ["--appendonly", "no"])
        self._stderr = open(self.dir / "redis.stderr", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock,
             "--unixsocketperm", "700", "--save", "", *persistence,
             "--dir", str(self.dir), "--pidfile", str(self.dir / "redis.pid"),
             "--logfile", str(self.log_path), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        self.starts += 1

        jobqtest.wait_redis_up(self, timeout, 0.02)
        return self

    def kill(self, sig=signal.SIGKILL, timeout=10.0):
        """Stop the server with sig (SIGKILL: a crash; SIGTERM: a clean
        shutdown) and wait for it to be gone."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._stderr.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            jobqtest.stop_process(self.proc, 5.0)
        if getattr(self, "_stderr", None) and not self._stderr.closed:
            self._stderr.close()


def retrying(fn, *args, tries=50, pause=0.05, **kw):
    """Call a redis-py function, retrying on connection errors (the test's
    own connections die with CLIENT KILL or a Redis restart too)."""
    import redis
    for i in range(tries):
        try:
            return fn(*args, **kw)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if i == tries - 1:
                raise
            time.sleep(pause)


def mget_results(r, ids, chunk=500):
    """{id: decoded result or None} for ids, in chunks of MGET."""
    out = {}
    ids = list(ids)
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        vals = retrying(r.mget, [key("result", j) for j in part])
        for j, v in zip(part, vals):
            out[j] = json.loads(v) if v is not None else None
    return out


def wait_all_results(r, ids, timeout, status=None):
    """Poll until every id has a result (with that status, if given).
    Returns {id: result}; raises AssertionError naming what is missing."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    got = {}
    while True:
        res = mget_results(r, pending)
        for j, v in res.items():
            if v is not None and (status is None or v.get("status") == status):
                got[j] = v
        pending -= set(got)
        if not pending:
            return got
        if time.monotonic() >= deadline:
            sample = sorted(pending)[:10]
            raise AssertionError(
                "%d of %d job(s) have no%s result after %.0f s, e.g. %s; their results: %s; "
                "where they are: %s"
                % (len(pending), len(ids), " %r" % status if status else "", timeout, sample,
                   {j: res.get(j) for j in sample[:3]}, locate(r, sample)))
        time.sleep(0.05)


def locate(r, ids):
    """{id: [keys holding a payload with that id]}: every queue's waiting
    list, in-flight lists, scheduled set and dead list."""
    found = {i: [] for i in ids}

    def scan(k, items):
        for p in items:
            try:
                doc = json.loads(p)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("id") in found:
                found[doc["id"]].append(k)

    for k in retrying(jobqtest.queue_keys, r, "queue"):
        scan(k, retrying(r.lrange, k, 0, -1))
    for k in retrying(jobqtest.inflight_keys, r):
        scan(k, retrying(r.lrange, k, 0, -1))
    for k in retrying(jobqtest.queue_keys, r, "scheduled"):
        scan(k, retrying(r.zrange, k, 0, -1))
    for k in retrying(jobqtest.queue_keys, r, "dead"):
        entries = [json.loads(e) for e in retrying(r.lrange, k, 0, -1)]
        scan(k, [json.dumps(e.get("payload")) if isinstance(e.get("payload"), dict)
                 else e.get("payload") or "" for e in entries])
    return found


def queue_state(r, queue="default"):
    """Counts of where the jobs of queue sit: its waiting list, its in-flight
    lists, its scheduled set, its dead list."""
    inflight = sum(retrying(r.llen, k) for k in retrying(jobqtest.inflight_keys, r, queue))
    return {"queue": retrying(r.llen, qkey("queue", queue)), "inflight": inflight,
            "scheduled": retrying(r.zcard, qkey("scheduled", queue)),
            "dead": retrying(r.llen, qkey("dead", queue))}


# ---------------------------------------------------------------- http

class CountingHttpServer:
    """An HTTP server in a thread of the test process. GET /run/<id>?ms=N
    waits N ms and answers a short text body; every request is counted per
    id, so counts[id] is how many times a wordcount job for that URL really
    ran (started its handler), whatever Redis or jobqd say."""

    def __init__(self):
        self.counts = Counter()
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the
            # body waits for the client's delayed ACK (40 ms per request).
            disable_nagle_algorithm = True

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                if u.path.startswith("/run/"):
                    with owner.lock:
                        owner.counts[u.path[len("/run/"):]] += 1
                ms = float(q.get("ms", ["0"])[0])
                if ms > 0:
                    time.sleep(ms / 1000.0)
                body = b"one two three\n"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the worker was killed while we answered

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request, client_address):
                pass  # connections cut by killed workers are expected

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def url(self, job_id, ms=0):
        return "http://127.0.0.1:%d/run/%s?ms=%g" % (self.port, job_id, ms)

    def snapshot(self):
        with self.lock:
            return Counter(self.counts)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- events

class EventCollector:
    """Every message on jobq:events, collected by a thread from before the
    first job is pushed until stop(). A pub/sub connection is not of TYPE
    normal, so CLIENT KILL TYPE normal leaves it alone; after a Redis
    restart it resubscribes (events published meanwhile are lost, so counts
    from it are lower bounds there)."""

    def __init__(self, redis_server):
        self.server = redis_server
        self.events = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.subscribed = threading.Event()
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        if not self.subscribed.wait(5):
            raise AssertionError("no subscription to jobq:events within 5 s")
        return self

    def _run(self):
        import redis
        while not self.stopping.is_set():
            client = None
            try:
                client = self.server.client(socket_timeout=2)
                ps = client.pubsub()
                ps.subscribe(key("events"))
                while not self.stopping.is_set():
                    m = ps.get_message(timeout=0.2)
                    if m is None:
                        continue
                    if m["type"] == "subscribe":
                        self.subscribed.set()
                    elif m["type"] == "message":
                        try:
                            e = json.loads(m["data"])
                        except ValueError:
                            e = {"raw": m["data"]}
                        e["_received"] = time.time()
                        with self.lock:
                            self.events.append(e)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self.reconnects += 1
                time.sleep(0.05)
            finally:
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        pass

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def of(self, event=None, job_id=None):
        return [e for e in self.snapshot()
                if (event is None or e.get("event") == event) and (job_id is None or e.get("id") == job_id)]

    def wait(self, predicate, timeout, what="an event"):
        return wait_for(lambda: next((e for e in self.snapshot() if predicate(e)), None), timeout, 0.01,
                        what)

    def stop(self):
        self.stopping.set()
        self.thread.join(5)


# ---------------------------------------------------------------- processes

def _stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name (state is [0],
    ppid [1], utime [11], stime [12]); None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children(pid):
    """Live (not zombie) child pids of pid."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _stat_fields(int(entry))
                if st and int(st[1]) == pid:
                    kids.append(int(entry))
    out = []
    for k in kids:
        st = _stat_fields(k)
        if st and st[0] != "Z":
            out.append(k)
    return sorted(out)


def alive(pid):
    st = _stat_fields(pid)
    return st is not None and st[0] != "Z"


def cpu_seconds(pids):
    """utime + stime of the given processes, in seconds (gone ones count 0)."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        st = _stat_fields(p)
        if st:
            total += int(st[11]) + int(st[12])
    return total / hz


def wait_workers(daemon, n, timeout=10.0):
    """The daemon's worker pids once it has n of them."""
    return wait_for(lambda: (lambda k: k if len(k) == n else None)(children(daemon.pid)), timeout, 0.02,
                    "%d workers of %s" % (n, daemon.name))


def kill_daemon_hard(daemon, r, timeout=10.0, before_kill=None):
    """SIGKILL jobqd together with its workers, like a power cut: the
    supervisor is frozen first (SIGSTOP) so it cannot start a replacement,
    then its workers, so that nothing moves while before_kill() looks at
    Redis; then every worker and the supervisor get SIGKILL. Returns the
    worker pids killed."""
    os.kill(daemon.pid, signal.SIGSTOP)
    kids = children(daemon.pid)
    for k in kids:
        try:
            os.kill(k, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    if before_kill:
        # A command a worker sent just before it froze may still be queued
        # in Redis: look once the in-flight lists have stopped changing.
        snapshot = [None]

        def settled():
            now = {k: v for k, v in retrying(jobqtest.inflight_jobs, r).items()
                   if jobqtest.worker_pid_of_key(k) in kids}
            same, snapshot[0] = now == snapshot[0], now
            return same

        wait_for(settled, timeout, 0.05, "in-flight lists to settle")
        before_kill()
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(timeout)
    wait_for(lambda: not any(alive(k) for k in kids), timeout, 0.01, "killed workers to be gone")
    return kids


def worker_of_job(r, payload, timeout=10.0):
    """(in-flight key, worker pid) of the worker holding payload."""
    def find():
        for k, items in jobqtest.inflight_jobs(r).items():
            if payload in items:
                return k, jobqtest.worker_pid_of_key(k)
        return None
    return wait_for(find, timeout, 0.005, "a worker to take %s" % payload[:60])


# ---------------------------------------------------------------- figures

def figures(test, **values):
    """Print the figures (pytest -s shows them) and append them to
    <build>/fault-figures.txt."""
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = "%.3f" % v
        parts.append("%s=%s" % (k, v))
    line = "%s %s: %s" % (time.strftime("%Y-%m-%dT%H:%M:%S"), test, " ".join(parts))
    jobqtest.record_figure("fault-figures.txt", line)
    return line
