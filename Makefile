# spdl - the structure-preserving network compiler.
#   make demo     build spdlc and run the main job
#   make check    run every test (unit, golden, end-to-end, sanitizers)
# See README.md. Generated sources go to build/, never into the tree.

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build

WARN    := -Wall -Wextra -Werror
CSTD    := -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE
OPT     ?= -O2 -g
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(EXTRA_CFLAGS)
STDLIB_DIR := $(PREFIX)/share/spdl/stdlib
LIB_DIR    := $(PREFIX)/lib
DATA_DIR   := $(PREFIX)/share/spdl/data
# The spdl Python package (python/spdl), where Debian's python3 finds it: /usr/lib/python3/dist-packages
# for PREFIX=/usr, PREFIX/lib/python3.X/dist-packages otherwise (on sys.path for /usr/local).
PYTHON  ?= /usr/bin/python3
PY_VER  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)
PY_DIR  ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(PY_VER)/dist-packages)
PY_SRC  := $(wildcard python/spdl/*.py)

COMPILER_SRC := arena diag ast parse source resolve tableau step analysis check check_stable check_lipschitz \
                check_nonexpansive check_invertible check_equivariant summary emit_c emit_ops emit_forward emit_adjoint emit_inverse emit_api build main
COMPILER_OBJ := $(COMPILER_SRC:%=$(B)/compiler/%.o) $(B)/compiler/lexer.o $(B)/compiler/parser.o \
                $(B)/compiler/prelude.o $(B)/compiler/kernels_text.o $(B)/compiler/header_text.o

.PHONY: all deps demo check clean install fuzz bench bench-speed bench-memory bench-hotspots bench-conv bench-threads bench-multilevel bench-convergence bench-grid-levels check-unit check-golden check-asan check-design check-badinput check-runtime check-gen check-emit check-warn check-inv check-e2e check-levels check-attack check-python bench-python check-difftest difftest check-mpi bench-mpi
# The MPI runtime (DESIGN §9, runtime/ranks.h) is built where mpicc exists: libspdl.a with ranks.o made by mpicc
# -DSPDL_MPI, which `spdlc build --mpi` links. Nothing else needs MPI.
MPICC   ?= mpicc
HAVE_MPICC := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo yes)
MPI_LIB := $(if $(HAVE_MPICC),$(B)/libspdl_mpi.a)
all: $(B)/spdlc $(B)/libspdl.a $(MPI_LIB)

SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CRITERION_LIBS := -lcriterion -lm
EXAMPLES := $(wildcard examples/*.spn) $(wildcard tests/design/*.spn) $(wildcard stdlib/*.spn)

deps:
	@tools/deps.sh $(DEPS_FOR)

demo: DEPS_FOR = demo
demo: deps all
	@B=$(B) tools/demo.sh

$(B)/compiler $(B)/runtime $(B)/tests:
	@mkdir -p $@

# Lemon: grouped target so -j runs it once; a conflict fails the build.
$(B)/compiler/parser.c $(B)/compiler/parser.h &: compiler/parser.y | $(B)/compiler
	@cp compiler/parser.y $(B)/compiler/parser.y
	@cd $(B)/compiler && lemon -q -l -T/usr/share/lemon/lempar.c parser.y > lemon.log 2>&1; \
	  st=$$?; cat lemon.log; if [ $$st -ne 0 ] || grep -q conflict lemon.log; then rm -f parser.c parser.h; exit 1; fi

$(B)/compiler/lexer.c: compiler/lexer.re | $(B)/compiler
	re2c -W -Werror --no-generation-date --no-version -i $< -o $@

$(B)/compiler/prelude.c: stdlib/schemes.spn tools/embed.sh | $(B)/compiler
	tools/embed.sh spdl_prelude $< > $@

$(B)/compiler/kernels_text.c: runtime/spdl_kernels.h tools/embed.sh | $(B)/compiler
	tools/embed.sh spdl_kernels $< > $@

$(B)/compiler/header_text.c: runtime/spdl.h tools/embed.sh | $(B)/compiler
	tools/embed.sh spdl_header $< > $@

$(B)/compiler/%.o: $(B)/compiler/%.c $(B)/compiler/parser.h $(wildcard compiler/*.h)
	$(CC) $(CFLAGS_ALL) -Icompiler -I$(B)/compiler -c $< -o $@

$(B)/compiler/%.o: compiler/%.c $(wildcard compiler/*.h) $(B)/compiler/parser.h
	$(CC) $(CFLAGS_ALL) -Icompiler -I$(B)/compiler -Iruntime -DSPDL_STDLIB_DIR='"$(STDLIB_DIR)"' -DSPDL_LIB_DIR='"$(LIB_DIR)"' -DSPDL_DATA_DIR='"$(DATA_DIR)"' -c $< -o $@

$(B)/spdlc: $(COMPILER_OBJ)
	$(CC) $(CFLAGS_ALL) $^ -o $@ -lm

# ---- libspdl: the runtime (kernels, optimisers, data, safetensors, driver) ----
RUNTIME_SRC := $(wildcard runtime/*.c)
RUNTIME_OBJ := $(RUNTIME_SRC:runtime/%.c=$(B)/runtime/%.o)
RUNTIME_LIBS := -lz -lm -pthread

# -fPIC: `spdlc build --python` links the part of libspdl a model needs into libM.so
$(B)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h) | $(B)/runtime
	$(CC) $(CFLAGS_ALL) -fPIC -Iruntime -c $< -o $@

$(B)/libspdl.a: $(RUNTIME_OBJ) | $(B)/runtime
	rm -f $@
	ar rcs $@ $(RUNTIME_OBJ)

# mpicc wraps $(CC) (OMPI_CC); Open MPI's header does not pass -pedantic, so it is not asked for here either
$(B)/runtime/ranks_mpi.o: runtime/ranks.c runtime/ranks.h | $(B)/runtime
	OMPI_CC=$(CC) $(MPICC) $(CFLAGS_ALL) -fPIC -DSPDL_MPI -Iruntime -c $< -o $@

$(B)/libspdl_mpi.a: $(filter-out $(B)/runtime/ranks.o,$(RUNTIME_OBJ)) $(B)/runtime/ranks_mpi.o
	rm -f $@
	ar rcs $@ $^

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIB_DIR) $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(STDLIB_DIR) $(DESTDIR)$(DATA_DIR)
	install -m 755 $(B)/spdlc $(DESTDIR)$(PREFIX)/bin/spdlc
	install -m 644 $(B)/libspdl.a $(DESTDIR)$(LIB_DIR)/libspdl.a
	$(if $(MPI_LIB),install -m 644 $(MPI_LIB) $(DESTDIR)$(LIB_DIR)/libspdl_mpi.a)
	install -m 644 runtime/spdl.h $(DESTDIR)$(PREFIX)/include/spdl.h
	install -m 644 stdlib/schemes.spn $(DESTDIR)$(STDLIB_DIR)/schemes.spn
	install -m 644 data/digits.csv.gz $(DESTDIR)$(DATA_DIR)/digits.csv.gz
	install -m 644 data/mnist.u8.gz $(DESTDIR)$(DATA_DIR)/mnist.u8.gz
	install -d $(DESTDIR)$(PY_DIR)/spdl
	install -m 644 $(PY_SRC) $(DESTDIR)$(PY_DIR)/spdl/

clean:
	rm -rf $(B)

# ---- tests ---------------------------------------------------------------------
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FRONT_OBJ := $(filter-out $(B)/compiler/main.o,$(COMPILER_OBJ))

$(B)/tests/unit: $(UNIT_SRC) $(wildcard tests/unit/*.h) tests/gen/group_filters.h runtime/spdl_kernels.h $(FRONT_OBJ) | $(B)/tests
	$(CC) $(CFLAGS_ALL) -Icompiler -I$(B)/compiler -Iruntime $(UNIT_SRC) $(FRONT_OBJ) -o $@ $(CRITERION_LIBS)

# spdl_gemm's intrinsics paths (what `spdlc build` compiles on such CPUs), which the convolutions and the C4/D4
# norm bound use too, and the float elementary functions as those levels vectorise them: these tests again
# with -march=x86-64-v3 (AVX2 and FMA) and -march=x86-64-v4 (AVX-512), built by check-unit on every x86-64
# host and run where this CPU has the instructions (tools/host_march.sh).
# The norm bound calls the AVX2 kernel itself at either level, so its slow test runs in the v3 binary only.
VEC_UNIT_SRC := tests/unit/test_gemm.c tests/unit/test_sgemm.c tests/unit/test_corr2.c tests/unit/test_kernels_float.c
$(B)/tests/unit_gemm_v3: $(VEC_UNIT_SRC) tests/unit/test_gconv_norm.c
$(B)/tests/unit_gemm_v4: $(VEC_UNIT_SRC)
$(B)/tests/unit_gemm_v3 $(B)/tests/unit_gemm_v4: $(B)/tests/unit_gemm_%: tests/gen/group_filters.h runtime/spdl_kernels.h | $(B)/tests
	$(CC) $(CFLAGS_ALL) -pedantic -march=x86-64-$* -Iruntime $(filter %.c,$^) -o $@ $(CRITERION_LIBS)
X86_64 := $(filter x86_64,$(shell uname -m))
VEC_LEVELS := $(if $(X86_64),v3 v4)

RUNTIME_TEST_SRC := $(wildcard tests/runtime/test_*.c)
$(B)/tests/runtime: $(RUNTIME_TEST_SRC) $(B)/libspdl.a | $(B)/tests
	$(CC) $(CFLAGS_ALL) -Iruntime $(RUNTIME_TEST_SRC) $(B)/libspdl.a -o $@ $(CRITERION_LIBS) $(RUNTIME_LIBS)

check-runtime: $(B)/tests/runtime
	cd tests/runtime && ../../$(B)/tests/runtime --jobs 2

# test_gconv_norm.py: the C4/D4 norm bound against numpy's SVD of the dense map (exact norms, the ratios printed)
check-unit: $(B)/tests/unit $(VEC_LEVELS:%=$(B)/tests/unit_gemm_%)
	cd tests && ../$(B)/tests/unit --jobs 2
	@for v in $(VEC_LEVELS); do \
	    if sh tools/host_march.sh $$v; then echo "kernels at x86-64-$$v:"; (cd tests && ../$(B)/tests/unit_gemm_$$v --jobs 2) || exit 1; \
	    else echo "this CPU does not run x86-64-$$v: its kernels are compiled, not run"; fi; \
	done
	$(PYTHON) tests/unit/test_gconv_norm.py $(CC) $(B)/tests/gnorm

check-golden: $(B)/spdlc
	tests/golden.sh $(B)/spdlc tests/golden

# Hostile inputs (empty, directory, unreadable, garbage, NUL, 1 MB lines, deep
# nesting, 10,000 errors...), generated at test time into $(B)/badinput.
check-badinput: $(B)/spdlc
	tests/badinput.sh $(B)/spdlc $(B)/badinput

check-design: $(B)/spdlc
	@for f in $(EXAMPLES); do \
	  case $$f in stdlib/*) continue;; esac; \
	  $(B)/spdlc check $$f > /dev/null 2>$(B)/check.log || { cat $(B)/check.log; echo "FAIL: spdlc check $$f"; exit 1; }; \
	done; echo "design: every example and DESIGN program checks"

# The front end over the whole corpus under AddressSanitizer + UBSan.
check-asan:
	@$(MAKE) --no-print-directory B=$(B)/asan OPT="$(SAN)" $(B)/asan/spdlc >/dev/null
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 tests/golden.sh $(B)/asan/spdlc tests/golden
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 tests/badinput.sh $(B)/asan/spdlc $(B)/asan/badinput
	@for f in $(EXAMPLES); do \
	  ASAN_OPTIONS=detect_leaks=1:exitcode=99 $(B)/asan/spdlc check $$f >/dev/null 2>$(B)/asan.log; \
	  if [ $$? -eq 99 ] || grep -q Sanitizer $(B)/asan.log; then cat $(B)/asan.log; exit 1; fi; \
	done; echo "asan: clean over golden tests, bad inputs and examples"
	@$(MAKE) --no-print-directory B=$(B)/asan OPT="$(SAN)" $(B)/asan/tests/runtime >/dev/null
	@cd tests/runtime && ASAN_OPTIONS=detect_leaks=1 ../../$(B)/asan/tests/runtime --jobs 2 >../../$(B)/asan/runtime.log 2>&1; \
	  rc=$$?; if [ $$rc -ne 0 ] || grep -qE "Sanitizer|leaked|runtime error" ../../$(B)/asan/runtime.log; then \
	    cat ../../$(B)/asan/runtime.log; exit 1; fi; \
	  echo "asan: runtime library clean over its tests ($$(tail -1 ../../$(B)/asan/runtime.log))"

# Generated code: gradients against finite differences, gcc and clang
# -pedantic, sanitizers, the API contract, float builds; golden emitted C.
GEN_MODELS := $(wildcard tests/gen/*.spn) $(wildcard tests/step/*.spn) tests/design/pointsets.spn tests/design/spirals.spn tests/design/robust.spn tests/design/antisym.spn
check-gen: $(B)/spdlc
	tests/gen.sh $(B)/spdlc $(GEN_MODELS)

check-emit: $(B)/spdlc
	tests/emit.sh $(B)/spdlc

# DESIGN §6: every model the tests emit compiles warning-free, by gcc and clang at
# -std=c11 -Werror -pedantic -Wall -Wextra, in double and float, under every memory
# mode the model allows (compile only, -O0, two at a time).
WARN_MODELS := $(wildcard tests/gen/*.spn tests/step/*.spn tests/design/*.spn examples/*.spn tests/inv/*.spn tests/emit/*.spn)
check-warn: $(B)/spdlc
	tests/warn.sh $(B)/spdlc $(WARN_MODELS)

# Programs made by spdlc build, end to end (train, resume, eval, plot, ...).
check-e2e: $(B)/spdlc $(B)/libspdl.a
	tests/e2e.sh $(B)/spdlc

# Models proved invertible: round trips (double and float), log-determinants,
# gradients of the three memory modes.
check-inv: $(B)/spdlc
	tests/inv.sh $(B)/spdlc

# spdlc build --levels and train --multilevel (DESIGN §11): each level's C against the
# program written with its flows' layers halved (generated programs, every construct);
# prolongation against NumPy, O(h) loss changes, learned steps on the simplex, a killed
# multilevel run resumed to the same bits, and the errors. --grid-levels likewise: each
# level's C against the program on coarser grids, its predictions against that program's
# on images NumPy restricted.
check-levels: DEPS_FOR = check
check-levels: deps $(B)/spdlc $(B)/libspdl.a
	$(PYTHON) tests/levels/emit_levels.py $(B)/spdlc --count 300 --grid-count 600
	$(PYTHON) tests/levels/multilevel.py $(B)/spdlc $(B)/levels
	$(PYTHON) tests/levels/grid_levels.py $(B)/spdlc $(B)/grid-levels

# Certificates under attack (tests/attack/README.md): random models whose
# lipschitz and nonexpansive certificates are attacked with random pairs and
# vjp-driven gradient ascent, and numerical demonstrations that the configurations
# the golden refusals reject really do violate the property.
check-attack: $(B)/spdlc
	python3 tests/attack/run_attack.py $(B)/spdlc --out $(B)/attack --cc $(CC)
	python3 tests/attack/run_demo.py $(B)/spdlc --out $(B)/attack/demo --cc $(CC)

# Differential testing against PyTorch (tests/difftest/README.md): random
# well-typed programs, each compared with an independent float64 twin
# (forward, loss, gradient, vjp, inverse, log-det) and its proved
# certificates attacked; the regression programs of FAILURES.md. Seeds fixed.
# `make difftest N=1000 [SEED=S] [ENABLE=all]` runs a campaign; about 10% of the
# programs are group programs (C4/D4, Z(n), S(n)); DIFFTEST_FLAGS=--groups-only
# runs group programs alone.
DIFFTEST_PY := /usr/bin/python3
N ?= 1000
SEED ?= 20261201
ENABLE ?=
DIFFTEST_OPT ?= -O1
DIFFTEST_FLAGS ?=
check-difftest: DEPS_FOR = check
check-difftest: deps $(B)/spdlc
	$(DIFFTEST_PY) tests/difftest/regress.py $(B)/spdlc $(B)/difftest/regress --cc $(CC) $(if $(ENABLE),--enable $(ENABLE))
	$(DIFFTEST_PY) tests/difftest/difftest.py $(B)/spdlc --count 200 --out $(B)/difftest --opt=$(DIFFTEST_OPT) --float --cc $(CC) $(if $(ENABLE),--enable $(ENABLE)) $(DIFFTEST_FLAGS)
difftest: DEPS_FOR = check
difftest: deps $(B)/spdlc
	$(DIFFTEST_PY) tests/difftest/difftest.py $(B)/spdlc --count $(N) --seed $(SEED) --out $(B)/difftest --opt=$(DIFFTEST_OPT) --memory --float --cc $(CC) $(if $(ENABLE),--enable $(ENABLE)) $(DIFFTEST_FLAGS)

# From Python (DESIGN §10): spdlc build --python, the spdl package with NumPy and PyTorch
# (tests/python/README.md); Debian's python3, which has python3-numpy and python3-torch.
check-python: $(B)/spdlc $(B)/libspdl.a
	tests/python.sh $(B)/spdlc $(PYTHON)

# MPI data parallelism (DESIGN §9): spdlc build --mpi, mpirun -np 2 against one process bit for bit, resume,
# rank 0 alone writing, failing ranks (tests/mpi.sh). tests/mpi_asan.sh runs the MPI runtime under ASan (by hand).
check-mpi: DEPS_FOR = check
check-mpi: deps $(B)/spdlc $(B)/libspdl.a
	@$(MAKE) --no-print-directory $(B)/libspdl_mpi.a
	tests/mpi.sh $(B)/spdlc

check: deps all check-unit check-runtime check-golden check-badinput check-design check-asan check-emit check-warn check-gen check-inv check-e2e check-levels check-attack check-python check-difftest check-mpi

# ---- fuzzing --------------------------------------------------------------------
# libFuzzer on the front end (lexer, parser, resolver, diagnostics) under ASan
# and UBSan; seeds from the golden tests, the DESIGN programs, examples and
# stdlib. The corpus grows in $(B)/fuzz/corpus (never committed); crashes go
# to $(B)/fuzz/. See tests/fuzz/README.md for the recorded campaign.
FUZZ_SECONDS ?= 600
FUZZ_FLAGS   ?=
FUZZ_SAN   := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_UNITS := arena diag ast parse source resolve tableau summary lexer parser prelude
FUZZ_OBJ   := $(FUZZ_UNITS:%=$(B)/fuzz/compiler/%.o)

$(B)/fuzz/fuzz_front: tests/fuzz/fuzz_front.c $(wildcard compiler/*.c compiler/*.h) compiler/lexer.re compiler/parser.y stdlib/schemes.spn
	@$(MAKE) --no-print-directory B=$(B)/fuzz CC=clang OPT="$(FUZZ_SAN)" $(FUZZ_OBJ) >/dev/null
	clang $(CSTD) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer -Icompiler -I$(B)/fuzz/compiler tests/fuzz/fuzz_front.c $(FUZZ_OBJ) -o $@ -lm

fuzz: $(B)/fuzz/fuzz_front
	@mkdir -p $(B)/fuzz/corpus $(B)/fuzz/seeds
	@for f in tests/golden/*.spn tests/golden/inc/*.spn tests/golden/inc/lib/*.spn tests/design/*.spn \
	    stdlib/*.spn $(wildcard examples/*.spn) tests/fuzz/seeds/*.spn; do \
	  cp "$$f" "$(B)/fuzz/seeds/$$(echo "$$f" | tr / _)"; done
	$(B)/fuzz/fuzz_front $(B)/fuzz/corpus $(B)/fuzz/seeds -dict=tests/fuzz/spdl.dict \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(B)/fuzz/ -print_final_stats=1 $(FUZZ_FLAGS)

# ---- benchmarks (not part of make check; see bench/README.md) ---------------------
# Speed against PyTorch and OpenBLAS dgemm (issue 3), memory by --memory mode and
# depth (issue 6); bench-hotspots profiles one training step with perf (WIDTH=64);
# bench-conv times the p4 group-convolution models against PyTorch (issue 11).
# Results go to build/bench/*.md. ROUNDS, REPEATS, SEC etc. override the defaults.
BENCH_PY := /usr/bin/python3
bench bench-speed bench-memory bench-hotspots bench-conv bench-python bench-threads: DEPS_FOR = bench
bench: deps all
	$(BENCH_PY) bench/speed.py
	$(BENCH_PY) bench/memory.py
	$(BENCH_PY) bench/conv.py
bench-speed: deps all
	$(BENCH_PY) bench/speed.py
bench-memory: deps all
	$(BENCH_PY) bench/memory.py
bench-hotspots: deps all
	$(BENCH_PY) bench/hotspots.py $(or $(WIDTH),64)
bench-conv: deps all
	$(BENCH_PY) bench/conv.py
# the training step split into tiles across threads (issue 12 item 3): its cost on one thread, the speed-up on
# every CPU, `EXE train --threads N` throughput, PyTorch with one and with its default threads
bench-threads: deps all
	$(BENCH_PY) bench/threads.py
# time to quality of train --multilevel against training from scratch (DESIGN §11)
bench-multilevel: all
	$(BENCH_PY) bench/multilevel.py $(B)/spdlc $(B)/bench/multilevel
# the deep limit (DESIGN §11): spirals with an H1 penalty at N = 4..256, trained independently
# and by nested iteration; losses, test accuracy, |theta^N - P theta^(N/2)|; a gnuplot picture
bench-convergence: all
	$(BENCH_PY) bench/convergence.py $(B)/spdlc $(B)/bench/convergence
# the same for coarser images first (--grid-levels): a C4 MNIST model, 14x14 then 28x28
bench-grid-levels: all
	$(BENCH_PY) bench/grid_levels.py $(B)/spdlc $(B)/bench/grid-levels
# MPI data parallelism (DESIGN §9): mpirun -np 2 EXE train --threads 1 against one process on one thread, width 64,
# batch 1024 (RANKS, WIDTH, BATCH, ROUNDS override); the time a step spends in MPI calls
bench-mpi: DEPS_FOR = bench
bench-mpi: deps all
	@$(MAKE) --no-print-directory $(B)/libspdl_mpi.a
	$(BENCH_PY) bench/mpi.py
# the Python binding's per-call cost and a PyTorch training loop against pure PyTorch (issue 13)
bench-python: deps all
	$(BENCH_PY) bench/python_overhead.py
