#!/usr/bin/env bash
# Run libFuzzer harnesses for a fixed time each (`make fuzz`, `make fuzz-smoke`).
#
#   tests/tools/run-fuzz.sh FUZZ_BUILD SECONDS harness...
#
# Each $FUZZ_BUILD/<harness> runs for SECONDS on a scratch copy of its seed
# corpus tests/fuzz/corpus/<name>/ (fuzz_job -> job), so new inputs never
# land in the repository. Crash, leak and timeout reproducers are kept in
# $FUZZ_BUILD/artifacts/ (rerun one with: $FUZZ_BUILD/<harness> <file>).
# Prints each harness's executions (libFuzzer's stat::number_of_executed_units)
# and exits non-zero when any harness found a crash or a leak, or did not run.
set -uo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 FUZZ_BUILD SECONDS harness..." >&2
    exit 2
fi
cd "$(dirname "$0")/../.." || exit 1
build=$1
seconds=$2
shift 2

artifacts=$build/artifacts
mkdir -p "$artifacts" || exit 1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/jobq-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT

# Leaks fail the run (LeakSanitizer); UBSan reports are fatal (the objects
# are built with -fno-sanitize-recover); stack traces are symbolized.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for harness in "$@"; do
    bin=$build/$harness
    name=${harness#fuzz_}
    seeds=tests/fuzz/corpus/$name
    corpus=$scratch/$name
    log=$scratch/$harness.log
    mkdir -p "$corpus"
    if [ -d "$seeds" ]; then
        cp "$seeds"/* "$corpus"/ 2>/dev/null
    fi
    if [ ! -x "$bin" ]; then
        echo "run-fuzz: $bin: no such executable" >&2
        failed+=("$harness (missing)")
        continue
    fi
    echo "== $harness: ${seconds}s on $(find "$corpus" -type f | wc -l) seed(s) from $seeds"
    "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -max_len=8192 -artifact_prefix="$artifacts/$harness-" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
    cov=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -n1 | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
    if [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
        echo "run-fuzz: $harness FAILED (exit status $rc); its output ends with:"
        tail -n 60 "$log"
        ls -t "$artifacts"/"$harness"-* 2>/dev/null | head -n 3 | sed 's/^/run-fuzz: reproducer: /'
        failed+=("$harness")
    fi
    summary+=("$(printf '%-12s %12s execs  cov %s  corpus %s' "$harness" "${execs:-?}" "${cov:-?}" \
        "$(find "$corpus" -type f | wc -l)")")
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz: failing: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#summary[@]} harness(es), no crash or leak in ${seconds}s each"
