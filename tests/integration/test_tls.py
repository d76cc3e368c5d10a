"""jobq over TLS (rediss://): a redis-server that listens only on a TLS port
of 127.0.0.1 (`--port 0 --tls-port P`, client certificates required), with
a CA, a server and a client certificate made by openssl for the test. jobqd
and jobq run jobs and read status through it; a wrong CA, a wrong server
name, a missing client certificate and a plain redis:// URL on the TLS port
are each refused with one clear line, and nothing hangs. A build without TLS
(hiredis 0.14) refuses rediss:// with one clear line instead."""

import json
import subprocess
import time

import pytest

import jobqtest
from clusterlib import free_port_pair
from jobqtest import wait_for


def tls_built():
    out = subprocess.run([str(jobqtest.jobqd_path()), "--version"], capture_output=True, text=True).stdout
    return "TLS yes" in out


needs_tls = pytest.mark.skipif(not tls_built(), reason="this jobqd is built without TLS (hiredis 0.14)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=%s" % name,
            "-keyout", name + ".key", "-out", name + ".crt", cwd=d)


def make_cert(d, name, ca, san):
    """A certificate for name signed by ca, with subjectAltName san."""
    (d / (name + ".ext")).write_text("subjectAltName=%s\n" % san)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name, "-keyout", name + ".key",
            "-out", name + ".csr", cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt", cwd=d)


class TlsRedis:
    """redis-server on a TLS-only port of 127.0.0.1, client certificates
    required, stopped by its PID."""

    def __init__(self, directory):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        make_ca(self.dir, "ca")
        make_ca(self.dir, "otherca")
        make_cert(self.dir, "server", "ca", "DNS:localhost,IP:127.0.0.1")
        make_cert(self.dir, "client", "ca", "DNS:jobq-client")
        self.port = free_port_pair(set())
        self.proc = None

    def path(self, name):
        return str(self.dir / name)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", self.path("server.crt"), "--tls-key-file", self.path("server.key"),
             "--tls-ca-cert-file", self.path("ca.crt"), "--tls-auth-clients", "yes",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--logfile", self.path("redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli("PING", check=False) == "PONG", 10, 0.05, "the TLS redis-server")
        return self

    def cli(self, *args, check=True):
        p = subprocess.run(["redis-cli", "--tls", "--cacert", self.path("ca.crt"), "--cert", self.path("client.crt"),
                            "--key", self.path("client.key"), "-h", "127.0.0.1", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=10)
        if check:
            assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def stop(self):
        if self.proc:
            jobqtest.stop_process(self.proc)

    @property
    def url(self):
        return "rediss://127.0.0.1:%d/0" % self.port


@pytest.fixture
def tls_redis(tmp_path):
    if not tls_built():
        pytest.skip("this jobqd is built without TLS (hiredis 0.14)")
    server = TlsRedis(tmp_path / "tls").start()
    yield server
    server.stop()


def tls_settings(server, **changes):
    s = {"tls_ca_file": server.path("ca.crt"), "tls_cert_file": server.path("client.crt"),
         "tls_key_file": server.path("client.key")}
    s.update(changes)
    return {k: v for k, v in s.items() if v is not None}


def jobq(conf, *args, url=None, timeout=20):
    argv = [str(jobqtest.build_dir() / "jobq"), "-c", str(conf)]
    if url:
        argv += ["--redis", url]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)


def daemon(tmp_path, server, name="jobqd", url=None, **changes):
    d = jobqtest.Daemon(tmp_path / name, url or server.url, name=name)
    d.write_config({"daemon": {"test_handlers": "yes"}, "redis": tls_settings(server, **changes)})
    return d


@needs_tls
def test_jobs_run_over_tls(tls_redis, tmp_path):
    d = daemon(tmp_path, tls_redis).start()
    try:
        wait_for(lambda: "ready:" in d.log() or not d.running(), 20, 0.05, "jobqd ready over TLS")
        d.assert_running()
        tls_redis.cli("RPUSH", "jobq:{default}:queue", *[json.dumps({"id": "t%d" % i, "handler": "noop"})
                                                         for i in range(50)])
        p = jobq(d.conf_path, "enqueue", "--id", "cli", "--wait=15", "echo", '{"x": 1}')
        assert p.returncode == 0, p.stderr
        wait_for(lambda: tls_redis.cli("EXISTS", "jobq:result:t49") == "1", 15, 0.05, "the jobs' results")
        assert json.loads(tls_redis.cli("GET", "jobq:result:t0"))["status"] == "ok"
        status = jobq(d.conf_path, "status", "--json")
        assert status.returncode == 0, status.stderr
        queues = {q["name"]: q for q in json.loads(status.stdout)["queues"]}
        assert queues["default"]["processed"] == 51
    finally:
        d.stop()
    assert "connected to Redis at rediss://127.0.0.1:%d" % tls_redis.port in d.log()


def refused(tmp_path, server, name, want, url=None, **changes):
    """jobq status and jobqd both refuse with a line that contains want."""
    d = daemon(tmp_path, server, name=name, url=url, **changes)
    d.write_config({"daemon": {"test_handlers": "yes"}, "redis": tls_settings(server, **changes)})
    t0 = time.time()
    p = jobq(d.conf_path, "status", url=url or server.url)
    assert time.time() - t0 < 15, "jobq status took %.1f s to give up" % (time.time() - t0)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    line = p.stderr.strip()
    assert "\n" not in line and want in line, line
    d.start()
    try:
        wait_for(lambda: want in d.log() or not d.running(), 15, 0.05, "jobqd's error")
        assert want in d.log(), d.log_tail()
    finally:
        d.stop()
    return line


@needs_tls
def test_an_unknown_certificate_authority_is_refused(tls_redis, tmp_path):
    line = refused(tmp_path, tls_redis, "wrongca", "certificate", tls_ca_file=tls_redis.path("otherca.crt"))
    assert "verify" in line.lower() or "certificate" in line, line


@needs_tls
def test_a_server_name_the_certificate_does_not_carry_is_refused(tls_redis, tmp_path):
    refused(tmp_path, tls_redis, "wrongname", "redis.example.com", tls_server_name="redis.example.com")


@needs_tls
def test_a_missing_client_certificate_is_refused(tls_redis, tmp_path):
    refused(tmp_path, tls_redis, "nocert", "client certificate", tls_cert_file=None, tls_key_file=None)


@needs_tls
def test_plain_redis_on_the_tls_port_does_not_hang(tls_redis, tmp_path):
    refused(tmp_path, tls_redis, "plain", "127.0.0.1:%d" % tls_redis.port,
            url="redis://127.0.0.1:%d/0" % tls_redis.port)


@needs_tls
def test_an_unreadable_ca_file_is_a_config_error(tls_redis, tmp_path):
    d = daemon(tmp_path, tls_redis, name="noca", tls_ca_file=str(tmp_path / "missing.pem"))
    p = jobq(d.conf_path, "status")
    assert p.returncode != 0
    assert "missing.pem" in p.stderr, p.stderr


@pytest.mark.skipif(tls_built(), reason="this jobqd is built with TLS")
def test_a_build_without_tls_refuses_rediss_clearly(tmp_path):
    port = free_port_pair(set())
    url = "rediss://127.0.0.1:%d/0" % port
    p = subprocess.run([str(jobqtest.build_dir() / "jobq"), "--redis", url, "status"], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 2 and "TLS" in p.stderr and "\n" not in p.stderr.strip(), p.stderr
    p = subprocess.run([str(jobqtest.jobqd_path()), "--redis", url, "--check-config"], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0 and "TLS" in p.stderr, p.stderr
