#!/usr/bin/env bash
# Run cmocka unit test binaries and sum them up.
#
#   tests/tools/run-unit.sh BUILD test_a test_b ...
#
# Runs each $BUILD/tests/<name>, shows its output, counts tests from cmocka's
# "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)" lines and ends with
#   unit: N passed, N failed
# Exits non-zero when a test failed or a binary is missing, crashed or exited
# non-zero without reporting failed tests (each such binary counts as one
# failed test so that the summary never says 0 failed on a failing run).
set -uo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BUILD test_name..." >&2
    exit 2
fi
build=$1
shift

# Plain text on stdout whatever the caller's environment asks for.
export CMOCKA_MESSAGE_OUTPUT=stdout
unset CMOCKA_XML_FILE

passed=0
failed=0
bad=()
for name in "$@"; do
    bin=$build/tests/$name
    echo "== $name"
    if [ ! -x "$bin" ]; then
        echo "run-unit: $bin: no such executable"
        failed=$((failed + 1))
        bad+=("$name (missing)")
        continue
    fi
    out=$("$bin" 2>&1)
    rc=$?
    printf '%s\n' "$out"

    p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test\(s\)\..*/\1/p' <<<"$out" | tail -n1)
    f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test\(s\).*/\1/p' <<<"$out" | tail -n1)
    p=${p:-0}
    f=${f:-0}
    passed=$((passed + p))
    failed=$((failed + f))

    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        if [ "$rc" -gt 128 ]; then
            why="killed by signal $((rc - 128))"
        else
            why="exit status $rc without a FAILED count"
        fi
        echo "run-unit: $name: $why"
        failed=$((failed + 1))
        bad+=("$name ($why)")
    elif [ "$f" -ne 0 ]; then
        bad+=("$name ($f failed)")
    elif [ "$p" -eq 0 ]; then
        echo "run-unit: $name: ran no test"
    fi
done

echo
if [ "${#bad[@]}" -ne 0 ]; then
    echo "failing: ${bad[*]}"
fi
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${#bad[@]}" -eq 0 ]
