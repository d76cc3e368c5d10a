#!/usr/bin/env python3
"""How long a /metrics scrape of `jobq web` takes with many queues.

Starts a private redis-server (unix socket), jobqd daemons serving --queues
queues (q000, q001, ...; 25 queues and 2 workers each), runs --jobs no-op and echo jobs on each (so
every queue has wait and run histograms for two handlers), then adds 10
scheduled jobs and 2 dead entries per queue, starts `jobq web` on
127.0.0.1 and times --scrapes GETs of /metrics (and of /api/snapshot), and
`jobq metrics`. Prints the median and the slowest, and the size. Stops
everything it started by pid.

    tests/bench/scrape.py [--build build] [--queues 100] [--jobs 20] [--scrapes 30]
"""

import argparse
import http.client
import json
import re
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--scrapes", type=int, default=30)
    a = ap.parse_args()
    build = Path(a.build).resolve()
    procs = []
    with tempfile.TemporaryDirectory(prefix="jobq-scrape-") as tmp:
        d = Path(tmp)
        sock = str(d / "r.sock")
        try:
            procs.append(subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                                           "--appendonly", "no", "--dir", tmp],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            r = redis.Redis(unix_socket_path=sock, decode_responses=True)
            for _ in range(100):
                try:
                    r.ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            names = ["q%03d" % i for i in range(a.queues)]
            (d / "jobq.conf").write_text("[daemon]\nworkers = 2\nlog_level = warn\n"
                                         "[redis]\nurl = unix://%s\n[plugins]\ndir = %s\n" % (sock, tmp))
            # A daemon serves at most 32 queues: one daemon per 25.
            for i in range(0, a.queues, 25):
                procs.append(subprocess.Popen([str(build / "jobqd"), "-c", str(d / "jobq.conf"),
                                               "--queues", ",".join(names[i:i + 25])],
                                              stdout=subprocess.DEVNULL, stderr=open(d / "jobqd.log", "a")))
            now = time.time()
            p = r.pipeline(transaction=False)
            for q in names:
                for i in range(a.jobs):
                    p.rpush("jobq:{%s}:queue" % q, json.dumps({"handler": "noop" if i % 2 else "echo",
                                                               "args": {"i": i}, "enqueued_at": now}))
            p.execute()
            total = a.queues * a.jobs
            deadline = time.time() + 30
            while sum(int(r.hget("jobq:{%s}:stats" % q, "processed") or 0) for q in names) < total:
                assert time.time() < deadline, "jobqd did not run the jobs: %s" % (d / "jobqd.log").read_text()[-2000:]
                time.sleep(0.2)
            p = r.pipeline(transaction=False)
            for q in names:
                for i in range(10):
                    p.zadd("jobq:{%s}:scheduled" % q, {json.dumps({"id": "%s-s%d" % (q, i), "handler": "noop"}):
                                                       now + 3600})
                for i in range(2):
                    p.lpush("jobq:{%s}:dead" % q, json.dumps({"id": "%s-d%d" % (q, i), "queue": q,
                                                             "handler": "fail", "error": "x", "payload": "{}",
                                                             "failed_at": now, "attempts": 1}))
            p.execute()
            web = subprocess.Popen([str(build / "jobq"), "--redis", "unix://" + sock, "web", "--listen",
                                    "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            procs.append(web)
            port = int(re.search(rb"127\.0\.0\.1:(\d+)/", web.stdout.readline()).group(1))
            time.sleep(0.5)

            def timed(path):
                out = []
                size = 0
                for _ in range(a.scrapes):
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    t = time.perf_counter()
                    c.request("GET", path)
                    body = c.getresponse().read()
                    out.append(time.perf_counter() - t)
                    size = len(body)
                    c.close()
                return out, size

            for path in ("/metrics", "/api/snapshot"):
                times, size = timed(path)
                print("%-14s %d queues: median %.1f ms, slowest %.1f ms over %d requests; %d bytes"
                      % (path, a.queues, statistics.median(times) * 1e3, max(times) * 1e3, len(times), size))
            cli = []
            for _ in range(5):
                t = time.perf_counter()
                subprocess.run([str(build / "jobq"), "--redis", "unix://" + sock, "metrics"],
                               stdout=subprocess.DEVNULL, check=True)
                cli.append(time.perf_counter() - t)
            print("jobq metrics   %d queues: median %.1f ms (process start included)"
                  % (a.queues, statistics.median(cli) * 1e3))
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


if __name__ == "__main__":
    main()
