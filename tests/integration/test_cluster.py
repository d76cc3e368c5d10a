"""jobq on a real Redis Cluster: 3 primaries and 3 replicas on 127.0.0.1,
made by the test (`redis-server --cluster-enabled yes` x6, `redis-cli
--cluster create`). Queues that hash to different primaries; jobqd and jobq
through a redis+cluster:// URL; a primary SIGKILLed mid-run, a manual
CLUSTER FAILOVER, and the migration of a queue's slot to another primary
while jobs flow: every job ends with a result, none is lost, and jobqd is
never restarted. The figures (jobs lost, run twice, failover to first job)
go to the figures file."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

import clusterlib
import jobqtest
from faultlib import CountingHttpServer
from jobqtest import wait_for

def figure(text):
    jobqtest.record_figure("cluster-figures.txt", text)


@pytest.fixture
def cluster(tmp_path):
    c = clusterlib.RedisCluster(tmp_path / "cluster", nodes=6, replicas=1).start()
    wait_for(lambda: all(replicas_in_sync(c, p) for p in primaries(c)), 30, 0.1, "replicas in sync")
    yield c
    c.stop()


def alive(c):
    return [n for n in c.nodes if n.proc and n.proc.poll() is None]


def slots_map(c):
    """[(start, end, primary port)] as a live node sees it."""
    for n in alive(c):
        out = subprocess.run(["redis-cli", "-p", str(n.port), "--json", "CLUSTER", "SLOTS"],
                             capture_output=True, text=True, timeout=10)
        try:
            return [(r[0], r[1], r[2][1]) for r in json.loads(out.stdout)]
        except ValueError:
            continue
    return []


def primaries(c):
    ports = {p for _, _, p in slots_map(c)}
    return [n for n in c.nodes if n.port in ports]


def replica_of(c, primary):
    """The node that replicates primary (CLUSTER NODES: id addr flags master ...)."""
    pid = primary.cli("CLUSTER", "MYID")
    for line in primary.cli("CLUSTER", "NODES").splitlines():
        f = line.split()
        if len(f) > 3 and f[3] == pid and "slave" in f[2]:
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            return next(n for n in c.nodes if n.port == port)
    raise AssertionError("no replica of %d" % primary.port)


def replicas_in_sync(c, primary):
    info = primary.cli("INFO", "replication", check=False)
    return "connected_slaves:1" in info and "state=online" in info


def primary_of(c, key):
    slot = int(alive(c)[0].cli("CLUSTER", "KEYSLOT", key))
    for start, end, port in slots_map(c):
        if start <= slot <= end:
            return next(n for n in c.nodes if n.port == port)
    raise AssertionError("no primary for " + key)


def queues_on_every_primary(c, per_primary=2):
    """Queue names, per_primary of them on each primary."""
    found = {}
    i = 0
    while min((len(v) for v in found.values()), default=0) < per_primary or len(found) < 3:
        q = "q%d" % i
        i += 1
        found.setdefault(primary_of(c, "jobq:{%s}:queue" % q).port, [])
        if len(found[primary_of(c, "jobq:{%s}:queue" % q).port]) < per_primary:
            found[primary_of(c, "jobq:{%s}:queue" % q).port].append(q)
        assert i < 500
    return [q for v in found.values() for q in v]


def push_durably(c, queue, payloads):
    """RPUSH on the queue's primary, then WAIT for its replica (what a
    producer with wait_replicas does), so a failover cannot lose them."""
    node = primary_of(c, "jobq:{%s}:queue" % queue)
    node.cli("RPUSH", "jobq:{%s}:queue" % queue, *payloads)
    assert node.cli("WAIT", "1", "5000") == "1"


def count_results(c, prefix="jobq:result:"):
    n = 0
    for p in primaries(c):
        out = p.cli("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", prefix + "*", check=False)
        n += int(out) if out.isdigit() else 0
    return n


def all_results(c, prefix="jobq:result:"):
    """Every result document, decoded."""
    out = []
    for p in primaries(c):
        raw = subprocess.run(["redis-cli", "-p", str(p.port), "--json", "EVAL",
                              "local o = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                              "o[#o + 1] = redis.call('GET', k) end return o", "0", prefix + "*"],
                             capture_output=True, text=True, timeout=20).stdout
        try:
            out.extend(json.loads(x) for x in json.loads(raw))
        except ValueError:
            pass
    return out


def left_in_lists(c, queues):
    """Jobs still waiting, scheduled or in flight in queues."""
    left = 0
    script = ("local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
              "local t = redis.call('TYPE', k)['ok'] "
              "if t == 'list' and not string.find(k, ':dead') then n = n + redis.call('LLEN', k) "
              "elseif t == 'zset' and string.find(k, ':scheduled') then n = n + redis.call('ZCARD', k) end end "
              "return n")
    for q in queues:
        out = primary_of(c, "jobq:{%s}:queue" % q).cli("EVAL", script, "0", "jobq:{%s}:*" % q, check=False)
        left += int(out) if out.isdigit() else 0
    return left


class EventLog:
    """`jobq events --json` against the cluster, in the background."""

    def __init__(self, url, path):
        self.out = open(path, "w+")
        self.proc = subprocess.Popen([str(jobqtest.build_dir() / "jobq"), "--redis", url, "events", "--json"],
                                     stdout=self.out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.path = path

    def events(self):
        self.out.flush()
        out = []
        for line in open(self.path):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self):
        jobqtest.stop_process(self.proc, 5)
        self.out.close()


def start_jobqd(tmp_path, c, queues, **extra):
    d = jobqtest.Daemon(tmp_path / "jobqd", c.url)
    conf = {"daemon": {"workers": "4", "queues": ",".join(queues), "test_handlers": "yes",
                       "heartbeat_interval": "0.5", "heartbeat_ttl": "5"},
            "redis": {"wait_replicas": "1", "wait_timeout": "1"},
            "jobs": {"max_attempts": "3", "retry_backoff_base": "0.05", "retry_backoff_max": "0.2"}}
    for section, kv in extra.items():
        conf.setdefault(section, {}).update(kv)
    d.write_config(conf)
    d.start()
    wait_for(lambda: "ready:" in d.log() or not d.running(), 30, 0.05, "jobqd ready")
    d.assert_running()
    return d


def jq(c, *args, timeout=30):
    return subprocess.run([str(jobqtest.build_dir() / "jobq"), "--redis", c.url, *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_queues_on_every_shard_and_the_cli(cluster, tmp_path):
    queues = queues_on_every_primary(cluster)
    assert len({primary_of(cluster, "jobq:{%s}:queue" % q).port for q in queues}) == 3
    d = start_jobqd(tmp_path, cluster, queues)
    events = None
    try:
        events = EventLog(cluster.url, tmp_path / "events.json")
        wait_for(lambda: len(jq(cluster, "status", "--json").stdout) > 0, 10, 0.1, "status")
        # jobq enqueue --wait on each shard; FCALL through redis-cli -c.
        for q in queues:
            p = jq(cluster, "enqueue", "-q", q, "--wait=20", "echo", '"%s"' % q)
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["result"] == q
        for q in queues:
            r = subprocess.run(["redis-cli", "-c", "-p", str(cluster.nodes[0].port), "FCALL", "jobq_enqueue",
                                "1", "jobq:{%s}:queue" % q, '{"id": "f-%s", "handler": "echo"}' % q],
                               capture_output=True, text=True, timeout=10)
            assert r.stdout.strip() == "f-" + q, r.stdout + r.stderr
        wait_for(lambda: all(jq(cluster, "result", "f-" + q).returncode == 0 for q in queues), 20, 0.2,
                 "FCALL jobs done")
        # Status sums every shard; events come from every shard's channel.
        status = json.loads(jq(cluster, "status", "--json").stdout)
        by_name = {q["name"]: q for q in status["queues"]}
        assert all(by_name[q]["processed"] == 2 for q in queues), by_name
        wait_for(lambda: {e["queue"] for e in events.events() if e.get("event") == "ok"} >= set(queues) - {queues[0]},
                 10, 0.2, "ok events of every queue")
        # FCALL's queued events too go to the queue's sharded channel.
        wait_for(lambda: {e["id"] for e in events.events() if e.get("event") == "queued"} >=
                 {"f-" + q for q in queues}, 10, 0.2, "queued events of the FCALL jobs")
    finally:
        if events:
            events.stop()
        d.stop()
    assert "error" not in d.log(), d.log_tail()


def run_through_failover(cluster, tmp_path, name, disrupt, n_jobs=600):
    """Push n_jobs over the queues, disrupt the primary of the queues served
    first while they are busy, and check every job ends with one result.
    The jobs fetch from a local HTTP server that counts how often each one
    really ran."""
    queues = queues_on_every_primary(cluster)
    victim = primary_of(cluster, "jobq:{%s}:queue" % queues[0])  # served first: busy when disrupted
    mine = [q for q in queues if primary_of(cluster, "jobq:{%s}:queue" % q) is victim]
    http = CountingHttpServer().start()
    d = start_jobqd(tmp_path, cluster, queues)
    try:
        per_queue = {q: [] for q in queues}
        for i in range(n_jobs):
            q = queues[i % len(queues)]
            per_queue[q].append(json.dumps({"id": "j%d" % i, "handler": "wordcount",
                                            "args": {"url": http.url("j%d" % i, 40)}}))
        for q, payloads in per_queue.items():
            push_durably(cluster, q, payloads)

        def victim_done():
            return sum(int(victim.cli("HGET", "jobq:{%s}:stats" % q, "processed", check=False) or 0) for q in mine)

        wait_for(lambda: victim_done() >= 20, 30, 0.05, "jobs done on the shard to disrupt")
        t0, promoted = disrupt(victim, mine)
        wait_for(lambda: count_results(cluster) >= n_jobs and left_in_lists(cluster, queues) == 0, 90, 0.5,
                 "every job done after the %s" % name)
        results = all_results(cluster)
    finally:
        d.assert_running()  # never restarted
        d.stop()
    runs = http.snapshot()
    lost = n_jobs - len({r["id"] for r in results if r.get("status") == "ok"})
    twice = sum(1 for i in range(n_jobs) if runs.get("j%d" % i, 0) > 1)
    # The first job of the shard taken once the replica was seen promoted.
    after = [r["finished_at"] for r in results if r.get("queue") in mine and r["started_at"] > promoted]
    first = min(after) - t0 if after else float("nan")
    figure("cluster %s: %d jobs, lost %d, run twice %d; the replica seen promoted %.2f s after it, the first job "
           "taken from it done %.2f s after it" % (name, n_jobs, lost, twice, promoted - t0, first))
    assert lost == 0
    assert after, "no job of the failed-over shard ran after the %s" % name


def test_primary_killed_mid_run(cluster, tmp_path):
    def kill(victim, mine):
        t0 = time.time()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        # Its replica takes over; it comes back as that one's replica, so
        # WAIT (wait_replicas = 1) is answered again.
        wait_for(lambda: victim not in primaries(cluster) and len(primaries(cluster)) == 3, 30, 0.05,
                 "the replica promoted")
        promoted = time.time()
        victim.start()
        return t0, promoted

    run_through_failover(cluster, tmp_path, "primary SIGKILL", kill)


def test_manual_failover_mid_run(cluster, tmp_path):
    def failover(old, mine):
        replica = replica_of(cluster, old)
        t0 = time.time()
        assert replica.cli("CLUSTER", "FAILOVER") == "OK"
        wait_for(lambda: primary_of(cluster, "jobq:{%s}:queue" % mine[0]) is replica, 30, 0.05,
                 "the replica promoted")
        return t0, time.time()

    run_through_failover(cluster, tmp_path, "CLUSTER FAILOVER", failover)


def migrate_slot(cluster, slot, src, dst):
    """Move one slot from src to dst the way redis-cli --cluster reshard
    does: IMPORTING/MIGRATING, MIGRATE key by key, then SETSLOT NODE
    everywhere (clients meanwhile get ASK, then MOVED)."""
    src_id, dst_id = src.cli("CLUSTER", "MYID"), dst.cli("CLUSTER", "MYID")
    assert dst.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id) == "OK"
    assert src.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id) == "OK"
    while True:
        keys = src.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "10").split()
        if not keys:
            break
        for k in keys:
            src.cli("MIGRATE", "127.0.0.1", str(dst.port), "", "0", "5000", "KEYS", k, check=False)
            time.sleep(0.05)  # jobs keep flowing between the keys
    for n in primaries(cluster):
        n.cli("CLUSTER", "SETSLOT", str(slot), "NODE", dst_id, check=False)


def test_slot_migration_while_jobs_flow(cluster, tmp_path):
    queues = queues_on_every_primary(cluster, per_primary=1)
    q = queues[0]
    d = start_jobqd(tmp_path, cluster, queues, redis={"wait_replicas": "0"})
    stop = threading.Event()
    pushed = []

    def produce():
        i = 0
        while not stop.is_set():
            r = subprocess.run(["redis-cli", "-c", "-p", str(cluster.nodes[0].port), "FCALL", "jobq_enqueue", "1",
                                "jobq:{%s}:queue" % q, '{"id": "m%d", "handler": "echo"}' % i],
                               capture_output=True, text=True, timeout=10)
            if r.stdout.strip() == "m%d" % i:
                pushed.append(i)
                i += 1
            time.sleep(0.01)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        wait_for(lambda: len(pushed) > 20, 20, 0.1, "jobs flowing")
        src = primary_of(cluster, "jobq:{%s}:queue" % q)
        dst = next(p for p in primaries(cluster) if p is not src)
        slot = int(src.cli("CLUSTER", "KEYSLOT", "jobq:{%s}:queue" % q))
        migrate_slot(cluster, slot, src, dst)
        wait_for(lambda: primary_of(cluster, "jobq:{%s}:queue" % q) is dst, 10, 0.1, "the slot moved")
        time.sleep(1)
    finally:
        stop.set()
        producer.join(15)
    ids = ["m%d" % i for i in pushed]
    wait_for(lambda: count_results(cluster, "jobq:result:m") >= len(ids) and left_in_lists(cluster, [q]) == 0,
             30, 0.2, "every job of the migrated queue done")
    d.assert_running()
    d.stop()
    figure("cluster slot migration: %d jobs pushed while slot %d moved, lost 0" % (len(ids), slot))


def test_supervisor_survives_losing_the_node_of_its_heartbeat(tmp_path):
    """The heartbeat writes jobq:daemon:<id> and jobq:daemons (two slots,
    maybe two primaries) in one pipeline. The primary of jobq:daemon:<id>
    is SIGKILLed (3 primaries, no replicas): the supervisor must log it and
    go on, not crash, and serve the queues of the other primaries; once
    the node is back its heartbeat key is written there again."""
    c = clusterlib.RedisCluster(tmp_path / "cluster", nodes=3, replicas=0).start()
    d = None
    try:
        queues = queues_on_every_primary(c, per_primary=1)
        d = start_jobqd(tmp_path, c, queues, daemon={"heartbeat_interval": "0.2", "heartbeat_ttl": "3"},
                        redis={"wait_replicas": "0"})
        d_id = "%s:%d" % (os.uname().nodename, d.pid)
        hb = "jobq:daemon:%s" % d_id
        victim = primary_of(c, hb)
        wait_for(lambda: victim.cli("EXISTS", hb) == "1", 5, 0.05, "the heartbeat key on its primary")
        others = [q for q in queues if primary_of(c, "jobq:{%s}:queue" % q) is not victim]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        time.sleep(1.0)  # five heartbeats, well inside cluster-node-timeout (2 s)
        d.assert_running()
        assert d.sanitizer_report() is None, d.sanitizer_report()
        victim.start()
        wait_for(c.ok, 30, 0.1, "cluster_state:ok again")
        wait_for(lambda: victim.cli("EXISTS", hb) == "1", 10, 0.1, "the heartbeat key written again")
        for q in others:
            p = jq(c, "enqueue", "-q", q, "--wait=20", "echo", '"%s"' % q)
            assert p.returncode == 0 and json.loads(p.stdout)["result"] == q, p.stdout + p.stderr
        d.assert_running()
    finally:
        if d:
            d.stop()
        c.stop()
    assert d.sanitizer_report() is None, d.sanitizer_report()
