#!/bin/sh
# demo.sh - the main job (`make demo`): check the two-spirals model of
# DESIGN §3, build it, train it on builtin:spirals, evaluate it on a
# held-out draw, and plot decision regions, trajectories and training
# curves; then train a non-expansive digits classifier and certify it.
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

printf '\nspirals: test accuracy %s on a held-out draw; picture in %s\n' "$acc" "$out/spirals.png"
printf 'robust digits: %s\n' "$(grep 'certified accuracy at eps 0.1' "$out/robust_digits.certify.txt")"
