"""Job functions for the rq side of `make bench` (tests/bench/bench.py).

The rq workers import this module (run.sh puts tests/bench on their
PYTHONPATH); the equivalents of jobq's built-in "noop" and "wordcount"
handlers, doing the same work: wordcount GETs the URL and counts the
whitespace-separated words of the body.
"""
import urllib.request


def noop():
    return None


def wordcount(url):
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read()
        status = resp.status
    return {"url": url, "http_status": status, "bytes": len(body), "words": len(body.split())}
