#!/usr/bin/env python3
"""Drain benchmark: how fast jobqd empties a queue of no-op jobs, comparing
several jobqd binaries on the same machine, runs alternating between them.

Each run starts a private redis-server (unix socket, no persistence), fills
jobq:{default}:queue with N no-op jobs through `redis-cli --pipe`, starts the
binary with 2 workers, and measures the rate between the moments
jobq:{default}:stats processed passes N/10 and reaches N (so start-up is not
counted); then stops both by pid.

    tests/bench/drain.py [--jobs N] [--runs R] [--workers W] BINARY...

Prints each run and, per binary, the median, min and max jobs/s, and the
CPU time per job (redis-server plus jobqd and its workers, user + system,
from /proc over the same window) and the time Redis spent in jobq's
scripts per job (INFO commandstats, EVALSHA), which a busy machine
disturbs less than the rate.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis


def fill(sock, n, chunk=1000):
    """RPUSH n no-op jobs in chunks, as one RESP stream into redis-cli --pipe."""
    key = b"jobq:{default}:queue"
    out = bytearray()
    i = 0
    while i < n:
        m = min(chunk, n - i)
        out += b"*%d\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n" % (m + 2, len(key), key)
        for j in range(i, i + m):
            job = b'{"id":"b%d","handler":"noop"}' % j
            out += b"$%d\r\n%s\r\n" % (len(job), job)
        i += m
    p = subprocess.run(["redis-cli", "-s", sock, "--pipe"], input=bytes(out), capture_output=True,
                       timeout=120)
    if p.returncode != 0:
        sys.exit("redis-cli --pipe failed: %s" % p.stderr.decode())


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system seconds of pid, or 0 when it is gone."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu(pids):
    """CPU seconds of pids and their children (jobqd's workers)."""
    total = 0.0
    for pid in pids:
        total += cpu_seconds(pid)
        try:
            kids = Path("/proc/%d/task/%d/children" % (pid, pid)).read_text().split()
        except OSError:
            kids = []
        total += sum(cpu_seconds(int(k)) for k in kids)
    return total


def one_run(binary, n, workers, tmp, nice=0):
    d = Path(tempfile.mkdtemp(dir=tmp))
    sock = str(d / "r.sock")
    renice = (lambda: os.nice(nice)) if nice else None
    rs = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                           "--appendonly", "no", "--dir", str(d), "--daemonize", "no"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=renice)
    jq = None
    try:
        r = redis.Redis(unix_socket_path=sock, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        fill(sock, n)
        assert r.llen("jobq:{default}:queue") == n
        conf = d / "jobq.conf"
        conf.write_text("[daemon]\nworkers = %d\nqueues = default\nlog_level = warn\n"
                        "[redis]\nurl = unix://%s\n[plugins]\ndir = %s\n" % (workers, sock, d))
        jq = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=open(d / "jobqd.log", "w"), preexec_fn=renice)
        start_mark, t0 = n // 10, None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = int(r.hget("jobq:{default}:stats", "processed") or 0)
            now = time.monotonic()
            if t0 is None and done >= start_mark:
                t0, d0, c0 = now, done, tree_cpu([rs.pid, jq.pid])
            if done >= n:
                cpu = tree_cpu([rs.pid, jq.pid]) - c0
                scripts = r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
                return (done - d0) / (now - t0), cpu / (done - d0) * 1e6, scripts / done
            time.sleep(0.002)
        raise RuntimeError("%s did not drain %d jobs in 300 s" % (binary, n))
    finally:
        if jq:
            jq.send_signal(signal.SIGTERM)
            try:
                jq.wait(20)
            except subprocess.TimeoutExpired:
                jq.kill()
                jq.wait()
        rs.send_signal(signal.SIGTERM)
        rs.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=300000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness of redis-server and jobqd (negative, as root: less disturbed by a busy machine)")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    rates = {b: [] for b in a.binaries}
    cpus = {b: [] for b in a.binaries}
    lua = {b: [] for b in a.binaries}
    with tempfile.TemporaryDirectory(prefix="jobq-drain-") as tmp:
        for run in range(a.runs):
            for b in a.binaries:
                rate, cpu, script = one_run(os.path.abspath(b), a.jobs, a.workers, tmp, a.nice)
                rates[b].append(rate)
                cpus[b].append(cpu)
                lua[b].append(script)
                print("run %d  %-36s %10.0f jobs/s  %6.2f us CPU/job  %5.2f us/job in scripts"
                      % (run + 1, b, rate, cpu, script), flush=True)
    for b in a.binaries:
        rs, cs = rates[b], cpus[b]
        print("%-36s median %8.0f jobs/s (min %.0f, max %.0f); median %.2f us CPU/job (min %.2f, max %.2f); "
              "median %.2f us/job in Redis scripts; %d runs"
              % (b, statistics.median(rs), min(rs), max(rs), statistics.median(cs), min(cs), max(cs),
                 statistics.median(lua[b]), len(rs)))


if __name__ == "__main__":
    main()
