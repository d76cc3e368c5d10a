"""Redis Cluster for the tests: N real `redis-server --cluster-enabled yes`
processes on 127.0.0.1 (ports below 55536, so that each bus port, port +
10000, is a valid port too), joined with `redis-cli --cluster create`, or a
single node that owns every slot. Every server is stopped by its PID."""

import json
import socket
import subprocess
from pathlib import Path

import jobqtest


def free_port_pair(used):
    """A port p < 55536 such that nothing listens on p nor on p + 10000."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p >= 55536 or p in used or p + 10000 in used:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        return p
    raise AssertionError("no free port pair for a cluster node")


class ClusterNode:
    def __init__(self, directory, port):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.proc = None
        self.log_path = self.dir / "redis.log"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(self.dir / "nodes.conf"),
             "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.log_path), "--daemonize", "no",
             "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def cli(self, *args, check=True):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError("redis-cli %s: %s%s" % (args, r.stdout, r.stderr))
        return r.stdout.strip()

    def up(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server on port %d exited: %s"
                                 % (self.port, self.log_path.read_text(errors="replace")[-2000:]))
        try:
            return self.cli("PING", check=False) == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            jobqtest.stop_process(self.proc, 5.0)


class RedisCluster:
    """nodes redis-servers; with nodes == 1 the one node owns every slot,
    otherwise `redis-cli --cluster create` with replicas per primary."""

    def __init__(self, directory, nodes=6, replicas=1):
        self.dir = Path(directory)
        self.nodes = []
        used = set()
        for i in range(nodes):
            p = free_port_pair(used)
            used.update((p, p + 10000))
            self.nodes.append(ClusterNode(self.dir / ("node%d" % i), p))
        self.replicas = replicas

    @property
    def url(self):
        return "redis+cluster://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes[:3])

    @property
    def seed_url(self):
        """A plain redis:// URL of the first node."""
        return "redis://127.0.0.1:%d/0" % self.nodes[0].port

    def start(self, timeout=30.0):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            jobqtest.wait_for(n.up, 10, 0.05, "cluster node on port %d" % n.port)
        if len(self.nodes) == 1:
            self.nodes[0].cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        else:
            r = subprocess.run(["redis-cli", "--cluster", "create",
                                *["127.0.0.1:%d" % n.port for n in self.nodes],
                                "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise AssertionError("cluster create failed:\n%s%s" % (r.stdout, r.stderr))
        jobqtest.wait_for(self.ok, timeout, 0.1, "cluster_state:ok on every node")
        return self

    def ok(self):
        for n in self.nodes:
            if n.proc.poll() is not None:
                continue
            info = n.cli("CLUSTER", "INFO", check=False)
            if "cluster_state:ok" not in info:
                return False
            if len(self.nodes) > 1 and "cluster_known_nodes:%d" % len(self.nodes) not in info:
                return False
        return True

    def client(self):
        """A redis-py client of the cluster (decode_responses)."""
        from redis.cluster import RedisCluster as PyCluster
        return PyCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def node_of(self, key):
        """The node (a ClusterNode) that serves key now."""
        slot = int(self.nodes[0].cli("CLUSTER", "KEYSLOT", key))
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.nodes[0].port),
                              "--json", "CLUSTER", "SLOTS"], capture_output=True, text=True,
                             timeout=10)
        for rng in json.loads(out.stdout):
            if rng[0] <= slot <= rng[1]:
                port = rng[2][1]
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError("no node serves slot %d" % slot)

    def logs(self):
        return "\n".join("--- node %d\n%s" % (n.port, n.log_text()[-3000:]) for n in self.nodes)

    def stop(self):
        for n in self.nodes:
            n.stop()
