#!/usr/bin/env bash
# Install the Debian 12 packages jobq needs to build, run and test, and only
# those that are missing. Called by `make deps` (and so by `make run`,
# `make test`, `make bench`).
#
# - All present: exits 0 at once (one dpkg-query call, no network).
#   (chromium and prometheus are for the tests of jobq web: the browser
#   test and promtool; the prometheus service is never started, see below.)
# - Some missing, root: apt-get update, then apt-get install of just those,
#   without starting any service (the Debian redis-server unit in particular:
#   jobq never uses it, its tests and `make run` start private servers).
# - Some missing, not root: prints the exact command to run and exits 1.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang libclang-rt-14-dev
    libev-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev
    libinih-dev libsystemd-dev libssl-dev libmicrohttpd-dev
    redis-server redis-tools
    chromium prometheus
    python3 python3-pytest python3-redis
    curl valgrind procps
    systemd
)

# The hiredis to build with: hiredict's hiredis shims (hiredis 1.x API with
# TLS, from bookworm-backports; they replace libhiredis-dev), else Debian
# 12's libhiredis-dev 0.14 (no TLS: jobq then refuses rediss:// URLs).
HIREDIS_TLS=libhiredict-shims-dev
HIREDIS_PLAIN=libhiredis-dev
BACKPORTS_LIST=/etc/apt/sources.list.d/jobq-bookworm-backports.sources

# "ii " = wanted install, currently installed, no error flag.
is_installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -qE '^ii ?$'
}

# One dpkg-query for all of them; a package that dpkg has never heard of is
# reported on stderr and simply does not appear in the output.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! grep -qxE "${pkg//./\\.} ii ?" <<<"$installed"; then
        missing+=("$pkg")
    fi
done
# Wanted unless installed, or already tried: backports configured and no
# candidate there (then the build goes on with hiredis 0.14, without TLS).
want_tls_hiredis=
if ! is_installed "$HIREDIS_TLS"; then
    want_tls_hiredis=1
    if grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/ &&
        [ "$(apt-cache policy "$HIREDIS_TLS" 2>/dev/null | awk '/Candidate:/ {print $2}')" = "(none)" ] &&
        is_installed "$HIREDIS_PLAIN"; then
        want_tls_hiredis=
    fi
fi

if [ "${#missing[@]}" -eq 0 ] && [ -z "$want_tls_hiredis" ]; then
    exit 0
fi

install_cmd=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}")

if [ "$(id -u)" -ne 0 ] && [ "${#missing[@]}" -eq 0 ]; then
    # Only the TLS-capable hiredis is missing: build on without TLS.
    if ! is_installed "$HIREDIS_PLAIN"; then
        echo "jobq: missing Debian package: $HIREDIS_PLAIN (or $HIREDIS_TLS from bookworm-backports for TLS)" >&2
        exit 1
    fi
    echo "jobq: building without TLS: install $HIREDIS_TLS from bookworm-backports (as root: make deps) for rediss://" >&2
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "jobq: missing Debian packages: ${missing[*]}" >&2
    echo "jobq: install them as root with:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

echo "jobq: installing missing packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep maintainer scripts from starting services (redis-server would
# otherwise come up on :6379 where systemd runs, prometheus on :9090). Only
# when no policy is in place already; ours is removed again on exit.
policy=/usr/sbin/policy-rc.d
own_policy=
cleanup() {
    if [ -n "$own_policy" ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from jobq tests/tools/ensure-deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi

apt-get update -o DPkg::Lock::Timeout=300
if [ "${#missing[@]}" -gt 0 ]; then
    "${install_cmd[@]}"
fi

# hiredis with TLS from bookworm-backports; Debian's 0.14 (no TLS) when the
# backports archive cannot be reached.
if [ -n "$want_tls_hiredis" ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$BACKPORTS_LIST"
        apt-get update -o DPkg::Lock::Timeout=300 || true
    fi
    if apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 -t bookworm-backports "$HIREDIS_TLS"; then
        echo "jobq: installed $HIREDIS_TLS (hiredis with TLS) from bookworm-backports" >&2
    elif ! is_installed "$HIREDIS_PLAIN"; then
        echo "jobq: bookworm-backports unavailable: installing $HIREDIS_PLAIN (jobq builds without TLS)" >&2
        apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "$HIREDIS_PLAIN"
        missing+=("$HIREDIS_PLAIN")
    fi
fi

# Check again: apt-get can succeed and still leave a package half-configured.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${missing[@]}" 2>/dev/null || true)
still=()
for pkg in "${missing[@]}"; do
    if ! grep -qxE "${pkg//./\\.} ii ?" <<<"$installed"; then
        still+=("$pkg")
    fi
done
if [ "${#still[@]}" -ne 0 ]; then
    echo "jobq: still not installed after apt-get: ${still[*]}" >&2
    exit 1
fi
echo "jobq: packages installed" >&2
