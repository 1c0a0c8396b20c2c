#!/bin/sh
# golden.sh SPDLC DIR... - run `spdlc check` on every DIR/*.spn and compare
# its diagnostics with DIR/NAME.err and its exit status with the first line
# of the .err file's companion rule: a program with an `error:` must exit 1,
# one without must exit 0; where DIR/NAME.out exists, the certificate (the
# standard output) must match it too. Paths are relative to the repository
# root so the expected text is stable. UPDATE=1 rewrites the .err files and
# the .out files that exist (review the diff).
set -u
spdlc=$1; shift
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for dir in "$@"; do
    for spn in "$dir"/*.spn; do
        [ -e "$spn" ] || continue
        want=${spn%.spn}.err
        args=""
        [ -f "${spn%.spn}.args" ] && args=$(cat "${spn%.spn}.args")
        NO_COLOR=1 $spdlc check $args "$spn" >"$tmp/out" 2>"$tmp/err"
        rc=$?
        cert=${spn%.spn}.out
        if [ "${UPDATE:-0}" = 1 ]; then cp "$tmp/err" "$want"; [ -f "$cert" ] && cp "$tmp/out" "$cert"; fi
        expect_rc=0
        grep -q ': error: ' "$want" 2>/dev/null && expect_rc=1
        if [ ! -f "$want" ]; then
            echo "FAIL $spn: no expected output $want (run with UPDATE=1)"; fail=$((fail+1)); continue
        fi
        if ! cmp -s "$tmp/err" "$want"; then
            echo "FAIL $spn: diagnostics differ"; diff -u "$want" "$tmp/err" | head -20; fail=$((fail+1)); continue
        fi
        if [ -f "$cert" ] && ! cmp -s "$tmp/out" "$cert"; then
            echo "FAIL $spn: certificate differs"; diff -u "$cert" "$tmp/out" | head -20; fail=$((fail+1)); continue
        fi
        if [ $rc -ne $expect_rc ]; then
            echo "FAIL $spn: exit status $rc, expected $expect_rc"; fail=$((fail+1)); continue
        fi
        pass=$((pass+1))
    done
done
echo "golden: $pass passed, $fail failed"
[ $fail -eq 0 ]
