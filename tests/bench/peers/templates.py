#!/usr/bin/python3
"""Enqueue templates for `jqload push` (tests/bench/jqload.c): the Redis
commands each system's own client sends to enqueue one job, with "@@ID@@"
for the job id and "@@T0@@" for the enqueue time (binary arguments as
{"b64": ...}). Made with the systems' own client code where the format is
theirs to define:

  rq      Queue.enqueue_job into an unexecuted redis-py pipeline; its
          command stack (MULTI, SADD rq:queues, HSET rq:job:<id> ...,
          EXPIRE/PERSIST, RPUSH rq:queue:default <id>, EXEC) is the template
  celery  apply_async(task_id="@@ID@@") on the private Redis, and the
          message kombu LPUSHed taken back (its delivery tag made per job)
  sidekiq Sidekiq::Client's pipeline (SADD queues, LPUSH queue:default
          JSON), written here (Sidekiq 6.4's payload format)
  jobq    RPUSH jobq:{default}:queue JSON (README)

usage: templates.py SYSTEM KIND SOCK URL OUTFILE   (KIND noop | wordcount)
"""
import base64
import json
import os
import sys


def arg(v):
    if isinstance(v, bytes):
        try:
            s = v.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(v).decode()}
        return s
    if isinstance(v, str):  # str subclasses (rq's JobStatus) as redis-py sends them
        return v.encode("utf-8").decode("utf-8")
    if isinstance(v, (int, float)):
        return repr(v)
    return str(v)


def rq_template(kind, sock, url):
    import redis
    from rq import Queue
    conn = redis.Redis(unix_socket_path=sock)
    q = Queue("default", connection=conn)
    func = "rqjobs.wordcount" if kind == "wordcount" else "rqjobs.noop"
    args = (url,) if kind == "wordcount" else ()
    job = q.create_job(func, args=args, job_id="@@ID@@", result_ttl=3600)
    pipe = conn.pipeline(transaction=True)
    q.enqueue_job(job, pipeline=pipe)
    cmds = [[arg(a) for a in c[0]] for c in pipe.command_stack]
    if pipe.transaction:
        cmds = [["MULTI"]] + cmds + [["EXEC"]]
    return cmds


def celery_template(kind, sock, url):
    import redis
    os.environ["BENCH_REDIS_SOCK"] = sock
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import celery_jobs
    conn = redis.Redis(unix_socket_path=sock)
    conn.delete("default")
    task = celery_jobs.wordcount if kind == "wordcount" else celery_jobs.noop
    task.apply_async(args=(url,) if kind == "wordcount" else (), task_id="@@ID@@")
    raw = conn.rpop("default")
    if raw is None or conn.llen("default"):
        raise SystemExit("templates.py: celery did not leave exactly one message on list 'default'")
    msg = json.loads(raw)
    msg["properties"]["delivery_tag"] = "@@ID@@"
    conn.delete("celery-task-meta-@@ID@@")
    return [["LPUSH", "default", json.dumps(msg)]]


def sidekiq_template(kind, sock, url):
    job = {"retry": False, "queue": "default", "class": "BenchWordcount" if kind == "wordcount" else "BenchNoop",
           "args": [url] if kind == "wordcount" else [], "jid": "@@ID@@", "created_at": "@@T0@@",
           "enqueued_at": "@@T0@@"}
    text = json.dumps(job, separators=(",", ":")).replace('"@@T0@@"', "@@T0@@")
    return [["SADD", "queues", "default"], ["LPUSH", "queue:default", text]]


def jobq_template(kind, sock, url):
    job = {"id": "@@ID@@", "handler": kind, "enqueued_at": "@@T0@@"}
    if kind == "wordcount":
        job["args"] = {"url": url}
    text = json.dumps(job, separators=(",", ":")).replace('"@@T0@@"', "@@T0@@")
    return [["RPUSH", "jobq:{default}:queue", text]]


def main():
    system, kind, sock, url, out = sys.argv[1:6]
    make = {"rq": rq_template, "celery": celery_template, "sidekiq": sidekiq_template,
            "jobq": jobq_template}[system]
    with open(out, "w") as f:
        json.dump(make(kind, sock, url), f)


if __name__ == "__main__":
    main()
