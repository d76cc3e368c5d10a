"""jobq web: the dashboard in a real headless Chromium (tests/tools/cdp.py,
kept off the network) against a live jobqd: queue names and counts, the
dead job, a retry with the token that makes the job run again, live events;
/metrics accepted by promtool with histograms that count real jobs; the
token (401 without, 403 with another, nothing changed; read-only without
one); GET never changes anything; oversized requests are refused; the Redis
password is never shown. Every server listens on 127.0.0.1 (or a unix
socket) and is stopped by pid."""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis

import jobqtest
from jobqtest import free_port, stop_process, wait_for

sys.path.insert(0, str(jobqtest.REPO / "tests" / "tools"))
import cdp  # noqa: E402

TOKEN = "t0ken-for-the-web-tests"
HANDLERS = {"daemon": {"test_handlers": "yes", "heartbeat_interval": "0.3", "queues": "default,mail"}}


class Web:
    """One `jobq web` process on 127.0.0.1 (a free port)."""

    def __init__(self, tmp_path, redis_url, token=None, env_token=None, args=()):
        self.log_path = tmp_path / ("web-%d.log" % time.monotonic_ns())
        argv = [str(jobqtest.build_dir() / "jobq"), "--redis", redis_url, "web", "--listen", "127.0.0.1:0",
                "--sample-every", "0.5", *args]
        if token:
            tf = tmp_path / "token"
            tf.write_text(token + "\n")
            argv += ["--token-file", str(tf)]
        env = dict(os.environ)
        env.pop("JOBQ_WEB_TOKEN", None)
        env.pop("JOBQ_REDIS_URL", None)
        if env_token:
            env["JOBQ_WEB_TOKEN"] = env_token
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
                                     env=env)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, "jobq web did not start: %r\n%s" % (line, self.log())
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers, text) of one request on a new connection."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode(errors="replace")
        finally:
            c.close()

    def get_json(self, path):
        status, _, text = self.request("GET", path)
        assert status == 200, (path, status, text)
        return json.loads(text)

    def post(self, path, body=None, token=TOKEN, scheme="Bearer"):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = "%s %s" % (scheme, token)
        status, _, text = self.request("POST", path, body if body is not None else {}, headers)
        return status, (json.loads(text) if text.startswith("{") else text)

    def stop(self):
        rc, killed = stop_process(self.proc, 10)
        self.proc.stdout.close()
        self._log.close()
        log = self.log()
        problems = []
        if killed or rc != 0:
            problems.append("jobq web exited with %s%s" % (rc, " (killed)" if killed else ""))
        problems += [m for m in jobqtest.SANITIZER_MARKS if m in log]
        return problems, log


@pytest.fixture
def web(tmp_path, redis_server):
    started = []

    def make(token=TOKEN, redis_url=None, **kw):
        w = Web(tmp_path, redis_url or redis_server.url, token=token, **kw)
        started.append(w)
        return w

    yield make
    failures = []
    for w in started:
        problems, log = w.stop()
        if problems:
            failures.append("%s\n%s" % ("; ".join(problems), log[-3000:]))
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def browser(tmp_path):
    if not os.access(cdp.CHROMIUM, os.X_OK):
        pytest.fail("%s is missing (make deps installs chromium)" % cdp.CHROMIUM)
    b = cdp.Browser(1400, 1000, log=str(tmp_path / "chromium.log"))
    yield b
    b.close()


def jq(redis_server, *args):
    p = subprocess.run([str(jobqtest.build_dir() / "jobq"), "--redis", redis_server.url, *args],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return p


def everything(r):
    """Every key with its type and DUMP: what a request must not change."""
    raw = redis.Redis(unix_socket_path=r.connection_pool.connection_kwargs["path"])
    try:
        return {k: (raw.type(k), raw.dump(k)) for k in raw.scan_iter("*")}
    finally:
        raw.close()


def dead_doc(job_id, queue="default"):
    payload = json.dumps({"id": job_id, "handler": "fail", "args": {"message": "again"}})
    return json.dumps({"id": job_id, "queue": queue, "handler": "fail", "error": "failed on purpose",
                       "payload": payload, "failed_at": time.time() - 30, "attempts": 1,
                       "errors": ["failed on purpose"]})


# ---------------------------------------------------------------- the page in a browser

def test_dashboard_in_chromium(r, redis_server, jobqd, web, browser):
    jobqd(HANDLERS)
    for _ in range(3):
        assert jq(redis_server, "enqueue", "--wait=10", "noop").returncode == 0
    assert jq(redis_server, "enqueue", "-q", "mail", "--wait=10", "echo", '{"to": "a@example.test"}').returncode == 0
    assert jq(redis_server, "enqueue", "--id", "broken-1", "--wait=10", "fail",
              '{"message": "disk full"}').returncode == 1
    for _ in range(3):
        assert jq(redis_server, "enqueue", "-q", "parked", "noop").returncode == 0
    assert jq(redis_server, "pause", "parked").returncode == 0
    # A job that reports its progress (100%: done) and then keeps running a while.
    assert jq(redis_server, "enqueue", "--id", "halfway", "progress",
              '{"steps": 2, "seconds": 0.1, "after": 6}').returncode == 0
    w = web()
    browser.goto(w.base + "/")
    browser.wait_for("document.querySelector('#queues tr[data-queue=\"parked\"]')", 15, "the queue table")
    row = lambda q: browser.eval(  # noqa: E731
        "[...document.querySelector('#queues tr[data-queue=\"%s\"]').cells].map(c => c.textContent)" % q)
    assert row("parked")[:5] == ["parkedpaused", "3", "0", "0", "0"]
    assert row("mail")[0] == "mail"  # not paused: no pill
    # The running job's progress bar, in its worker's row.
    browser.wait_for("[...document.querySelectorAll('#daemons td')].some(td => td.textContent.includes('halfway')"
                     " && td.querySelector('.progress') && td.textContent.includes('100% done'))", 15,
                     "the running job's progress")
    assert row("default")[0] == "default" and row("default")[5] == "1"  # dead
    assert row("mail")[0] == "mail"
    browser.wait_for("document.querySelector('#dead tr[data-id=\"broken-1\"]')", 15, "the dead job")
    text = browser.text()
    assert "disk full" in text and "broken-1" in text
    assert "alive" in text  # the daemon, with its workers
    # Read-only until the token is given: the retry button is disabled.
    assert browser.eval("document.querySelector('#dead tr[data-id=\"broken-1\"] button').disabled") is True
    browser.eval("document.getElementById('token').value = %s" % json.dumps(TOKEN))
    browser.eval("document.getElementById('unlock').click()")
    browser.wait_for("!document.getElementById('unlocked').hidden", 10, "write actions on")
    browser.wait_for("!document.querySelector('#dead tr[data-id=\"broken-1\"] button').disabled", 10,
                     "the retry button")
    before = json.loads(r.get("jobq:result:broken-1"))
    browser.eval("document.querySelector('#dead tr[data-id=\"broken-1\"] button').click()")

    # It ran again: a new result (the retry deleted the old one), and the
    # live events in the page show it.
    def newer_result():
        t = r.get("jobq:result:broken-1")  # None between the retry's delete and the new result
        return t and json.loads(t)["finished_at"] > before["finished_at"] and json.loads(t)
    after = wait_for(newer_result, 15, what="the retried job's newer result")
    browser.wait_for("[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('broken-1')"
                     " && li.textContent.includes('started'))", 15, "the job's events in the page")
    assert after["error"] == "disk full"
    # The job lookup finds it.
    browser.eval("document.getElementById('job-id').value = 'broken-1'")
    browser.eval("document.querySelector('#lookup button').click()")
    browser.wait_for("document.getElementById('job').textContent.includes('finished: failed')", 10, "the lookup")


# ---------------------------------------------------------------- /metrics

def test_metrics_pass_promtool_and_count_jobs(r, redis_server, jobqd, web):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (make deps installs prometheus)"
    jobqd(HANDLERS)
    for _ in range(5):
        assert jq(redis_server, "enqueue", "--wait=10", "noop").returncode == 0
    assert jq(redis_server, "enqueue", "-q", "mail", "--wait=10", "sleep", '{"seconds": 0.3}').returncode == 0
    w = web()
    # Workers send histogram increments with a commit at most once a second,
    # or when they find nothing to do: all six jobs' are in within ~2 s.
    deadline = time.monotonic() + 10
    while True:
        status, headers, text = w.request("GET", "/metrics")
        samples = {}
        for line in text.splitlines():
            if not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        if (samples.get('jobq_job_run_seconds_count{queue="default",handler="noop"}') == 5 and
                samples.get('jobq_job_run_seconds_count{queue="mail",handler="sleep"}') == 1) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr
    assert samples['jobq_jobs_total{queue="default",outcome="ok"}'] == 5
    assert samples['jobq_job_wait_seconds_count{queue="default",handler="noop"}'] == 5
    assert samples['jobq_job_run_seconds_count{queue="default",handler="noop"}'] == 5
    sleep = 'jobq_job_run_seconds_bucket{queue="mail",handler="sleep",le="%s"}'
    # 0.3 s: in the (0.25, 0.5] bucket (a very busy machine may stretch it a little).
    assert samples[sleep % "0.25"] == 0 and samples[sleep % "1"] == 1 and samples[sleep % "+Inf"] == 1
    assert 0.3 <= samples['jobq_job_run_seconds_sum{queue="mail",handler="sleep"}'] < 1
    assert samples['jobq_workers{state="idle"}'] + samples['jobq_workers{state="busy"}'] == 2
    assert samples["jobq_daemons"] == 1
    # The same text as `jobq metrics`.
    cli = jq(redis_server, "metrics").stdout
    assert [l for l in cli.splitlines() if "histogram" in l] == [l for l in text.splitlines() if "histogram" in l]


# ---------------------------------------------------------------- the token

def test_write_actions_need_the_token(r, redis_server, web):
    r.lpush("jobq:{default}:dead", dead_doc("d1"))
    r.rpush("jobq:{default}:queue", json.dumps({"id": "w1", "handler": "noop"}))
    w = web()
    before = everything(r)
    actions = [("/api/dead/retry", {"id": "d1"}), ("/api/dead/purge", {"all": True}),
               ("/api/job/w1/cancel", {}), ("/api/auth", {})]
    for path, body in actions:
        status, reply = w.post(path, body, token=None)
        assert status == 401, (path, status, reply)
        status, reply = w.post(path, body, token="wrong-token-123")
        assert status == 403, (path, status, reply)
        status, reply = w.post(path, body, token=TOKEN + "x")
        assert status == 403, (path, status, reply)
        status, reply = w.post(path, body, token=TOKEN[:-1])
        assert status == 403, (path, status, reply)
        status, reply = w.post(path, body, token=TOKEN, scheme="Basic")
        assert status == 401, (path, status, reply)
    assert everything(r) == before
    assert w.get_json("/api/snapshot")["writable"] is True
    # With the token: each action works.
    assert w.post("/api/auth") == (200, {"ok": True})
    assert w.post("/api/job/w1/cancel") == (200, {"id": "w1", "cancelled": "removed", "queue": "default"})
    # A parked job (waiting for the jobs it depends on) is cancelled too.
    r.hset("jobq:{default}:parked", "p1", json.dumps({"id": "p1", "handler": "noop", "depends_on": ["x"]}))
    assert w.post("/api/job/p1/cancel") == (200, {"id": "p1", "cancelled": "removed", "queue": "default"})
    assert r.hlen("jobq:{default}:parked") == 0
    assert json.loads(r.get("jobq:result:p1"))["error"] == "cancelled"
    assert w.post("/api/dead/retry", {"id": "d1"}) == (200, {"retried": "d1", "queue": "default"})
    assert w.post("/api/dead/retry", {"id": "d1"})[0] == 404
    r.lpush("jobq:{default}:dead", dead_doc("d2"))
    assert w.post("/api/dead/purge", {"queue": "default"}) == (200, {"removed": 1})
    assert w.post("/api/dead/purge", {})[0] == 400


def test_read_only_without_a_token_and_token_from_env(r, redis_server, web):
    r.lpush("jobq:{default}:dead", dead_doc("d1"))
    ro = web(token=None)
    assert ro.get_json("/api/snapshot")["writable"] is False
    before = everything(r)
    assert ro.post("/api/dead/retry", {"id": "d1"})[0] == 403
    assert ro.post("/api/dead/retry", {"id": "d1"}, token=None)[0] == 403
    assert everything(r) == before
    env = web(token=None, env_token="from-the-environment")
    assert env.post("/api/dead/retry", {"id": "d1"}, token="from-the-environment") == \
        (200, {"retried": "d1", "queue": "default"})


def test_the_redis_password_is_never_shown(tmp_path, web):
    password = "s3cret-redis-pass"
    port = free_port()
    d = tmp_path / "pw-redis"
    d.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(d), "--requirepass", password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
        wait_for(lambda: _pings(rc), 10, what="redis-server")
        rc.lpush("jobq:{default}:dead", dead_doc("d1"))
        rc.rpush("jobq:{default}:queue", json.dumps({"id": "w1", "handler": "noop"}))
        w = web(redis_url="redis://:%s@127.0.0.1:%d/0" % (password, port))
        seen = []
        for path in ("/", "/app.js", "/api/snapshot", "/api/dead", "/api/job/w1", "/api/history", "/metrics",
                     "/healthz"):
            status, headers, text = w.request("GET", path)
            assert status == 200, (path, status)
            seen.append(text + json.dumps(headers))
        assert w.get_json("/api/snapshot")["redis"].startswith("redis://")
        # An error message names the server, without the password either.
        stop_process(proc, 5)
        status, _, text = w.request("GET", "/api/snapshot")
        assert status in (502, 503), (status, text)
        seen.append(text)
        assert not [s for s in seen if password in s or TOKEN in s]
    finally:
        stop_process(proc, 5)


def _pings(c):
    try:
        return c.ping()
    except redis.exceptions.ConnectionError:
        return False


# ---------------------------------------------------------------- GET is safe

def test_get_never_changes_state(r, redis_server, web):
    r.lpush("jobq:{default}:dead", dead_doc("d1"))
    r.rpush("jobq:{default}:queue", json.dumps({"id": "w1", "handler": "noop"}))
    r.zadd("jobq:{default}:scheduled", {json.dumps({"id": "s1", "handler": "noop"}): time.time() + 3600})
    r.set("jobq:result:done-1", json.dumps({"id": "done-1", "status": "ok", "result": None}), ex=3600)
    r.hset("jobq:{default}:parked", "p1", json.dumps({"id": "p1", "handler": "noop", "depends_on": ["x"]}))
    w = web()
    time.sleep(0.6)  # a sample or two of the history
    before = everything(r)
    gets = ["/", "/index.html", "/app.js", "/app.css", "/favicon.svg", "/api/snapshot", "/api/history",
            "/api/dead", "/api/dead?queue=default&limit=1", "/api/job/w1", "/api/job/s1", "/api/job/p1",
            "/api/job/done-1",
            "/api/job/nope", "/metrics", "/healthz",
            # the write actions' paths, by GET: refused, nothing done
            "/api/dead/retry", "/api/dead/purge", "/api/job/w1/cancel", "/api/auth"]
    for path in gets:
        for method in ("GET", "HEAD"):
            status, headers, _ = w.request(method, path, headers={"Authorization": "Bearer " + TOKEN})
            if path in ("/api/dead/retry", "/api/dead/purge", "/api/auth", "/api/job/w1/cancel"):
                assert status == 405 and headers.get("Allow") == "POST", (method, path, status)
            elif path == "/api/job/nope":
                assert status == 404
            else:
                assert status == 200, (method, path, status)
    for method in ("PUT", "DELETE", "PATCH"):
        assert w.request(method, "/api/dead/purge", body="{}",
                         headers={"Authorization": "Bearer " + TOKEN})[0] == 405
    assert w.get_json("/api/job/w1")["state"] == "waiting"
    assert w.get_json("/api/job/s1")["state"] == "scheduled"
    parked = w.get_json("/api/job/p1")
    assert (parked["state"], parked["queue"], parked["payload"]["depends_on"]) == ("parked", "default", ["x"])
    assert w.get_json("/api/snapshot")["totals"]["parked"] == 1
    assert w.get_json("/api/job/done-1")["state"] == "finished"
    history = w.get_json("/api/history")
    assert history["interval"] == 0.5 and history["points"]
    assert history["points"][-1]["queues"]["default"] == [0, 0]
    assert everything(r) == before


# ---------------------------------------------------------------- bounded input

def refused(w, path, headers):
    """Is GET path refused: a 4xx answer, or the connection closed on the
    sender of what is over the limits (the answer may then be lost)?"""
    try:
        return 400 <= w.request("GET", path, headers=headers)[0] < 500
    except (BrokenPipeError, ConnectionResetError):
        return True


def test_oversized_requests_are_refused(r, redis_server, web):
    r.lpush("jobq:{default}:dead", dead_doc("d1"))
    w = web()
    before = everything(r)
    # A declared 1 MiB body is refused from its headers, before it is read.
    with socket.create_connection(("127.0.0.1", w.port), timeout=10) as sock:
        sock.sendall(b"POST /api/dead/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
        reply = sock.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply
    # Without a Content-Length (chunked), cut off at the limit just the same.
    c = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
    c.putrequest("POST", "/api/dead/retry")
    c.putheader("Authorization", "Bearer " + TOKEN)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for _ in range(4):
        chunk = b'{"id": "d1", "pad": "' + b"y" * 3000
        c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    c.send(b"0\r\n\r\n")
    assert c.getresponse().status == 413
    c.close()
    # Headers over the per-connection memory limit, a huge URL.
    assert refused(w, "/api/snapshot", {"X-Pad": "z" * 65536})
    assert refused(w, "/api/job/" + "q" * 100000, {})
    status, _, _ = w.request("GET", "/api/job/" + "q" * 200)  # a job id is at most 128 bytes
    assert status == 400
    assert everything(r) == before
    assert w.get_json("/api/snapshot")["totals"]["dead"] == 1  # still serving


# ---------------------------------------------------------------- a Redis Cluster

def read_event(resp, job_id, timeout):
    """Read the event stream resp until an event of job_id: its JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = resp.fp.readline().decode()
        if line.startswith("data: ") and job_id in line:
            return json.loads(line[6:])
    raise AssertionError("no event of %s in %g s" % (job_id, timeout))


def test_on_a_redis_cluster(tmp_path, web):
    import clusterlib
    c = clusterlib.RedisCluster(tmp_path / "cluster", nodes=3, replicas=0).start()
    try:
        queues = ["q%d" % i for i in range(6)]
        assert len({c.node_of("jobq:{%s}:queue" % q).port for q in queues}) >= 2
        jobq = [str(jobqtest.build_dir() / "jobq"), "--redis", c.url]
        for q in queues:
            subprocess.run(jobq + ["enqueue", "-q", q, "--id", "first-" + q, "noop"], check=True,
                           capture_output=True, timeout=30)
        w = web(redis_url=c.url)
        snap = w.get_json("/api/snapshot")
        assert {q["name"]: q["waiting"] for q in snap["queues"]} == {q: 1 for q in queues}
        status, _, text = w.request("GET", "/metrics")
        assert status == 200
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        # Events from the queues' sharded channels, on every shard.
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=15)
        conn.request("GET", "/api/events")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
        time.sleep(0.5)
        for q in (queues[0], queues[-1]):
            subprocess.run(jobq + ["enqueue", "-q", q, "--id", "live-" + q, "noop"], check=True,
                           capture_output=True, timeout=30)
            ev = read_event(resp, "live-" + q, 10)
            assert ev["event"] == "queued" and ev["queue"] == q
        conn.close()
        assert w.get_json("/api/job/first-q3")["state"] == "waiting"
    finally:
        c.stop()


def test_other_host_names_are_refused(r, redis_server, web):
    """A page whose DNS name was rebound to 127.0.0.1 sends its own Host:
    refused, so it cannot read the dashboard's data."""
    r.lpush("jobq:{default}:dead", dead_doc("secret-job"))
    w = web()
    for host in ("evil.example", "evil.example:%d" % w.port, "127.0.0.1.evil.example"):
        status, _, text = w.request("GET", "/api/dead", headers={"Host": host})
        assert status == 403 and "secret-job" not in text, (host, status)
    for host in ("127.0.0.1:%d" % w.port, "localhost:%d" % w.port, "LOCALHOST", "[::1]:%d" % w.port):
        assert w.request("GET", "/api/dead", headers={"Host": host})[0] == 200, host
    named = web(args=("--allow-host", "jobq.example,ops.example"))
    assert named.request("GET", "/api/dead", headers={"Host": "ops.example"})[0] == 200
    assert named.request("GET", "/api/dead", headers={"Host": "jobq.example:443"})[0] == 200
    assert named.request("GET", "/api/dead", headers={"Host": "other.example"})[0] == 403
