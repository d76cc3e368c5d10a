"""The wordcount handler against a local HTTP server (httpfixture.py)."""

import json
import subprocess
import urllib.request

from faultlib import wait_workers
from jobqtest import (FIXTURES, check_daemons_alive, free_port, get_result, job, jobqd_path, push,
                      wait_for)

WORDS = FIXTURES / "words.txt"


def test_counts_words_of_fixture(r, jobqd, http_server):
    data = WORDS.read_bytes()
    url = http_server.url("words.txt")
    jobqd()
    push(r, job("wordcount", id="wc1", args={"url": url}))
    res = get_result(r, "wc1", timeout=20)
    assert res["status"] == "ok", res
    assert res["result"] == {
        "url": url,
        "http_status": 200,
        "bytes": len(data),
        "words": len(data.split()),
    }


def test_404_fails(r, jobqd, http_server):
    jobqd()
    push(r, job("wordcount", id="wc404", args={"url": http_server.url("no-such-file.txt")}))
    res = get_result(r, "wc404", timeout=20)
    assert res["status"] == "failed", res
    assert "404" in res["error"]


def test_non_http_url_fails(r, jobqd):
    jobqd()
    push(r, job("wordcount", id="wcftp", args={"url": "ftp://x"}))
    res = get_result(r, "wcftp", timeout=20)
    assert res["status"] == "failed", res
    assert "http" in res["error"].lower()


def maps_libcurl(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libcurl" in f.read()


def test_libcurl_is_loaded_only_by_a_worker_that_runs_wordcount(r, jobqd, http_server):
    """The supervisor and workers that never fetched a URL do not map libcurl;
    the worker that ran a wordcount job does, and keeps its handle."""
    d = jobqd({"daemon": {"workers": 2}})
    workers = wait_workers(d, 2)
    push(r, job("noop", id="plain"))
    get_result(r, "plain")
    assert not maps_libcurl(d.pid), "the supervisor maps libcurl"
    assert not any(maps_libcurl(w) for w in workers), "a worker maps libcurl before any wordcount job"
    url = http_server.url("words.txt")
    push(r, job("wordcount", id="wcload", args={"url": url}))
    res = get_result(r, "wcload", timeout=20)
    assert res["status"] == "ok", res
    ran = int(res["worker"].rsplit(":", 1)[1])
    assert ran in workers
    assert maps_libcurl(ran), "the worker that ran wordcount has no libcurl mapped"
    assert [w for w in workers if w != ran and maps_libcurl(w)] == [], "the idle worker loaded libcurl"
    assert not maps_libcurl(d.pid)
    # The loaded library keeps serving later jobs of that worker.
    for i in range(5):
        push(r, job("wordcount", id="wcagain%d" % i, args={"url": url}))
    for i in range(5):
        assert get_result(r, "wcagain%d" % i, timeout=20)["result"]["words"] == res["result"]["words"]


def test_preload_loads_libcurl_in_the_supervisor(r, jobqd, http_server):
    """[wordcount] preload = yes: the supervisor loads libcurl before it
    forks, so every worker has it from the start (sharing its pages)."""
    d = jobqd({"daemon": {"workers": 2}, "wordcount": {"preload": "yes"}})
    workers = wait_workers(d, 2)
    assert maps_libcurl(d.pid), "preload = yes, but the supervisor has no libcurl"
    assert all(maps_libcurl(w) for w in workers), "workers forked without the preloaded libcurl"
    push(r, job("wordcount", id="wcpre", args={"url": http_server.url("words.txt")}))
    assert get_result(r, "wcpre", timeout=20)["status"] == "ok"


# ---- URL credentials and the deny_private SSRF guard ----
#
# These push to and read from Redis by key, on the {queue} schema:
# jobq:{<queue>}:queue and jobq:result:<id>.

USER, PASSWORD = "alice-wc", "pw-s3cr3t-wc"
SECRETS = (USER, PASSWORD, "%s:%s" % (USER, PASSWORD))


def push_default(r, payload):
    r.rpush("jobq:{default}:queue", payload)


def raw_result(r, job_id, timeout=20.0):
    """The result document of job_id as stored (a JSON string)."""
    def get():
        raw = r.get("jobq:result:%s" % job_id)
        if raw is None:
            check_daemons_alive("result of job %r" % job_id)
        return raw
    return wait_for(get, timeout, 0.02, "result of job %r" % job_id)


def with_credentials(url):
    return url.replace("http://", "http://%s:%s@" % (USER, PASSWORD), 1)


def assert_no_secret(text, where):
    for s in SECRETS:
        assert s not in text, "%r shows up in %s:\n%s" % (s, where, text)


def http_requests(http_server):
    """Request lines the HTTP fixture logged so far."""
    try:
        text = http_server.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if '"GET ' in line or '"HEAD ' in line]


def test_url_credentials_never_shown(r, jobqd, http_server):
    """user:password@ in a job's URL is hidden (***@) in the result's url,
    in every error message (connection refused, HTTP error, redirect,
    non-http URL) and in jobqd's log, at log level debug; the request itself
    still works (default deny_private = no, so localhost is allowed), and
    a malformed URL (port 99999) is rejected without showing them either."""
    d = jobqd({"daemon": {"log_level": "debug"}})
    closed = "http://127.0.0.1:%d/x" % free_port()
    jobs = {
        "cred-ok": with_credentials(http_server.url("words.txt")),
        "cred-redirect": with_credentials(http_server.url("redirect/words.txt")),
        "cred-refused": with_credentials(closed),
        "cred-404": with_credentials(http_server.url("no-such-file.txt")),
        "cred-ftp": "ftp://%s:%s@127.0.0.1:%d/x" % (USER, PASSWORD, http_server.port),
        "cred-badport": "http://%s:%s@127.0.0.1:99999/x" % (USER, PASSWORD),
    }
    for job_id, url in jobs.items():
        push_default(r, job("wordcount", id=job_id, args={"url": url}))
    raws = {job_id: raw_result(r, job_id) for job_id in jobs}
    docs = {job_id: json.loads(raw) for job_id, raw in raws.items()}
    for job_id, raw in raws.items():
        assert_no_secret(raw, "the result of %s" % job_id)

    data = WORDS.read_bytes()
    ok = docs["cred-ok"]
    assert ok["status"] == "ok", ok
    assert ok["result"] == {"url": "http://***@127.0.0.1:%d/words.txt" % http_server.port,
                            "http_status": 200, "bytes": len(data), "words": len(data.split())}
    redirected = docs["cred-redirect"]
    assert redirected["status"] == "ok", redirected
    assert redirected["result"]["url"] == "http://***@127.0.0.1:%d/redirect/words.txt" % http_server.port

    refused = docs["cred-refused"]
    assert refused["status"] == "failed", refused
    assert closed.replace("http://", "http://***@") in refused["error"], refused["error"]
    assert docs["cred-404"]["status"] == "failed"
    assert "404" in docs["cred-404"]["error"] and "***@" in docs["cred-404"]["error"], docs["cred-404"]
    assert docs["cred-ftp"]["status"] == "failed"
    assert "ftp://***@127.0.0.1" in docs["cred-ftp"]["error"], docs["cred-ftp"]
    assert docs["cred-badport"]["status"] == "failed"
    assert "http://***@127.0.0.1:99999/x" in docs["cred-badport"]["error"], docs["cred-badport"]

    d.stop()
    log = d.log()
    assert "wordcount: GET http://***@127.0.0.1" in log, "no debug line to check:\n" + log[-3000:]
    assert_no_secret(log, "jobqd's log")


def test_deny_private_refuses_loopback(r, jobqd, http_server):
    """[wordcount] deny_private = yes: a job for the fixture on 127.0.0.1
    fails with the refusal, and the server never sees a request; so do
    localhost, ::1, the IPv4-mapped ::ffff:127.0.0.1 and 0.0.0.0. (A refused
    redirect target needs an allowed first hop, i.e. a non-private address,
    which the tests never use: the classifier has unit tests instead,
    tests/unit/test_addr_policy.c, and the check runs for every socket.)"""
    d = jobqd({"daemon": {"log_level": "debug"}, "wordcount": {"deny_private": "yes"}})
    port = http_server.port
    url = http_server.url("words.txt")
    push_default(r, job("wordcount", id="deny-v4", args={"url": url}))
    res = json.loads(raw_result(r, "deny-v4"))
    assert res["status"] == "failed", res
    assert res["error"] == ("wordcount: refused to connect to 127.0.0.1 (a loopback address; "
                            "[wordcount] deny_private = yes): GET %s" % url), res["error"]

    others = {
        "deny-localhost": ("http://localhost:%d/words.txt" % port, ("127.0.0.1", "::1"), "a loopback"),
        "deny-v6": ("http://[::1]:%d/words.txt" % port, ("::1",), "a loopback"),
        "deny-mapped": ("http://[::ffff:127.0.0.1]:%d/words.txt" % port, ("::ffff:127.0.0.1",),
                        "a loopback"),
        "deny-any": ("http://0.0.0.0:%d/words.txt" % port, ("0.0.0.0",), "an unspecified"),
        "deny-cred": (with_credentials(url), ("127.0.0.1",), "a loopback"),
    }
    for job_id, (u, _, _) in others.items():
        push_default(r, job("wordcount", id=job_id, args={"url": u}))
    for job_id, (u, addrs, kind) in others.items():
        raw = raw_result(r, job_id)
        res = json.loads(raw)
        assert res["status"] == "failed", (job_id, res)
        err = res["error"]
        assert any("refused to connect to %s (%s address; [wordcount] deny_private = yes)" % (a, kind)
                   in err for a in addrs), (job_id, err)
        assert_no_secret(raw, "the result of %s" % job_id)

    assert http_requests(http_server) == [], "the HTTP server was reached: %r" % http_requests(http_server)
    # Control: the fixture does log the requests it gets.
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
    wait_for(lambda: http_requests(http_server), 5, 0.05, "the fixture to log a request")

    d.stop()
    log = d.log()
    assert "deny_private = yes" in log
    assert_no_secret(log, "jobqd's log")


def test_check_config_shows_deny_private(jobqd):
    """jobqd --check-config prints deny_private (default no, and as set)."""
    for value, want in ((None, "no"), ("yes", "yes"), ("off", "no")):
        d = jobqd({"wordcount": {"deny_private": value}}, start=False)
        p = subprocess.run([str(jobqd_path()), "--check-config", "-c", str(d.conf_path)],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        section = p.stdout.split("[wordcount]", 1)[1]
        assert "\ndeny_private = %s\n" % want in section, p.stdout
    d = jobqd({"wordcount": {"deny_private": "maybe"}}, start=False)
    p = subprocess.run([str(jobqd_path()), "--check-config", "-c", str(d.conf_path)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "deny_private" in p.stderr and "yes or no" in p.stderr, p.stderr
