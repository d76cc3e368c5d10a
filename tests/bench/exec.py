#!/usr/bin/python3
"""What an exec handler costs per job: N jobs each of noop (in-process),
/bin/echo, a shell script and a Python script, on W workers of a private
jobqd and redis-server (unix socket in DIR). Prints jobs/s and ms per job
per worker. Usage: tests/bench/exec.py [N [W [DIR]]] (defaults 400 1, a
temporary directory); build first (make)."""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import jobqtest  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    workers = sys.argv[2] if len(sys.argv) > 2 else "1"
    tmp = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="jobq-exec-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ok.sh").write_text("#!/bin/sh\necho '{\"ok\":true}'\n")
    (tmp / "ok.py").write_text("#!/usr/bin/python3\nimport json, sys\njson.load(sys.stdin)\nprint('{\"ok\":true}')\n")
    for f in ("ok.sh", "ok.py"):
        os.chmod(tmp / f, 0o755)
    rs = jobqtest.RedisServer(tmp / "redis")
    rs.start()
    r = rs.client()
    d = jobqtest.Daemon(tmp, rs.url)
    d.write_config({"daemon": {"workers": workers, "log_level": "warn"},
                    "exec.sh": {"command": str(tmp / "ok.sh")}, "exec.py": {"command": str(tmp / "ok.py")},
                    "exec.bin": {"command": "/bin/echo", "args": "null"}})
    d.start()
    try:
        jobqtest.wait_for(lambda: "ready:" in d.log(), 30, 0.05, "jobqd ready")
        for h in ("noop", "bin", "sh", "py"):
            pipe = r.pipeline()
            for i in range(n):
                pipe.rpush(jobqtest.qkey("queue"), jobqtest.job(h, id="%s-%d" % (h, i)))
            t0 = time.monotonic()
            pipe.execute()
            jobqtest.wait_for(lambda: all(r.exists(jobqtest.key("result", "%s-%d" % (h, i)))
                                          for i in range(n - 1, -1, -max(1, n // 20))), 3600, 0.01)
            dt = time.monotonic() - t0
            print("%-4s %d jobs, %s worker(s): %.2f s, %.0f jobs/s, %.2f ms/job/worker"
                  % (h, n, workers, dt, n / dt, dt * 1000 * int(workers) / n))
    finally:
        d.stop()
        rs.stop()


if __name__ == "__main__":
    main()
