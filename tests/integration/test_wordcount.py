"""The wordcount handler against a local HTTP server (httpfixture.py)."""

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
