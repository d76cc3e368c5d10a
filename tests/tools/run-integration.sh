#!/usr/bin/env bash
# Run the integration tests (tests/integration, pytest) against the binaries
# in $JOBQ_BUILD (default build). Extra arguments go to pytest (when the
# first names tests/..., only those run). The exit
# status is pytest's; its closing summary line is what CI reads.
set -euo pipefail

cd "$(dirname "$0")/../.."
export JOBQ_BUILD=${JOBQ_BUILD:-build}
# No __pycache__ in the work tree.
export PYTHONDONTWRITEBYTECODE=1

# The tests need pytest and redis-py, which tests/tools/ensure-deps.sh
# installs as Debian packages for the system python. A python3 earlier in
# PATH (pyenv, a virtualenv) may lack them, so take the first that has both.
python=
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import pytest, redis' >/dev/null 2>&1; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "run-integration: no python3 with pytest and redis (run: make deps)" >&2
    exit 1
fi

# Arguments that name test files or tests replace the whole directory.
where=tests/integration
case "${1:-}" in tests/*) where= ;; esac
exec "$python" -m pytest -q -p no:cacheprovider $where "$@"
