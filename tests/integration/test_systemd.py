"""jobqd as a systemd service: the unit file (systemd-analyze verify and
security), the sd_notify protocol (READY, STATUS, WATCHDOG, RELOADING,
STOPPING, EXTEND_TIMEOUT_USEC) seen on a NOTIFY_SOCKET datagram listener,
journald priority prefixes (JOURNAL_STREAM), and secrets (the Redis password
never shows in ps, the log or --check-config; the systemd credential file).

None of this needs systemd as PID 1: systemd-analyze works offline on a copy
of the unit, and the notify/journal protocols are plain sockets and
environment variables that the tests provide themselves. The daemons started
here need extra environment, so they are started by a local helper
(SysDaemon) rather than the conftest jobqd factory, and stopped by PID at
teardown just the same.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import jobqtest
from jobqtest import REPO, get_result, job, push, stop_process, wait_for, wait_dead

UNIT = REPO / "systemd" / "jobqd.service"
PASSWORD = "s3cret"

# Environment a test daemon must not inherit from whoever runs pytest (a
# pytest started by a systemd unit would otherwise hand its own NOTIFY_SOCKET
# or JOURNAL_STREAM to the daemon).
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
               "CREDENTIALS_DIRECTORY", "JOBQ_REDIS_URL", "LISTEN_FDS", "LISTEN_PID")


def have_secrets_support():
    """Whether the config module reads a password file (credential or
    [redis] password_file)."""
    try:
        header = (REPO / "src" / "core" / "config.h").read_text()
    except OSError:
        return False
    return "jobq_config_load_secrets" in header and "password_file" in header


needs_secrets = pytest.mark.skipif(
    not have_secrets_support(),
    reason="src/core/config.h has no jobq_config_load_secrets/password_file yet")
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


# ---------------------------------------------------------------- helpers

def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


class SysDaemon(jobqtest.Daemon):
    """A jobqd started with a chosen environment, optionally through a
    wrapper argv (which must exec jobqd so the PIDs match), with or without
    --redis on its command line."""

    def start(self, *extra_args, env=None, wrapper=(), redis_flag=True):
        if not self.conf_path.exists():
            self.write_config()
        self._log = open(self.log_path, "ab")
        argv = [str(jobqtest.jobqd_path()), "-c", str(self.conf_path)]
        if redis_flag:
            argv += ["--redis", self.redis_url]
        argv = list(wrapper) + argv + list(extra_args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env if env is not None else clean_env())
        return self


@pytest.fixture
def sysd(request, tmp_path):
    """Factory: sysd(redis_url, overrides=None, name=None) -> an unstarted
    SysDaemon; every one started is stopped (SIGTERM, then SIGKILL) by PID at
    teardown, and the test fails if it had to be killed, exited non-zero or
    logged a sanitizer report."""
    daemons = []
    request.node.jobq_daemons = daemons  # logs attached to failure reports

    def make(redis_url, overrides=None, name=None):
        name = name or ("jobqd" if not daemons else "jobqd%d" % (len(daemons) + 1))
        d = SysDaemon(tmp_path, redis_url, name=name)
        d.write_config(overrides)
        daemons.append(d)
        return d

    yield make

    problems = jobqtest.stop_daemons(daemons)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


class Redis:
    """A private redis-server: a unix socket in a short temporary directory,
    plus 127.0.0.1:port when port is given; requirepass when password is
    given. Stopped by PID."""

    def __init__(self, port=None, password=None):
        self.dir = Path(tempfile.mkdtemp(prefix="jobq-sd-redis-"))
        self.sock = str(self.dir / "redis.sock")
        self.port = port
        self.password = password
        self.proc = None

    def start(self, timeout=5.0):
        argv = ["redis-server", "--unixsocket", self.sock, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"), "--daemonize", "no"]
        if self.port:
            argv += ["--port", str(self.port), "--bind", "127.0.0.1"]
        else:
            argv += ["--port", "0"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with %s" % self.proc.returncode)
            r = subprocess.run(["redis-cli", "-s", self.sock, *auth, "PING"],
                               capture_output=True, text=True, timeout=5)
            return r.stdout.strip() == "PONG"

        wait_for(up, timeout, 0.05, "redis-server on " + self.sock)
        return self

    def client(self):
        import redis
        return redis.Redis(unix_socket_path=self.sock, password=self.password,
                           decode_responses=True, socket_timeout=10)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5.0)
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_factory():
    servers = []

    def make(**kw):
        s = Redis(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.cleanup()


class NotifyListener:
    """An AF_UNIX SOCK_DGRAM socket playing systemd's NOTIFY_SOCKET: a reader
    thread records every line of every datagram with its arrival time and its
    sender's PID (SO_PASSCRED, as systemd checks NotifyAccess=main)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="jobq-sd-notify-")  # short: sun_path limit
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.lock = threading.Lock()
        self.messages = []  # (monotonic time, "KEY=value")
        self.senders = []   # (sender pid, "KEY=value")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            pid = None
            for level, typ, cred in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cred[:4], "little")
            with self.lock:
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self.messages.append((t, line))
                        self.senders.append((pid, line))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def sender_pids(self):
        with self.lock:
            return list(self.senders)

    def wait(self, predicate, timeout, what, after=0):
        """Index of the first message at index >= after whose line satisfies
        predicate; AssertionError (with every message seen) after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.snapshot()
            for i in range(after, len(msgs)):
                if predicate(msgs[i][1]):
                    return i
            if time.monotonic() >= deadline:
                raise AssertionError("no %s within %.1f s; notifications seen:\n%s"
                                     % (what, timeout, self.dump(msgs)))
            time.sleep(0.01)

    def wait_line(self, line, timeout, after=0):
        return self.wait(lambda m: m == line, timeout, line, after)

    def lines(self, after=0):
        return [m for _, m in self.snapshot()[after:]]

    def times(self, line, t0=None, t1=None):
        return [t for t, m in self.snapshot()
                if m == line and (t0 is None or t >= t0) and (t1 is None or t <= t1)]

    @staticmethod
    def dump(msgs, limit=60):
        if not msgs:
            return "  (none)"
        base = msgs[0][0]
        shown = msgs[-limit:]
        return "\n".join("  +%.3f %s" % (t - base, m) for t, m in shown)

    def close(self):
        self.done.set()
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    listener = NotifyListener()
    yield listener
    listener.close()


def children(pid):
    r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                       text=True, timeout=5)
    return [int(x) for x in r.stdout.split()]


def ps_args(pid):
    r = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                       text=True, timeout=5)
    return r.stdout.strip()


def wait_ok(r, job_id, timeout=15):
    push(r, job("noop", id=job_id))
    res = get_result(r, job_id, timeout=timeout)
    assert res["status"] == "ok", res
    return res


def systemd_version():
    out = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else 0


def reload_lines():
    """What `make install` puts for @RELOAD@: Type=notify-reload where
    systemd has it (>= 253), else Type=notify with a SIGHUP."""
    if systemd_version() >= 253:
        return "Type=notify-reload"
    return "Type=notify\nExecReload=/bin/kill -HUP $MAINPID"


def render(text, bindir="@BINDIR@"):
    """The unit text as `make install` writes it (comments untouched)."""
    return "\n".join(l if l.startswith("#") else l.replace("@BINDIR@", str(bindir)).replace("@RELOAD@", reload_lines())
                     for l in text.splitlines()) + "\n"


def unit_copy(directory, bindir, template=None):
    """The unit with @BINDIR@ and @RELOAD@ replaced (what `make install`
    does), written as directory/<its name>."""
    template = template or UNIT
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / template.name
    path.write_text(render(template.read_text(), bindir))
    return path


def analyze(*args):
    return subprocess.run(["systemd-analyze", "--no-pager", *args], capture_output=True,
                          text=True, timeout=60, env=clean_env(SYSTEMD_LOG_COLOR="0"))


def unit_settings():
    """{key: [values]} of the unit's [Service] section."""
    out, section = {}, None
    for line in render(UNIT.read_text()).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service" and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


# ---------------------------------------------------------------- the unit

def test_unit_settings():
    """What issue 5 asks of the unit, checked statically."""
    s = unit_settings()
    one = lambda k: s.get(k, [None])[-1]
    assert one("Type") in ("notify", "notify-reload")
    assert one("ExecStart").startswith("@BINDIR@/jobqd "), one("ExecStart")
    if one("Type") == "notify":
        assert re.search(r"kill -(HUP|SIGHUP|s HUP) \$MAINPID", one("ExecReload") or ""), one("ExecReload")
    assert one("KillMode") == "mixed"
    assert one("Restart") == "on-failure"
    assert one("WatchdogSec"), "no WatchdogSec="
    # TimeoutStopSec must leave room for shutdown_timeout (sample config).
    conf = (REPO / "config" / "jobq.conf").read_text()
    shutdown_timeout = float(re.search(r"^shutdown_timeout\s*=\s*([\d.]+)", conf, re.M).group(1))
    m = re.fullmatch(r"(\d+)(s|min)?", one("TimeoutStopSec") or "")
    assert m, "TimeoutStopSec=%r (expected seconds)" % one("TimeoutStopSec")
    stop_sec = int(m.group(1)) * (60 if m.group(2) == "min" else 1)
    assert stop_sec > shutdown_timeout, (stop_sec, shutdown_timeout)
    for k, v in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                 ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("ProtectControlGroups", "yes"),
                 ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
                 ("MemoryDenyWriteExecute", "yes"), ("UMask", "0077"), ("CapabilityBoundingSet", "")]:
        assert one(k) == v, "%s=%r, expected %r" % (k, one(k), v)
    assert one("DynamicUser") == "yes" or one("User") == "jobq"
    assert set((one("RestrictAddressFamilies") or "").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in s.get("SystemCallFilter", [])
    assert "@BINDIR@" not in "".join(v for k, vs in s.items() if k != "ExecStart" for v in vs)


@needs_analyze
def test_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` accepts the unit pointed at the built binary:
    exit 0 and not one line about the unit (unknown keys and unparsable
    values are only warnings, with exit 0, so the output is checked too).
    Two controls show that verify really checks here, without systemd as
    PID 1: a unit whose ExecStart does not exist fails, and a unit with an
    unknown key gets a warning line naming it."""
    bindir = jobqtest.build_dir().resolve()
    unit = unit_copy(tmp_path / "good", bindir)
    r = analyze("verify", str(unit))
    out = r.stdout + r.stderr
    print("systemd-analyze verify (exit %d):\n%s" % (r.returncode, out))
    about_unit = [l for l in out.splitlines() if "jobqd.service" in l or str(unit.parent) in l]
    assert r.returncode == 0, out
    assert not about_unit, "systemd-analyze verify said about the unit:\n" + "\n".join(about_unit)

    # Control 1: a missing binary is a fatal error here.
    bad = unit_copy(tmp_path / "nobin", tmp_path / "no-such-bindir")
    r = analyze("verify", str(bad))
    assert r.returncode != 0 and "not executable" in r.stdout + r.stderr, (
        "verify did not catch a missing ExecStart binary (exit %d):\n%s"
        % (r.returncode, r.stdout + r.stderr))

    # Control 2: a bad setting gets a line naming the unit file.
    bad = unit_copy(tmp_path / "badkey", bindir)
    bad.write_text(bad.read_text().replace("[Service]\n", "[Service]\nNoSuchSetting=1\n", 1))
    r = analyze("verify", str(bad))
    assert any("NoSuchSetting" in l and "jobqd.service" in l
               for l in (r.stdout + r.stderr).splitlines()), (
        "verify did not report an unknown key (exit %d):\n%s" % (r.returncode, r.stdout + r.stderr))


@needs_analyze
def test_systemd_analyze_security(tmp_path):
    unit = unit_copy(tmp_path, jobqtest.build_dir().resolve())
    r = analyze("security", "--offline=true", str(unit))
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for jobqd\.service:\s*([0-9]+(?:\.[0-9]+)?)\s*(\S+)", out)
    assert m, "no 'Overall exposure level' line (exit %d):\n%s" % (r.returncode, out)
    score = float(m.group(1))
    print("systemd-analyze security --offline=true: overall exposure %.1f %s" % (score, m.group(2)))
    assert score <= 2.0, "exposure %.1f > 2.0:\n%s" % (score, out)


# ---------------------------------------------------------------- sd_notify

STATUS_RE = re.compile(r"STATUS=(running|stopping); workers: (\d+) busy, (\d+) idle; "
                       r"jobs: (\d+) done, (\d+) failed; Redis (connected|reconnecting)")
WATCHDOG_USEC = 400000


def notify_env(listener, **extra):
    return clean_env(NOTIFY_SOCKET=listener.path, WATCHDOG_USEC=WATCHDOG_USEC, **extra)


def assert_watchdog_pings(listener, window=1.5, at_least=3):
    """WATCHDOG=1 keeps coming: at least at_least pings within window
    seconds, never more than WATCHDOG_USEC apart (systemd's limit)."""
    t0 = time.monotonic()
    time.sleep(window)
    t1 = time.monotonic()
    pings = listener.times("WATCHDOG=1", t0, t1)
    assert len(pings) >= at_least, "%d WATCHDOG=1 in %.1f s (expected >= %d); seen:\n%s" % (
        len(pings), window, at_least, listener.dump(listener.snapshot()))
    gaps = [b - a for a, b in zip([t0] + pings, pings + [t1])]
    assert max(gaps) < WATCHDOG_USEC / 1e6, (
        "a %.3f s gap without WATCHDOG=1 (WATCHDOG_USEC=%d)" % (max(gaps), WATCHDOG_USEC))
    return pings


@pytest.mark.parametrize("watchdog_pid", ["unset", "own"])
def test_sd_notify_lifecycle(redis_server, r, sysd, notify, watchdog_pid):
    d = sysd(redis_server.url, {"daemon": {"heartbeat_interval": "0.2", "workers": "2"}})
    wrapper = ()
    if watchdog_pid == "own":
        # sh execs jobqd, so $$ is jobqd's PID (as systemd sets it).
        wrapper = ("sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh")
    d.start(env=notify_env(notify), wrapper=wrapper)

    # READY=1 once Redis answered and the workers are forked.
    i_ready = notify.wait_line("READY=1", 15)
    assert d.running(), d.log_tail()
    kids = children(d.pid)
    assert len(kids) == 2, "READY=1 sent with %d worker process(es), expected 2" % len(kids)
    assert notify.lines().count("READY=1") == 1, "READY=1 sent twice at start"

    # STATUS= lines, refreshed (heartbeat_interval 0.2) and readable.
    notify.wait(lambda m: STATUS_RE.fullmatch(m) is not None and "2 idle" in m, 5,
                "STATUS= line with 2 idle workers and Redis connected", i_ready)
    wait_ok(r, "sd1")
    wait_ok(r, "sd2")
    i_done = notify.wait(lambda m: bool(STATUS_RE.fullmatch(m)) and STATUS_RE.fullmatch(m)[4] == "2"
                         and m.endswith("Redis connected"), 5,
                         "STATUS= line saying 2 jobs done")
    status = notify.snapshot()[i_done][1]
    print("STATUS line:", status)
    assert STATUS_RE.fullmatch(status).group(1) == "running"
    bad = [m for m in notify.lines() if m.startswith("STATUS=") and not STATUS_RE.fullmatch(m)]
    assert not bad, "unexpected STATUS= lines: %r" % bad[:5]

    # The watchdog: 400 ms -> a ping every 200 ms from the loop.
    pings = assert_watchdog_pings(notify)
    print("%d WATCHDOG=1 in 1.5 s" % len(pings))

    # SIGHUP: RELOADING=1, then READY=1.
    n = len(notify.snapshot())
    d.send_signal(signal.SIGHUP)
    i_rel = notify.wait_line("RELOADING=1", 10, after=n)
    notify.wait_line("READY=1", 10, after=i_rel + 1)
    wait_ok(r, "after-reload")
    assert_watchdog_pings(notify, 1.0, 2)

    # SIGTERM: STOPPING=1 (and EXTEND_TIMEOUT_USEC=), exit 0.
    n = len(notify.snapshot())
    d.send_signal(signal.SIGTERM)
    i_stop = notify.wait_line("STOPPING=1", 10, after=n)
    rc = d.wait_exit(20)
    assert rc == 0, "exit status %s after SIGTERM" % rc
    after = notify.lines(i_stop)
    ext = [m for m in after if m.startswith("EXTEND_TIMEOUT_USEC=")]
    assert ext, "no EXTEND_TIMEOUT_USEC= after STOPPING=1: %r" % after
    assert int(ext[0].split("=", 1)[1]) >= 10 * 1e6, ext  # shutdown_timeout = 10
    assert "READY=1" not in after


def test_status_while_draining(redis_server, r, sysd, notify):
    """SIGTERM with a job running: STOPPING=1, the watchdog still pinged
    while the job drains, a STATUS= line saying "stopping" (systemctl status
    would otherwise keep showing "running" for up to shutdown_timeout), the
    job finishes, exit 0."""
    d = sysd(redis_server.url, {"daemon": {"heartbeat_interval": "0.2", "workers": "1"}})
    d.start(env=notify_env(notify))
    notify.wait_line("READY=1", 15)
    push(r, job("sleep", id="slow", args={"seconds": 2.5}))
    notify.wait(lambda m: m.startswith("STATUS=running; workers: 1 busy"), 5, "STATUS= 1 busy")
    n = len(notify.snapshot())
    d.send_signal(signal.SIGTERM)
    i_stop = notify.wait_line("STOPPING=1", 5, after=n)
    assert_watchdog_pings(notify, 1.0, 2)
    assert d.running(), "exited before its job finished; log:\n" + d.log_tail()
    assert d.wait_exit(20) == 0
    assert get_result(r, "slow")["status"] == "ok"
    after = notify.lines(i_stop)
    statuses = [m for m in after if m.startswith("STATUS=")]
    assert any(m.startswith("STATUS=stopping") for m in statuses), (
        "no STATUS=stopping... while the job drained; after STOPPING=1: %r" % after)


def test_watchdog_pid_of_another_process_disables_pings(redis_server, r, sysd, notify):
    """sd_watchdog_enabled: WATCHDOG_PID naming another process means the
    watchdog is not ours (e.g. inherited by a child): no WATCHDOG=1."""
    d = sysd(redis_server.url, {"daemon": {"heartbeat_interval": "0.2"}})
    d.start(env=notify_env(notify, WATCHDOG_PID=os.getpid()))
    notify.wait_line("READY=1", 15)
    time.sleep(1.0)
    assert not notify.times("WATCHDOG=1"), notify.dump(notify.snapshot())


def test_workers_never_notify(redis_server, r, sysd, notify):
    """Only the supervisor talks to NOTIFY_SOCKET (NotifyAccess=main): the
    sender PID of every datagram is the supervisor's, through jobs, a reload
    (new workers) and a stop."""
    d = sysd(redis_server.url, {"daemon": {"heartbeat_interval": "0.2", "workers": "2"}})
    d.start(env=notify_env(notify))
    notify.wait_line("READY=1", 15)
    for i in range(6):
        wait_ok(r, "w%d" % i)
    n = len(notify.snapshot())
    d.send_signal(signal.SIGHUP)
    notify.wait_line("READY=1", 10, after=n)
    wait_ok(r, "after-hup")
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    time.sleep(0.1)
    senders = notify.sender_pids()
    assert senders, "no notification received"
    others = [(p, m) for p, m in senders if p != d.pid]
    assert not others, "notifications not from the supervisor (PID %d): %r" % (d.pid, others[:5])


def test_notify_with_redis_down_at_start(sysd, notify, redis_factory):
    """Redis unreachable at start: no READY=1, but the loop turns and pings
    the watchdog. Once Redis comes up: READY=1. When it goes away again:
    STATUS says reconnecting and the pings go on."""
    port = jobqtest.free_port()
    url = "redis://127.0.0.1:%d/0" % port
    d = sysd(url, {"daemon": {"heartbeat_interval": "0.2"}})
    d.start(env=notify_env(notify))
    time.sleep(1.0)
    assert d.running(), d.log_tail()
    assert "READY=1" not in notify.lines(), notify.dump(notify.snapshot())
    assert_watchdog_pings(notify)
    assert "READY=1" not in notify.lines()
    before = [m for m in notify.lines() if m.startswith("STATUS=")]
    print("STATUS lines before Redis answered: %r" % before)

    server = redis_factory(port=port).start()
    notify.wait_line("READY=1", 10)  # reconnect backoff is capped at 5 s
    rc = server.client()
    wait_ok(rc, "late")
    rc.close()

    server.stop()
    notify.wait(lambda m: m.startswith("STATUS=") and m.endswith("Redis reconnecting"), 10,
                "STATUS= ... Redis reconnecting")
    assert d.running(), d.log_tail()
    assert_watchdog_pings(notify)

    server.start()
    n = len(notify.snapshot())
    notify.wait(lambda m: m.startswith("STATUS=") and m.endswith("Redis connected"), 10,
                "STATUS= ... Redis connected (again)", after=n)


def test_no_notify_socket_no_notifications(redis_server, r, sysd, notify):
    """Without NOTIFY_SOCKET (plain foreground run) nothing is sent, even with
    WATCHDOG_USEC set."""
    d = sysd(redis_server.url, {"daemon": {"heartbeat_interval": "0.2"}})
    d.start(env=clean_env(WATCHDOG_USEC=WATCHDOG_USEC))
    wait_ok(r, "plain")
    time.sleep(0.5)
    assert not notify.snapshot()


# ---------------------------------------------------------------- journal

PRIO_LINE = re.compile(r"<([0-7])>(supervisor|worker\[\d+\]): ")
STAMP_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (error|warn |info |debug) "
                        r"(supervisor|worker\[\d+\]): ")


def run_for_log(redis_server, r, sysd, journal_stream, name):
    """Start jobqd with stderr to its log file and JOURNAL_STREAM set by
    journal_stream(st) (st = os.stat of that file; None = unset), make it log
    an info line (start) and a warning (a bad payload), stop it; its log."""
    d = sysd(redis_server.url, name=name)
    d.log_path.touch()
    st = os.stat(d.log_path)
    d.start(env=clean_env(JOURNAL_STREAM=journal_stream(st)))
    wait_ok(r, name + "-warm")
    payload = "{not json"
    push(r, payload)
    wait_dead(r, payload)
    wait_for(lambda: "dead-lettered" in d.log(), 5, 0.05, "the dead-lettered warning")
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    return d.log()


def test_journal_priority_prefixes(redis_server, r, sysd):
    log = run_for_log(redis_server, r, sysd, lambda st: "%d:%d" % (st.st_dev, st.st_ino), "journal")
    lines = [l for l in log.splitlines() if l.strip()]
    assert lines, "empty log"
    unprefixed = [l for l in lines if not PRIO_LINE.match(l)]
    assert not unprefixed, "lines without a <N>role: prefix:\n" + "\n".join(unprefixed[:10])
    prios = {int(PRIO_LINE.match(l).group(1)) for l in lines}
    assert prios <= {3, 4, 6, 7}, prios
    warn = [l for l in lines if "dead-lettered" in l]
    assert warn and all(l.startswith("<4>worker[") for l in warn), warn
    assert any(l.startswith("<6>supervisor: ") and "starting" in l for l in lines), lines[:5]
    assert any(l.startswith("<6>supervisor: ") and "stopped" in l for l in lines), lines[-5:]
    assert not any(STAMP_LINE.search(l) for l in lines)


@pytest.mark.parametrize("stream", ["unset", "other"])
def test_plain_timestamped_lines_off_journal(redis_server, r, sysd, stream):
    """No JOURNAL_STREAM, or one naming another file than stderr (a wrapper
    redirected it): timestamped lines, no <N> prefix."""
    js = None if stream == "unset" else (lambda st: "%d:%d" % (st.st_dev, st.st_ino + 1))
    log = run_for_log(redis_server, r, sysd, js or (lambda st: None), "plain-" + stream)
    lines = [l for l in log.splitlines() if l.strip()]
    odd = [l for l in lines if not STAMP_LINE.match(l)]
    assert not odd, "lines that are not timestamped:\n" + "\n".join(odd[:10])
    assert not [l for l in lines if re.match(r"<\d>", l)]
    assert any(re.search(r" warn  worker\[\d+\]: dead-lettered", l) for l in lines), lines


# ---------------------------------------------------------------- secrets

def assert_no_secret(text, what, secret=PASSWORD):
    assert secret not in text, "%s contains the password:\n%s" % (
        what, "\n".join(l for l in text.splitlines() if secret in l)[:2000])


@pytest.fixture
def auth_redis(redis_factory):
    return redis_factory(port=jobqtest.free_port(), password=PASSWORD).start()


def url_forms(server, password=PASSWORD):
    return {
        "tcp": "redis://:%s@127.0.0.1:%d/0" % (password, server.port),
        "tcp-user": "redis://default:%s@127.0.0.1:%d/0" % (password, server.port),
        "unix": "unix://%s?password=%s" % (server.sock, password),
        "unix-db": "unix://%s?db=0&password=%s" % (server.sock, password),
    }


def check_running_daemon(d, rc_client, job_id):
    wait_ok(rc_client, job_id)
    procs = [d.pid] + children(d.pid)
    for pid in procs:
        assert_no_secret(ps_args(pid), "ps -o args= -p %d" % pid)
        try:
            cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert_no_secret(cmdline, "/proc/%d/cmdline" % pid)


@pytest.mark.parametrize("form", ["tcp", "tcp-user", "unix", "unix-db"])
def test_password_in_redis_flag_is_hidden(auth_redis, sysd, form):
    url = url_forms(auth_redis)[form]
    d = sysd(url, {"daemon": {"heartbeat_interval": "0.2"}, "redis": {"url": "redis://127.0.0.1:1/0"}})
    d.start()
    c = auth_redis.client()
    try:
        check_running_daemon(d, c, "pw-" + form)
        print("ps args: %s" % ps_args(d.pid))
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), 10, 0.05, "configuration reloaded")
        check_running_daemon(d, c, "pw-%s-reloaded" % form)
    finally:
        c.close()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert_no_secret(d.log(), "the daemon log")


@pytest.mark.parametrize("source", ["env", "config"])
def test_password_from_env_or_config_not_logged(auth_redis, sysd, source):
    url = url_forms(auth_redis)["tcp"]
    overrides = {"daemon": {"heartbeat_interval": "0.2"}}
    env = clean_env()
    if source == "env":
        env["JOBQ_REDIS_URL"] = url
    else:
        overrides["redis"] = {"url": url}
    d = sysd(url, overrides)
    d.start(env=env, redis_flag=False)
    c = auth_redis.client()
    try:
        wait_ok(c, "pw-" + source)
    finally:
        c.close()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert_no_secret(d.log(), "the daemon log")


def test_wrong_password_not_logged(auth_redis, sysd, notify):
    wrong = "wr0ngpassw0rd"
    url = url_forms(auth_redis, wrong)["tcp"]
    d = sysd(url)
    d.start(env=notify_env(notify))
    wait_for(lambda: "Redis" in d.log() and ("unavailable" in d.log() or "WRONGPASS" in d.log()
                                            or "auth" in d.log().lower()), 10, 0.05,
             "a log line about the failed Redis login")
    time.sleep(0.5)
    assert "READY=1" not in notify.lines()
    assert_no_secret(d.log(), "the daemon log", wrong)
    assert_no_secret(ps_args(d.pid), "ps args", wrong)
    print("log:\n" + d.log_tail(1500))


@pytest.mark.parametrize("source", ["flag", "env", "config"])
@pytest.mark.parametrize("form", ["tcp", "unix"])
def test_check_config_hides_password(tmp_path, source, form):
    url = url_forms(SimpleNamespace(port=6390, sock="/run/redis/redis.sock"))[form]
    d = jobqtest.Daemon(tmp_path, url)
    conf = jobqtest.base_config(url, tmp_path)
    if source != "config":
        conf["redis"]["url"] = "redis://127.0.0.1:6379/0"
    d.conf_path.write_text(jobqtest.render_config(conf))
    argv = [str(jobqtest.jobqd_path()), "--check-config", "-c", str(d.conf_path)]
    env = clean_env()
    if source == "flag":
        argv += ["--redis", url]
    elif source == "env":
        env["JOBQ_REDIS_URL"] = url
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert_no_secret(out, "jobqd --check-config output")
    assert "***" in out, "the redacted URL is not shown:\n" + out


@needs_secrets
def test_credentials_directory_password(auth_redis, sysd, tmp_path):
    """LoadCredential=redis-password:... -> $CREDENTIALS_DIRECTORY/redis-password
    (mode 0600), with a URL without a password."""
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    cred = creds / "redis-password"
    cred.write_text(PASSWORD + "\n")
    cred.chmod(0o600)
    url = "unix://%s" % auth_redis.sock
    d = sysd(url, {"daemon": {"heartbeat_interval": "0.2"}})
    d.start(env=clean_env(CREDENTIALS_DIRECTORY=creds))
    c = auth_redis.client()
    try:
        check_running_daemon(d, c, "cred")
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), 10, 0.05, "configuration reloaded")
        check_running_daemon(d, c, "cred-reloaded")
    finally:
        c.close()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert_no_secret(d.log(), "the daemon log")

    # --check-config neither needs nor shows the secret.
    r = subprocess.run([str(jobqtest.jobqd_path()), "--check-config", "-c", str(d.conf_path),
                        "--redis", url], capture_output=True, text=True, timeout=20,
                       env=clean_env(CREDENTIALS_DIRECTORY=creds))
    assert r.returncode == 0, r.stdout + r.stderr
    assert_no_secret(r.stdout + r.stderr, "jobqd --check-config output")


@needs_secrets
def test_password_file_in_config(auth_redis, sysd, tmp_path):
    pw = tmp_path / "redis-pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    url = "unix://%s" % auth_redis.sock
    d = sysd(url, {"daemon": {"heartbeat_interval": "0.2"},
                   "redis": {"url": url, "password_file": str(pw)}})
    d.start(redis_flag=False)
    c = auth_redis.client()
    try:
        check_running_daemon(d, c, "pwfile")
    finally:
        c.close()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert_no_secret(d.log(), "the daemon log")
    r = subprocess.run([str(jobqtest.jobqd_path()), "--check-config", "-c", str(d.conf_path)],
                       capture_output=True, text=True, timeout=20, env=clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert_no_secret(r.stdout + r.stderr, "jobqd --check-config output")
    assert str(pw) in r.stdout, "password_file path not shown:\n" + r.stdout


@needs_secrets
def test_credential_readable_by_others_is_refused(auth_redis, sysd, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    cred = creds / "redis-password"
    cred.write_text(PASSWORD + "\n")
    cred.chmod(0o644)
    d = sysd("unix://%s" % auth_redis.sock)
    d.start(env=clean_env(CREDENTIALS_DIRECTORY=creds))
    rc = d.wait_exit(10)
    log = d.log()
    assert rc != 0, log
    assert "readable by others" in log and str(cred) in log, log
    assert_no_secret(log, "the daemon log")


def set_posix_acl(path, uid, perm=4):
    """What systemd's write_credential does on a file system with ACLs (tmpfs
    credential mounts in newer systemd, or its plain-directory fallback when
    it may not mount, as in containers): the file is 0400 root, plus an ACL
    entry user:<service uid>:r. The ACL mask then shows as the group bits, so
    stat() reports 0440. Raw system.posix_acl_access xattr (no setfacl
    needed): version 2, then (tag, perm, id) entries."""
    import struct
    undefined = 0xFFFFFFFF
    entries = [(0x01, 4, undefined),  # ACL_USER_OBJ r
               (0x02, perm, uid),     # ACL_USER uid r
               (0x04, 0, undefined),  # ACL_GROUP_OBJ ---
               (0x10, perm, undefined),  # ACL_MASK r
               (0x20, 0, undefined)]  # ACL_OTHER ---
    data = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(str(path), "system.posix_acl_access", data)


@needs_secrets
def test_credential_with_systemd_acl_is_accepted(auth_redis, sysd, tmp_path):
    """A credential exactly as systemd writes it where ACLs work: mode 0400
    plus an ACL granting the service user read access (stat shows 0440: the
    ACL mask in the group bits). Nobody but the service user can read it, so
    jobqd must accept it."""
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    cred = creds / "redis-password"
    cred.write_text(PASSWORD + "\n")
    cred.chmod(0o400)
    try:
        set_posix_acl(cred, 65534)
    except OSError as e:
        pytest.skip("no POSIX ACLs on %s: %s" % (tmp_path, e))
    assert stat_mode(cred) == 0o440, oct(stat_mode(cred))
    d = sysd("unix://%s" % auth_redis.sock, {"daemon": {"heartbeat_interval": "0.2"}})
    d.start(env=clean_env(CREDENTIALS_DIRECTORY=creds))
    c = auth_redis.client()
    try:
        wait_for(lambda: d.proc.poll() is not None or "ready:" in d.log(), 10, 0.05, "ready or exit")
        assert d.running(), "jobqd refused systemd's credential file (mode %s with ACL):\n%s" % (
            oct(stat_mode(cred)), d.log_tail())
        check_running_daemon(d, c, "cred-acl")
    finally:
        c.close()
    assert_no_secret(d.log(), "the daemon log")


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


def test_instance_unit():
    """jobqd@NAME.service: one jobqd per /etc/jobq/NAME.conf, the same
    service otherwise, as hardened, and accepted by systemd-analyze."""
    template = REPO / "systemd" / "jobqd@.service"
    main = render(UNIT.read_text())
    inst = render(template.read_text())
    assert "ExecStart=@BINDIR@/jobqd -c /etc/jobq/%i.conf" in inst
    strip = lambda t: [l for l in t.splitlines()
                       if l and not l.startswith("#") and not l.startswith(("ExecStart=", "Description="))
                       and "LoadCredential" not in l]
    assert strip(main) == strip(inst), "jobqd@.service differs from jobqd.service beyond ExecStart"
