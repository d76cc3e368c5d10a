"""Redis Sentinel for the tests: one primary and its replicas
(`redis-server --replicaof`) and three sentinels (`redis-server
sentinel.conf --sentinel`, down-after-milliseconds 1000), all on 127.0.0.1
ports the test picked, stopped by their PIDs."""

import subprocess
from pathlib import Path

import jobqtest
from clusterlib import ClusterNode, free_port_pair


class Server:
    """A plain redis-server on 127.0.0.1:port (optionally a replica)."""

    def __init__(self, directory, port, replica_of=None, extra=()):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.replica_of = replica_of
        self.extra = list(extra)
        self.proc = None
        self.log_path = self.dir / "redis.log"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.log_path),
                "--daemonize", "no", *self.extra]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        return self

    cli = ClusterNode.cli
    up = ClusterNode.up
    log_text = ClusterNode.log_text
    stop = ClusterNode.stop

    def role(self):
        try:
            return self.cli("ROLE", check=False).split("\n")[0]
        except subprocess.TimeoutExpired:
            return ""


class SentinelSet:
    """A primary, replicas, and three sentinels watching it as `name`."""

    def __init__(self, directory, name="mymaster", replicas=2, sentinels=3):
        self.dir = Path(directory)
        self.name = name
        used = set()

        def port():
            p = free_port_pair(used)
            used.add(p)
            return p

        self.primary_port = port()
        self.servers = [Server(self.dir / "primary", self.primary_port)]
        for i in range(replicas):
            self.servers.append(Server(self.dir / ("replica%d" % i), port(), replica_of=self.primary_port))
        self.sentinels = []
        for i in range(sentinels):
            p = port()
            d = self.dir / ("sentinel%d" % i)
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
                            "sentinel monitor %s 127.0.0.1 %d 2\n"
                            "sentinel down-after-milliseconds %s 1000\n"
                            "sentinel failover-timeout %s 5000\n"
                            "sentinel parallel-syncs %s 2\n"
                            % (p, d, d / "sentinel.log", name, self.primary_port, name, name, name))
            s = Server(d, p)
            s.conf = conf
            self.sentinels.append(s)

    @property
    def url(self):
        return "redis+sentinel://" + ",".join("127.0.0.1:%d" % s.port for s in self.sentinels) + \
            "/" + self.name

    def start(self, timeout=30.0):
        for s in self.servers:
            s.start()
        for s in self.servers:
            jobqtest.wait_for(s.up, 10, 0.05, "redis-server on port %d" % s.port)
        jobqtest.wait_for(lambda: all("master_link_status:up" in s.cli("INFO", "replication")
                                      for s in self.servers[1:]), timeout, 0.1, "replicas in sync")
        for s in self.sentinels:
            s.proc = subprocess.Popen(["redis-server", str(s.conf), "--sentinel"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        for s in self.sentinels:
            jobqtest.wait_for(s.up, 10, 0.05, "sentinel on port %d" % s.port)
        jobqtest.wait_for(lambda: all(
            "num-other-sentinels" in s.cli("SENTINEL", "master", self.name, check=False) and
            self.known_sentinels(s) >= len(self.sentinels) - 1 for s in self.sentinels),
            timeout, 0.1, "sentinels that know each other")
        return self

    def known_sentinels(self, s):
        lines = s.cli("SENTINEL", "master", self.name, check=False).split("\n")
        for i, l in enumerate(lines):
            if l == "num-other-sentinels" and i + 1 < len(lines):
                return int(lines[i + 1])
        return 0

    def master_port(self):
        """The primary's port as the first sentinel sees it."""
        out = self.sentinels[0].cli("SENTINEL", "get-master-addr-by-name", self.name, check=False)
        parts = out.split("\n")
        return int(parts[1]) if len(parts) == 2 else None

    def server(self, port):
        return next(s for s in self.servers if s.port == port)

    def stop(self):
        for s in self.sentinels + self.servers:
            s.stop()
