#!/usr/bin/env bash
# Install the Debian 12 packages jobq needs to build, run and test, and only
# those that are missing. Called by `make deps` (and so by `make run`,
# `make test`, `make bench`).
#
# - All present: exits 0 at once (one dpkg-query call, no network).
# - Some missing, root: apt-get update, then apt-get install of just those,
#   without starting any service (the Debian redis-server unit in particular:
#   jobq never uses it, its tests and `make run` start private servers).
# - Some missing, not root: prints the exact command to run and exits 1.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang libclang-rt-14-dev
    libhiredis-dev libev-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev
    libinih-dev libsystemd-dev libssl-dev
    redis-server redis-tools
    python3 python3-pytest python3-redis
    curl valgrind procps
    systemd
)

# One dpkg-query for all of them; a package that dpkg has never heard of is
# reported on stderr and simply does not appear in the output.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "ii " = wanted install, currently installed, no error flag.
    if ! grep -qxE "${pkg//./\\.} ii ?" <<<"$installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

install_cmd=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}")

if [ "$(id -u)" -ne 0 ]; then
    echo "jobq: missing Debian packages: ${missing[*]}" >&2
    echo "jobq: install them as root with:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

echo "jobq: installing missing packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep maintainer scripts from starting services (redis-server would
# otherwise come up on :6379 where systemd runs). Only when no policy is in
# place already; ours is removed again on exit.
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
"${install_cmd[@]}"

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
