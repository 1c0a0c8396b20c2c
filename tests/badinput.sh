#!/bin/sh
# badinput.sh SPDLC OUTDIR - hostile inputs for `spdlc check`: each must give
# a diagnostic and exit status 1 (or 0 where the input is valid), never a
# crash, a hang, a sanitizer report or a flood of output. The large inputs
# are generated here, into OUTDIR, so no megabyte files live in the tree.
# Run from the repository root; run it on the ASan build too (make check-asan).
set -u
spdlc=$1
out=$2
mkdir -p "$out"
pass=0; fail=0; skip=0
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# expect NAME RC SECONDS FILE [NEEDLE...]: run spdlc check FILE (exit RC);
# stderr must contain every NEEDLE and no sanitizer report. SECONDS is what
# the case takes on an idle machine; the run is killed as hung only after 30
# times that (at least 60 s), since these machines are shared and the ASan
# build is several times slower: a hang guard, not a speed test.
expect() {
    name=$1; want=$2; limit=$3; file=$4; shift 4
    guard=$((limit * 30 > 60 ? limit * 30 : 60))
    NO_COLOR=1 timeout $guard $spdlc check "$file" >"$out/$name.out" 2>"$out/$name.err"
    rc=$?
    why=""
    if [ $rc -eq 124 ]; then why="hung (killed after $guard s)"
    elif [ $rc -ge 128 ] || [ $rc -eq 99 ]; then why="crashed (status $rc)"
    elif grep -q -e 'Sanitizer' -e 'runtime error:' "$out/$name.err"; then why="sanitizer report"
    elif [ $rc -ne "$want" ]; then why="exit status $rc, expected $want"
    else
        for needle in "$@"; do
            if ! grep -qF -- "$needle" "$out/$name.err"; then why="no '$needle' in stderr"; break; fi
        done
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: $why"
        head -c 2000 "$out/$name.err" | head -20
    fi
}

# at_most NAME BYTES: the last run printed at most BYTES bytes of diagnostics.
at_most() {
    n=$(wc -c <"$out/$1.err")
    if [ "$n" -gt "$2" ]; then
        fail=$((fail + 1)); echo "FAIL $1: $n bytes of diagnostics, expected at most $2"
    else
        pass=$((pass + 1))
    fi
}

# --- files that are not programs -----------------------------------------------
: >"$out/empty.spn"
expect empty 1 5 "$out/empty.spn" "empty.spn:1:1: error: no model in this file"

printf '\n\n   \n// only a comment\n' >"$out/blank.spn"
expect blank 1 5 "$out/blank.spn" "error: no model in this file"

rm -rf "$out/dir.spn"; mkdir -p "$out/dir.spn"
expect directory 1 5 "$out/dir.spn" "spdlc: error: '$out/dir.spn' is a directory, not a .spn file"

rm -f "$out/missing.spn"
expect missing 1 5 "$out/missing.spn" "spdlc: error: cannot open '$out/missing.spn': No such file or directory"

printf 'model m { input x : R[1]; output p = x; loss sum(p); }\n' >"$out/unreadable.spn"
chmod 000 "$out/unreadable.spn"
if [ "$(id -u)" != 0 ]; then
    expect unreadable 1 5 "$out/unreadable.spn" "cannot open '$out/unreadable.spn': Permission denied"
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$spdlc" --version >/dev/null 2>&1; then
    # root reads a mode-000 file anyway: run spdlc as nobody instead
    spdlc_root=$spdlc
    spdlc="setpriv --reuid=65534 --regid=65534 --clear-groups $spdlc_root"
    expect unreadable 1 5 "$out/unreadable.spn" "cannot open '$out/unreadable.spn': Permission denied"
    spdlc=$spdlc_root
else
    echo "skip unreadable: running as root (chmod 000 does not stop root reading) and cannot drop to nobody"
    skip=$((skip + 1))
fi
chmod 644 "$out/unreadable.spn"

# A file over the 64 MB limit (sparse: nothing is written).
rm -f "$out/huge.spn"; truncate -s 70M "$out/huge.spn"
expect too_large 1 5 "$out/huge.spn" "is too large (73400320 bytes; the limit is 67108864)"
rm -f "$out/huge.spn"

# --- bytes that are not text -------------------------------------------------
# 64 KB of pseudo-random bytes, the same every run.
$PY -c "
import random, sys
random.seed(2024)
sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(65536)))" >"$out/garbage.spn"
expect garbage 1 5 "$out/garbage.spn" "error:" "more errors not shown"
at_most garbage 20000

head -c 4096 /dev/zero >"$out/zeros.spn"
expect nul_only 1 5 "$out/zeros.spn" "zeros.spn:1:1: error: NUL byte in program text" "spdlc: note: 4076 more errors not shown"

printf 'model m {\n    input x : R[4];\0\0\n    output p = x;\n    loss sum(p);\n}\n' >"$out/nul.spn"
expect nul_in_model 1 5 "$out/nul.spn" "nul.spn:2:20: error: NUL byte in program text" "nul.spn:2:21: error: NUL byte in program text"

# A valid model with CRLF line ends and a UTF-8 comment.
printf 'model m {\r\n    input x : R[4];  // caf\303\251\r\n    label c : class[4];\r\n    output p = softmax(x);\r\n    loss cross_entropy(p, c);\r\n}\r\n' >"$out/crlf.spn"
expect crlf_valid 0 5 "$out/crlf.spn"

# --- size and nesting ------------------------------------------------------------
# A 1 MB line that is a valid model: 60,000 declarations on one line.
$PY -c "
print('model m { input x : R[4]; label c : class[4]; ' + ''.join('let v%d = %d * x; ' % (i, i) for i in range(60000)) + 'output p = softmax(v7); loss cross_entropy(p, c); }')" >"$out/line_valid.spn"
expect long_line_valid 0 10 "$out/line_valid.spn"

# A 1 MB line with an error near its end: the snippet is a window, not 1 MB.
$PY -c "
print('model m { input x : R[4]; label c : class[4]; ' + ' ' * 1048576 + 'output p = softmax(q); loss cross_entropy(p, c); }')" >"$out/line_error.spn"
expect long_line_error 1 10 "$out/line_error.spn" "line_error.spn:1:1048642: error: unknown name 'q'" "    1 | ..."
at_most long_line_error 1000

# A 1 MB line holding one long sum: the expression-depth limit, not a stack overflow.
$PY -c "
print('model m { input x : R[4]; label c : class[4]; output p = softmax(x' + ' + x' * 262144 + '); loss cross_entropy(p, c); }')" >"$out/line_sum.spn"
expect long_line_sum 1 10 "$out/line_sum.spn" "error: expression more than 1000 levels deep"

# 100,000 nested parentheses: the nesting limit.
$PY -c "
print('model m { input x : R[4]; output p = ' + '(' * 100000 + 'x' + ')' * 100000 + '; loss sum(p); }')" >"$out/parens.spn"
expect nested_parens 1 10 "$out/parens.spn" "parens.spn:1:293: error: brackets nested more than 256 deep"
at_most nested_parens 1000

# 100,000 nested brackets and braces of every kind.
$PY -c "
print('model m {' + '{[(' * 33334)" >"$out/brackets.spn"
expect nested_brackets 1 10 "$out/brackets.spn" "error: brackets nested more than 256 deep"

# 10,000 unary minus signs: the parser's stack limit.
$PY -c "
print('model m { input x : R[4]; label c : class[4]; output p = softmax(' + '-' * 10000 + 'x); loss cross_entropy(p, c); }')" >"$out/minus.spn"
expect unary_minus 1 10 "$out/minus.spn" "error: expression nested too deeply"
at_most unary_minus 1000

# 1,500 unary minus signs fit the parser's stack but not the depth limit.
$PY -c "
print('model m { input x : R[4]; label c : class[4]; output p = softmax(' + '-' * 1500 + 'x); loss cross_entropy(p, c); }')" >"$out/minus1500.spn"
expect unary_minus_1500 1 10 "$out/minus1500.spn" "error: expression more than 1000 levels deep"

# --- numbers ---------------------------------------------------------------------
printf 'model m {\n    input x : R[4];\n    label c : class[4];\n    output p = softmax(1e999 * x);\n    loss cross_entropy(p, c);\n}\n' >"$out/num_exp.spn"
expect number_exponent 1 5 "$out/num_exp.spn" "num_exp.spn:4:24: error: number does not fit in a double"

$PY -c "
print('model m { input x : R[4]; label c : class[4]; output p = softmax(' + '9' * 400 + ' * x); loss cross_entropy(p, c); }')" >"$out/num_digits.spn"
expect number_digits 1 5 "$out/num_digits.spn" "num_digits.spn:1:66: error: number does not fit in a double"

$PY -c "
print('model m { input x : R[4]; label c : class[4]; output p = softmax(' + '1' * 100000 + ' * x); loss cross_entropy(p, c); }')" >"$out/num_long.spn"
expect number_long 1 5 "$out/num_long.spn" "num_long.spn:1:66: error: number literal is too long (100000 characters)"
at_most number_long 1000

printf 'let big = 1e308 * 10;\nmodel m {\n    input x : R[4];\n    label c : class[4];\n    output p = softmax(big * x);\n    loss cross_entropy(p, c);\n}\n' >"$out/num_fold.spn"
expect number_folding 1 5 "$out/num_fold.spn" "num_fold.spn:1:17: error: constant overflows a double"

# --- many errors -------------------------------------------------------------------
# 10,000 lexical errors, one per line: 20 shown, the rest counted, quickly.
$PY -c "
print(''.join('let v%d = 1 @ 2;\n' % i for i in range(10000)), end='')" >"$out/errors_lex.spn"
expect errors_10000_lexical 1 3 "$out/errors_lex.spn" "errors_lex.spn:20:13: error: unexpected character '@'" \
    "spdlc: note: 9980 more errors not shown"
at_most errors_10000_lexical 4000

# 10,000 syntax errors, recovered at each ';'.
$PY -c "
print('model m {\n' + ''.join('    input x%d : R[4] R[4];\n' % i for i in range(10000)) + '}')" >"$out/errors_syntax.spn"
expect errors_10000_syntax 1 3 "$out/errors_syntax.spn" "errors_syntax.spn:2:21: error: unexpected identifier 'R'" \
    "more errors not shown"
at_most errors_10000_syntax 4000

# 10,000 resolver errors: the resolver stops at the cap and says so.
$PY -c "
print('model m {\n    input x : R[4];\n    label c : class[4];\n' + ''.join('    let v%d = x + unknown%d;\n' % (i, i) for i in range(10000)) + '    output p = softmax(x);\n    loss cross_entropy(p, c);\n}')" >"$out/errors_resolve.spn"
expect errors_10000_resolver 1 3 "$out/errors_resolve.spn" "errors_resolve.spn:4:18: error: unknown name 'unknown0'" \
    "spdlc: note: checking stopped after 20 errors"
at_most errors_10000_resolver 4000

# 20,000 warnings are not capped, so printing each must not rescan the file
# (it once took 40 s: line and column were counted from the top every time).
$PY -c "
print('model m {\n    input x : R[4];\n    label c : class[4];\n' + ''.join('    param unused%d : R[4];\n' % i for i in range(20000)) + '    output p = softmax(x);\n    loss cross_entropy(p, c);\n}')" >"$out/warnings.spn"
expect warnings_20000 0 5 "$out/warnings.spn" "warnings.spn:20003:11: warning: parameter 'unused19999' is never used"

# 990 unknown names among 20,000 declarations: only the 20 shown errors look
# for a did-you-mean (each look is a scan of every name; this took 49 s).
$PY -c "
print('model m {\n    input x : R[4];\n    label c : class[4];\n' + ''.join('    let value_number_%d = x;\n' % i for i in range(20000)) + '    let t = ' + ' + '.join('valeu_nubmer_%d' % i for i in range(990)) + ';\n    output p = softmax(x);\n    loss cross_entropy(p, c);\n}')" >"$out/unknown_names.spn"
expect unknown_names_20000_symbols 1 5 "$out/unknown_names.spn" "unknown_names.spn:20004:13: error: unknown name 'valeu_nubmer_0'" \
    "spdlc: note: 970 more errors not shown"

# --- imports -----------------------------------------------------------------------
printf 'import "self.spn";\nmodel m {\n    input x : R[4];\n    label c : class[4];\n    output p = softmax(x);\n    loss cross_entropy(p, c);\n}\n' >"$out/self.spn"
expect import_itself 1 5 "$out/self.spn" "self.spn:1:8: error: import cycle: '$out/self.spn' imports itself"

printf 'import "dir.spn";\nmodel m {\n    input x : R[4];\n    label c : class[4];\n    output p = softmax(x);\n    loss cross_entropy(p, c);\n}\n' >"$out/import_dir.spn"
expect import_directory 1 5 "$out/import_dir.spn" "import_dir.spn:1:8: error: cannot find import 'dir.spn'" "note: searched: $out/dir.spn"

printf 'import "empty.spn";\nmodel m {\n    input x : R[4];\n    label c : class[4];\n    output p = softmax(x);\n    loss cross_entropy(p, c);\n}\n' >"$out/import_empty.spn"
expect import_empty_file 0 5 "$out/import_empty.spn"

echo "badinput: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
