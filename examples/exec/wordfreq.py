#!/usr/bin/python3
"""A jobq exec handler in Python: the most frequent words of a text.

Config (jobq.conf):
    [exec.wordfreq]
    command = /usr/share/doc/jobq/examples/exec/wordfreq.py

Job:     {"handler": "wordfreq", "args": {"text": "the cat and the hat", "top": 2}}
Result:  {"words": 5, "distinct": 4, "top": [["the", 2], ["and", 1]]}

The protocol: the job's args arrive as JSON on stdin; the result is the JSON
printed on stdout; exit 0 means ok. Any other exit status fails the attempt
(it is retried up to max_attempts) with the end of stderr as the error.
Lines "progress FRACTION [message]" written to fd 3 become "progress" events.
Run it by hand with:  echo '{"text": "a b a"}' | ./wordfreq.py
"""

import collections
import json
import os
import re
import sys


def progress(fraction, message):
    """Report progress to jobq on fd 3 (ignored when run by hand)."""
    try:
        os.write(3, ("progress %.3f %s\n" % (fraction, message)).encode())
    except OSError:
        pass


def main():
    try:
        args = json.load(sys.stdin)
    except ValueError as e:
        print("wordfreq: args are not JSON: %s" % e, file=sys.stderr)
        return 2
    if not isinstance(args, dict) or not isinstance(args.get("text"), str):
        print("wordfreq: args.text must be a string", file=sys.stderr)
        return 2
    top = args.get("top", 3)
    if not isinstance(top, int) or isinstance(top, bool) or top < 0:
        print("wordfreq: args.top must be a non-negative integer", file=sys.stderr)
        return 2

    lines = args["text"].splitlines() or [""]
    counts = collections.Counter()
    for i, line in enumerate(lines, 1):
        counts.update(w.lower() for w in re.findall(r"\w+", line))
        if i % 1000 == 0 or i == len(lines):
            progress(i / len(lines), "counted %d of %d lines" % (i, len(lines)))

    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    json.dump({"words": sum(counts.values()), "distinct": len(counts),
               "top": [[w, n] for w, n in ranked]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
