#!/bin/sh
# warn.sh SPDLC FILE.spn... - DESIGN §6: the generated C compiles warning-free.
# Every model is emitted in double and float, under --memory=store and
# checkpoint, and invert where `spdlc check` proves it invertible; every
# emitted M.c is compiled (-c, -O0: the compilers' warnings, not their
# optimisers', are the point; gen.sh compiles at -O2; clang -fsyntax-only,
# as its warnings all come from its front end) by gcc and clang at
# -std=c11 -Werror -pedantic -Wall -Wextra, two at a time. A model whose
# emission is not implemented yet (group convolutions) is listed as skipped.
set -u
spdlc=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=${WARN_OUT:-build/warn}
jobs=${WARN_JOBS:-2}
rm -rf "$out"; mkdir -p "$out"
flags="-std=c11 -Werror -pedantic -Wall -Wextra -O0"
list=$out/jobs
: > "$list"
nmodels=0; skipped=0; bad=0
for spn in "$@"; do
    name=$(echo "${spn%.spn}" | tr / _)
    model=$(sed -n 's/^model \([A-Za-z_0-9]*\).*/\1/p' "$spn" | head -1)
    modes="store checkpoint"
    $spdlc check --json "$spn" 2>/dev/null | grep -q '"invertible": {"holds": true' && modes="store invert checkpoint"
    for prec in double float; do
        for mode in $modes; do
            dir=$out/$name/$prec-$mode
            mkdir -p "$dir"
            if ! $spdlc emit "$spn" -o "$dir" --precision $prec --memory=$mode >"$dir.log" 2>&1; then
                if grep -q 'is not implemented yet' "$dir.log"; then
                    echo "skip $spn: $(grep -m1 -o 'code generation for .* is not implemented yet' "$dir.log")"
                    skipped=$((skipped+1)); continue 3
                fi
                echo "FAIL $spn: spdlc emit --precision $prec --memory=$mode"; sed 's/^/    /' "$dir.log" | head -8
                bad=$((bad+1)); continue
            fi
            for cc in gcc clang; do
                echo "$cc $dir/$model.c $spn $prec-$mode" >> "$list"
            done
        done
    done
    nmodels=$((nmodels+1))
done
# one line per compile: CC FILE.c MODEL.spn VARIANT; a failure prints its messages
xargs -P "$jobs" -L 1 sh -c '
    log=${1%.c}.$0.log
    if [ "$0" = clang ]; then out=-fsyntax-only; else out="-c -o ${1%.c}.$0.o"; fi
    "$0" '"$flags"' -I"'"$root"'/runtime" $out "$1" >"$log" 2>&1 && exit 0
    printf "FAIL %s (%s): %s warns or rejects it:\n%s\n" "$2" "$3" "$0" "$(grep -E "(warning|error):" "$log" | head -12 | sed "s/^/    /")"
    exit 1' < "$list" || bad=$((bad+1))
ncomp=$(wc -l < "$list")
nfail=$(grep -l . "$out"/*/*/*.log 2>/dev/null | grep -c '\.\(gcc\|clang\)\.log$')
echo "warn: $nmodels models, $ncomp compiles (gcc and clang, double and float, each memory mode), $nfail warned, $skipped skipped"
[ $bad -eq 0 ] && [ "$nfail" -eq 0 ]
