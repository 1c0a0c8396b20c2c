#!/bin/sh
# emit.sh SPDLC - golden tests of the step program and the emitted C: for
# every tests/emit/NAME.spn, `spdlc emit --dump-ir` must match NAME.ir and
# the emitted M.h and M.c must match NAME.h.golden and NAME.c.golden byte for
# byte; emitting twice must give identical bytes. For every tests/step/NAME.spn,
# `spdlc -d step` must match NAME.ir. UPDATE=1 rewrites the
# expected files (review the diff).
set -u
spdlc=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
for spn in tests/emit/*.spn; do
    name=${spn%.spn}
    model=$(sed -n 's/^model \([A-Za-z_0-9]*\).*/\1/p' "$spn" | head -1)
    $spdlc emit --dump-ir "$spn" > "$tmp/ir" 2>&1
    $spdlc emit "$spn" -o "$tmp/a" 2>/dev/null && $spdlc emit "$spn" -o "$tmp/b" 2>/dev/null
    if [ "${UPDATE:-0}" = 1 ]; then
        cp "$tmp/ir" "$name.ir"; cp "$tmp/a/$model.h" "$name.h.golden"; cp "$tmp/a/$model.c" "$name.c.golden"
    fi
    ok=1
    cmp -s "$tmp/a/$model.c" "$tmp/b/$model.c" && cmp -s "$tmp/a/$model.h" "$tmp/b/$model.h" ||
        { echo "FAIL $spn: two runs of emit differ"; ok=0; }
    for pair in "ir:$name.ir" "a/$model.h:$name.h.golden" "a/$model.c:$name.c.golden"; do
        got=$tmp/${pair%%:*}; want=${pair#*:}
        if ! cmp -s "$got" "$want"; then
            echo "FAIL $spn: $want differs"; diff -u "$want" "$got" | head -20; ok=0
        fi
    done
    if [ $ok = 1 ]; then pass=$((pass+1)); else fail=$((fail+1)); fi
done
# Step programs alone (tests/step/NAME.spn against NAME.ir): the lowering's regression tests.
for spn in tests/step/*.spn; do
    $spdlc -d step "$spn" > "$tmp/ir" 2>&1
    [ "${UPDATE:-0}" = 1 ] && cp "$tmp/ir" "${spn%.spn}.ir"
    if cmp -s "$tmp/ir" "${spn%.spn}.ir"; then pass=$((pass+1)); else
        echo "FAIL $spn: ${spn%.spn}.ir differs"; diff -u "${spn%.spn}.ir" "$tmp/ir" | head -20; fail=$((fail+1)); fi
done
echo "emit: $pass golden models and step programs passed, $fail failed"
[ $fail -eq 0 ]
