#!/usr/bin/python3
"""The Redis Cluster line of `make bench`: the same no-op workload on a
cluster of 1, 2 and 3 primaries (no replicas), made here from
`redis-server --cluster-enabled yes` processes on 127.0.0.1 (slots split
evenly with CLUSTER ADDSLOTSRANGE, joined with CLUSTER MEET) and drained by
one jobqd serving two queues on every primary.

Two cores cannot show wall-clock scaling (jobqd and every Redis share
them), so what is reported is where Redis spends its CPU: `INFO cpu`
(used_cpu_sys + used_cpu_user) of each primary before and after the drain,
divided by all the jobs of the run (falls as 1/N when the work spreads) and
by the jobs that primary served (stays flat), and the jobs per primary (no
shard may starve). Prints one line per cluster size and writes them to
<outdir>/cluster.txt. Every server started here is stopped by its pid.

Usage: cluster.py --build build --outdir build/bench [--jobs N] [--sizes 1,2,3]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from clusterlib import ClusterNode, free_port_pair  # noqa: E402  the tests' cluster nodes
from proclib import stop_session, wait  # noqa: E402

SLOTS = 16384


class Cluster:
    def __init__(self, directory, n):
        self.dir = directory
        self.ports = []
        used = set()
        for _ in range(n):
            p = free_port_pair(used)
            used.update((p, p + 10000))
            self.ports.append(p)
        self.nodes = []

    def start(self):
        self.nodes = [ClusterNode(os.path.join(self.dir, "node%d" % p), p).start() for p in self.ports]
        self.clients = [redis.Redis(host="127.0.0.1", port=p, decode_responses=True) for p in self.ports]
        for c in self.clients:
            wait(lambda: self._ping(c), 10, "a cluster node")
        per = SLOTS // len(self.ports)
        for i, c in enumerate(self.clients):
            lo, hi = i * per, SLOTS - 1 if i == len(self.ports) - 1 else (i + 1) * per - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            if i:
                self.clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[i])
        wait(self.ok, 30, "cluster_state:ok")
        return self

    @staticmethod
    def _ping(c):
        try:
            return c.ping()
        except redis.RedisError:
            return False

    def ok(self):
        for c in self.clients:
            info = c.execute_command("CLUSTER", "INFO")
            text = info if isinstance(info, str) else str(info)
            if "cluster_state:ok" not in text or "cluster_known_nodes:%d" % len(self.ports) not in text:
                return False
        return True

    def owner(self, key):
        slot = self.clients[0].execute_command("CLUSTER", "KEYSLOT", key)
        return min(slot // (SLOTS // len(self.ports)), len(self.ports) - 1)

    def cpu(self):
        out = []
        for c in self.clients:
            info = c.info("cpu")
            out.append(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))
        return out

    @property
    def url(self):
        return "redis+cluster://" + ",".join("127.0.0.1:%d" % p for p in self.ports)

    def stop(self):
        for c in getattr(self, "clients", []):
            c.close()
        for node in self.nodes:
            node.stop()


def queues_per_primary(c, per):
    found = {i: [] for i in range(len(c.ports))}
    i = 0
    while any(len(v) < per for v in found.values()):
        q = "bench%d" % i
        i += 1
        owner = c.owner("jobq:{%s}:queue" % q)
        if len(found[owner]) < per:
            found[owner].append(q)
        if i > 1000:
            raise RuntimeError("cannot place queues on every primary")
    return found


def run_size(args, n):
    directory = os.path.join(args.outdir, "cluster%d" % n)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    c = Cluster(directory, n).start()
    jobqd = None
    try:
        placed = queues_per_primary(c, 2)
        queues = [q for i in sorted(placed) for q in placed[i]]
        conf = os.path.join(directory, "jobqd.conf")
        with open(conf, "w") as f:
            f.write("[daemon]\nworkers = %d\nqueues = %s\nlog_level = warn\nbatch_size = 64\n"
                    "[redis]\nurl = %s\n[jobs]\nresult_ttl = 600\n" % (args.workers, ",".join(queues), c.url))
        log = open(os.path.join(directory, "jobqd.log"), "wb")
        jobqd = subprocess.Popen([os.path.join(args.build, "jobqd"), "-c", conf], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log, start_new_session=True)
        log.close()
        # Ready once every queue has its lease.
        wait(lambda: all(c.clients[c.owner("jobq:{%s}:leases" % q)].zcard("jobq:{%s}:leases" % q) > 0
                         for q in queues), 20, "jobqd's leases")
        per_queue = args.jobs // len(queues)
        payload = json.dumps({"handler": "noop"})
        cpu0 = c.cpu()
        t0 = time.monotonic()
        for q in queues:
            client = c.clients[c.owner("jobq:{%s}:queue" % q)]
            pipe = client.pipeline(transaction=False)
            for start in range(0, per_queue, 1000):
                pipe.rpush("jobq:{%s}:queue" % q, *([payload] * min(1000, per_queue - start)))
            pipe.execute()

        def served():
            out = [0] * n
            for q in queues:
                i = c.owner("jobq:{%s}:stats" % q)
                out[i] += int(c.clients[i].hget("jobq:{%s}:stats" % q, "processed") or 0)
            return out

        wait(lambda: sum(served()) >= per_queue * len(queues) or jobqd.poll() is not None,
             args.timeout, "the drain")
        took = time.monotonic() - t0
        cpu1 = c.cpu()
        done = served()
        total = sum(done)
        used = [b - a for a, b in zip(cpu0, cpu1)]
        line = ("cluster %d primar%s: %d no-op jobs in %.2f s (%.0f jobs/s); Redis CPU per 1000 jobs of the run, "
                "per primary: %s ms; per 1000 jobs it served: %s ms; jobs per primary: %s"
                % (n, "y" if n == 1 else "ies", total, took, total / took if took else 0,
                   " / ".join("%.1f" % (u * 1e6 / max(total, 1)) for u in used),
                   " / ".join("%.1f" % (u * 1e6 / max(d, 1)) for u, d in zip(used, done)),
                   " / ".join(str(d) for d in done)))
        if jobqd.poll() is not None:
            line += " (jobqd exited early: see %s/jobqd.log)" % directory
        return line
    finally:
        if jobqd:
            stop_session(jobqd)
        c.stop()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--build", default="build")
    a.add_argument("--outdir", default="build/bench")
    a.add_argument("--jobs", type=int, default=int(os.environ.get("BENCH_CLUSTER_JOBS", "60000")))
    a.add_argument("--workers", type=int, default=4)
    a.add_argument("--sizes", default="1,2,3")
    a.add_argument("--timeout", type=float, default=60)
    args = a.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    lines = []
    for n in (int(x) for x in args.sizes.split(",")):
        try:
            lines.append(run_size(args, n))
        except Exception as e:  # one size failing still reports the others
            lines.append("cluster %d: not measured: %s" % (n, e))
        print(lines[-1], flush=True)
    with open(os.path.join(args.outdir, "cluster.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0 if all("not measured" not in x for x in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
