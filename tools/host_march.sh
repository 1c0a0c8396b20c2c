#!/bin/sh
# host_march.sh - print the -march flag `spdlc build` uses on this machine
# (compiler/build.c host_march): x86-64-v4 with AVX-512 F/BW/CD/DQ/VL,
# x86-64-v3 with AVX2 and FMA, nothing otherwise. With an argument (v3 or
# v4), exit 0 exactly when this CPU runs that level. For the tests and
# benchmarks that must build generated code the way spdlc does.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { for f; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
v4=; v3=
[ "$(uname -m)" = x86_64 ] && has avx2 fma && v3=yes && has avx512f avx512bw avx512cd avx512dq avx512vl && v4=yes
case ${1:-} in
v4) [ -n "$v4" ] ;;
v3) [ -n "$v3" ] ;;
*) if [ -n "$v4" ]; then echo -march=x86-64-v4; elif [ -n "$v3" ]; then echo -march=x86-64-v3; fi ;;
esac
