#!/bin/sh
# A jobq exec handler in shell: the disk usage of a directory.
#
# Config (jobq.conf):
#     [exec.disk_usage]
#     command = /usr/share/doc/jobq/examples/exec/disk_usage.sh
#     user = nobody            ; optional: run it as another user (jobqd as root)
#
# Job:     {"handler": "disk_usage", "args": {"path": "/var/log"}}
# Result:  {"path": "/var/log", "kbytes": 5120, "files": 42}
#
# A shell script need not parse JSON: jobq also passes each top-level scalar
# member of an object args as an environment variable JOBQ_ARG_<name>
# (here JOBQ_ARG_path). The whole args JSON is on stdin all the same.
# The result is the JSON printed on stdout; a non-zero exit fails the
# attempt with the end of stderr as the error; "progress F message" lines
# on fd 3 become progress events.
set -eu

progress() { { echo "progress $*" >&3; } 2>/dev/null || true; }

path=${JOBQ_ARG_path:-}
if [ -z "$path" ]; then
    echo "disk_usage: args.path is required" >&2
    exit 2
fi
if [ ! -d "$path" ]; then
    echo "disk_usage: $path: not a directory" >&2
    exit 1
fi

progress 0.1 counting files
files=$(find "$path" -xdev -type f 2>/dev/null | wc -l)
progress 0.6 measuring
kbytes=$(du -skx "$path" 2>/dev/null | cut -f1)

# A JSON string for the path: backslashes and double quotes escaped (paths
# with control characters are refused above by nobody: keep them sane).
json_path=$(printf '%s' "$path" | sed 's/\\/\\\\/g; s/"/\\"/g')
printf '{"path":"%s","kbytes":%s,"files":%s}\n' "$json_path" "${kbytes:-0}" "$files"
