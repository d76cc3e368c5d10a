"""The wordcount handler against a local HTTP server (httpfixture.py)."""

from faultlib import wait_workers
from jobqtest import FIXTURES, get_result, job, push

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
