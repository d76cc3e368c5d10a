"""The one-slot rule (shared/DESIGN.md, "Keys"): every key that one script
or transaction touches lies in one Redis Cluster hash slot, and every
script declares each key it touches. Every path of jobqd and jobq runs
against a `redis-server --cluster-enabled yes` that owns every slot (so a
multi-key command across slots fails with CROSSSLOT), through a plain
redis:// URL: the take (batch and blocking), the commit of every outcome
kind (ok, retry, failed, dead, rejected, cancelled, a worker crash settled
by the supervisor), promotion with and without a deliverable queue key,
requeue and reclaim, leases, enqueue (plain, delayed, unique), cancel, dead
retry and purge, FCALL, status and the permission probe.
Meanwhile MONITOR records each command a script runs; COMMAND GETKEYS names
its keys, which must be among the keys the script declared (FCALL's 1-key
form may also use its queue's other keys in the same slot, as README
says)."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import clusterlib
import jobqtest
from jobqtest import wait_for

BAD = ("CROSSSLOT", "hash to the same slot", "non local key", "not served", "MOVED", "ASK ")


@pytest.fixture
def node(tmp_path):
    c = clusterlib.RedisCluster(tmp_path / "cluster", nodes=1).start()
    yield c
    c.stop()


def jq(url, *args, timeout=20):
    return subprocess.run([str(jobqtest.build_dir() / "jobq"), "--redis", url, *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Monitor:
    """MONITOR on a raw connection, every line kept (in a thread)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.lines = []
        self.buf = b""
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.buf += data
            *done, self.buf = self.buf.split(b"\r\n")
            self.lines.extend(l.decode("latin-1") for l in done)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"')


def tokens(line):
    return [bytes(t, "latin-1").decode("unicode_escape") for t in TOKEN.findall(line)]


def undeclared_keys(n, lines):
    """(script call, command, key) for each key a script touched without
    declaring it. FCALL's 1-key form may use keys of its queue's slot."""
    import redis
    conn = redis.Connection(host="127.0.0.1", port=n.port, decode_responses=True)

    def ask(*args):  # the raw reply, without redis-py's reply callbacks
        conn.send_command(*args)
        return conn.read_response()

    found, declared, call, same_slot_ok = [], set(), None, False
    for line in lines:
        if " [0 lua] " not in line and " [" in line:
            t = tokens(line)
            if t and t[0].upper() in ("EVALSHA", "EVAL", "FCALL"):
                nkeys = int(t[2])
                declared = set(t[3:3 + nkeys])
                call, same_slot_ok = " ".join(t[:3 + nkeys]), t[0].upper() == "FCALL"
            else:
                call = None
            continue
        if " [0 lua] " not in line or call is None:
            continue
        t = tokens(line)
        if t[0].upper() in ("PUBLISH", "SPUBLISH", "TIME"):
            continue  # a channel, not a key (SPUBLISH's is in the queue's slot)
        try:
            keys = ask("COMMAND", "GETKEYS", *t)
        except redis.ResponseError:
            keys = []
        for k in keys:
            if k in declared:
                continue
            if same_slot_ok and declared and all(
                    ask("CLUSTER", "KEYSLOT", k) == ask("CLUSTER", "KEYSLOT", d) for d in declared):
                continue
            found.append((call, t[0], k))
    conn.disconnect()
    return found


def test_every_script_keeps_to_one_slot(node, tmp_path):
    n = node.nodes[0]
    url = node.seed_url
    monitor = Monitor(n.port)

    def R(*a):
        return n.cli(*a, check=False)

    def result(i, timeout=15):
        raw = wait_for(lambda: R("GET", "jobq:result:" + i) or None, timeout, 0.05, "result of " + i)
        return json.loads(raw)

    daemons = []

    def start(name):
        d = jobqtest.Daemon(tmp_path / name, url, name=name)
        d.write_config({"daemon": {"queues": "default,other,bad", "test_handlers": "yes",
                                   "heartbeat_interval": "0.3", "heartbeat_ttl": "1.5"},
                        "jobs": {"max_attempts": "2", "retry_backoff_base": "0.05",
                                 "retry_backoff_max": "0.1"}})
        daemons.append(d.start())
        wait_for(lambda: "ready:" in d.log(), 15, 0.05, name + " ready")
        return d

    try:
        a = start("a")
        # Waiting jobs of every outcome kind (batch takes: a deep queue).
        jobs = [json.dumps({"id": "ok%d" % i, "handler": "echo", "args": i}) for i in range(40)]
        jobs += [json.dumps({"id": "f1", "handler": "fail"}), json.dumps({"id": "c1", "handler": "crash"}),
                 json.dumps({"id": "u1", "handler": "nope"}), "not json"]
        R("RPUSH", "jobq:{default}:queue", *jobs)
        for i in ("ok0", "ok39"):
            assert result(i)["status"] == "ok"
        assert result("f1")["attempts"] == 2                     # retried, then failed
        assert "worker died" in result("c1")["error"]            # settled by the supervisor
        assert "unknown handler" in result("u1")["error"]        # rejected
        # A job taken alone (blocking take), a delayed one, a cancelled one.
        R("RPUSH", "jobq:{other}:queue", json.dumps({"id": "b1", "handler": "echo"}))
        assert result("b1")["status"] == "ok"
        R("ZADD", "jobq:{other}:scheduled", str(time.time() + 0.2), json.dumps({"id": "s1", "handler": "echo"}))
        assert result("s1")["status"] == "ok"
        # An undeliverable due job is buried per queue.
        R("SET", "jobq:{bad}:queue", "a string")
        # The CLI: enqueue (plain, delayed, unique), cancel waiting and
        # scheduled and running jobs, dead retry and purge, status.
        for args in (("enqueue", "--id", "e1", "echo", "7"),
                     ("enqueue", "--id", "e2", "--delay", "30", "echo"),
                     ("enqueue", "--id", "e3", "--unique", "-q", "other", "echo"),
                     ("enqueue", "--id", "e3", "--unique", "-q", "other", "echo")):
            p = jq(url, *args)
            assert p.returncode == 0, p.stderr
        assert result("e1")["result"] == 7
        assert jq(url, "cancel", "e2").returncode == 0
        assert result("e2")["error"] == "cancelled"
        R("RPUSH", "jobq:{default}:queue", json.dumps({"id": "long", "handler": "sleep",
                                                     "args": {"seconds": 30}}))
        wait_for(lambda: '"long"' in R("HGETALL", "jobq:daemons"), 10, 0.05, "long running")
        assert jq(url, "cancel", "long").returncode == 0
        assert result("long")["error"] == "cancelled"
        p = jq(url, "dead", "retry", "f1")
        assert p.returncode == 0, p.stderr
        wait_for(lambda: json.loads(R("GET", "jobq:result:f1") or "{}").get("attempts") == 2, 15, 0.05,
                 "f1 retried from the dead list")
        assert jq(url, "dead", "purge").returncode == 0
        assert jq(url, "status", "--json").returncode == 0
        # FCALL (the 0-key form of 0.1.0 is refused with the form to use), and the unique form.
        assert R("FCALL", "jobq_enqueue", "1", "jobq:{default}:queue", '{"id":"fc1","handler":"echo"}') == "fc1"
        assert R("FCALL", "jobq_enqueue", "1", "jobq:{other}:queue", '{"handler":"echo"}').endswith("-other")
        assert "FCALL jobq_enqueue 1 'jobq:{other}:queue'" in R("FCALL", "jobq_enqueue", "0", "other", '{}')
        assert R("FCALL", "jobq_enqueue_unique", "1", "jobq:{other}:queue",
                 '{"id":"fu1","handler":"echo"}') == "fu1"
        assert result("fc1")["status"] == "ok" and result("fu1")["status"] == "ok"
        # Reclaim: a second daemon takes over the jobs of a killed one.
        b = start("b")
        R("RPUSH", "jobq:{default}:queue", json.dumps({"id": "r1", "handler": "sleep", "args": {"seconds": 1}}))
        wait_for(lambda: '"r1"' in R("HGETALL", "jobq:daemons"), 10, 0.05, "r1 running")
        infos = R("HGETALL", "jobq:daemons").split("\n")
        runner = next(int(k.rsplit(":", 1)[1]) for k, v in zip(infos[::2], infos[1::2]) if '"r1"' in v)
        victim = a if runner == a.pid else b
        for pid in children(victim.pid) + [victim.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        victim.proc.wait(10)
        assert result("r1", 30)["status"] in ("ok", "failed")
        # The bad queue's due job went to its dead list.
        R("ZADD", "jobq:{bad}:scheduled", "1", json.dumps({"id": "x1", "handler": "echo"}))
        wait_for(lambda: R("LLEN", "jobq:{bad}:dead") == "1", 10, 0.05, "x1 buried")
    finally:
        logs = "\n".join(d.log() for d in daemons)
        for d in daemons:
            if d.running():
                d.stop()
        monitor.close()
    for bad in BAD:
        assert bad not in logs, "a command crossed slots (%s):\n%s" % (bad, logs[-4000:])
    scripts = sum(1 for l in monitor.lines if '"EVALSHA"' in l)
    assert scripts > 50, "MONITOR saw only %d script calls" % scripts
    undeclared = undeclared_keys(n, monitor.lines)
    assert not undeclared, "scripts touched keys they did not declare:\n" + "\n".join(
        "%s: %s %s" % u for u in sorted(set(undeclared))[:20])


def children(pid):
    """The pids of pid's children (its workers)."""
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(x) for x in out.split()]
