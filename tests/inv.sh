#!/bin/sh
# inv.sh SPDLC - models proved invertible (tests/inv/*.spn) really invert:
#   the round trip M_flow_inverse(M_flow(x)) in double (1e-10) and float
#   (1e-4), and M_logdet against the Jacobian built from M_vjp (1e-8; for a
#   model with a NAME.estimated note, an unbiased error), by
#   tests/inv/invtest.c; the API contract (tests/gen/apitest.c, with the
#   step in parts) in every memory mode; the gradients of --memory=invert and
#   --memory=checkpoint equal those of --memory=store to 1e-10 (each
#   coordinate relative to max(|g_i|, 1e-4 max |g|): rebuilding a layer's
#   input perturbs it by rounding, which moves every gradient coordinate by
#   that much of the gradient's size, tiny coordinates included); and the harness runs
#   clean under AddressSanitizer + UBSan once per model. Models run two at a
#   time, each in its own `inv.sh SPDLC --one FILE.spn`, reported in order.
set -u
spdlc=$1
root=$(pwd)
out=${INV_OUT:-build/inv}
mkdir -p "$out"
[ "${2:-}" = --one ] || exec sh tests/each_model.sh "$0" inv "$spdlc" "$out" 2 tests/inv/*.spn
pass=0; fail=0
for spn in $3; do
    name=$(basename "$spn" .spn)
    model=$(sed -n 's/^model \([A-Za-z_0-9]*\).*/\1/p' "$spn" | head -1)
    dir=$out/$name
    est=""
    [ -f "${spn%.spn}.estimated" ] && est=estimated
    rm -rf "$dir"; mkdir -p "$dir"
    ok=1
    for mode in store invert checkpoint; do
        $spdlc emit "$spn" -o "$dir/$mode" --memory=$mode 2>"$dir/emit.log" || { cat "$dir/emit.log"; ok=0; }
        [ $ok = 1 ] && gcc -std=c11 -O2 -I"$root/runtime" -c "$dir/$mode/$model.c" -o "$dir/$mode/$model.o" || ok=0
        [ $ok = 1 ] && gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/dump.c "$dir/$mode/$model.o" \
            -o "$dir/dump_$mode" -lm && "$dir/dump_$mode" > "$dir/$mode.txt" || ok=0
        # the API contract in this memory mode, the step in parts (M_tile_*) among it
        [ $ok = 1 ] && gcc -std=c11 -O2 -pthread -I"$root/runtime" -DMODEL_FN=${model}_model tests/gen/apitest.c \
            "$dir/$mode/$model.o" -o "$dir/apitest_$mode" -lm && "$dir/apitest_$mode" > "$dir/api_$mode.txt" ||
            { cat "$dir/api_$mode.txt"; echo "FAIL $spn: the API contract with --memory=$mode"; ok=0; }
    done
    if [ $ok = 1 ]; then
        for mode in invert checkpoint; do
            paste "$dir/store.txt" "$dir/$mode.txt" | awk -v mode=$mode '
                { a[NR] = $1; b[NR] = $2; m = ($1 < 0 ? -$1 : $1); if (NR > 1 && m > gmax) gmax = m }
                END { worst = 0
                      for (i = 1; i <= NR; i++) { d = a[i] - b[i]; if (d < 0) d = -d
                          s = (a[i] < 0 ? -a[i] : a[i]); if (s < 1e-4 * gmax) s = 1e-4 * gmax; if (s == 0) s = 1e-300
                          if (d / s > worst) worst = d / s }
                      printf "  --memory=%s: gradients differ from store by %.3g (relative)\n", mode, worst
                      exit !(worst <= 1e-10) }' || { echo "FAIL $spn: --memory=$mode gradients differ"; ok=0; }
        done
    fi
    if [ $ok = 1 ]; then
        gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/inv/invtest.c "$dir/store/$model.o" \
            -o "$dir/invtest" -lm && "$dir/invtest" 1e-10 1e-8 $est || ok=0
    fi
    if [ $ok = 1 ]; then
        $spdlc emit "$spn" -o "$dir/float" --precision float 2>/dev/null &&
            gcc -std=c11 -O2 -I"$root/runtime" -DMODEL_FN=${model}_model tests/inv/invtest.c "$dir/float/$model.c" \
                -o "$dir/invtest_float" -lm && "$dir/invtest_float" 1e-4 1e-4 $est > "$dir/float.log" || ok=0
        sed 's/^/  float: /' "$dir/float.log"
    fi
    if [ $ok = 1 ]; then
        gcc -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -I"$root/runtime" \
            -DMODEL_FN=${model}_model tests/inv/invtest.c "$dir/invert/$model.c" -o "$dir/invtest_asan" -lm &&
            "$dir/invtest_asan" 1e-10 1e-8 $est > "$dir/asan.log" 2>&1 || { echo "sanitizers on $spn:"; tail -20 "$dir/asan.log"; ok=0; }
    fi
    if [ $ok = 1 ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL $spn"; fi
done
echo "inv: $pass models passed, $fail failed"
[ $fail -eq 0 ]
