#!/bin/sh
# Exec handler for the tests (test_exec.py), in shell: the same modes as
# modes.py, read from JOBQ_ARG_mode (args on stdin are ignored).
set -eu
case "${JOBQ_ARG_mode:-}" in
ok)
    cat >/dev/null
    printf '{"got":{"mode":"%s"},"job":"%s","uid":%s,"arg_env":"%s"}\n' \
        "$JOBQ_ARG_mode" "$JOBQ_JOB_ID" "$(id -u)" "$JOBQ_ARG_mode" ;;
fail)
    i=0
    while [ $i -lt 200 ]; do echo "some noise first" >&2; i=$((i + 1)); done
    echo "shell handler failed: ${JOBQ_ARG_why:-}" >&2
    exit 3 ;;
badjson)
    echo "this is {not json" ;;
flood)
    head -c 2097152 /dev/zero | tr '\0' x ;;
progress)
    for f in 0.25 0.5 0.75; do
        echo "progress $f step $f" >&3
        sleep 0.15
    done
    echo "not a progress line" >&3
    echo '{"done":true}' ;;
group)
    sleep 300 &
    echo "$$ $!" > "$JOBQ_ARG_pidfile"
    sleep 300 ;;
*)
    echo "unknown mode ${JOBQ_ARG_mode:-}" >&2
    exit 2 ;;
esac
