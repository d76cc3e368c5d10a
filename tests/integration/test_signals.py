"""SIGTERM/SIGINT shut jobqd down cleanly; SIGHUP reloads its config."""

import signal
import time

import pytest

from jobqtest import get_result, holders, inflight_jobs, inflight_keys, job, key, push, qkey, wait_for


def ready(r, job_id="warm"):
    """Wait until the daemon serves jobs (one noop round trip)."""
    push(r, job("noop", id=job_id))
    assert get_result(r, job_id, timeout=15)["status"] == "ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0_when_idle(r, jobqd, sig):
    d = jobqd()
    ready(r)
    t0 = time.monotonic()
    d.send_signal(sig)
    rc = d.wait_exit(10)
    took = time.monotonic() - t0
    assert rc == 0, "jobqd exited with %s on %s; log:\n%s" % (rc, sig.name, d.log_tail())
    assert took < 5, "jobqd took %.1f s to exit on %s when idle" % (took, sig.name)


def test_sighup_reloads_config(r, jobqd):
    d = jobqd({"daemon": {"workers": 2}})
    ready(r)
    log_before = len(d.log())
    d.write_config({"daemon": {"workers": 1}})
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload" in d.log()[log_before:].lower(), 10, 0.05,
             "a log line saying the config was reloaded")
    d.assert_running()
    ready(r, "after-reload")
    d.assert_running()


def test_sighup_with_bad_config_keeps_old_one(r, jobqd):
    d = jobqd({"daemon": {"workers": 2}})
    ready(r)
    log_before = len(d.log())
    d.write_config({"daemon": {"workers": "abc"}})
    line = d.config_line("workers = abc")
    where = "%s:%d" % (d.conf_path.name, line)  # matches a full path:line as well
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: where in d.log()[log_before:], 10, 0.05,
             "a log line naming %s" % where)
    d.assert_running()
    ready(r, "after-bad-reload")
    time.sleep(0.5)
    d.assert_running()
    for i in range(4):
        push(r, job("noop", id="old%d" % i))
    for i in range(4):
        assert get_result(r, "old%d" % i)["status"] == "ok"


def test_sigterm_puts_unfinished_jobs_back_on_their_own_queues(r, jobqd):
    """Jobs of two queues running at SIGTERM past shutdown_timeout go back
    to the head of their own queue (jobq:{default}:queue, jobq:{other}:queue),
    ahead of what was waiting there."""
    d = jobqd({"daemon": {"queues": "default,other", "workers": 2, "batch_size": 1, "shutdown_timeout": 1}})
    run_d = push(r, job("sleep", id="run-d", args={"seconds": 30}))
    wait_for(lambda: any(run_d in v for v in inflight_jobs(r, "default").values()), 10, 0.01, "run-d in flight")
    run_o = push(r, job("sleep", id="run-o", args={"seconds": 30}), queue="other")
    wait_for(lambda: any(run_o in v for v in inflight_jobs(r, "other").values()), 10, 0.01, "run-o in flight")
    wait_d = push(r, job("noop", id="wait-d"))
    wait_o = push(r, job("noop", id="wait-o"), queue="other")
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(10) == 0, d.log_tail()
    assert r.lrange(qkey("queue"), 0, -1) == [run_d, wait_d]
    assert r.lrange(qkey("queue", "other"), 0, -1) == [run_o, wait_o]
    assert not [k for k in inflight_keys(r) if r.llen(k)]
    assert not holders(r, "default") and not holders(r, "other"), "a stopped daemon left holders behind"
    assert r.get(key("result", "run-d")) is None and r.get(key("result", "run-o")) is None
