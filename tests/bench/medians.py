#!/usr/bin/python3
"""Medians of several `make bench` runs of section 6 (jobq and its peers),
as the Markdown table of README.md's Benchmark section.

usage: tests/bench/medians.py build/bench/results-*.json

Each cell is the median over the runs that have it, with the range in
brackets when there are 3 runs or more; latency cells are enqueue -> start
p50 / p99 / p999 in ms, each the median of its own (a job unfinished 8 s
after the load counts as infinitely late: "> 8 s")."""
import json
import statistics
import sys

NAMES = {"jobq": "jobq", "rq": "rq", "celery": "Celery", "sidekiq": "Sidekiq", "bullmq": "BullMQ"}
INF = float("inf")


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def num(v, digits=None):
    if v is None:
        return "-"
    if v == INF:
        return "> 8 s"
    if digits is None:
        digits = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return "{:,.{}f}".format(v, digits)


def ms(v):
    if v is None:
        return "-"
    if v == INF:
        return "> 8 s"
    if v >= 1000:
        return "%.1f s" % (v / 1000)
    return num(v)


def main():
    runs = []
    for path in sys.argv[1:]:
        with open(path) as f:
            d = json.load(f)
        if d["res"].get("peers"):
            runs.append(d["res"])
    if not runs:
        sys.exit("medians.py: no run with section 6")
    order = []
    for r in runs:
        for n in r["peer_order"]:
            if n not in order:
                order.append(n)
    peers = [n for n in order if n != "jobq"]

    def vals(name, *path):
        out = []
        for r in runs:
            v = r["peers"].get(name, {})
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            out.append(v)
        return out

    def cell(name, *path, digits=None):
        vs = [v for v in vals(name, *path) if v is not None]
        m = med(vs)
        if m is None:
            return "-", None
        text = num(m, digits)
        if len(vs) >= 3:
            text += " (%s–%s)" % (num(min(vs), digits), num(max(vs), digits))
        return text, m

    print("| %d run(s) | %s | jobq / best peer |" % (len(runs), " | ".join(NAMES.get(n, n) for n in order)))
    print("|---|" + "---|" * (len(order) + 1))

    def row(label, path, low=False, digits=None):
        cells, ms_ = [], {}
        for n in order:
            t, m = cell(n, *path, digits=digits)
            cells.append(t)
            ms_[n] = m
        pv = [ms_[n] for n in peers if ms_.get(n)]
        best = (min(pv) if low else max(pv)) if pv else None
        j = ms_.get("jobq")
        rt = "-"
        if j and best:
            r = j / best
            rt = ("1/%.0f" % (1 / r)) if r < 0.1 else ("%.2f" % r if r < 10 else "%.0f" % r)
        print("| %s | %s | %s |" % (label, " | ".join(cells), rt))

    row("no-op throughput, jobs/s", ("noop", "throughput"))
    row("wordcount 64 KiB throughput, jobs/s", ("wordcount", "throughput"))
    row("Redis CPU per no-op job, µs (drain)", ("noop", "redis_cpu_us"), low=True, digits=1)

    labels = []
    for r in runs:
        for n in order:
            for o in r["peers"].get(n, {}).get("open", []):
                if o["label"] not in labels:
                    labels.append(o["label"])

    def open_runs(name, label):
        out = []
        for r in runs:
            for o in r["peers"].get(name, {}).get("open", []):
                if o["label"] == label:
                    out.append(o)
        return out

    for label in labels:
        cells, p99s = [], {}
        for n in order:
            os_ = open_runs(n, label)
            if not os_:
                cells.append("-")
                continue
            parts = []
            for p in ("p50", "p99", "p999"):
                v = med([INF if o["start"][p] is None else o["start"][p] for o in os_])
                parts.append(ms(v))
                if p == "p99":
                    p99s[n] = v
            cells.append(" / ".join(parts))
        pv = [p99s[n] for n in peers if p99s.get(n) is not None]
        best = min(pv) if pv else None
        j = p99s.get("jobq")
        rt = "-"
        if j is not None and best and best != INF and j != INF:
            r = j / best
            rt = ("1/%.0f" % (1 / r)) if r < 0.1 else "%.2f" % r
        elif j is not None and j != INF and best == INF:
            rt = "peers unfinished"
        print("| open loop %s: enqueue → start p50 / p99 / p999, ms | %s | %s |" % (label, " | ".join(cells), rt))

    cpu, cpuv = [], {}
    for n in order:
        os_ = open_runs(n, "1,000/s")
        cpuv[n] = med([o.get("redis_cpu_us") for o in os_ if not o.get("skipped")]) if os_ else None
        cpu.append(num(cpuv[n], 1))
    pv = [cpuv[n] for n in peers if cpuv.get(n)]
    rt = "%.2f" % (cpuv["jobq"] / min(pv)) if cpuv.get("jobq") and pv else "-"
    print("| Redis CPU per job at 1,000/s offered (enqueue + work), µs | %s | %s |" % (" | ".join(cpu), rt))

    # Section 7: jobq alone, the experiments on its tail.
    extras = {}
    for r in runs:
        for o in r["peers"].get("jobq", {}).get("extras", []):
            extras.setdefault(o["label"], []).append(o)
    if extras:
        print()
        print("| jobq alone, open loop | enqueue → start p50 / p99 / p999, ms | Redis CPU per job, µs |")
        print("|---|---|---|")
        for label, os_ in extras.items():
            parts = [ms(med([INF if o["start"][p] is None else o["start"][p] for o in os_]))
                     for p in ("p50", "p99", "p999")]
            print("| %s | %s | %s |" % (label, " / ".join(parts), num(med([o.get("redis_cpu_us") for o in os_]), 1)))


if __name__ == "__main__":
    main()
