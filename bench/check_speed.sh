#!/bin/sh
# check_speed.sh [SPDLC] [LINES] - time `spdlc check` on a generated model of
# LINES lines (default 10,000; bench/gen_model.py) and print the median of
# several runs. The target (issue 2) is under 100 ms on the 2-core machine.
# Uses hyperfine where installed, otherwise a loop of `date` readings.
set -eu
cd "$(dirname "$0")/.."
spdlc=${1:-build/spdlc}
lines=${2:-10000}
runs=${RUNS:-15}
model=build/bench/check_speed_$lines.spn
mkdir -p build/bench
[ -x "$spdlc" ] || make -s "$spdlc"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
$PY bench/gen_model.py "$lines" >"$model"
echo "model: $model, $(wc -l <"$model") lines, $(wc -c <"$model") bytes"

# It must be a valid model: exit 0, no errors.
if ! "$spdlc" check "$model" >/dev/null 2>build/bench/check_speed.err; then
    cat build/bench/check_speed.err >&2
    echo "check_speed: the generated model does not check" >&2
    exit 1
fi

if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 3 --runs "$runs" --export-json build/bench/check_speed.json \
        "$spdlc check $model" >build/bench/hyperfine.txt 2>&1 || { cat build/bench/hyperfine.txt; exit 1; }
    median=$($PY -c "import json; r = json.load(open('build/bench/check_speed.json'))['results'][0]; \
print('%.1f' % (1000 * r['median']))")
    minv=$($PY -c "import json; r = json.load(open('build/bench/check_speed.json'))['results'][0]; \
print('%.1f' % (1000 * r['min']))")
else
    for i in $(seq "$runs"); do
        s=$(date +%s%N); "$spdlc" check "$model" >/dev/null 2>&1; e=$(date +%s%N)
        echo $(( (e - s) / 1000 ))
    done | sort -n >build/bench/times.txt
    median=$(awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] / 1000}' build/bench/times.txt)
    minv=$(awk 'NR==1 {printf "%.1f", $1 / 1000}' build/bench/times.txt)
fi
echo "spdlc check, $lines-line model: median $median ms (min $minv ms, $runs runs)"
