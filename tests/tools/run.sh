#!/usr/bin/env bash
# shellcheck disable=SC2317  # stop_pid and cleanup are called from traps
# `make run`: try jobqd locally.
#
# Unless REDIS_URL is set, starts a private redis-server on the unix socket
# build/run/redis.sock (no TCP, no persistence), plus a small static HTTP
# server on 127.0.0.1:${JOBQ_DEMO_HTTP_PORT:-8765} serving tests/fixtures for
# the wordcount demo, prints commands to try, and runs build/jobqd in the
# foreground with config/jobq.conf. Ctrl-C (SIGINT) or SIGTERM goes to jobqd;
# once jobqd has exited the servers are stopped and its exit status is ours.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
build=${BUILD:-build}
jobqd=$build/jobqd
conf=${JOBQ_CONFIG:-config/jobq.conf}
run=$build/run
http_port=${JOBQ_DEMO_HTTP_PORT:-8765}

say() { printf 'run: %s\n' "$*" >&2; }

if [ ! -x "$jobqd" ]; then
    say "$jobqd not built (run: make all)"
    exit 1
fi
if [ ! -r "$conf" ]; then
    say "$conf: not readable"
    exit 1
fi

redis_pid=
http_pid=
jobqd_pid=
mkdir -p "$run" || exit 1
run_abs=$(cd "$run" && pwd)
sock=$run_abs/redis.sock

# Stop a helper we started: SIGTERM, up to ~5 s, then SIGKILL.
stop_pid() {
    local pid=$1 what=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$what (pid $pid) did not stop, killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    trap - INT TERM HUP
    # Only if we are leaving early (jobqd normally exits first).
    stop_pid "$jobqd_pid" jobqd
    stop_pid "$http_pid" "http server"
    stop_pid "$redis_pid" redis-server
    [ -n "$redis_pid" ] && rm -f "$sock"
}
trap cleanup EXIT
# Until jobqd runs, a signal just ends the script (cleanup runs on EXIT).
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- Redis ----------------------------------------------------------------
if [ -n "${REDIS_URL:-}" ]; then
    redis_url=$REDIS_URL
    case $redis_url in
    unix://*)
        p=${redis_url#unix://}
        cli=(redis-cli -s "${p%%\?*}")
        ;;
    *) cli=(redis-cli -u "$redis_url") ;;
    esac
    say "using Redis at $redis_url (REDIS_URL)"
else
    if redis-cli -s "$sock" PING >/dev/null 2>&1; then
        say "a redis-server already answers on $run/redis.sock (another make run?); stop it first"
        trap - EXIT
        exit 1
    fi
    rm -f "$sock"
    # setsid: a new session, so the terminal's Ctrl-C reaches jobqd only (via
    # this script) and Redis stays up while jobqd puts unfinished jobs back.
    setsid redis-server \
        --port 0 --unixsocket "$sock" --unixsocketperm 700 \
        --save "" --appendonly no \
        --dir "$run_abs" --pidfile "$run_abs/redis.pid" --logfile "$run_abs/redis.log" \
        --daemonize no </dev/null &
    redis_pid=$!
    up=
    for ((i = 0; i < 50; i++)); do
        if ! kill -0 "$redis_pid" 2>/dev/null; then
            break
        fi
        if redis-cli -s "$sock" PING 2>/dev/null | grep -q PONG; then
            up=1
            break
        fi
        sleep 0.1
    done
    if [ -z "$up" ]; then
        say "redis-server did not come up on $run/redis.sock; its log ($run/redis.log):"
        tail -n 20 "$run/redis.log" >&2 2>/dev/null
        exit 1
    fi
    redis_url=unix://$sock
    cli=(redis-cli -s "$run/redis.sock")
    say "redis-server (pid $redis_pid) on $run/redis.sock, log in $run/redis.log"
fi

# ---- demo HTTP server -------------------------------------------------------
python=python3
command -v python3 >/dev/null 2>&1 || python=/usr/bin/python3
if "$python" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$http_port" 2>/dev/null; then
    setsid "$python" -m http.server --bind 127.0.0.1 "$http_port" --directory tests/fixtures \
        </dev/null >"$run/http.log" 2>&1 &
    http_pid=$!
    sleep 0.2
    if kill -0 "$http_pid" 2>/dev/null; then
        say "http server (pid $http_pid) on http://127.0.0.1:$http_port/ serving tests/fixtures"
    else
        wait "$http_pid" 2>/dev/null
        http_pid=
        say "warning: the demo http server did not start (see $run/http.log); going on without it"
    fi
else
    say "warning: 127.0.0.1:$http_port is taken; no demo http server (set JOBQ_DEMO_HTTP_PORT)"
fi

# ---- what to try ------------------------------------------------------------
q() { printf '%q ' "$@"; }
cat <<EOF

Try, in another terminal:

  $(q "${cli[@]}")RPUSH 'jobq:{default}:queue' '{"id":"demo1","handler":"wordcount","args":{"url":"http://127.0.0.1:$http_port/words.txt"}}'
  $(q "${cli[@]}")GET jobq:result:demo1
  $(q "${cli[@]}")RPUSH 'jobq:{default}:queue' '{"id":"demo2","handler":"echo","args":{"hello":"world"}}'
  $(q "${cli[@]}")GET jobq:result:demo2
  $(q "${cli[@]}")ZADD 'jobq:{default}:scheduled' \$(( \$(date +%s) + 5 )) '{"id":"demo3","handler":"noop"}'
  $(q "${cli[@]}")GET jobq:result:demo3      # after 5 s
  $(q "${cli[@]}")LRANGE 'jobq:{default}:dead' 0 -1
  $(q "${cli[@]}")HGETALL 'jobq:{default}:stats'

(The keys assume prefix = jobq and a queue named default, as in $conf; the
keys of queue Q carry the hash tag {Q}, so quote them in a shell.)
Stop with Ctrl-C.

EOF

# ---- jobqd ------------------------------------------------------------------
# In the background so that this shell can relay signals while waiting; the
# new session keeps the terminal's Ctrl-C from reaching it twice (directly and
# relayed).
setsid "$jobqd" -c "$conf" --redis "$redis_url" &
jobqd_pid=$!
trap 'kill -INT "$jobqd_pid" 2>/dev/null' INT
trap 'kill -TERM "$jobqd_pid" 2>/dev/null' TERM
trap 'kill -HUP "$jobqd_pid" 2>/dev/null' HUP

while :; do
    wait "$jobqd_pid"
    rc=$?
    # wait returns early (status > 128) when a trapped signal arrives.
    if [ "$rc" -gt 128 ] && kill -0 "$jobqd_pid" 2>/dev/null; then
        continue
    fi
    if [ "$rc" -gt 128 ]; then
        # Interrupted just as jobqd exited: fetch its own status.
        wait "$jobqd_pid" 2>/dev/null
        rc2=$?
        [ "$rc2" -ne 127 ] && rc=$rc2
    fi
    break
done
jobqd_pid=
trap - HUP
say "jobqd exited with status $rc"
exit "$rc"
