#!/bin/sh
# deps.sh - make sure the Debian packages the build and the tests need are
# present. Installs the missing ones with apt-get when run as root; otherwise
# stops with one line naming them. Usage: tools/deps.sh [demo|check|bench]
set -u
what=${1:-check}

missing=""
need() { # need PACKAGE TEST...: PACKAGE is missing unless the test succeeds
    pkg=$1; shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}
deb_installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
has_header() { printf '#include <%s>\n' "$1" | ${CC:-cc} -E -x c - >/dev/null 2>&1; }

need re2c command -v re2c
need lemon test -f /usr/share/lemon/lempar.c -a -x /usr/bin/lemon
need zlib1g-dev has_header zlib.h
need gnuplot-nox command -v gnuplot
need python3 command -v python3
if [ "$what" = check ]; then
    need libcriterion-dev has_header criterion/criterion.h
    need clang command -v clang
    need python3-numpy /usr/bin/python3 -c 'import numpy'
    need python3-torch /usr/bin/python3 -c 'import torch'
    # MPI data parallelism (spdlc build --mpi, tests/mpi.sh): Open MPI's mpirun and its mpicc with mpi.h
    need openmpi-bin command -v mpirun
    need libopenmpi-dev command -v mpicc
fi
if [ "$what" = bench ]; then
    need openmpi-bin command -v mpirun
    need libopenmpi-dev command -v mpicc
    # OpenBLAS's own header: cblas.h alone may be the reference BLAS's (libblas-dev, which python3-torch pulls in)
    need libopenblas-dev has_header openblas_config.h
    # the pthread OpenBLAS also provides libblas.so.3, which PyTorch's float64 products (and
    # its im2col convolutions) run on; without it they run on the reference BLAS
    if command -v dpkg-query >/dev/null 2>&1; then need libopenblas0-pthread deb_installed libopenblas0-pthread; fi
    need python3-numpy /usr/bin/python3 -c 'import numpy'
    need python3-torch /usr/bin/python3 -c 'import torch'
    need linux-perf command -v perf
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "spdl: missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "spdl: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq $missing >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq $missing >/dev/null || {
        echo "spdl: apt-get could not install:$missing" >&2
        exit 1
    }
fi
