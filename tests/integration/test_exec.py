"""Exec handlers ([exec.NAME] sections): programs in Python and shell run per
job with args JSON on stdin and the result JSON on stdout; failures carry
the end of stderr; timeouts (the section's, enforced by the worker, and the
job's, enforced by the supervisor) and cancels kill the program's whole
process group; stdout is bounded; bad JSON is a clear failure; progress
lines on fd 3 become progress events; `user` switches users; the examples
of examples/exec run as documented."""

import os
import subprocess
import time

import pytest

from jobqtest import REPO, Events, build_dir, get_result, job, push, wait_for

MODES = REPO / "tests" / "integration" / "exec"
EXAMPLES = REPO / "examples" / "exec"
LANGS = {"py": MODES / "modes.py", "sh": MODES / "modes.sh"}


def exec_sections(**extra):
    conf = {"daemon": {"workers": "4", "kill_grace": "1"}}
    for name, path in LANGS.items():
        conf["exec." + name] = {"command": str(path), "timeout": "5", "max_output": "1M"}
    conf["exec.wordfreq"] = {"command": str(EXAMPLES / "wordfreq.py")}
    conf["exec.disk_usage"] = {"command": str(EXAMPLES / "disk_usage.sh")}
    for section, kv in extra.items():
        conf.setdefault(section, {}).update(kv)
    return conf


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pids(path):
    return [int(p) for p in wait_for(lambda: path.exists() and path.read_text().strip(), 10, 0.02,
                                     "pid file %s" % path).split()]


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_exec_handler_modes(r, jobqd, tmp_path, lang):
    """ok, failure with stderr, bad JSON, oversized output, progress and the
    section's timeout killing the whole group, all at once on 4 workers."""
    jobqd(exec_sections())
    events = Events(r)
    pidfile = tmp_path / "pids"
    try:
        push(r, job(lang, id="ok", args={"mode": "ok", "nested": {"a": [1, 2.5, None]}, "big": 2 ** 62}))
        push(r, job(lang, id="fail", args={"mode": "fail", "why": "disk on fire"}))
        push(r, job(lang, id="badjson", args={"mode": "badjson"}))
        push(r, job(lang, id="flood", args={"mode": "flood"}))
        push(r, job(lang, id="progress", args={"mode": "progress"}))
        started = time.monotonic()
        push(r, job(lang, id="group", args={"mode": "group", "pidfile": str(pidfile)}))
        pids = read_pids(pidfile)

        res = get_result(r, "ok")
        assert res["status"] == "ok", res
        if lang == "py":
            assert res["result"]["got"] == {"mode": "ok", "nested": {"a": [1, 2.5, None]}, "big": 2 ** 62}
        assert res["result"]["job"] == "ok" and res["result"]["arg_env"] == "ok", res
        assert res["result"]["uid"] == os.getuid()

        res = get_result(r, "fail")
        assert res["status"] == "failed", res
        assert res["error"].startswith("exec %s: exited with status 3: " % lang), res["error"]
        assert res["error"].endswith("handler failed: disk on fire"), res["error"]
        assert len(res["error"]) < 2200, len(res["error"])  # the tail only

        res = get_result(r, "badjson")
        assert res["status"] == "failed", res
        assert "exec %s: stdout is not valid JSON" % lang in res["error"], res["error"]
        assert "this is {not json" in res["error"], res["error"]

        res = get_result(r, "flood")
        assert res["status"] == "failed", res
        assert "wrote more than 1048576 bytes to stdout (max_output)" in res["error"], res["error"]

        res = get_result(r, "progress")
        assert res["status"] == "ok" and res["result"] == {"done": True}, res
        events.wait(lambda e: e.get("id") == "progress" and e.get("event") == "ok")
        prog = [e for e in events.seen if e.get("id") == "progress" and e["event"] == "progress"]
        assert [(e["progress"], e["message"]) for e in prog] == [
            (0.25, "step 0.25"), (0.5, "step 0.5"), (0.75, "step 0.75")], prog

        res = get_result(r, "group", timeout=15)
        took = time.monotonic() - started
        assert res["status"] == "failed", res
        assert "exec %s: timed out after 5 s; its process group was killed" % lang in res["error"], res
        assert took < 15, took
        wait_for(lambda: not any(alive(p) for p in pids), 5, 0.05, "the program and its child to be gone")
    finally:
        events.close()


def test_job_timeout_and_cancel_kill_the_group(r, jobqd, tmp_path):
    """The job's own timeout (the supervisor SIGTERMs the worker, which
    kills the group) and jobq cancel (SIGKILL of the worker: the supervisor
    kills the group it finds in the worker's slot)."""
    d = jobqd(exec_sections())
    timed, cancelled = tmp_path / "timed", tmp_path / "cancelled"
    push(r, job("sh", id="timed", timeout=1, args={"mode": "group", "pidfile": str(timed)}))
    push(r, job("py", id="cancelled", args={"mode": "group", "pidfile": str(cancelled)}))
    pids_t, pids_c = read_pids(timed), read_pids(cancelled)
    out = subprocess.run([str(build_dir() / "jobq"), "--redis", d.redis_url, "cancel", "cancelled"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    res = get_result(r, "cancelled", timeout=15)
    assert res["status"] == "failed" and res["error"] == "cancelled", res
    res = get_result(r, "timed", timeout=15)
    assert res["status"] == "failed" and "timed out after 1 s" in res["error"], res
    wait_for(lambda: not any(alive(p) for p in pids_t + pids_c), 5, 0.05, "every process of both groups to be gone")
    # the daemon carries on with fresh workers
    push(r, job("sh", id="after", args={"mode": "ok"}))
    assert get_result(r, "after")["status"] == "ok"


def test_examples_run_as_documented(r, jobqd, tmp_path):
    jobqd(exec_sections())
    events = Events(r)
    try:
        text = "the cat and the hat\n" * 1500
        push(r, job("wordfreq", id="wf", args={"text": text, "top": 2}))
        push(r, job("wordfreq", id="wf-bad", args={"text": 42}))
        (tmp_path / "du").mkdir()
        (tmp_path / "du" / "a.txt").write_text("x" * 5000)
        (tmp_path / "du" / "b.txt").write_text("y")
        push(r, job("disk_usage", id="du", args={"path": str(tmp_path / "du")}))
        push(r, job("disk_usage", id="du-bad", args={"path": str(tmp_path / "nope")}))

        res = get_result(r, "wf")
        assert res["status"] == "ok", res
        assert res["result"] == {"words": 7500, "distinct": 4, "top": [["the", 3000], ["and", 1500]]}
        res = get_result(r, "wf-bad")
        assert res["status"] == "failed" and res["error"] == \
            "exec wordfreq: exited with status 2: wordfreq: args.text must be a string", res
        res = get_result(r, "du")
        assert res["status"] == "ok", res
        assert res["result"]["path"] == str(tmp_path / "du") and res["result"]["files"] == 2, res
        assert res["result"]["kbytes"] >= 4, res
        res = get_result(r, "du-bad")
        assert res["status"] == "failed" and res["error"].endswith("not a directory"), res
        events.wait(lambda e: e.get("id") == "wf" and e.get("event") == "progress")
        events.wait(lambda e: e.get("id") == "du" and e.get("event") == "progress"
                    and e.get("message") == "counting files")
    finally:
        events.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_switch(r, jobqd):
    jobqd(exec_sections(**{"exec.as_nobody": {"command": str(LANGS["sh"]), "user": "nobody"},
                           "exec.as_ghost": {"command": str(LANGS["sh"]), "user": "no-such-user-here"}}))
    push(r, job("as_nobody", id="n1", args={"mode": "ok"}))
    push(r, job("as_ghost", id="g1", args={"mode": "ok"}))
    res = get_result(r, "n1")
    assert res["status"] == "ok" and res["result"]["uid"] == 65534, res
    res = get_result(r, "g1")
    assert res["status"] == "failed" and res["error"] == "exec as_ghost: no such user 'no-such-user-here'", res


def test_bad_command_and_config(r, jobqd, tmp_path):
    """A command that cannot run fails its jobs clearly; a section without a
    command, or naming a built-in, is reported."""
    d = jobqd(exec_sections(**{"exec.missing": {"command": str(tmp_path / "nothing-here")},
                               "exec.echo": {"command": "/bin/true"}}))
    push(r, job("missing", id="m1"))
    res = get_result(r, "m1")
    assert res["status"] == "failed", res
    assert res["error"] == "exec missing: exited with status 127: exec missing: cannot run %s: No such file " \
        "or directory" % (tmp_path / "nothing-here"), res
    assert "exec echo refused: handler 'echo' is already registered" in d.log()
    push(r, job("echo", id="e1", args=[1]))
    assert get_result(r, "e1")["result"] == [1]  # still the built-in

    conf = tmp_path / "bad.conf"
    conf.write_text("[exec.nocommand]\nargs = -v\n")
    out = subprocess.run([str(build_dir() / "jobqd"), "--check-config", "-c", str(conf)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "%s:1: section [exec.nocommand] has no 'command'" % conf in out.stderr, out.stderr
