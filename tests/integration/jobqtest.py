"""Helpers for the jobq integration tests: paths, bounded waiting, private
redis-server and HTTP servers, jobqd configs and processes, and reading what
jobqd writes to Redis. The pytest fixtures in conftest.py are thin wrappers
around these."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PREFIX = "jobq"


def build_dir():
    """$JOBQ_BUILD (default build), relative paths taken from the repo root."""
    b = Path(os.environ.get("JOBQ_BUILD", "build"))
    return b if b.is_absolute() else REPO / b


def jobqd_path():
    return build_dir() / "jobqd"


def makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    return m.group(1) if m else None


# The kinds of queue-scoped keys: "jobq:{<queue>}:<kind>" (README.md, "Redis
# keys"); the in-flight lists add ":<host>:<worker pid>".
QUEUE_KINDS = ("queue", "scheduled", "dead", "inflight", "holders", "leases", "stats", "histo", "cancel",
               "unique", "ids", "parked", "waiters", "batch", "paused", "running", "starts", "cronticks")
# The keys outside any queue's hash slot.
GLOBAL_KINDS = ("result", "events", "daemons", "daemon", "progress", "cron")


def key(*parts):
    """A key outside any queue: key("result", "a1") -> "jobq:result:a1";
    key("events"), key("daemons"), key("daemon", "<host>:<pid>") (the
    heartbeat). Queue-scoped keys come from qkey()."""
    if not parts or parts[0] not in GLOBAL_KINDS:
        raise ValueError("key%r: not a global jobq key (use qkey(kind, queue) for %s)"
                         % (parts, "/".join(QUEUE_KINDS)))
    return ":".join((PREFIX,) + tuple(str(p) for p in parts))


def qkey(kind, queue="default", *rest):
    """A key of queue: qkey("queue") -> "jobq:{default}:queue";
    qkey("inflight", "q", "host:42") -> "jobq:{q}:inflight:host:42"."""
    if kind not in QUEUE_KINDS:
        raise ValueError("qkey(%r): not a queue-scoped jobq key (one of %s)" % (kind, "/".join(QUEUE_KINDS)))
    if not queue or "{" in queue or "}" in queue:
        raise ValueError("qkey: bad queue name %r" % (queue,))
    return ":".join(("%s:{%s}:%s" % (PREFIX, queue, kind),) + tuple(str(p) for p in rest))


def glob_escape(text):
    """text with the Redis glob characters (* ? [ ] \\) escaped, for SCAN MATCH."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def queue_of_key(k):
    """The queue of a queue-scoped key ("jobq:{q}:queue" -> "q"), else None."""
    m = re.match(r"%s:\{([^{}]+)\}:" % re.escape(PREFIX), k)
    return m.group(1) if m else None


# ---------------------------------------------------------------- waiting

def wait_for(predicate, timeout=10.0, interval=0.02, what=None):
    """Poll predicate() until it returns something truthy; return that value.
    Raises AssertionError after timeout seconds (what says what we waited
    for)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what or getattr(predicate, "__name__", "condition")))
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout=5.0, sig=signal.SIGTERM):
    """Send sig, wait up to timeout, then SIGKILL. Returns (returncode, killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10), True


def short_dir(path):
    """path, or a short temporary directory when a unix socket under path
    would exceed the 107-byte sun_path limit."""
    if len(str(path)) + 20 < 100:
        return Path(path)
    return Path(tempfile.mkdtemp(prefix="jobq-"))


# ---------------------------------------------------------------- servers

class RedisServer:
    """A private redis-server on a unix socket: no TCP, no persistence."""

    def __init__(self, directory, wrapper=(), extra=()):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wrapper = list(wrapper)  # a command it runs under (ip netns exec NS)
        self.extra = list(extra)      # more redis-server arguments (--bind, --port)
        sockdir = short_dir(self.dir)
        self.sock = str(sockdir / "redis.sock")
        self.url = "unix://" + self.sock
        self.log_path = self.dir / "redis.log"
        self.proc = None

    def start(self, timeout=5.0):
        self.proc = subprocess.Popen(
            [*self.wrapper, "redis-server", "--port", "0", "--unixsocket", self.sock,
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--pidfile", str(self.dir / "redis.pid"),
             "--logfile", str(self.log_path), "--daemonize", "no", *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        wait_redis_up(self, timeout, 0.05)
        return self

    def client(self, **kw):
        import redis
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(unix_socket_path=self.sock, **kw)

    def cli(self, *args):
        """Run redis-cli on the socket; returns its stdout (stripped)."""
        r = subprocess.run(["redis-cli", "-s", self.sock, *args],
                           capture_output=True, text=True, timeout=10, check=True)
        return r.stdout.rstrip("\n")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5.0)


class HttpServer:
    """httpfixture.py serving tests/fixtures on 127.0.0.1 (a free port)."""

    def __init__(self, directory, root=FIXTURES):
        self.dir = Path(directory)
        self.root = Path(root)
        self.log_path = self.dir / "http.log"
        self.proc = None
        self.port = None

    def start(self, timeout=10.0):
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("httpfixture.py")),
             "--dir", str(self.root), "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.match(r"port (\d+)", line)
        if not m:
            self.stop()
            raise AssertionError("http fixture did not start: %r" % line)
        self.port = int(m.group(1))
        return self

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5.0)
            self.proc.stdout.close()
            self._log.close()


# ---------------------------------------------------------------- config

def base_config(redis_url, plugins_dir):
    """The config every test starts from: small, quick to shut down, no
    retries (so a failure is final at once)."""
    return {
        "daemon": {
            "workers": "2",
            "queues": "default",
            "shutdown_timeout": "10",
            "log_level": "info",
            "test_handlers": "no",
        },
        "redis": {
            "url": redis_url,
            "prefix": PREFIX,
        },
        "jobs": {
            "timeout": "60",
            "max_attempts": "1",
            "result_ttl": "3600",
            "max_payload": "1048576",
        },
        "plugins": {
            "dir": str(plugins_dir),
        },
    }


def merge_config(base, overrides=None):
    """base updated with overrides {section: {key: value}}; a value of None
    removes the key."""
    conf = {s: dict(kv) for s, kv in base.items()}
    for section, kv in (overrides or {}).items():
        sect = conf.setdefault(section, {})
        for k, v in kv.items():
            if v is None:
                sect.pop(k, None)
            else:
                sect[k] = str(v)
    return conf


def render_config(conf, header="; written by the jobq integration tests"):
    lines = [header]
    for section, kv in conf.items():
        lines.append("")
        lines.append("[%s]" % section)
        for k, v in kv.items():
            lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in config:\n%s" % (needle, text))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ThreadSanitizer", "MemorySanitizer")


# The jobqd processes started during the current test (reset by conftest).
STARTED = []


def check_daemons_alive(waiting_for):
    """Raise AssertionError when the test started jobqd processes and all of
    them have exited: whatever we wait for will not come."""
    if STARTED and all(d.proc.poll() is not None for d in STARTED):
        raise AssertionError("waiting for %s, but every jobqd has exited:\n%s" % (
            waiting_for, "\n".join("%s: status %s; log tail:\n%s" % (
                d.name, d.proc.returncode, d.log_tail(3000)) for d in STARTED)))


class Daemon:
    """One jobqd process with its config file and log (stdout + stderr)."""

    def __init__(self, directory, redis_url, name="jobqd", wrapper=()):
        self.dir = Path(directory)
        self.name = name
        self.wrapper = list(wrapper)  # a command it runs under (ip netns exec NS ...)
        self.redis_url = redis_url
        self.conf_path = self.dir / (name + ".conf")
        self.log_path = self.dir / (name + ".log")
        self.plugins_dir = self.dir / "plugins"
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.conf_text = ""

    # config
    def write_config(self, overrides=None):
        """(Re)write the config file: the base config with overrides."""
        conf = merge_config(base_config(self.redis_url, self.plugins_dir), overrides)
        self.conf_text = render_config(conf)
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(self.conf_text)
        os.replace(tmp, self.conf_path)
        return self.conf_path

    def config_line(self, needle):
        return line_of(self.conf_text, needle)

    # process
    def start(self, *extra_args, env=None):
        """Start jobqd with the config file and extra_args. env: variables
        to set (a value of None unsets one) on top of this process's
        environment, for jobqd only (say, LD_PRELOAD)."""
        assert jobqd_path().exists(), "%s not built" % jobqd_path()
        if not self.conf_path.exists():
            self.write_config()
        self._log = open(self.log_path, "ab")
        argv = [*self.wrapper, str(jobqd_path()), "-c", str(self.conf_path), "--redis", self.redis_url,
                *extra_args]
        env_all = dict(os.environ)
        env_all.pop("JOBQ_REDIS_URL", None)
        for name, value in (env or {}).items():
            if value is None:
                env_all.pop(name, None)
            else:
                env_all[name] = str(value)
        env = env_all
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)
        STARTED.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self):
        assert self.running(), "jobqd exited with status %s; log:\n%s" % (
            self.proc.returncode, self.log_tail())

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait up to timeout for the process to exit; returns its status
        (or raises AssertionError)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("jobqd still running %.0f s after the signal; log:\n%s"
                                 % (timeout, self.log_tail()))

    def stop(self, timeout=35.0, sig=signal.SIGTERM):
        """Signal, wait up to timeout, SIGKILL if needed. (rc, killed)."""
        if self.proc is None:
            return None, False
        rc, killed = stop_process(self.proc, timeout, sig)
        self._log.close()
        return rc, killed

    # log
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=8000):
        return self.log()[-n:]

    def sanitizer_report(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        return None


# ---------------------------------------------------------------- jobs

def record_figure(name, text):
    """Print a line of measured figures (pytest -s shows it) and append it
    to <build>/NAME, kept across the suite's runs; a file that cannot be
    written is said, not fatal."""
    print("\n[%s] %s" % (name, text))
    path = build_dir() / name
    try:
        with open(path, "a") as f:
            f.write(text + "\n")
    except OSError as e:
        print("cannot append to %s: %s" % (path, e))


def jobq_cli(redis_url, *args, timeout=20):
    """Run the jobq command against redis_url (prefix jobq); the
    CompletedProcess, output as text."""
    return subprocess.run([str(build_dir() / "jobq"), "--redis", redis_url, "--prefix", "jobq", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def job(handler, id=None, args=None, **fields):
    """A job payload (compact JSON string)."""
    doc = {}
    if id is not None:
        doc["id"] = id
    doc["handler"] = handler
    if args is not None:
        doc["args"] = args
    doc.update(fields)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def push(r, payload, queue="default"):
    """RPUSH payload on jobq:{queue}:queue; returns payload."""
    r.rpush(qkey("queue", queue), payload)
    return payload


def schedule(r, payload, due, queue="default"):
    """ZADD payload to jobq:{queue}:scheduled, due at Unix time due."""
    r.zadd(qkey("scheduled", queue), {payload: due})
    return payload


def get_result(r, job_id, timeout=10.0):
    """Poll GET jobq:result:<id> until it exists; return it JSON-decoded.
    Fails at once (instead of at timeout) when every jobqd the test started
    has exited."""
    def result():
        raw = r.get(key("result", job_id))
        if raw is None:
            check_daemons_alive("result of job %r" % job_id)
        return raw
    raw = wait_for(result, timeout, 0.02, "result of job %r" % job_id)
    return json.loads(raw)


def dead_entries(r, queue="default"):
    """jobq:{queue}:dead decoded, newest first."""
    return [json.loads(e) for e in r.lrange(qkey("dead", queue), 0, -1)]


def wait_dead(r, payload, timeout=10.0, queue="default"):
    """The dead-letter entry of queue whose payload is exactly payload."""
    def find():
        for e in dead_entries(r, queue):
            if e.get("payload") == payload:
                return e
        return None
    return wait_for(find, timeout, 0.02, "dead-letter entry for %r" % payload[:80])


def queue_keys(r, kind):
    """Every jobq:{*}:<kind> key (sorted)."""
    return sorted(r.scan_iter(match="%s:{*}:%s" % (glob_escape(PREFIX), kind), count=1000))


def inflight_keys(r, queue=None):
    """The in-flight lists jobq:{<queue>}:inflight:<host>:<pid> of queue, or
    of every queue when queue is None (sorted)."""
    pattern = "%s:{%s}:inflight:*" % (glob_escape(PREFIX), "*" if queue is None else glob_escape(queue))
    return sorted(r.scan_iter(match=pattern, count=1000))


def inflight_jobs(r, queue=None):
    """{in-flight key: its list} for every in-flight list (of queue)."""
    return {k: r.lrange(k, 0, -1) for k in inflight_keys(r, queue)}


def worker_pid_of_key(k):
    """The worker pid an in-flight list belongs to (its last field)."""
    return int(k.rsplit(":", 1)[1])


def holders(r, queue="default"):
    """jobq:{queue}:holders: {in-flight list: daemon id}."""
    return r.hgetall(qkey("holders", queue))


def leases(r, queue="default"):
    """jobq:{queue}:leases: {daemon id: lease end, Redis time in ms}."""
    return {d: int(ms) for d, ms in r.zrange(qkey("leases", queue), 0, -1, withscores=True)}


def redis_time_ms(r):
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def stat(r, name, queue="default"):
    """Field name (processed, failed) of jobq:{queue}:stats, 0 when unset."""
    v = r.hget(qkey("stats", queue), name)
    return int(v) if v is not None else 0


# Every key the daemon may write, by pattern (README.md, "Redis keys"), and
# the Redis type each must have.
KEY_SCHEMA = (
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:queue" % PREFIX, "list"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:scheduled" % PREFIX, "zset"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:dead" % PREFIX, "list"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:inflight:[^:]+:[0-9]+" % PREFIX, "list"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:holders" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:leases" % PREFIX, "zset"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:stats" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:histo" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:cancel" % PREFIX, "zset"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:unique" % PREFIX, "zset"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:ids" % PREFIX, "string"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:parked" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:waiters:.+" % PREFIX, "set"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:batch:.+" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:paused" % PREFIX, "string"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:running" % PREFIX, "hash"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:starts" % PREFIX, "zset"),
    (r"%s:\{[A-Za-z0-9_.:-]{1,64}\}:cronticks" % PREFIX, "zset"),
    (r"%s:progress:.+" % PREFIX, "string"),
    (r"%s:cron" % PREFIX, "hash"),
    (r"%s:result:.+" % PREFIX, "string"),
    (r"%s:daemons" % PREFIX, "hash"),
    (r"%s:daemon:[^:]+:[0-9]+" % PREFIX, "string"),
)


def schema_violations(r):
    """Keys in Redis that the documented schema does not have, or that have
    another type: [(key, type)]. Catches a write under the 0.1.0 keys
    (jobq:queue:<q>, jobq:scheduled, jobq:dead, jobq:stats:*,
    jobq:inflight:*, jobq:daemon:<id>:inflight)."""
    bad = []
    for k in r.scan_iter(count=1000):
        t = r.type(k)
        if t == "none":
            continue  # expired or removed since SCAN saw it
        if not any(re.fullmatch(pattern, k) and t == want for pattern, want in KEY_SCHEMA):
            bad.append((k, t))
    return sorted(bad)


class Events:
    """A subscription to jobq:events, made before anything is pushed."""

    def __init__(self, r):
        self.pubsub = r.pubsub()
        self.pubsub.subscribe(key("events"))
        # Wait for the subscription to be confirmed so no event is missed.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = self.pubsub.get_message(timeout=0.1)
            if m and m["type"] == "subscribe":
                break
        else:
            raise AssertionError("no subscribe confirmation on jobq:events")
        self.seen = []

    def wait(self, predicate, timeout=10.0):
        """The first event (decoded) for which predicate is true."""
        for e in self.seen:
            if predicate(e):
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.pubsub.get_message(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            if m is None or m["type"] != "message":
                continue
            e = json.loads(m["data"])
            self.seen.append(e)
            if predicate(e):
                return e
        raise AssertionError("no matching event within %.1f s; saw %r" % (timeout, self.seen))

    def close(self):
        self.pubsub.close()


def stop_daemons(daemons):
    """SIGTERM every started daemon (a test fixture's teardown); returns the
    problems seen: one that had to be killed, a non-zero exit status, a
    sanitizer report in its log."""
    problems = []
    for d in daemons:
        if d.proc is None:
            continue
        was_running = d.running()
        rc, killed = d.stop(35.0)
        if killed:
            problems.append("%s did not exit within 35 s of SIGTERM and was killed" % d.name)
        elif was_running and rc != 0:
            problems.append("%s exited with status %s on SIGTERM" % (d.name, rc))
        report = d.sanitizer_report()
        if report:
            problems.append("%s log has a sanitizer report:\n%s" % (d.name, report))
    return problems


def wait_redis_up(server, timeout, interval):
    """Wait until server (with .proc, .sock and .log_text()) answers PING;
    fail at once, with its log, if it exits."""
    def up():
        if server.proc.poll() is not None:
            raise AssertionError("redis-server exited with %s:\n%s"
                                 % (server.proc.returncode, server.log_text()[-2000:]))
        r = subprocess.run(["redis-cli", "-s", server.sock, "PING"],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() == "PONG"

    wait_for(up, timeout, interval, "redis-server on " + server.sock)
