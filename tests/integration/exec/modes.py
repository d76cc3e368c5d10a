#!/usr/bin/python3
"""Exec handler for the tests (test_exec.py), in Python: what it does is
args.mode. ok: {"got": args, "job": $JOBQ_JOB_ID, "uid": uid}; fail: a
message on stderr, exit 3; badjson: text that is not JSON; flood: 2 MiB on
stdout; progress: three progress lines on fd 3, then ok; group: start a
grandchild in its own process group's, write both pids to args.pidfile,
then sleep."""

import json
import os
import subprocess
import sys
import time

args = json.load(sys.stdin)
mode = args.get("mode")
if mode == "ok":
    json.dump({"got": args, "job": os.environ.get("JOBQ_JOB_ID"), "uid": os.getuid(),
               "arg_env": os.environ.get("JOBQ_ARG_mode")}, sys.stdout)
elif mode == "fail":
    print("some noise first\n" * 200, file=sys.stderr, end="")
    print("python handler failed: %s" % args.get("why"), file=sys.stderr)
    sys.exit(3)
elif mode == "badjson":
    print("this is {not json")
elif mode == "flood":
    sys.stdout.write("x" * (2 << 20))
elif mode == "progress":
    for f in (0.25, 0.5, 0.75):
        os.write(3, ("progress %s step %s\n" % (f, f)).encode())
        time.sleep(0.15)
    os.write(3, b"not a progress line\n")
    json.dump({"done": True}, sys.stdout)
elif mode == "group":
    child = subprocess.Popen(["sleep", "300"])  # same process group
    with open(args["pidfile"], "w") as f:
        f.write("%d %d\n" % (os.getpid(), child.pid))
    time.sleep(300)
else:
    print("unknown mode %r" % mode, file=sys.stderr)
    sys.exit(2)
