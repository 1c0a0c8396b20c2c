#!/bin/sh
# python.sh SPDLC [PYTHON] - `spdlc build --python` and the spdl package
# (DESIGN §10): diagnostics for bad --python use, then tests/python/test_python.py
# on the modules and programs built here (NumPy against the programs bit for
# bit, safetensors both ways, bad inputs, torch gradcheck and training).
set -u
spdlc=$1
py=${2:-/usr/bin/python3}
out=${PY_OUT:-build/python}
rm -rf "$out"; mkdir -p "$out"
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL: $*"; }
# expect NAME STATUS PATTERN CMD...: exit status and a line matching PATTERN (stdout+stderr)
expect() {
    name=$1 want=$2 pat=$3; shift 3
    "$@" >"$out/$name.log" 2>&1
    got=$?
    if [ $got -ne $want ]; then bad "$name: exit $got, expected $want"; sed 's/^/    /' "$out/$name.log" | head -8; return; fi
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$out/$name.log"; then
        bad "$name: no line matching '$pat'"; sed 's/^/    /' "$out/$name.log" | head -8; return
    fi
    ok
}
start=$(date +%s)

# bad use of --python: usage errors (exit 2) and errors (exit 1), one clear line each
expect py_check 2 "^spdlc: error: --python is an option of build, not of 'check'" $spdlc check examples/spirals.spn --python
expect py_emit 2 "^spdlc: error: --python is an option of build, not of 'emit'" $spdlc emit examples/spirals.spn --python -o $out/e
expect py_no_o 2 "^spdlc: error: 'build --python' needs -o DIR" $spdlc build examples/spirals.spn --python
expect py_standalone 2 "^spdlc: error: --standalone is an option of emit" $spdlc build examples/spirals.spn --python --standalone -o $out/s
: > $out/afile
expect py_o_file 1 "^spdlc: error: '$out/afile' is not a directory" $spdlc build examples/spirals.spn --python -o $out/afile
expect py_o_nodir 1 "^spdlc: error: cannot create the directory '$out/no/such': No such file or directory" \
    $spdlc build examples/spirals.spn --python -o $out/no/such
expect py_named_spdl 1 "^tests/python/spdl_named.spn:2:7: error: a model named 'spdl' cannot be built as a Python module" \
    $spdlc build tests/python/spdl_named.spn --python -o $out/named
[ ! -e $out/named/spdl.py ] && ok || bad "py_named_spdl: spdl.py written"
expect py_named_numpy 1 "note: numpy.py would hide the module 'numpy' that the spdl package imports; rename the model" \
    $spdlc build tests/python/numpy_named.spn --python -o $out/named
# a path that is not a Python string: only the docstring mentions it
mkdir -p "$out/we\"ird\\N" && cp examples/spirals.spn "$out/we\"ird\\N/s.spn"
expect py_odd_path 0 "" $spdlc build "$out/we\"ird\\N/s.spn" --python -o $out/odd
expect py_odd_import 0 "<spirals.Model" env PYTHONPATH=python:$out/odd $py -c 'import spirals; print(spirals.Model())'

expect py_no_cc 1 "cannot run the C compiler" env CC=/nonexistent/cc $spdlc build examples/spirals.spn --python -o $out/nocc
[ ! -e $out/nocc/libspirals.so ] && ok || bad "py_no_cc: a library was left behind"

# the modules the tests load (two builds at a time), and the programs they compare with
b() { # b NAME FILE DIR [options]: spdlc build FILE --python -o DIR, log in NAME.log
    n=$1 f=$2 d=$3; shift 3
    $spdlc build "$f" --python -o "$d" "$@" > $out/$n.log 2>&1 || echo "$n" >> $out/failed
}
b robust examples/robust_digits.spn $out/m & b moons examples/moons_flow.spn $out/m; wait
b euler tests/gen/euler_tanh.spn $out/m & b arith tests/gen/arith.spn $out/m; wait
b lu tests/gen/lu_nll.spn $out/m & b fmaps tests/gen/feature_maps.spn $out/m; wait
b robust_f examples/robust_digits.spn $out/f --precision float & b digits examples/digits.spn $out/m; wait
$spdlc build examples/robust_digits.spn -o $out/robust > $out/robust_exe.log 2>&1 || echo robust_exe >> $out/failed &
$spdlc build examples/moons_flow.spn -o $out/moons > $out/moons_exe.log 2>&1 || echo moons_exe >> $out/failed; wait
if [ -s $out/failed ]; then
    for n in $(cat $out/failed); do bad "build $n"; sed 's/^/    /' $out/$n.log | head -8; done
    echo "python: $pass passed, $fail failed"; exit 1
fi
for n in robust moons euler arith lu fmaps robust_f digits; do
    [ ! -s $out/$n.log ] && ok || { bad "$n: spdlc build --python printed something"; sed 's/^/    /' $out/$n.log | head -4; }
done
for f in m/librobust_digits.so m/robust_digits.py m/libmoons_flow.so m/moons_flow.py f/librobust_digits.so; do
    [ -s $out/$f ] && ok || bad "$f not written"
done
[ -z "$(ls -A $out/m | grep '^\.')" ] && ok || bad "temporary files left in $out/m: $(ls -A $out/m | grep '^\.')"

# a short run of the program: a checkpoint with optimiser state for the safetensors tests
expect train 0 "" $out/robust train --data "builtin:digits?split=0.2&part=train" --epochs 2 --batch 64 --lr 0.01 \
    --out $out/ckpt.safetensors --quiet

# make install puts the spdl package where Debian's python3 finds it (here under DESTDIR)
inst=$(pwd)/$out/inst
expect install 0 "" make --no-print-directory install DESTDIR=$inst PREFIX=/usr/local
pkg=$(find $inst -name __init__.py -path '*dist-packages/spdl/*')
case "$pkg" in $inst/usr/local/lib/python3*/dist-packages/spdl/__init__.py) ok;; *) bad "spdl package installed as '$pkg'";; esac
expect inst_build 0 "" $inst/usr/local/bin/spdlc build examples/spirals.spn --python -o $out/inst_m
expect inst_import 0 "^(2,)$" env PYTHONPATH=$(dirname "$(dirname "$pkg")"):$out/inst_m $py -c \
    'import numpy as np, spirals; print(spirals.Model().forward(np.zeros(2)).shape)'

PYTHONPATH=python:$out/m OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    $py tests/python/test_python.py --spdlc $spdlc --out $out > $out/test_python.log 2>&1
st=$?
grep -v '^ok ' $out/test_python.log
n_ok=$(grep -c '^ok ' $out/test_python.log)
pass=$((pass + n_ok))
[ $st -eq 0 ] || fail=$((fail + 1))
echo "python: $pass passed, $fail failed ($(( $(date +%s) - start )) s)"
[ $fail -eq 0 ]
