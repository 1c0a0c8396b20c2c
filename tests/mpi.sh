#!/bin/sh
# mpi.sh SPDLC - `spdlc build --mpi` and `mpirun -np 2 EXE ...` (DESIGN §9) on
# one machine: training under two ranks gives the same loss log, weights and
# checkpoints, bit for bit, as one process with the same global batch (two
# models: the spirals flow and the C4 digits model); --resume under MPI
# equals a run in one go; eval, predict and certify print what one process
# prints; rank 0 alone writes files; and a rank that fails (its data file
# missing, other data, a checkpoint that cannot be written or read, killed)
# ends the job with one clear error and a nonzero exit, never a hang (every
# mpirun runs under `timeout`).
set -u
spdlc=$1
out=${MPI_OUT:-build/mpi-test}
rm -rf "$out"; mkdir -p "$out"
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL: $*"; }

if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    echo "FAIL: mpirun and mpicc are needed (apt-get install openmpi-bin libopenmpi-dev; make deps)"; exit 1
fi
# root needs Open MPI's consent; a small container has fewer cores than ranks
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { timeout 60 mpirun --oversubscribe "$@"; }

# expect NAME STATUS PATTERN CMD...: exit status and a line matching PATTERN (stdout+stderr)
expect() {
    name=$1 want=$2 pat=$3; shift 3
    "$@" >"$out/$name.log" 2>&1
    got=$?
    if [ $got -eq 124 ]; then bad "$name: timed out (a hang)"; return; fi
    if [ "$want" = nonzero ] && [ $got -ne 0 ]; then got=nonzero; fi
    if [ "$got" != "$want" ]; then bad "$name: exit $got, expected $want"; sed 's/^/    /' "$out/$name.log" | head -8; return; fi
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$out/$name.log"; then
        bad "$name: no line matching '$pat'"; sed 's/^/    /' "$out/$name.log" | head -8; return
    fi
    ok
}
# same NAME A B: files equal byte for byte
same() { if cmp -s "$2" "$3"; then ok; else bad "$1: $2 and $3 differ"; fi; }
# same_log NAME A B: the logs' columns but `seconds`
same_log() {
    cut -d, -f1-5 "$2" > "$2.cols"; cut -d, -f1-5 "$3" > "$3.cols"
    if [ -s "$2.cols" ] && cmp -s "$2.cols" "$3.cols"; then ok; else bad "$1: the logs differ"; diff "$2.cols" "$3.cols" | head -4; fi
}
# errors NAME N: the job's log holds exactly N lines of our own errors ("PROG: error:")
errors() {
    n=$(grep -c ': error: ' "$out/$1.log")
    if [ "$n" = "$2" ]; then ok; else bad "$1: $n error lines, expected $2"; sed 's/^/    /' "$out/$1.log" | head -8; fi
}

# --- building ---------------------------------------------------------------------------
expect build_sp 0 "" $spdlc build examples/spirals.spn -o $out/sp
expect build_sp_mpi 0 "" $spdlc build examples/spirals.spn --mpi -o $out/sp_mpi
# the C4 and robust digit models: their --mpi programs outside mpirun are the one process (the same
# code as without --mpi, ranks.c's one-process path; spirals checks that against the plain build)
expect build_c4_mpi 0 "" $spdlc build examples/digits_c4.spn --mpi -o $out/c4_mpi
expect build_robust_mpi 0 "" $spdlc build examples/robust_digits.spn --mpi -o $out/robust_mpi
expect no_mpicc 1 "build --mpi needs the MPI compiler wrapper" env MPICC=/nonexistent/mpicc \
    $spdlc build examples/spirals.spn --mpi -o $out/never
expect mpi_python 2 "give --mpi or --python" $spdlc build examples/spirals.spn --mpi --python -o $out/never
expect mpi_check 2 "an option of build" $spdlc check examples/spirals.spn --mpi
expect no_mpi_build 1 "built without MPI: build it with spdlc build --mpi" mpi -np 2 $out/sp train \
    --data "builtin:spirals?n=200" --epochs 1 --quiet --out $out/never.safetensors
errors no_mpi_build 1
# an --mpi program outside mpirun is one process
expect alone 0 "" $out/sp_mpi train --data "builtin:spirals?n=600" --epochs 2 --batch 200 --seed 3 --threads 1 \
    --quiet --out $out/alone.safetensors

# --- two ranks against one process: the same bits ---------------------------------------------
# spirals: 600 samples (540 train), batch 200 = 4 tiles (the last partial), 6 epochs; one thread a
# rank, then two threads a rank; the C4 digits model, batch 100 = 2 tiles.
SP="--data builtin:spirals?n=600 --batch 200 --lr 0.02 --seed 3 --quiet"
expect sp_one 0 "" $out/sp train $SP --epochs 6 --threads 1 --out $out/one.safetensors
mkdir -p $out/r0 $out/r1
# each rank in its own directory (the same relative paths): rank 0 alone may write there
expect sp_two 0 "" mpi -np 2 sh -c "cd $out/r\$OMPI_COMM_WORLD_RANK && exec ../sp_mpi train --data 'builtin:spirals?n=600' \
    --epochs 6 --batch 200 --lr 0.02 --seed 3 --quiet --threads 1 --out two.safetensors"
same sp_weights $out/one.safetensors $out/r0/two.safetensors
same_log sp_log $out/one.log.csv $out/r0/two.log.csv
if [ -z "$(ls -A $out/r1)" ]; then ok; else bad "rank 1 wrote files: $(ls $out/r1)"; fi
expect sp_two_threads 0 "" mpi -np 2 sh -c "exec $out/sp_mpi train --data 'builtin:spirals?n=600' --epochs 6 --batch 200 \
    --lr 0.02 --seed 3 --quiet --threads 2 --out $out/two_t2.safetensors"
same sp_weights_2threads $out/one.safetensors $out/two_t2.safetensors
# three ranks on four tiles, and a batch of one tile (a rank with none)
expect sp_three 0 "" mpi -np 3 $out/sp_mpi train --data "builtin:spirals?n=600" --epochs 6 --batch 200 --lr 0.02 --seed 3 \
    --quiet --threads 1 --out $out/three.safetensors
same sp_weights_3ranks $out/one.safetensors $out/three.safetensors
# --noise: each rank adds the noise of its own rows of the batch only, the same as the one process adds
expect sp_noise_one 0 "" $out/sp train $SP --epochs 6 --threads 1 --noise 0.2 --out $out/noise_one.safetensors
expect sp_noise_three 0 "" mpi -np 3 $out/sp_mpi train $SP --epochs 6 --threads 1 --noise 0.2 \
    --out $out/noise_three.safetensors
same sp_noise_3ranks $out/noise_one.safetensors $out/noise_three.safetensors
expect sp_small_one 0 "" $out/sp train --data "builtin:spirals?n=300" --epochs 2 --batch 50 --seed 3 --quiet --threads 1 \
    --out $out/small1.safetensors
expect sp_small_two 0 "" mpi -np 2 $out/sp_mpi train --data "builtin:spirals?n=300" --epochs 2 --batch 50 --seed 3 --quiet \
    --threads 1 --out $out/small2.safetensors
same sp_small_batch $out/small1.safetensors $out/small2.safetensors

C4="--data builtin:digits?n=300 --epochs 2 --batch 100 --seed 2 --quiet --threads 1"
expect c4_one 0 "" $out/c4_mpi train $C4 --out $out/c4one.safetensors
expect c4_two 0 "" mpi -np 2 $out/c4_mpi train $C4 --out $out/c4two.safetensors
same c4_weights $out/c4one.safetensors $out/c4two.safetensors
same_log c4_log $out/c4one.log.csv $out/c4two.log.csv

# --- resume under MPI: 3 epochs (a checkpoint), then to 6, equals 6 in one go ---------------------
expect half 0 "" mpi -np 2 $out/sp_mpi train $SP --epochs 3 --threads 1 --out $out/half.safetensors
expect half_one 0 "" $out/sp train $SP --epochs 3 --threads 1 --out $out/half1.safetensors
same checkpoint $out/half1.safetensors $out/half.safetensors
expect resume 0 "" mpi -np 2 $out/sp_mpi train $SP --epochs 6 --threads 1 --resume $out/half.safetensors \
    --out $out/half.safetensors
same resume_weights $out/one.safetensors $out/half.safetensors
same_log resume_log $out/one.log.csv $out/half.log.csv

# --- eval, predict, certify: what one process prints ---------------------------------------------
for c in eval predict; do
    $out/sp $c --data "builtin:spirals?n=300" --weights $out/one.safetensors >$out/$c.1 2>&1
    expect $c 0 "" mpi -np 2 $out/sp_mpi $c --data "builtin:spirals?n=300" --weights $out/one.safetensors
    same $c $out/$c.1 $out/$c.log
done
R="--data builtin:digits?n=200 --weights $out/robust.safetensors"
expect robust_train 0 "" $out/robust_mpi train --data "builtin:digits?n=200" --epochs 1 --quiet --out $out/robust.safetensors
$out/robust_mpi certify $R >$out/certify.1 2>&1
expect certify 0 "certified accuracy" mpi -np 2 $out/robust_mpi certify $R
same certify $out/certify.1 $out/certify.log
expect predict_file 0 "" mpi -np 2 sh -c "cd $out/r\$OMPI_COMM_WORLD_RANK && exec ../sp_mpi predict --data 'builtin:spirals?n=300' \
    --weights ../one.safetensors -o rows.csv"
same predict_file $out/predict.1 $out/r0/rows.csv
if [ ! -e $out/r1/rows.csv ]; then ok; else bad "rank 1 wrote its predictions"; fi

# --- a rank that fails: one clear error, a nonzero exit, no hang --------------------------------
awk 'BEGIN { srand(5); for (i = 0; i < 300; i++) printf "%.6f,%.6f,%d\n", rand(), rand(), i % 2 }' > $out/r0/data.csv
rm -f $out/r1/*
t1() { mpi -np 2 sh -c "cd $out/r\$OMPI_COMM_WORLD_RANK && exec ../sp_mpi train --data data.csv --epochs 2 --quiet --threads 1 $*"; }
expect missing_on_1 nonzero "rank 1 of 2: data.csv: cannot open" t1
errors missing_on_1 1
sed '7s/.*/0.5,0.5,1/' $out/r0/data.csv > $out/r1/data.csv
expect differs_on_1 nonzero "the data data.csv on rank 1 differ from rank 0's" t1
errors differs_on_1 1
expect other_args nonzero "rank 1 was started with other arguments" mpi -np 2 sh -c \
    "exec $out/sp_mpi train --data builtin:spirals --epochs 1 --quiet --seed \$OMPI_COMM_WORLD_RANK --out $out/never.safetensors"
errors other_args 1
expect unwritable nonzero "cannot write" mpi -np 2 $out/sp_mpi train --data "builtin:spirals?n=200" --epochs 1 --quiet \
    --out /nonexistent/w.safetensors
errors unwritable 1
expect resume_missing nonzero "nothere.safetensors: cannot open" mpi -np 2 $out/sp_mpi train --data "builtin:spirals?n=200" \
    --epochs 2 --quiet --resume $out/nothere.safetensors --out $out/never.safetensors
errors resume_missing 1
expect weights_missing nonzero "nothere.safetensors: cannot open" mpi -np 2 $out/sp_mpi eval --data "builtin:spirals?n=200" \
    --weights $out/nothere.safetensors
errors weights_missing 1
# the checkpoint is rank 0's: a resume works where the other ranks have no copy
cp $out/half1.safetensors $out/r0/ck.safetensors
expect resume_rank0 0 "" mpi -np 2 sh -c "cd $out/r\$OMPI_COMM_WORLD_RANK && exec ../sp_mpi train --data 'builtin:spirals?n=600' \
    --epochs 6 --batch 200 --lr 0.02 --seed 3 --quiet --threads 1 --resume ck.safetensors --out w.safetensors"
same resume_rank0 $out/one.safetensors $out/r0/w.safetensors
# rank 1 killed in the middle of training: mpirun ends the job
expect killed nonzero "" mpi -np 2 sh -c "if [ \$OMPI_COMM_WORLD_RANK = 1 ]; then timeout -s KILL 1 $out/sp_mpi train \
    --data 'builtin:spirals?n=20000' --epochs 200 --quiet --out $out/k.safetensors; else exec $out/sp_mpi train \
    --data 'builtin:spirals?n=20000' --epochs 200 --quiet --out $out/k.safetensors; fi"

echo "mpi: $pass passed, $fail failed"
[ $fail -eq 0 ]
