#!/usr/bin/env bash
# Profile jobq's no-op hot path with perf (cpu-clock sampling, so it works in
# VMs without hardware counters): PROFILE_JOBS (default 200,000) no-op jobs
# are pre-enqueued on a private redis-server, then jobqd with PROFILE_WORKERS
# (default 2) workers drains them while `perf record -a` samples the machine.
# Prints where the CPU went by process, then the top symbols of jobqd (its
# workers and supervisor) and of redis-server, and the throughput.
#
# Needs perf (Debian package linux-perf) and a built tree (`make all`);
# `make bench` builds build/bench/jqload, or this script builds it. Everything
# it starts is stopped by pid on exit. Output: build/profile/report.txt.
# shellcheck disable=SC2317  # cleanup runs from a trap
set -euo pipefail

cd "$(dirname "$0")/../.."
build=${BUILD:-build}
out=$build/profile
jobs=${PROFILE_JOBS:-200000}
workers=${PROFILE_WORKERS:-2}
mkdir -p "$out"
out=$(cd "$out" && pwd)
sock=$out/redis.sock
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$build/jobqd" ] || { echo "profile: build first (make all)" >&2; exit 1; }

jqload=$build/bench/jqload
if [ ! -x "$jqload" ] || [ tests/bench/jqload.c -nt "$jqload" ]; then
    mkdir -p "$build/bench"
    cc -O2 -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -o "$jqload" tests/bench/jqload.c \
        $(pkg-config --cflags --libs hiredis jansson) -lm
fi

redis_pid= jobqd_pid= perf_pid=
cleanup() {
    for p in $perf_pid $jobqd_pid $redis_pid; do kill "$p" 2>/dev/null || true; done
    for p in $perf_pid $jobqd_pid $redis_pid; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

rm -f "$sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$out" --logfile "$out/redis.log" &
redis_pid=$!
cli() { redis-cli -s "$sock" "$@"; }
for _ in $(seq 100); do cli PING >/dev/null 2>&1 && break; sleep 0.05; done
cli FLUSHALL >/dev/null

"$jqload" enqueue "$sock" 'jobq:{default}:queue' "$jobs" p noop >/dev/null
cat >"$out/jobq.conf" <<EOF
[daemon]
workers = $workers
log_level = warn
[redis]
url = unix://$sock
EOF

perf record -e cpu-clock -F 1999 -a -o "$out/perf.data" 2>"$out/perf.log" &
perf_pid=$!
sleep 0.5
t0=$(date +%s.%N)
"$build/jobqd" -c "$out/jobq.conf" 2>"$out/jobqd.log" &
jobqd_pid=$!
for _ in $(seq 1200); do
    done_jobs=$(cli HGET 'jobq:{default}:stats' processed)
    [ "${done_jobs:-0}" -ge "$jobs" ] && break
    sleep 0.05
done
t1=$(date +%s.%N)
kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=
# CPU seconds (utime + stime, in clock ticks) of the workers, the supervisor
# and redis-server, read before they exit.
ticks() { awk '{ s += $14 + $15 } END { print s + 0 }' "$@" 2>/dev/null || echo 0; }
worker_files=()
for p in $(pgrep -P "$jobqd_pid"); do worker_files+=("/proc/$p/stat"); done
cpu_workers=$(ticks "${worker_files[@]}")
cpu_supervisor=$(ticks "/proc/$jobqd_pid/stat")
cpu_redis=$(ticks "/proc/$redis_pid/stat")
hz=$(getconf CLK_TCK)
kill "$jobqd_pid"; wait "$jobqd_pid" || true; jobqd_pid=

{
    echo "jobq profile: $jobs no-op jobs, $workers workers, $(nproc) cores, $(date -u +%FT%TZ)"
    awk -v n="${done_jobs:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "processed %d jobs in %.2f s (%.0f jobs/s, including jobqd start-up)\n", n, b - a, n / (b - a) }'
    awk -v w="$cpu_workers" -v s="$cpu_supervisor" -v r="$cpu_redis" -v hz="$hz" -v n="${done_jobs:-0}" \
        'BEGIN { printf "CPU: workers %.2f s (%.1f us per job), supervisor %.2f s, redis-server %.2f s (%.1f us per job)\n",
                 w / hz, w / hz / n * 1e6, s / hz, r / hz, r / hz / n * 1e6 }'
    echo
    echo "== CPU samples by process"
    perf report -i "$out/perf.data" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
    echo
    echo "== jobqd (workers and supervisor) by library"
    perf report -i "$out/perf.data" --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -E '^ +[0-9.]+% +jobqd ' | head -8
    echo
    echo "== jobqd (workers and supervisor): top symbols, self time"
    perf report -i "$out/perf.data" --comm jobqd --sort dso,symbol --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -25
    echo
    echo "== redis-server: top symbols, self time"
    perf report -i "$out/perf.data" --comm redis-server --sort symbol --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -12
} | tee "$out/report.txt"
