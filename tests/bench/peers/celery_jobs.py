"""Celery side of `make bench` (tests/bench/peers.py): the no-op and wordcount
tasks, doing what jobq's built-in handlers do. The broker and the result
backend are the bench's private redis-server (BENCH_REDIS_SOCK); queue
"default". Each task returns the time it started (time.time()), so the
result document (celery-task-meta-<id>) holds the start and, in date_done,
the finish."""
import os
import time
import urllib.request

from celery import Celery

_sock = os.environ.get("BENCH_REDIS_SOCK", "/tmp/redis.sock")
app = Celery("celery_jobs", broker="redis+socket://" + _sock, backend="redis+socket://" + _sock)
app.conf.update(
    task_default_queue="default",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)


@app.task(name="bench.noop")
def noop():
    return {"started_at": time.time()}


@app.task(name="bench.wordcount")
def wordcount(url):
    t = time.time()
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read()
        status = resp.status
    return {"started_at": t, "url": url, "http_status": status, "bytes": len(body), "words": len(body.split())}
