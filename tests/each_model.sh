#!/bin/sh
# each_model.sh SCRIPT NAME SPDLC OUT JOBS FILE.spn... - what gen.sh and inv.sh share: runs
# `sh SCRIPT SPDLC --one FILE.spn` for every file, JOBS at a time, each into OUT/N.report and
# OUT/N.status; then prints the reports in the order given (without SCRIPT's own `NAME: `
# tallies) and `NAME: P models passed, F failed`, and exits 1 if one failed.
set -u
script=$1 name=$2 spdlc=$3 out=$4 jobs=$5
shift 5
printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c \
    'n=$(basename "$3" .spn); sh "$0" "$1" --one "$3" >"$2/$n.report" 2>&1; echo $? >"$2/$n.status"' \
    "$script" "$spdlc" "$out" {}
pass=0; fail=0
for spn in "$@"; do
    n=$(basename "$spn" .spn)
    grep -v "^$name: " "$out/$n.report"
    if [ "$(cat "$out/$n.status" 2>/dev/null)" = 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); fi
done
echo "$name: $pass models passed, $fail failed"
[ $fail -eq 0 ]
