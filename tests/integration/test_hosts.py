"""Two jobq hosts and one Redis, each in a network namespace the test makes
(`ip netns add`, veth pairs, addresses that exist only inside those
namespaces), each host with its own hostname (`unshare --uts`). Host A is
cut off (`ip link set ... down`) while it runs jobs: host B puts A's
in-flight jobs back once A's lease lapses and runs them; when the link comes
back, A learns that it was fenced, records no outcome a second time and
takes nothing B was given. Nothing is lost; the only jobs that run twice are
the ones A was running when it was cut off. Skipped, with the reason, where
namespaces cannot be made (not root, no iproute2)."""

import json
import os
import shutil
import subprocess
import time

import pytest

import jobqtest
from jobqtest import qkey, wait_for

SUBNET = "10.231"  # 10.231.1.0/24 (A - Redis), 10.231.2.0/24 (B - Redis): inside the namespaces only
PORT = 6390


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


class Hosts:
    """Namespaces r (Redis), a and b, a veth pair from each host to r."""

    def __init__(self):
        tag = "%d" % os.getpid()
        self.ns = {"r": "jqr" + tag, "a": "jqa" + tag, "b": "jqb" + tag}
        self.made = []

    def make(self):
        for name in self.ns.values():
            ip("netns", "add", name)
            self.made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        for i, host in ((1, "a"), (2, "b")):
            here, there = "v%s%s" % (host, self.ns["r"][3:]), "r%s%s" % (host, self.ns["r"][3:])
            ip("link", "add", here, "netns", self.ns[host], "type", "veth", "peer", "name", there,
               "netns", self.ns["r"])
            ip("-n", self.ns[host], "addr", "add", "%s.%d.2/24" % (SUBNET, i), "dev", here)
            ip("-n", self.ns["r"], "addr", "add", "%s.%d.1/24" % (SUBNET, i), "dev", there)
            ip("-n", self.ns[host], "link", "set", here, "up")
            ip("-n", self.ns["r"], "link", "set", there, "up")
        return self

    def link(self, host):
        return "v%s%s" % (host, self.ns["r"][3:])

    def cut(self, host):
        ip("-n", self.ns[host], "link", "set", self.link(host), "down")

    def mend(self, host):
        ip("-n", self.ns[host], "link", "set", self.link(host), "up")

    def run_in(self, host, hostname=None):
        """The command prefix that runs a program in host's namespace (as
        hostname)."""
        prefix = ["ip", "netns", "exec", self.ns[host]]
        if hostname:
            prefix += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        return prefix

    def remove(self):
        for name in self.made:
            ip("netns", "del", name, check=False)


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("network namespaces need root, ip (iproute2) and unshare (util-linux)")
    h = Hosts()
    try:
        h.make()
    except subprocess.CalledProcessError as e:
        h.remove()
        pytest.skip("cannot make network namespaces here: %s" % (e.stderr or e).strip())
    yield h
    h.remove()


def test_a_host_cut_off_mid_run_is_fenced_and_its_jobs_run_elsewhere(hosts, tmp_path):
    redis = jobqtest.RedisServer(tmp_path / "redis", wrapper=hosts.run_in("r"),
                                 extra=["--port", str(PORT), "--bind", "%s.1.1" % SUBNET, "%s.2.1" % SUBNET,
                                        "--protected-mode", "no"])
    redis.start()
    r = redis.client()
    events = jobqtest.Events(r)  # through the unix socket, which no namespace cuts
    daemons = []
    try:
        conf = {"daemon": {"workers": "3", "test_handlers": "yes", "heartbeat_interval": "0.5",
                           "heartbeat_ttl": "3", "shutdown_timeout": "5"},
                "jobs": {"max_attempts": "1"}}
        for host, i in (("a", 1), ("b", 2)):
            d = jobqtest.Daemon(tmp_path / host, "redis://%s.%d.1:%d/0" % (SUBNET, i, PORT), name="jobqd-" + host,
                                wrapper=hosts.run_in(host, "host-" + host))
            d.write_config(conf)
            daemons.append(d.start())
        a, b = daemons
        for d in daemons:
            wait_for(lambda: "ready:" in d.log() or not d.running(), 20, 0.05, "%s ready" % d.name)
            d.assert_running()
        n = 120
        r.rpush(qkey("queue"), *[json.dumps({"id": "j%d" % i, "handler": "sleep", "args": {"seconds": 0.2}})
                                 for i in range(n)])
        # Cut A off while it holds jobs; what it holds then is all that may run twice.
        wait_for(lambda: any(e.get("worker", "").startswith("host-a") for e in seen(events)), 10, 0.02,
                 "host A running jobs")
        hosts.cut("a")
        cut_at = time.time()
        held = {json.loads(x)["id"] for k in jobqtest.inflight_keys(r) if ":host-a:" in k for x in r.lrange(k, 0, -1)}
        assert held, "host A held no job at the cut"
        wait_for(lambda: all(r.exists(jobqtest.key("result", "j%d" % i)) for i in range(n)), 40, 0.1,
                 "every job done by host B")
        reclaimed_after = time.time() - cut_at
        assert "back on queue default" in b.log(), b.log_tail()
        # The link comes back: A finds out it was fenced, records nothing
        # twice, runs nothing again, and takes new jobs.
        mark = len(seen(events))
        hosts.mend("a")
        wait_for(lambda: "had been taken away" in a.log(), 20, 0.1, "host A told it was fenced")
        # B goes away: the new jobs can only be A's.
        b.stop()
        r.rpush(qkey("queue"), *[json.dumps({"id": "k%d" % i, "handler": "sleep", "args": {"seconds": 0.1}})
                                 for i in range(30)])
        wait_for(lambda: all(r.exists(jobqtest.key("result", "k%d" % i)) for i in range(30)), 20, 0.1,
                 "jobs after the link came back")
        time.sleep(1)
        started = {}
        for e in seen(events):
            if e.get("event") == "started":
                started.setdefault(e["id"], []).append(e["worker"])
        twice = {i for i, w in started.items() if len(w) > 1}
        assert twice <= held, "ran twice without having been in flight on A at the cut: %s" % (twice - held)
        rerun = {e["id"] for e in events.seen[mark:] if e.get("event") == "started" and e["id"].startswith("j")}
        assert not rerun, "jobs ran again after the link came back: %s" % rerun
        # A job that ran on both hosts has the result of the run that was
        # recorded: B's (A's late outcome was dropped, result included).
        for i in twice:
            doc = json.loads(r.get(jobqtest.key("result", i)))
            assert doc["worker"].startswith("host-b"), doc
        ok = [json.loads(r.get(jobqtest.key("result", "j%d" % i))) for i in range(n)]
        assert all(x["status"] == "ok" for x in ok)
        assert not jobqtest.inflight_jobs(r) and r.llen(qkey("queue")) == 0
        assert all(w.startswith("host-a") for i in range(30) for w in started["k%d" % i]), \
            "host A did not take the jobs after the link came back"
        print("hosts: %d jobs, host A cut off holding %d, all back and done %.1f s after the cut, run twice %d"
              % (n, len(held), reclaimed_after, len(twice)))
    finally:
        events.close()
        problems = jobqtest.stop_daemons(daemons)
        r.close()
        redis.stop()
    assert not problems, problems


def seen(events):
    """Every event so far (reading what has arrived)."""
    try:
        events.wait(lambda e: False, timeout=0.05)
    except AssertionError:
        pass
    return events.seen
