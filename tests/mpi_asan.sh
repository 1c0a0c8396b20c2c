#!/bin/sh
# mpi_asan.sh - the MPI runtime (libspdl_mpi.a) under AddressSanitizer and
# UBSan, once, by hand (not part of make check: a sanitized Open MPI job is
# slow to start): the runtime built with -fsanitize=address,undefined, a
# spirals program linked with it by `spdlc build --mpi`, two ranks training
# (with a resume), eval and predict, and a failing rank. Open MPI's own
# libraries keep memory to the end of the process, so LeakSanitizer leaves
# out leaks allocated inside them (tests/mpi_lsan.supp, and those whose
# allocating frame is not spdl's: Open MPI's dlclose'd components show as
# "<unknown module>"); a leak of ours, or any other ASan or UBSan report,
# fails. Each rank's report goes to its own file
# (rank 1's stderr is /dev/null under MPI: runtime/ranks.h).
# Usage: tests/mpi_asan.sh [BUILD_DIR]   (run from the top of the tree)
set -u
B=${1:-build}
A=$B/asan-mpi
out=$A/run
SAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
make --no-print-directory -j2 B=$A OPT="$SAN" $A/libspdl_mpi.a >/dev/null || exit 1
make --no-print-directory -j2 $B/spdlc >/dev/null || exit 1
rm -rf "$out"; mkdir -p "$out"
SPDL_LIB=$A SPDL_CFLAGS="$SAN" $B/spdlc build examples/spirals.spn --mpi -o $out/sp || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS="detect_leaks=1:log_path=$out/asan:exitcode=99"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/mpi_lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$out/ubsan"
fail=0
run() { # run WANT CMD...
    want=$1; shift
    timeout 120 mpirun --oversubscribe "$@" >>$out/job.log 2>&1
    got=$?
    # 99: LeakSanitizer found leaks; which are ours is decided from the reports below
    if [ "$want" = 0 ] && [ $got -ne 0 ] && [ $got -ne 99 ]; then echo "FAIL: exit $got: $*"; fail=1; fi
    if [ "$want" != 0 ] && { [ $got -eq 0 ] || [ $got -eq 124 ]; }; then echo "FAIL: exit $got: $*"; fail=1; fi
}
D="--data builtin:spirals?n=600 --batch 200 --seed 3 --quiet"
run 0 -np 2 $out/sp train $D --epochs 2 --threads 2 --out $out/w.safetensors
run 0 -np 2 $out/sp train $D --epochs 4 --threads 1 --resume $out/w.safetensors --out $out/w.safetensors
run 0 -np 2 $out/sp eval --data "builtin:spirals?n=300" --weights $out/w.safetensors
run 0 -np 2 $out/sp predict --data "builtin:spirals?n=300" --weights $out/w.safetensors -o $out/rows.csv
mkdir -p $out/r0 $out/r1
awk 'BEGIN { srand(5); for (i = 0; i < 100; i++) printf "%.6f,%.6f,%d\n", rand(), rand(), i % 2 }' > $out/r0/data.csv
run 1 -np 2 sh -c "cd $out/r\$OMPI_COMM_WORLD_RANK && exec ../sp train --data data.csv --epochs 1 --quiet"
# any report but a leak fails; a leak fails when its allocation (frame #1) is in spdl's code: the others
# are Open MPI's, made in its components (dlclose'd before the report: "<unknown module>") or libraries
for f in $out/asan.* $out/ubsan.*; do
    [ -f "$f" ] || continue
    if grep -v -e '^ *#' -e 'leak of' -e '^$' -e 'SUMMARY: AddressSanitizer: [0-9]* byte(s) leaked' -e '^=*$' \
        -e 'ERROR: LeakSanitizer: detected memory leaks' -e 'Objects leaked above' -e '^0x' "$f" | grep -q .; then
        echo "FAIL: sanitizer report $f:"; head -40 "$f"; fail=1
    elif awk '/leak of/ { want = 1; next } want && /^ *#1 / { if ($0 ~ /spdl_|runtime\/|compiler\/|M_|spirals/) bad = 1; want = 0 }
              END { exit bad ? 0 : 1 }' "$f"; then
        echo "FAIL: a leak in spdl's code ($f):"; grep -B2 -A8 -E '#1 .*(spdl_|runtime/|spirals)' "$f" | head -40; fail=1
    fi
done
[ $fail -eq 0 ] && echo "mpi asan: the MPI runtime is clean under ASan, UBSan and LSan (2 ranks: train, resume, eval, predict, a failing rank)"
exit $fail
