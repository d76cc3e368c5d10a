#!/usr/bin/env bash
# `make bench`: measure jobq side by side with rq, bounded (< 5 minutes on a
# 2-core machine). The Makefile has run `make deps` and `make all` already.
#
#  - installs what the benchmark needs, only what is missing (apt-get, root);
#  - builds build/bench/jqload (tests/bench/jqload.c, against hiredis+jansson)
#    and build/bench/stallprobe (tests/bench/stallprobe.c);
#  - starts a private redis-server on build/bench/redis.sock (no TCP, no
#    persistence) and a private nginx on 127.0.0.1:<free port> serving a
#    generated 64 KiB text file with a known word count;
#  - runs tests/bench/bench.py, which starts and stops jobqd and rq workers
#    itself, prints one table and writes build/bench/results-<time>.txt and
#    build/bench/latest.txt;
#  - stops everything it started, by pid, on any exit (traps).
#
# Environment: BENCH_BUDGET (seconds for the measurements, default 520),
# BENCH_* job counts (see bench.py), JOBQ_BENCH_BATCH_SIZE, BUILD.
# shellcheck disable=SC2317  # functions run from traps
set -uo pipefail

t_start=$SECONDS
cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)
build=${BUILD:-build}
out=$root/$build/bench
bench_dir=$root/tests/bench
budget=${BENCH_BUDGET:-520}
py=/usr/bin/python3

say() { printf 'bench: %s\n' "$*" >&2; }

# ---- packages ---------------------------------------------------------------
need_pkgs() {
    local want=(python3 python3-redis python3-rq redis-server redis-tools procps
                gcc libc6-dev pkg-config libjansson-dev)
    # Any hiredis headers will do: `make deps` may have installed hiredict's
    # shims (libhiredict-shims-dev), which libhiredis-dev would replace.
    pkg-config --exists hiredis 2>/dev/null || want+=(libhiredis-dev)
    local installed missing=() pkg
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null || true)
    for pkg in "${want[@]}"; do
        grep -qxE "${pkg//./\\.} ii ?" <<<"$installed" || missing+=("$pkg")
    done
    # Any nginx flavour will do (nginx-light is a transitional package in Debian 12).
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        if apt-cache show nginx-light >/dev/null 2>&1; then missing+=(nginx-light); else missing+=(nginx); fi
    fi
    printf '%s\n' "${missing[@]}"
}

mapfile -t missing < <(need_pkgs)
if [ "${#missing[@]}" -gt 0 ] && [ -n "${missing[0]}" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing packages: ${missing[*]}"
        say "install them as root: apt-get install -y --no-install-recommends ${missing[*]}"
        exit 1
    fi
    say "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting the system redis/nginx services.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from jobq tests/bench/run.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    timeout 240 apt-get update -o DPkg::Lock::Timeout=120 >&2
    timeout 240 apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2
    rc=$?
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    mapfile -t still < <(need_pkgs)
    if [ "$rc" -ne 0 ] || { [ "${#still[@]}" -gt 0 ] && [ -n "${still[0]}" ]; }; then
        say "package installation failed (still missing: ${still[*]:-?})"
        exit 1
    fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# ---- state and cleanup ------------------------------------------------------
mkdir -p "$out" "$out/redis" "$out/nginx/www" "$out/nginx/tmp" "$out/logs" || exit 1
rm -f "$out"/logs/*.log
sock=$out/redis.sock
pids_file=$out/pids
: >"$pids_file"
redis_pid=
nginx_pid=
bench_pid=

stop_pid() { # pid what [group] [tenths]: SIGTERM, up to tenths/10 s (5), then SIGKILL
    local pid=$1 what=$2 group=${3:-} tenths=${4:-50} i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < tenths; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$what (pid $pid) did not stop, killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    # Session leaders started by bench.py: also whatever is left of their group.
    [ -n "$group" ] && kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    trap - EXIT INT TERM
    # bench.py stops its own processes and prints the partial table first.
    stop_pid "$bench_pid" bench.py "" 200
    # Anything bench.py started and could not stop (it records every pid);
    # only processes that are still ours: jobqd or rq workers.
    if [ -s "$pids_file" ]; then
        while read -r pid; do
            if [ -z "$pid" ] || [ ! -r "/proc/$pid/cmdline" ]; then continue; fi
            if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'jobqd|/usr/bin/rq|celery|sidekiq|bullmq_worker'; then
                stop_pid "$pid" "leftover $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-40)" group
            fi
        done <"$pids_file"
    fi
    stop_pid "$nginx_pid" nginx
    stop_pid "$redis_pid" redis-server
    rm -f "$sock"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- load generator and stall probe -------------------------------------------
# build_tool NAME LIBS...: $out/NAME from $bench_dir/NAME.c, when missing or older.
build_tool() {
    local name=$1
    shift
    if [ ! -x "$out/$name" ] || [ "$bench_dir/$name.c" -nt "$out/$name" ]; then
        if ! cc -O2 -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -o "$out/$name" "$bench_dir/$name.c" "$@"; then
            say "could not build $out/$name"
            exit 1
        fi
    fi
}
# shellcheck disable=SC2046
build_tool jqload $(pkg-config --cflags --libs hiredis jansson) -lm
jqload=$out/jqload
build_tool stallprobe -lpthread

# ---- redis-server -----------------------------------------------------------
if redis-cli -s "$sock" PING >/dev/null 2>&1; then
    say "a redis-server already answers on $sock (another make bench?); stop it first"
    trap - EXIT
    exit 1
fi
rm -f "$sock"
setsid redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
    --save "" --appendonly no --dir "$out/redis" --logfile "$out/redis/redis.log" \
    --daemonize no --maxclients 1000 </dev/null &
redis_pid=$!
up=
for ((i = 0; i < 100; i++)); do
    kill -0 "$redis_pid" 2>/dev/null || break
    if redis-cli -s "$sock" PING 2>/dev/null | grep -q PONG; then up=1; break; fi
    sleep 0.05
done
if [ -z "$up" ]; then
    say "redis-server did not come up; its log:"
    tail -n 20 "$out/redis/redis.log" >&2
    exit 1
fi

# ---- nginx with a 64 KiB text file ------------------------------------------
words=$("$py" - "$out/nginx/www/words64k.txt" <<'EOF'
import random, sys
rnd = random.Random(20240607)
vocab = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no will "
         "queue redis worker daemon latency throughput benchmark supervisor pipeline").split()
size = 65536
parts, n = [], 0
while True:
    line = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(6, 14))) + "\n"
    if n + len(line) > size - 16:
        break
    parts.append(line)
    n += len(line)
parts.append("end" + "x" * (size - n - 4) + "\n")  # pad to exactly 64 KiB
data = "".join(parts).encode()
assert len(data) == size, len(data)
open(sys.argv[1], "wb").write(data)
print(len(data.split()))
EOF
) || { say "could not write the text file"; exit 1; }

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=$(id -un)
group=$(id -gn)
ngx=$out/nginx
# The request counter (stub_status) shows that each wordcount job really did
# its GET; only where this nginx build has the module.
status_loc=
status_url=
if "$nginx_bin" -V 2>&1 | grep -q http_stub_status_module; then
    status_loc="        location = /nginx_status { stub_status; }"
    status_url=http://127.0.0.1:$port/nginx_status
fi
cat >"$ngx/nginx.conf" <<EOF
# generated by tests/bench/run.sh for make bench
daemon off;
master_process on;
worker_processes 1;
user $user $group;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type text/plain;
    client_body_temp_path $ngx/tmp/body;
    proxy_temp_path $ngx/tmp/proxy;
    fastcgi_temp_path $ngx/tmp/fastcgi;
    uwsgi_temp_path $ngx/tmp/uwsgi;
    scgi_temp_path $ngx/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        root $ngx/www;
$status_loc
    }
}
EOF
setsid "$nginx_bin" -p "$ngx/" -c "$ngx/nginx.conf" -e "$ngx/error.log" </dev/null >"$ngx/stdout.log" 2>&1 &
nginx_pid=$!
url=http://127.0.0.1:$port/words64k.txt
served=
for ((i = 0; i < 100; i++)); do
    kill -0 "$nginx_pid" 2>/dev/null || break
    served=$("$py" -c 'import sys, urllib.request
print(len(urllib.request.urlopen(sys.argv[1], timeout=2).read().split()))' "$url" 2>/dev/null) && break
    served=
    sleep 0.05
done
if [ "$served" != "$words" ]; then
    say "nginx did not serve $url (got '${served}' words, expected $words); its log:"
    tail -n 20 "$ngx/error.log" "$ngx/stdout.log" >&2 2>/dev/null
    exit 1
fi

# ---- header -------------------------------------------------------------------
jobqd=$root/$build/jobqd
header=$out/header.txt
{
    echo "jobq benchmark (make bench)"
    printf 'machine: %s cores (nproc %s), %s, %s MiB RAM, kernel %s\n' \
        "$(grep -c '^processor' /proc/cpuinfo)" "$(nproc)" \
        "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
        "$(awk '/MemTotal/ {printf "%d", $2/1024}' /proc/meminfo)" "$(uname -r)"
    if [ -x "$jobqd" ]; then
        printf 'jobqd: %s\n' "$("$jobqd" --version 2>&1 | head -n1)"
    else
        printf 'jobqd: %s missing\n' "$jobqd"
    fi
    printf 'redis: %s\n' "$(redis-server --version | head -n1)"
    printf 'rq: %s (%s)\n' "$("$py" -c 'import rq; print(rq.__version__)' 2>&1)" \
        "$(dpkg-query -W -f='python3-rq ${Version}' python3-rq 2>/dev/null)"
    printf 'nginx: %s on 127.0.0.1:%s, file 65,536 bytes, %s words\n' \
        "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')" "$port" "$words"
    printf 'redis: unix socket, save "", appendonly no; jobqd: log_level warn, default batch_size%s\n' \
        "${JOBQ_BENCH_BATCH_SIZE:+ overridden to $JOBQ_BENCH_BATCH_SIZE}"
} >"$header"

# ---- measurements -------------------------------------------------------------
left=$((budget - (SECONDS - t_start)))
[ "$left" -lt 60 ] && left=60
say "redis pid $redis_pid on $sock, nginx pid $nginx_pid on 127.0.0.1:$port; measuring (budget ${left} s)"
timeout --signal=TERM --kill-after=10 $((left + 30)) \
    "$py" "$bench_dir/bench.py" --root "$root" --sock "$sock" --redis-pid "$redis_pid" \
    --http-url "$url" --words "$words" --nginx-status "$status_url" --jobqd "$jobqd" --jqload "$jqload" --stallprobe "$out/stallprobe" --outdir "$out" \
    --bench-dir "$bench_dir" --pids-file "$pids_file" --budget "$left" --header-file "$header" \
    --peers-file "$out/peers.txt" &
bench_pid=$!
wait "$bench_pid"
rc=$?
bench_pid=
if [ "$rc" -ne 0 ]; then
    say "bench.py exited with status $rc"
fi

# ---- Redis Cluster: the same no-op work over 1, 2 and 3 primaries ------------
# (tests/bench/cluster.py starts and stops its own cluster nodes and jobqd.)
echo "Redis Cluster, no-op jobs, one jobqd with 4 workers, two queues per primary:"
timeout --signal=TERM --kill-after=10 240 "$py" "$bench_dir/cluster.py" --build "$root/$build" --outdir "$out" ||
    say "cluster.py exited with status $?"
cat "$out/cluster.txt" >>"$out/latest.txt" 2>/dev/null

# ---- TLS: the no-op drain over plain TCP and over TLS ------------------------
timeout --signal=TERM --kill-after=10 180 "$py" "$bench_dir/tls.py" --build "$root/$build" --outdir "$out" ||
    say "tls.py exited with status $?"
cat "$out/tls.txt" >>"$out/latest.txt" 2>/dev/null
say "done in $((SECONDS - t_start)) s"
exit "$rc"
