"""Queues are served highest priority first."""

from jobqtest import get_result, job, push


def test_high_queue_drains_before_low(r, jobqd):
    # Everything is waiting before the daemon starts.
    for i in range(20):
        push(r, job("sleep", id="low%d" % i, args={"seconds": 0}), queue="low")
    for i in range(20):
        push(r, job("sleep", id="high%d" % i, args={"seconds": 0}), queue="high")
    jobqd({"daemon": {"queues": "high,low", "workers": 1, "batch_size": 1}})

    high = [get_result(r, "high%d" % i, timeout=30) for i in range(20)]
    low = [get_result(r, "low%d" % i, timeout=30) for i in range(20)]
    assert all(x["status"] == "ok" for x in high + low)
    assert {x["queue"] for x in high} == {"high"}
    assert {x["queue"] for x in low} == {"low"}
    last_high = max(x["finished_at"] for x in high)
    first_low = min(x["started_at"] for x in low)
    assert last_high <= first_low, \
        "a low job started at %.6f before the last high job finished at %.6f" % (
            first_low, last_high)
