#!/usr/bin/env bash
# `make screenshot`: a private redis-server (unix socket), jobqd and jobq web
# (127.0.0.1, a free port) with a mix of jobs flowing for ~25 s (ok,
# retried, failed, rejected, a long one running, delayed ones), then
# headless Chromium's screenshot of the whole dashboard (tests/tools/cdp.py,
# which keeps Chromium off the network): $BUILD/dashboard.png. Everything
# started here is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${JOBQ_BUILD:-build}
dir=$(mktemp -d /tmp/jobq-shot.XXXXXX)
out=$build/dashboard.png
pids=()
cleanup() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

command -v chromium >/dev/null || { echo "screenshot: chromium is missing (make deps)" >&2; exit 1; }
sock=$dir/redis.sock
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --dir "$dir" \
    --daemonize no >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="unix://$sock"
cat >"$dir/jobq.conf" <<CONF
[daemon]
workers = 4
queues = default,mail,reports
test_handlers = yes
heartbeat_interval = 1
[redis]
url = $url
[jobs]
max_attempts = 2
retry_backoff_base = 0.5
[plugins]
dir = $dir
CONF
"$build/jobqd" -c "$dir/jobq.conf" >"$dir/jobqd.log" 2>&1 &
pids+=($!)
echo "screenshot-token-$$" >"$dir/token"
"$build/jobq" --redis "$url" web --listen 127.0.0.1:0 --token-file "$dir/token" --sample-every 1 \
    >"$dir/web.out" 2>"$dir/web.log" &
pids+=($!)
port=
for _ in $(seq 50); do
    port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$dir/web.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "screenshot: jobq web did not start" >&2; cat "$dir/web.log" >&2; exit 1; }

# RPUSH n jobs of handler with args on queue, stamped now (for the wait figures).
push() {
    local queue=$1 n=$2 handler=$3 args=$4 now i cmd=()
    now=$(date +%s.%N)
    for ((i = 0; i < n; i++)); do cmd+=("{\"handler\":\"$handler\",\"args\":$args,\"enqueued_at\":$now}"); done
    redis-cli -s "$sock" rpush "jobq:{$queue}:queue" "${cmd[@]}" >/dev/null
}
jq() { "$build/jobq" --redis "$url" "$@" >/dev/null; }
jq enqueue --id report-2026-q3 -q reports sleep '{"seconds": 60}'
jq enqueue --id newsletter-42 -q mail --delay 3600 noop
jq enqueue --id invoice-7731 -q reports fail '{"message": "SMTP 550: mailbox unavailable"}'
redis-cli -s "$sock" rpush 'jobq:{default}:queue' '{"handler": "resize", "id": "img-9f3a"}' >/dev/null
for t in $(seq 1 24); do
    push default $((40 + t * 12)) noop null
    push mail $((2 + t % 5)) sleep '{"seconds": 0.05}'
    push reports 3 echo '{"rows": 120}'
    ((t % 6 == 0)) && push reports 1 fail '{"message": "upstream timed out after 30 s"}'
    sleep 1
done
redis-cli -s "$sock" rpush 'jobq:{default}:queue' '{"handler":"noop","id":"waiting-1"}' '{"handler":"noop","id":"waiting-2"}' >/dev/null || true
# Jobs keep flowing while the page is open, so that live events show.
(for t in $(seq 1 30); do push default 30 noop null; push mail 1 sleep '{"seconds": 0.05}'; sleep 0.5; done) &
pids+=($!)
/usr/bin/python3 tests/tools/cdp.py screenshot "http://127.0.0.1:$port/" "$dir/dashboard.png" \
    --width 1440 --height 1000 --wait 4
mv "$dir/dashboard.png" "$out"
echo "screenshot: $out"
