#!/bin/sh
# gen.sh SPDLC [FILE.spn...] - for every model (default: tests/gen/*.spn): emit C, compile it with gcc -O2
# (and clang, front end only, for the host's -march) at -std=c11 -Wall -Wextra -Werror -pedantic, check the adjoint
# against finite differences (tests/gen/gradcheck.c) with one tile and with
# two (batch 70: a partial tile), and run the check again under
# AddressSanitizer + UndefinedBehaviorSanitizer (on 24 coordinates: the
# sanitizers are there for the memory every evaluation touches); check the API contract
# (tests/gen/apitest.c: bad arguments, threads, alignment) and the norm
# projection (tests/gen/projtest.c: true norms after M_project); for the models
# tests/gen/losscheck.c computes by hand, the loss and the output against that.
# A model may set its own tolerances (and batch sizes) in a
# `// gradcheck: GRAD DOT [BATCH...]` comment or a NAME.gradcheck file; a
# `// equivtest: S|Z|C4|D4 N` comment runs tests/gen/equivtest.c (invariance under
# the declared group) and tells projtest the group and the grid (a
# `// projtest: GROUP N [NAME=GRID...]` comment overrides that).
# Models run GEN_JOBS (default 2) at a time, each in its own `gen.sh --one`
# whose report is printed in the order given.
set -u
spdlc=$1
shift
one=0
[ "${1:-}" = --one ] && { one=1; shift; }
[ $# -gt 0 ] || set -- tests/gen/*.spn
root=$(pwd)
out=${GEN_OUT:-build/gen}
mkdir -p "$out"
[ $one = 0 ] && exec sh tests/each_model.sh "$0" gen "$spdlc" "$out" "${GEN_JOBS:-2}" "$@"
pass=0; fail=0
PEDANTIC="-std=c11 -Wall -Wextra -Werror -pedantic"
# `spdlc build` adds the host's -march (x86-64-v4 with AVX-512, v3 with AVX2 and FMA), which switches
# spdl_gemm to its intrinsics paths (and fma() in float): compile and gradient-check that build too (the
# unit tests check both intrinsics paths' kernels wherever the CPU runs them).
VEC=$(sh tools/host_march.sh)
# Both builds run the same emitted adjoint and differ in their kernels only (whose results the unit tests
# check against long double): where there is a $VEC build, it gets the full 400-coordinate check and the
# portable build 24 coordinates (the random stream drawn as for 400, so its vjp dot test is unchanged).
PLAIN_PROBES=; [ -n "$VEC" ] && PLAIN_PROBES=24
for spn in "$@"; do
    name=$(basename "$spn" .spn)
    model=$(sed -n 's/^model \([A-Za-z_0-9]*\).*/\1/p' "$spn" | head -1)
    tol=$(sed -n 's|^// gradcheck: ||p' "$spn")
    [ -f "${spn%.spn}.gradcheck" ] && tol=$(cat "${spn%.spn}.gradcheck")
    [ -n "$tol" ] || tol="1e-6 1e-10"
    set -- $tol
    tol="$1 $2"; shift 2
    batches=${*:-5 70}
    dir=$out/$name
    rm -rf "$dir"; mkdir -p "$dir"
    ok=1
    $spdlc emit "$spn" -o "$dir" 2>"$dir/emit.log" || { cat "$dir/emit.log"; ok=0; }
    # gcc at -O2 (its optimiser's warnings; the objects the checks below link), plain and $VEC; clang's
    # warnings are its front end's, so -fsyntax-only, and only for $VEC (the intrinsics path): warn.sh
    # compiles every model with clang without it
    if [ $ok = 1 ]; then
        gcc $PEDANTIC -O2 -I"$root/runtime" -c "$dir/$model.c" -o "$dir/$model.gcc.o" 2>"$dir/gcc.log" ||
            { echo "gcc rejects the C emitted for $spn:"; head -20 "$dir/gcc.log"; ok=0; }
    fi
    if [ $ok = 1 ] && [ -n "$VEC" ]; then
        gcc $PEDANTIC -O2 $VEC -I"$root/runtime" -c "$dir/$model.c" -o "$dir/$model.gcc.vec.o" 2>"$dir/gcc.vec.log" ||
            { echo "gcc $VEC rejects the C emitted for $spn:"; head -20 "$dir/gcc.vec.log"; ok=0; }
        [ $ok = 1 ] && { clang $PEDANTIC $VEC -fsyntax-only -I"$root/runtime" "$dir/$model.c" 2>"$dir/clang.vec.log" ||
            { echo "clang $VEC rejects the C emitted for $spn:"; head -20 "$dir/clang.vec.log"; ok=0; }; }
    fi
    if [ $ok = 1 ]; then
        gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/gradcheck.c "$dir/$model.gcc.o" \
            -o "$dir/gradcheck" -lm || ok=0
        for b in $batches; do
            [ $ok = 1 ] && { "$dir/gradcheck" $b $tol $PLAIN_PROBES || ok=0; }
        done
        if [ $ok = 1 ] && [ -n "$VEC" ]; then
            gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/gradcheck.c "$dir/$model.gcc.vec.o" \
                -o "$dir/gradcheck_vec" -lm || ok=0
            for b in $batches; do
                [ $ok = 1 ] && { "$dir/gradcheck_vec" $b $tol >"$dir/gradcheck_vec.log" 2>&1 ||
                    { echo "gradient check of the $VEC build of $spn:"; tail -5 "$dir/gradcheck_vec.log"; ok=0; }; }
            done
        fi
    fi
    if [ $ok = 1 ]; then
        gcc -std=c11 -O2 -pthread -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/apitest.c "$dir/$model.gcc.o" \
            -o "$dir/apitest" -lm && "$dir/apitest" || ok=0
        equiv=$(sed -n 's|^// equivtest: ||p' "$spn")
        proj=$(sed -n 's|^// projtest: ||p' "$spn")
        [ -n "$proj" ] || proj=$equiv
        gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/projtest.c "$dir/$model.gcc.o" \
            -o "$dir/projtest" -lm && "$dir/projtest" $proj || ok=0
        if [ $ok = 1 ] && [ -n "$equiv" ]; then
            gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/equivtest.c "$dir/$model.gcc.o" \
                -o "$dir/equivtest" -lm && "$dir/equivtest" $equiv || ok=0
        fi
    fi
    if [ $ok = 1 ] && grep -q "^static double ${model}_sample(" tests/gen/losscheck.c; then
        gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model -DREF=$model tests/gen/losscheck.c "$dir/$model.gcc.o" \
            -o "$dir/losscheck" -lm && "$dir/losscheck" || ok=0
    fi
    if [ $ok = 1 ]; then
        SAN="-std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -I$root/runtime -DMODEL_FN=${model}_model"
        gcc $SAN -c "$dir/$model.c" -o "$dir/$model.asan.o" &&
            gcc $SAN tests/gen/gradcheck.c "$dir/$model.asan.o" -o "$dir/gradcheck_asan" -lm &&
            "$dir/gradcheck_asan" 5 $tol 24 >"$dir/asan.log" 2>&1 &&
            gcc $SAN -pthread tests/gen/apitest.c "$dir/$model.asan.o" -o "$dir/apitest_asan" -lm &&
            "$dir/apitest_asan" >>"$dir/asan.log" 2>&1 || { echo "sanitizers on $spn:"; tail -20 "$dir/asan.log"; ok=0; }
    fi
    if [ $ok = 1 ] && [ -n "$VEC" ]; then
        gcc -std=c11 -O1 -g $VEC -fsanitize=address,undefined -fno-sanitize-recover=all -I"$root/runtime" \
            -DMODEL_FN=${model}_model tests/gen/gradcheck.c "$dir/$model.c" -o "$dir/gradcheck_asan_vec" -lm &&
            "$dir/gradcheck_asan_vec" 5 $tol 24 >"$dir/asan_vec.log" 2>&1 ||
            { echo "sanitizers on the $VEC build of $spn:"; tail -20 "$dir/asan_vec.log"; ok=0; }
    fi
    if [ $ok = 1 ]; then
        # --precision float: the same code in float, within 1e-4 of double; C4/D4 models under the
        # sanitizers (a float build's grid correlations by F(2x2, 3x3) work in a scratch of their own)
        mkdir -p "$dir/float"
        case $model in c4_* | d4_*) FSAN="-fsanitize=address,undefined -fno-sanitize-recover=all" ;; *) FSAN= ;; esac
        $spdlc emit "$spn" -o "$dir/float" --precision float &&
            gcc $PEDANTIC -O2 $FSAN -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/dump.c "$dir/float/$model.c" \
                -o "$dir/dump_float" -lm &&
            gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/dump.c "$dir/$model.gcc.o" \
                -o "$dir/dump_double" -lm &&
            "$dir/dump_double" > "$dir/double.txt" && "$dir/dump_float" > "$dir/float.txt" &&
            awk 'NR == FNR { d[FNR] = $1; n2 += $1 * $1; next }
                 { e = $1 - d[FNR]; e2 += e * e }
                 END { r = sqrt(e2 / (n2 + 1e-300)); printf "float vs double: relative difference %.2e\n", r; exit !(r < 1e-4) }' \
                "$dir/double.txt" "$dir/float.txt" || { echo "float build of $spn differs from double"; ok=0; }
    fi
    if [ $ok = 1 ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL $spn"; fi
done
echo "gen: $pass models passed, $fail failed"
[ $fail -eq 0 ]
