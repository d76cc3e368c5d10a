"""Batches (jobq batch create/status): 100 jobs queued in one step, run by
two daemons (ok, failed for good, failed after a retry), and a callback
that runs exactly once after the last of them, with the ok/failed counts
in its args.batch next to its own args; refusals of bad batches."""

import json
import subprocess
import time

from jobqtest import build_dir, get_result, job, qkey

CALLBACK_SCRIPT = 'cat >> "$JOBQ_ARG_out" && echo >> "$JOBQ_ARG_out" && echo null'


def jq(d, *args, stdin=None):
    return subprocess.run([str(build_dir() / "jobq"), "--redis", d.redis_url, *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_batch_of_100_with_its_callback_run_once(r, jobqd, tmp_path):
    conf = {"daemon": {"workers": "2", "test_handlers": "yes"},
            "jobs": {"retry_backoff_base": "0.05", "retry_backoff_max": "0.1"},
            "exec.record": {"command": "/bin/sh", "args": "-c '%s'" % CALLBACK_SCRIPT}}
    d1 = jobqd(conf, start=False)
    d2 = jobqd(conf, start=False)
    out = tmp_path / "callback-runs.txt"
    jobs = []
    for i in range(100):
        if i % 10 == 3:
            jobs.append(job("fail", id="j%d" % i, args={"message": "no %d" % i}, max_attempts=1 + i % 2))
        elif i % 25 == 0:
            jobs.append(job("sleep", id="j%d" % i, args={"seconds": 0.2}))
        else:
            jobs.append(job("echo", id="j%d" % i, args=i))
    callback = json.dumps({"handler": "record", "args": {"out": str(out), "to": "ops", "big": 2 ** 62}})
    p = jq(d1, "batch", "create", "--id", "b1", "--callback", callback, stdin="\n".join(jobs) + "\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "b1"
    p = jq(d1, "batch", "status", "b1", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert (st["total"], st["ok"], st["failed"], st["pending"], st["callback_at"]) == (100, 0, 0, 100, None), st
    assert r.llen(qkey("queue")) == 100

    d1.start()
    d2.start()
    res = get_result(r, "b1.callback", timeout=60)
    assert res["status"] == "ok", res
    for i in (0, 3, 13, 99):
        assert get_result(r, "j%d" % i)["status"] == ("failed" if i % 10 == 3 else "ok")
    assert get_result(r, "j13")["attempts"] == 2  # retried, counted once
    time.sleep(1.0)  # no second run comes
    runs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(runs) == 1, runs
    assert runs[0] == {"batch": {"id": "b1", "total": 100, "ok": 90, "failed": 10},
                       "out": str(out), "to": "ops", "big": 2 ** 62}, runs[0]

    p = jq(d1, "batch", "status", "b1")
    assert p.returncode == 0, p.stderr
    assert "batch b1 on queue default: 100 job(s), 90 ok, 10 failed, 0 pending; callback b1.callback queued at" \
        in p.stdout, p.stdout
    st = json.loads(jq(d1, "batch", "status", "-q", "default", "--json", "b1").stdout)
    assert st["pending"] == 0 and st["callback_at"] >= st["created_at"], st
    assert 0 < r.ttl(qkey("batch", "default", "b1")) <= 86400


def test_bad_batches_are_refused(r, jobqd):
    d = jobqd()
    cb = '{"handler":"echo"}'
    cases = [
        (("--id", "x", "--callback", cb, job("echo")), 0, None),
        (("--id", "x", "--callback", cb, job("echo")), 2, "batch x exists already"),
        (("--callback", '{"handler":"echo","args":{"batch":1}}', job("echo")), 2, "may not set"),
        (("--callback", '{"args":{}}', job("echo")), 2, "needs a \"handler\""),
        (("--callback", cb, job("echo", id="same"), job("echo", id="same")), 2, "id same is used twice"),
        (("--callback", cb, "[1]"), 2, "job 1 is not a JSON object"),
        (("--callback", cb, '{"handler":""}'), 2, "job 1: the job needs a 'handler' field"),
        (("--id", "y", job("echo")), 2, "--callback JOB-JSON is required"),
    ]
    for args, code, needle in cases:
        p = jq(d, "batch", "create", *args)
        assert p.returncode == code, (args, p.stdout, p.stderr)
        if needle:
            assert needle in p.stderr, (args, p.stderr)
    p = jq(d, "batch", "create", "--callback", cb, stdin="\n\n")
    assert p.returncode == 2 and "at least one job" in p.stderr, p.stderr
    p = jq(d, "batch", "status", "nope")
    assert p.returncode == 1 and "no batch nope" in p.stderr, p.stderr
    assert get_result(r, "x.callback")["status"] == "ok"
