#!/usr/bin/env bash
# `make bench` set-up of the peers jobq is measured against (the Makefile
# runs this before tests/bench/run.sh). For each peer named in BENCH_PEERS
# (comma-separated; default all: rq,celery,sidekiq,bullmq; "none" for none):
#
#   rq       Debian python3-rq (and python3-redis)
#   celery   Debian python3-celery (with its kombu and redis client)
#   sidekiq  Debian ruby and ruby-sidekiq
#   bullmq   npm bullmq, the version pinned in tests/bench/peers/package.json
#            and package-lock.json, installed with `npm ci` into
#            build/bench/peers/node_modules with the machine's node and npm
#            (installed from Debian when missing); never a global install
#
# Only what is missing is installed (apt-get, as root). A peer that cannot
# be installed is skipped with one line saying why, and the bench goes on
# without it. Writes $BUILD/bench/peers.txt: one line per peer, "NAME ok
# VERSION" or "NAME skipped REASON". Always exits 0 unless the arguments
# are wrong.
# shellcheck disable=SC2317  # the peer_* functions are called as "peer_$p"
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)
build=${BUILD:-build}
out=$root/$build/bench
mkdir -p "$out" || exit 1
status=$out/peers.txt
: >"$status"
py=/usr/bin/python3

say() { printf 'bench peers: %s\n' "$*" >&2; }
record() { printf '%s\n' "$*" >>"$status"; }

all=(rq celery sidekiq bullmq)
want=()
case "${BENCH_PEERS:-all}" in
    all | "") want=("${all[@]}") ;;
    none) want=() ;;
    *)
        IFS=, read -r -a asked <<<"$BENCH_PEERS"
        for p in "${asked[@]}"; do
            p=${p// /}
            [ -z "$p" ] && continue
            if [[ " ${all[*]} " == *" $p "* ]]; then
                want+=("$p")
            else
                say "unknown peer '$p' in BENCH_PEERS (known: ${all[*]}); ignored"
            fi
        done
        ;;
esac

installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }

apt_updated=
apt_install() { # packages...: install the missing ones; 0 when all are there afterwards
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "missing Debian packages ${missing[*]} (run as root to install them)"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from jobq tests/bench/ensure-peers.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    if [ -z "$apt_updated" ]; then
        timeout 300 apt-get update -o DPkg::Lock::Timeout=120 >&2 && apt_updated=1
    fi
    say "installing ${missing[*]}"
    timeout 600 apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    for p in "${missing[@]}"; do installed "$p" || return 1; done
    return 0
}

# debian_peer NAME PACKAGE VERSION_FN PACKAGES...: install what is missing of
# PACKAGES (PACKAGE is the peer's own), then record "NAME ok <what
# VERSION_FN prints>", or why NAME is skipped (VERSION_FN fails when the
# peer does not load).
debian_peer() {
    local name=$1 package=$2 version_fn=$3
    shift 3
    if ! apt_install "$@"; then
        record "$name skipped: Debian $package could not be installed"
        return
    fi
    local v
    if v=$("$version_fn" 2>/dev/null); then
        record "$name ok $v"
    else
        record "$name skipped: $package is installed but does not load"
    fi
}

rq_version() { "$py" -c 'import rq; print(rq.__version__)'; }
celery_version() {
    "$py" -c 'import celery, kombu; print(celery.__version__, "(kombu", kombu.__version__ + ")")'
}
sidekiq_version() {
    command -v sidekiq >/dev/null &&
        ruby -e 'require "sidekiq"; require "redis"; print Sidekiq::VERSION, " (redis-rb ", Redis::VERSION, ", ", RUBY_DESCRIPTION.split[0..1].join(" "), ")"'
}

peer_rq() { debian_peer rq python3-rq rq_version python3-rq python3-redis; }
peer_celery() { debian_peer celery python3-celery celery_version python3-celery python3-redis; }
peer_sidekiq() { debian_peer sidekiq ruby-sidekiq sidekiq_version ruby ruby-sidekiq; }

peer_bullmq() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if ! apt_install nodejs npm; then
            record "bullmq skipped: no node/npm, and Debian nodejs/npm could not be installed"
            return
        fi
    fi
    local dir=$out/peers src=$root/tests/bench/peers stamp
    mkdir -p "$dir" || { record "bullmq skipped: cannot create $dir"; return; }
    stamp=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
    if [ ! -f "$dir/.stamp" ] || [ "$(cat "$dir/.stamp")" != "$stamp" ] || [ ! -d "$dir/node_modules/bullmq" ]; then
        cp "$src/package.json" "$src/package-lock.json" "$dir/" || { record "bullmq skipped: cannot copy the package files"; return; }
        rm -f "$dir/.stamp"
        say "npm ci (bullmq, pinned by tests/bench/peers/package-lock.json) into $dir/node_modules"
        # --ignore-scripts: no install scripts (msgpackr then uses its pure JS codec).
        if ! (cd "$dir" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
            record "bullmq skipped: npm ci failed (no access to the npm registry?)"
            return
        fi
        echo "$stamp" >"$dir/.stamp"
    fi
    local v
    if v=$(cd "$dir" && node -e 'require("bullmq"); process.stdout.write(require("bullmq/package.json").version + " (ioredis " + require("ioredis/package.json").version + ", node " + process.versions.node + ")")' 2>/dev/null); then
        record "bullmq ok $v"
    else
        record "bullmq skipped: bullmq is installed in $dir but does not load with this node"
    fi
}

for p in "${want[@]}"; do
    "peer_$p"
done
while read -r line; do say "$line"; done <"$status"
exit 0
