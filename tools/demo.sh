#!/bin/sh
# demo.sh - the main job (`make demo`): check the two-spirals model of
# DESIGN §3, build it, train it on builtin:spirals, evaluate it on a
# held-out draw, and plot decision regions, trajectories and training
# curves; then train a non-expansive digits classifier and certify it; then
# a rotation-invariant (C4) digits classifier, evaluated on the test digits
# and on the same digits turned by 90 degrees.
set -eu
B=${B:-build}
out=$B/demo
mkdir -p "$out"
spdlc=$B/spdlc

step() { printf '\n== %s\n' "$*"; }

step "spdlc check examples/spirals.spn"
$spdlc check examples/spirals.spn

step "spdlc build examples/spirals.spn -o $out/spirals"
$spdlc build examples/spirals.spn -o "$out/spirals"

step "train on builtin:spirals (1000 points, 10% held out for validation)"
"$out/spirals" train --data builtin:spirals --epochs 100 --lr 0.02 --schedule cosine --seed 1 \
    --out "$out/spirals.safetensors"

step "evaluate on a fresh draw of 1000 points (builtin:spirals?seed=2)"
"$out/spirals" eval --data "builtin:spirals?seed=2" --weights "$out/spirals.safetensors" | tee "$out/spirals.eval.txt"
acc=$(sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' "$out/spirals.eval.txt")
awk -v a="$acc" 'BEGIN { if (a + 0 < 0.99) { print "demo: test accuracy " a " is below 0.99"; exit 1 } }'

step "plot"
"$out/spirals" plot --weights "$out/spirals.safetensors" --data "builtin:spirals?seed=2" -o "$out/spirals.png"


step "certified robustness: a non-expansive gradient-flow network on the UCI digits"
$spdlc check examples/robust_digits.spn | sed -n '/certificate/,$p' | grep -E "holds|FAILS"
$spdlc build examples/robust_digits.spn -o "$out/robust_digits"
"$out/robust_digits" train --data "builtin:digits?split=0.2&part=train" --epochs 100 --lr 0.01 --schedule cosine \
    --seed 1 --out "$out/robust_digits.safetensors" --quiet
"$out/robust_digits" certify --data "builtin:digits?split=0.2&part=test" --weights "$out/robust_digits.safetensors" \
    --eps 0.1,0.3 | tee "$out/robust_digits.certify.txt" | tail -3

step "rotation invariance: DESIGN's digits_c4 (C4 group convolutions), proved invariant(C4)"
$spdlc check tests/design/digits_c4.spn | grep -E "^  (invariant|equivariant) "
$spdlc build tests/design/digits_c4.spn -o "$out/digits_c4"
# examples/README.md's recipe: input noise, and the seed the validation split chose (0.9526 on the test digits)
"$out/digits_c4" train --data "builtin:digits?split=0.2&part=train" --epochs 300 --lr 0.005 --schedule cosine \
    --noise 0.1 --seed 4 --out "$out/digits_c4.safetensors" --quiet
"$out/digits_c4" eval --data "builtin:digits?split=0.2&part=test" --weights "$out/digits_c4.safetensors" \
    > "$out/digits_c4.eval.txt"
"$out/digits_c4" eval --data "builtin:digits?split=0.2&part=test&rotate=90" --weights "$out/digits_c4.safetensors" \
    > "$out/digits_c4.rot90.txt"
c4=$(sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' "$out/digits_c4.eval.txt")
c4r=$(sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' "$out/digits_c4.rot90.txt")
printf 'test digits: accuracy %s; the same digits turned by 90 degrees: accuracy %s\n' "$c4" "$c4r"
[ -n "$c4" ] && [ "$c4" = "$c4r" ] || { echo "demo: digits_c4 is not invariant on the rotated test digits"; exit 1; }

printf '\nspirals: test accuracy %s on a held-out draw; picture in %s\n' "$acc" "$out/spirals.png"
printf 'robust digits: %s\n' "$(grep 'certified accuracy at eps 0.1' "$out/robust_digits.certify.txt")"
printf 'digits_c4: test accuracy %s, and %s on the test digits turned by 90 degrees\n' "$c4" "$c4r"
