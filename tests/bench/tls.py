#!/usr/bin/python3
"""The TLS line of `make bench`: the no-op drain (the same jobs, one jobqd
with 4 workers) against a redis-server on 127.0.0.1 over plain TCP and over
TLS (a CA and server certificate made here with openssl), so the price of
rediss:// is one ratio. Both servers are started here and stopped by their
pid. Prints one line and writes it to <outdir>/tls.txt; says why when the
jobqd at hand is built without TLS.

Usage: tls.py --build build --outdir build/bench [--jobs N] [--rounds R]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import redis

from proclib import stop, stop_session, wait


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)


def make_certs(d):
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


def start_redis(d, port, tls):
    args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d,
            "--logfile", os.path.join(d, "redis-%s.log" % ("tls" if tls else "tcp"))]
    if tls:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", os.path.join(d, "server.crt"),
                 "--tls-key-file", os.path.join(d, "server.key"), "--tls-ca-cert-file", os.path.join(d, "ca.crt"),
                 "--tls-auth-clients", "no"]
    else:
        args += ["--port", str(port)]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def client(d, port, tls):
    kw = dict(host="127.0.0.1", port=port, decode_responses=True)
    if tls:
        kw.update(ssl=True, ssl_ca_certs=os.path.join(d, "ca.crt"))
    return redis.Redis(**kw)


def drain(args, d, port, tls):
    """Seconds one jobqd takes to drain args.jobs no-op jobs."""
    r = client(d, port, tls)
    r.flushall()
    conf = os.path.join(d, "jobqd-%s.conf" % ("tls" if tls else "tcp"))
    url = "%s://127.0.0.1:%d/0" % ("rediss" if tls else "redis", port)
    with open(conf, "w") as f:
        f.write("[daemon]\nworkers = 4\nlog_level = warn\n[redis]\nurl = %s\n%s[jobs]\nresult_ttl = 600\n"
                % (url, "tls_ca_file = %s\n" % os.path.join(d, "ca.crt") if tls else ""))
    log = open(os.path.join(d, "jobqd-%s.log" % ("tls" if tls else "tcp")), "ab")
    p = subprocess.Popen([os.path.join(args.build, "jobqd"), "-c", conf], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True)
    log.close()
    try:
        wait(lambda: r.zcard("jobq:{default}:leases") > 0 or p.poll() is not None, 20, "jobqd ready")
        if p.poll() is not None:
            raise RuntimeError("jobqd exited (see %s)" % d)
        payload = json.dumps({"handler": "noop"})
        pipe = r.pipeline(transaction=False)
        for start in range(0, args.jobs, 1000):
            pipe.rpush("jobq:{default}:queue", *([payload] * min(1000, args.jobs - start)))
        t0 = time.monotonic()
        pipe.execute()
        wait(lambda: int(r.hget("jobq:{default}:stats", "processed") or 0) >= args.jobs or p.poll() is not None,
             args.timeout, "the drain")
        return time.monotonic() - t0
    finally:
        stop_session(p)
        r.close()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--build", default="build")
    a.add_argument("--outdir", default="build/bench")
    a.add_argument("--jobs", type=int, default=int(os.environ.get("BENCH_TLS_JOBS", "50000")))
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--timeout", type=float, default=60)
    args = a.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    out = os.path.join(args.outdir, "tls.txt")
    version = subprocess.run([os.path.join(args.build, "jobqd"), "--version"], capture_output=True,
                             text=True).stdout.strip()
    if "TLS yes" not in version:
        line = "TLS: not measured: %s" % version
        print(line)
        with open(out, "w") as f:
            f.write(line + "\n")
        return 0
    d = os.path.join(args.outdir, "tls")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    make_certs(d)
    servers = []
    try:
        ports = {False: free_port(), True: free_port()}
        for tls in (False, True):
            servers.append(start_redis(d, ports[tls], tls))
        for tls in (False, True):
            wait(lambda: _ping(client(d, ports[tls], tls)), 10, "redis-server")
        best = {False: None, True: None}
        for _ in range(args.rounds):  # alternated, best of each
            for tls in (False, True):
                t = drain(args, d, ports[tls], tls)
                best[tls] = t if best[tls] is None else min(best[tls], t)
        plain, secure = args.jobs / best[False], args.jobs / best[True]
        line = ("TLS: %d no-op jobs, 4 workers, 127.0.0.1, best of %d: plain TCP %.0f jobs/s, TLS %.0f jobs/s "
                "(TLS costs %.0f %%)" % (args.jobs, args.rounds, plain, secure, 100 * (1 - secure / plain)))
    finally:
        for server in servers:
            stop(server)
    print(line)
    with open(out, "w") as f:
        f.write(line + "\n")
    return 0


def _ping(c):
    try:
        return c.ping()
    except redis.RedisError:
        return False
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
