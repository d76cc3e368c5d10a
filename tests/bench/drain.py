#!/usr/bin/python3
"""Drain benchmark: push N no-op jobs on one queue of a private
redis-server, start jobqd with W workers, and time until every job is
processed (the queue's stats hash). Prints jobs/s; with several --jobqd
binaries the runs alternate (A B A B ...), so two builds are compared on
the same machine state.

    tests/bench/drain.py --jobs 200000 --workers 4 --runs 3 \
        --jobqd /tmp/base/jobqd --jobqd build/jobqd [--conf-extra 'queue.other:concurrency=2']

The config is the plain default (batch_size 64, log_level warn); every
process started here is stopped by pid, every wait is bounded.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import redis


def start_redis(d):
    sock = os.path.join(d, "redis.sock")
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                          "--save", "", "--appendonly", "no", "--dir", d, "--logfile", os.path.join(d, "redis.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(unix_socket_path=sock, decode_responses=True)
    for _ in range(200):
        try:
            r.ping()
            return p, sock, r
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.025)
    p.kill()
    raise SystemExit("redis-server did not start")


def one_run(jobqd, d, sock, r, jobs, workers, extra):
    r.flushall()
    payload = '{"handler":"noop"}'
    pipe = r.pipeline(transaction=False)
    for i in range(0, jobs, 1000):
        pipe.rpush("jobq:{default}:queue", *([payload] * min(1000, jobs - i)))
    pipe.execute()
    conf = os.path.join(d, "jobq.conf")
    with open(conf, "w") as f:
        f.write("[daemon]\nworkers = %d\nqueues = default\nlog_level = warn\n"
                "[redis]\nurl = unix://%s\n[plugins]\ndir = %s\n%s" % (workers, sock, d, extra))
    log = open(os.path.join(d, "jobqd.log"), "ab")
    t0 = time.monotonic()
    p = subprocess.Popen([jobqd, "-c", conf], stdout=log, stderr=log)
    try:
        deadline = t0 + 300
        first = None
        while time.monotonic() < deadline:
            n = int(r.hget("jobq:{default}:stats", "processed") or 0)
            if n and first is None:
                first = (time.monotonic(), n)
            if n >= jobs:
                break
            time.sleep(0.002)
        t1 = time.monotonic()
        n = int(r.hget("jobq:{default}:stats", "processed") or 0)
        if n < jobs:
            raise SystemExit("%s: only %d of %d jobs processed in 300 s" % (jobqd, n, jobs))
        return (n - first[1]) / (t1 - first[0]) if first and t1 > first[0] else 0.0
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=200000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobqd", action="append", default=[])
    ap.add_argument("--extra", default="", help="more config text appended to the file")
    a = ap.parse_args()
    binaries = a.jobqd or ["build/jobqd"]
    d = tempfile.mkdtemp(prefix="jobq-drain-")
    p, sock, r = start_redis(d)
    rates = {b: [] for b in binaries}
    try:
        for run in range(a.runs):
            for b in binaries:
                rate = one_run(b, d, sock, r, a.jobs, a.workers, a.extra.replace("\\n", "\n"))
                rates[b].append(rate)
                print("run %d  %-40s %9.0f jobs/s" % (run + 1, b, rate), flush=True)
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    for b in binaries:
        xs = sorted(rates[b])
        print("%-40s median %9.0f jobs/s  (runs: %s)" % (b, xs[len(xs) // 2], ", ".join("%.0f" % x for x in rates[b])))


if __name__ == "__main__":
    sys.exit(main())
