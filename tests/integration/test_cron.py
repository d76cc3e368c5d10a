"""Periodic jobs (README.md, "Periodic jobs"): `jobq cron add|list|remove`,
[cron.NAME] config sections synced at start, each tick queued once however
many daemons fire it, and no burst of the ticks missed while no daemon ran."""

import json
import time

from jobqtest import get_result, jobq_cli, key, qkey, stat, wait_for


def jq(redis_server, *args, timeout=20):
    return jobq_cli(redis_server.url, *args, timeout=timeout)


def ok(p):
    assert p.returncode == 0, "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p.stdout


def ready(d):
    wait_for(lambda: "ready:" in d.log(), 15, 0.05, d.name + " ready")
    return d


def ticks(r, name, queue):
    """The ticks of entry name recorded in queue's guard set, in order."""
    return sorted(int(m.split("@", 1)[1]) for m in r.zrange(qkey("cronticks", queue), 0, -1)
                  if m.startswith(name + "@"))


def test_every_second_fires_once_per_tick_over_two_daemons(r, jobqd, redis_server):
    conf = {"daemon": {"queues": "default,ticks", "workers": 2}}
    a, b = ready(jobqd(conf)), ready(jobqd(conf))
    out = ok(jq(redis_server, "cron", "add", "tick", "@every 1s", "echo", '{"n": 1}', "-q", "ticks"))
    assert "next tick" in out
    time.sleep(4.2)
    ok(jq(redis_server, "cron", "remove", "tick"))
    time.sleep(1.2)  # the daemons re-read the entries every second
    seen = ticks(r, "tick", "ticks")
    assert 3 <= len(seen) <= 6, seen
    assert seen == list(range(seen[0], seen[0] + len(seen))), seen  # every tick, none twice
    for t in seen:
        res = get_result(r, "cron:tick:%d" % t, 10)
        assert res["status"] == "ok" and res["result"] == {"n": 1} and res["queue"] == "ticks", res
    # Each tick was queued once: as many jobs ran as there are ticks.
    wait_for(lambda: stat(r, "processed", "ticks") == len(seen), 5, 0.05, "every tick's job")
    time.sleep(1.0)
    assert stat(r, "processed", "ticks") == len(seen)
    assert "cron entry tick removed" in a.log() and "cron entry tick removed" in b.log()
    assert "no cron entries" in ok(jq(redis_server, "cron", "list"))
    assert jq(redis_server, "cron", "remove", "tick").returncode == 2


def test_config_entries_and_no_burst_of_missed_ticks(r, jobqd, redis_server):
    # Added while no daemon runs: the ticks of those seconds are skipped.
    ok(jq(redis_server, "cron", "add", "early", "@every 1s", "noop"))
    time.sleep(2.2)
    started = time.time()
    d = ready(jobqd({"cron": {"timezone": "UTC"},
                     "cron.nightly": {"spec": "30 2 * * mon-fri", "handler": "echo", "args": '{"report": 1}'},
                     "cron.hourly": {"spec": "@hourly", "handler": "noop", "queue": "other"}}))
    wait_for(lambda: len(ticks(r, "early", "default")) >= 2, 10, 0.05, "two ticks of early")
    assert min(ticks(r, "early", "default")) >= int(started), (ticks(r, "early", "default"), started)
    assert "wrote 2 cron entries from the config" in d.log()
    entries = {e["name"]: e for e in json.loads(ok(jq(redis_server, "cron", "list", "--json")))}
    assert set(entries) == {"early", "nightly", "hourly"}, entries
    assert entries["nightly"]["source"] == "config" and entries["nightly"]["args"] == {"report": 1}
    assert entries["nightly"]["timezone"] == "UTC" and entries["nightly"]["queue"] == "default"
    assert entries["hourly"]["queue"] == "other"
    assert entries["hourly"]["next"] == (int(time.time()) // 3600 + 1) * 3600
    nightly = time.gmtime(entries["nightly"]["next"])
    assert (nightly.tm_hour, nightly.tm_min) == (2, 30) and nightly.tm_wday < 5, nightly
    human = ok(jq(redis_server, "cron", "list"))
    assert human.splitlines()[0].split() == ["NAME", "SPEC", "QUEUE", "HANDLER", "NEXT", "TIMEZONE"], human
    ok(jq(redis_server, "cron", "remove", "early"))
    # Bad input is refused with the reason.
    p = jq(redis_server, "cron", "add", "bad", "61 * * * *", "noop")
    assert p.returncode == 2 and "minute" in p.stderr, p
    p = jq(redis_server, "cron", "add", "bad", "@hourly", "noop", "--tz", "Mars/Olympus")
    assert p.returncode == 2 and "time zone" in p.stderr, p
    assert r.hlen(key("cron")) == 2
