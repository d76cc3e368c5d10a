"""Redis refusing jobq's writes: maxmemory reached while jobs run, and an ACL
that does not let the daemon write result keys.

On one server the result SETs and the commit script go in one round trip
(queue.c, send_commit): a job must never leave its in-flight list without
its result. Past maxmemory Redis refuses the SET; the commit script's first
write is one Redis refuses there too, so the jobs stay in flight until
memory is back. An ACL without result keys is caught at start by the
permission probe instead of after the first commit.
"""
import time

import jobqtest
from jobqtest import get_result, inflight_jobs, job, push, stat, wait_for


def held_payloads(r):
    return [p for payloads in inflight_jobs(r).values() for p in payloads]


def test_outcomes_wait_in_flight_while_redis_is_past_maxmemory(r, jobqd):
    d = jobqd({"daemon": {"workers": 2}})
    wait_for(lambda: len(jobqtest.holders(r)) >= 2, 10, what="both workers registered")
    ids = ["mm-0", "mm-1"]
    for i in ids:
        push(r, job("sleep", id=i, args={"seconds": 0.8}))
    wait_for(lambda: len(held_payloads(r)) == 2, 5, what="both jobs taken")
    processed_before = stat(r, "processed")
    # Past maxmemory (noeviction) before the jobs end: their result SETs and
    # commits are refused.
    r.config_set("maxmemory", 1)
    try:
        time.sleep(1.5)
        assert "Redis refused to record" in d.log(), d.log_tail()
        held = " ".join(held_payloads(r))
        for i in ids:
            assert i in held, "job %s left its in-flight list without its result" % i
            assert r.get(jobqtest.key("result", i)) is None
        assert stat(r, "processed") == processed_before
    finally:
        r.config_set("maxmemory", 0)
    for i in ids:
        res = get_result(r, i, timeout=15)
        assert res["status"] == "ok", res
    wait_for(lambda: not held_payloads(r), 10, what="in-flight lists empty")
    assert stat(r, "processed") == processed_before + 2
    assert "outcomes recorded again" in d.log(), d.log_tail()


def test_an_acl_without_result_keys_is_refused_at_start(r, redis_server, tmp_path):
    # Every key but jobq:r... (the results) may be written; those only read.
    r.execute_command("ACL", "SETUSER", "jq", "on", ">secret", "~jobq:[^r]*", "%R~jobq:r*", "&*", "+@all")
    d = jobqtest.Daemon(tmp_path, "unix://%s?user=jq&password=secret" % redis_server.sock, name="jobqd-acl")
    d.write_config({"daemon": {"workers": 2}})
    d.start()
    try:
        rc = d.wait_exit(15)
        log = d.log()
        assert rc != 0, log
        assert "refuses commands jobq needs on queue default" in log, log
        assert "SET: NOPERM" in log, log
    finally:
        if d.running():
            d.stop()


def test_a_result_refused_after_start_is_written_again_and_results_then_go_first(r, redis_server, tmp_path):
    # Allowed at start; then result keys become read-only for this user.
    r.execute_command("ACL", "SETUSER", "jq", "on", ">secret", "~*", "&*", "+@all")
    d = jobqtest.Daemon(tmp_path, "unix://%s?user=jq&password=secret" % redis_server.sock, name="jobqd-acl")
    d.write_config({"daemon": {"workers": 1}})
    d.start()
    deny = ("ACL", "SETUSER", "jq", "resetkeys", "~jobq:[^r]*", "%R~jobq:r*")
    allow = ("ACL", "SETUSER", "jq", "resetkeys", "~*")
    try:
        push(r, job("noop", id="r-0"))
        assert get_result(r, "r-0", timeout=10)["status"] == "ok"
        # The result rides with its commit: the job is recorded, its result
        # refused; the worker writes it again until it may.
        r.execute_command(*deny)
        push(r, job("noop", id="r-1"))
        wait_for(lambda: "Redis refused the result of a job it recorded" in d.log(), 10, what="the refusal")
        assert r.get(jobqtest.key("result", "r-1")) is None
        r.execute_command(*allow)
        assert get_result(r, "r-1", timeout=15)["status"] == "ok"
        wait_for(lambda: "results written again" in d.log(), 5, what="the results written again")
        # From then on results go first: a refused one keeps its job in flight.
        processed = stat(r, "processed")
        r.execute_command(*deny)
        push(r, job("noop", id="r-2"))
        wait_for(lambda: "r-2" in " ".join(held_payloads(r)) and "Redis refused to record" in d.log(), 10,
                 what="r-2 held in flight, its commit refused")
        time.sleep(0.5)
        assert "r-2" in " ".join(held_payloads(r))
        assert stat(r, "processed") == processed
        r.execute_command(*allow)
        assert get_result(r, "r-2", timeout=15)["status"] == "ok"
        wait_for(lambda: not held_payloads(r), 10, what="in-flight lists empty")
        assert stat(r, "processed") == processed + 1
    finally:
        r.execute_command(*allow)
        d.stop()
