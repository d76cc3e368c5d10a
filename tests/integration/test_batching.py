"""Adaptive batches: workers take quick jobs in batches from a deep queue,
but a batch never makes other workers wait: idle workers take one job at a
time, and the unstarted rest of a batch that turns slow goes back to the
head of its queue."""


from jobqtest import get_result, job, qkey, wait_for

QUEUE = qkey("queue", "default")


def push_many(r, payloads, chunk=500):
    for i in range(0, len(payloads), chunk):
        r.rpush(QUEUE, *payloads[i:i + chunk])


def test_idle_workers_share_jobs_after_a_burst_of_quick_ones(r, jobqd):
    """After a deep queue of quick jobs (which grows the batches), slow jobs
    pushed together run on every worker at once, none held back by a
    worker that still takes batches."""
    workers = 4
    jobqd({"daemon": {"workers": workers, "batch_size": 64}})
    push_many(r, [job("noop", id="q%d" % i) for i in range(3000)])
    # Push the slow jobs the moment the quick ones are all taken, while
    # workers finish their last batches and come back for more.
    wait_for(lambda: r.llen(QUEUE) == 0, 30, 0.001, "the quick jobs to be taken")
    ids = ["slow%d" % i for i in range(workers)]
    push_many(r, [job("sleep", id=i, args={"seconds": 1.0}) for i in ids])
    results = {i: get_result(r, i, timeout=15) for i in ids}
    by_worker = {res["worker"] for res in results.values()}
    assert len(by_worker) == workers, "4 slow jobs ran on %d workers: %r" % (len(by_worker), results)
    starts = sorted(res["started_at"] for res in results.values())
    assert starts[-1] - starts[0] < 0.5, "the slow jobs did not run side by side: starts %r" % starts


def test_a_batch_that_turns_slow_gives_back_its_rest(r, jobqd):
    """Quick jobs followed by slow ones: the worker whose batch reaches the
    slow jobs runs one of them and puts the rest back, so both workers share
    them instead of one running them all in a row."""
    jobqd({"daemon": {"workers": 2, "batch_size": 64}})
    slow = ["s%d" % i for i in range(8)]
    payloads = [job("noop", id="n%d" % i) for i in range(2000)]
    payloads += [job("sleep", id=i, args={"seconds": 0.4}) for i in slow]
    push_many(r, payloads)
    results = {i: get_result(r, i, timeout=30) for i in slow}
    per_worker = {}
    for res in results.values():
        per_worker[res["worker"]] = per_worker.get(res["worker"], 0) + 1
    assert len(per_worker) == 2 and min(per_worker.values()) >= 3, (
        "8 slow jobs were not shared by the 2 workers: %r" % per_worker)
    span = max(res["finished_at"] for res in results.values()) - min(
        res["started_at"] for res in results.values())
    # 8 x 0.4 s on two workers is 1.6 s; in a row on one it would be 3.2 s.
    assert span < 2.6, "the slow jobs took %.2f s: they were not shared" % span
    # Nothing was lost or doubled on the way back.
    assert r.llen(QUEUE) == 0
    assert all(get_result(r, "n%d" % i)["attempts"] == 1 for i in (0, 999, 1999))
