#!/bin/sh
# run.sh [SPDLC] - build the two example models for Python (and the robust
# digits program, to certify with), then run both examples. Outputs go to
# build/examples-python. Uses Debian's python3 (numpy, torch, one thread).
set -eu
spdlc=${1:-build/spdlc}
out=build/examples-python
mkdir -p $out
$spdlc build examples/robust_digits.spn --python -o $out/m
$spdlc build examples/moons_flow.spn --python -o $out/m
$spdlc build examples/robust_digits.spn -o $out/robust_digits
$spdlc build examples/moons_flow.spn -o $out/moons_flow
export PYTHONPATH=python:$out/m OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
/usr/bin/python3 examples/python/robust_digits_torch.py --exe $out/robust_digits --out $out
/usr/bin/python3 examples/python/moons_density.py --exe $out/moons_flow --out $out
