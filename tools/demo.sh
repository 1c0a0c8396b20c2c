#!/bin/sh
# demo.sh - the main job (`make demo`): check the two-spirals model of
# DESIGN §3, build it, train it on builtin:spirals, evaluate it on a
# held-out draw, and plot decision regions, trajectories and training curves.
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

printf '\nspirals: test accuracy %s on a held-out draw; picture in %s\n' "$acc" "$out/spirals.png"
