#!/bin/sh
# e2e.sh SPDLC - the programs `spdlc build` makes, end to end (DESIGN §5):
# training makes progress, a resumed run gives the same bits as one run,
# eval/predict/plot/certify/invert/sample work, checkpoints load in plain
# Python, and every bad input gets its own clear error (exit 1), never a
# crash.
set -u
spdlc=$1
out=${E2E_OUT:-build/e2e}
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

sp=$out/spirals
expect build_spirals 0 "" $spdlc build examples/spirals.spn -o $sp
expect build_moons 0 "" $spdlc build examples/moons_flow.spn -o $out/moons
expect build_robust 0 "" $spdlc build examples/robust_digits.spn -o $out/robust
expect build_digits 0 "" $spdlc build examples/digits.spn -o $out/digits

# --- training makes progress; the log and the checkpoint are written --------------
expect train 0 "epoch 20/20" $sp train --data "builtin:spirals?n=600" --epochs 20 --lr 0.02 --seed 3 --out $out/a.safetensors
if [ -f $out/a.log.csv ]; then
    awk -F, 'NR == 2 { l1 = $2 } END { if (!($2 < l1 * 0.9)) { print "loss did not fall: " l1 " -> " $2; exit 1 } }' \
        $out/a.log.csv && ok || bad "training loss did not fall"
    awk -F, 'END { if (!($5 > 0.85)) { print "validation accuracy " $5; exit 1 } }' $out/a.log.csv && ok || bad "accuracy floor"
else
    bad "no training log $out/a.log.csv"
fi

# --- resume: 10 epochs, then 10 more, equals 20 epochs bit for bit ----------------------
expect train_half 0 "" $sp train --data "builtin:spirals?n=600" --epochs 10 --lr 0.02 --seed 3 --out $out/b.safetensors --quiet
expect resume 0 "" $sp train --data "builtin:spirals?n=600" --epochs 20 --lr 0.02 --seed 3 --resume $out/b.safetensors \
    --out $out/b.safetensors --quiet
cmp -s $out/a.safetensors $out/b.safetensors && ok || bad "10 + resume + 10 epochs differs from 20 epochs"
# resumed_as_one NAME OPTION VALUE: 20 epochs with the option (NAME.safetensors) equal 10 with it, then a
# resume without it to 20 (NAME2.safetensors), bit for bit
run3() { $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet "$@"; }
resumed_as_one() {
    expect $1_one 0 "" run3 $2 $3 --epochs 20 --out $out/$1.safetensors
    expect $1_half 0 "" run3 $2 $3 --epochs 10 --out $out/${1}2.safetensors
    expect $1_resume 0 "" run3 --epochs 20 --resume $out/${1}2.safetensors --out $out/${1}2.safetensors
    cmp -s $out/$1.safetensors $out/${1}2.safetensors && ok || bad "10 + resume + 10 epochs with $2 differs from 20"
}
# --weight-decay: recorded in the checkpoint, so a resume without it decays as one run would
resumed_as_one wd --weight-decay 0.5
cmp -s $out/wd.safetensors $out/a.safetensors && bad "--weight-decay 0.5 changed nothing" || ok
python3 - $out/a.safetensors $out/wd.safetensors <<'PY' && ok || bad "weight decay did not shrink the weights"
import json, struct, sys
def sumsq(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
    s = 0.0
    for k, v in head.items():
        if k == "__metadata__" or k.startswith("optimizer."): continue
        a, b = v["data_offsets"]
        s += sum(x * x for x in struct.unpack("<%dd" % ((b - a) // 8), raw[8 + n + a:8 + n + b]))
    return s, head["__metadata__"].get("weight_decay")
(plain, d0), (decayed, d1) = sumsq(sys.argv[1]), sumsq(sys.argv[2])
assert d0 is None and float(d1) == 0.5, (d0, d1)
assert decayed < 0.9 * plain, (plain, decayed)
PY
expect wd_negative 2 "bad value for --weight-decay" $sp train --data "builtin:spirals?n=600" --weight-decay -1 --epochs 1
# --noise: fresh noise on every step's inputs, the same for any thread count, and recorded in the
# checkpoint so a resume without the option adds it as the one run would
resumed_as_one nz --noise 0.2
expect noise_threads 0 "" run3 --noise 0.2 --epochs 20 --out $out/nz3.safetensors --threads 3 --batch 200
expect noise_threads1 0 "" run3 --noise 0.2 --epochs 20 --out $out/nz1.safetensors --threads 1 --batch 200
cmp -s $out/nz3.safetensors $out/nz1.safetensors && ok || bad "--noise with 3 threads differs from 1 thread"
cmp -s $out/nz.safetensors $out/a.safetensors && bad "--noise 0.2 changed nothing" || ok
python3 - $out/nz.safetensors $out/a.safetensors <<'PY' && ok || bad "--noise is not recorded as input_noise"
import json, struct, sys
def meta(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n])["__metadata__"]
assert float(meta(sys.argv[1])["input_noise"]) == 0.2 and "input_noise" not in meta(sys.argv[2])
PY
expect noise_negative 2 "bad value for --noise" $sp train --data "builtin:spirals?n=600" --noise -1 --epochs 1
# the log after an interrupted run and a resume: rows the interrupted run wrote after its last
# checkpoint are dropped, not repeated, and `seconds` keeps counting. Here the run went on from
# epoch 5 to 8, and was killed before its checkpoint at 8 (c5 is the checkpoint on disk).
lg() { $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --out $out/c.safetensors "$@"; }
expect log_one 0 "" $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 10 --out $out/c10.safetensors
expect log_first 0 "" lg --epochs 5
cp $out/c.safetensors $out/c5.safetensors
expect log_on 0 "" lg --epochs 8 --resume $out/c.safetensors
cp $out/c5.safetensors $out/c.safetensors
expect log_resume 0 "" lg --epochs 10 --resume $out/c.safetensors
cut -d, -f1-5 $out/c10.log.csv > $out/c10.cols; cut -d, -f1-5 $out/c.log.csv > $out/c.cols
cmp -s $out/c10.cols $out/c.cols && ok || { bad "the resumed log differs from one run's"; diff $out/c10.cols $out/c.cols | head -5; }
awk -F, 'NR > 2 && $6 < s { print "seconds fell at epoch " $1; exit 1 } { s = $6 }' $out/c.log.csv && ok || bad "seconds not cumulative"
# a resume into another file continues the resumed run's log there
cp $out/c5.safetensors $out/c.safetensors
expect log_other 0 "" $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 10 \
    --resume $out/c.safetensors --out $out/c_other.safetensors
cut -d, -f1-5 $out/c_other.log.csv > $out/c_other.cols
cmp -s $out/c10.cols $out/c_other.cols && ok || bad "the log of a resume into another file lacks the first epochs"
# real kills: SIGKILL a run every 0.2 s and resume it, 6 times, then let it finish: the same bits as
# one run, each epoch once in the log, and no temp files left
kt() { $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 100 --checkpoint-every 3 --schedule cosine "$@"; }
expect kill_one 0 "" kt --out $out/k1.safetensors
for i in 1 2 3 4 5 6; do
    r=; [ -e $out/k.safetensors ] && r="--resume $out/k.safetensors"
    # exec: $! is the program itself, not a subshell around it
    (exec $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 100 --checkpoint-every 3 \
        --schedule cosine --out $out/k.safetensors $r >/dev/null 2>&1) &
    pid=$!; sleep 0.2; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
done
# (a slow kill may have let the run finish: then there is nothing left to resume)
if [ -e $out/k.safetensors ]; then kt --out $out/k.safetensors --resume $out/k.safetensors >$out/kill_last.log 2>&1
else kt --out $out/k.safetensors >$out/kill_last.log 2>&1; fi
[ $? -eq 0 ] || grep -q "already trained 100 epochs" $out/kill_last.log && ok || { bad "kill_last"; cat $out/kill_last.log; }
cmp -s $out/k1.safetensors $out/k.safetensors && ok || bad "killed and resumed 6 times differs from one run"
grep -q "note:" $out/kill_last.log && bad "an interrupted cosine run resumed with its options got a note" || ok
# the cosine schedule anneals over --epochs: a resume that changes it says the bits will differ (they do)
expect cos_half 0 "" $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 5 --schedule cosine \
    --out $out/cos.safetensors
expect cos_resume 0 "trained with --schedule cosine over 5 epochs; this run has --schedule cosine over 10, so it will not give the same bits" \
    $sp train --data "builtin:spirals?n=600" --seed 3 --quiet --epochs 10 --schedule cosine --resume $out/cos.safetensors \
    --out $out/cos.safetensors
expect cos_one 0 "" $sp train --data "builtin:spirals?n=600" --lr 0.02 --seed 3 --quiet --epochs 10 --schedule cosine \
    --out $out/cos10.safetensors
cmp -s $out/cos.safetensors $out/cos10.safetensors && bad "the note at resume is wrong: the bits are the same" || ok
expect cos_to_constant 0 "trained with --schedule cosine over 10 epochs; this run has --schedule constant over 12" \
    $sp train --data "builtin:spirals?n=600" --seed 3 --quiet --epochs 12 --resume $out/cos10.safetensors --out $out/cos12.safetensors
grep -q "note:" $out/resume.log && bad "a constant-schedule resume got a note" || ok
[ "$(cut -d, -f1 $out/k.log.csv | tail -n +2 | tr '\n' ' ')" = "$(seq 1 100 | tr '\n' ' ')" ] && ok ||
    bad "the log of a killed and resumed run does not hold epochs 1 to 100 once each"
[ -z "$(ls -A $out | grep '^\.k\.safetensors\.')" ] && ok || bad "killed runs left temp files: $(ls -A $out | grep '^\.k\.')"
expect resume_done 1 "already trained 20 epochs" $sp train --data "builtin:spirals?n=600" --epochs 20 --resume $out/a.safetensors
expect resume_other_opt 1 "was trained with optimizer 'adam', not 'sgd'" $sp train --data builtin:spirals --epochs 21 \
    --opt sgd --resume $out/a.safetensors

# stmeta SRC DST KEY=VALUE...: a copy of a safetensors file with metadata changed (VALUE "-": removed)
stmeta() {
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
for e in edits:
    k, v = e.split("=", 1)
    if v == "-":
        head["__metadata__"].pop(k, None)
    else:
        head["__metadata__"][k] = v
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(dst, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
}
# a checkpoint's metadata is read strictly, each field refused by name
for f in epoch=abc epoch=-5 epoch=99999999999 epoch=- rng=zz step=-1 format=other; do
    stmeta $out/b.safetensors $out/meta.safetensors $f
    key=${f%%=*}
    expect "resume_meta_$key" 1 "'$key'" $sp train --data "builtin:spirals?n=600" --epochs 20 --resume $out/meta.safetensors \
        --out $out/meta_out.safetensors --quiet
done
[ ! -e $out/meta_out.safetensors ] && ok || bad "a resume from a bad checkpoint wrote a checkpoint"

# --- eval, predict, plot ---------------------------------------------------------------
expect eval 0 "confusion" $sp eval --data "builtin:spirals?seed=9&n=200" --weights $out/a.safetensors
expect predict 0 "" $sp predict --data "builtin:spirals?n=50" --weights $out/a.safetensors --out $out/pred.csv
[ "$(wc -l < $out/pred.csv)" -eq 51 ] && ok || bad "predict wrote $(wc -l < $out/pred.csv) lines, expected 51"
expect predict_npy 0 "" $sp predict --data "builtin:spirals?n=50" --weights $out/a.safetensors --out $out/pred.npy
expect plot 0 "" $sp plot --data "builtin:spirals?n=300" --weights $out/a.safetensors -o $out/sp.png
for f in $out/sp.data.csv $out/sp.regions.csv $out/sp.traj.csv $out/sp.gp; do [ -s $f ] && ok || bad "plot did not write $f"; done
grep -q "title 'val loss'" $out/sp.gp && ok || bad "plot of a run with validation has no val loss curve"
# trained with --val 0: the log has no validation columns, so no val curves in the legend
expect train_noval 0 "" $sp train --data "builtin:spirals?n=300" --epochs 2 --val 0 --quiet --out $out/noval.safetensors
expect plot_noval 0 "" $sp plot --data "builtin:spirals?n=300" --weights $out/noval.safetensors -o $out/noval.png
grep -q "title 'val" $out/noval.gp && bad "plot of a --val 0 run lists validation curves" || ok
grep -q "title 'accuracy'" $out/noval.gp && ok || bad "plot of a --val 0 run lost its accuracy curve"
if command -v gnuplot >/dev/null 2>&1; then
    [ "$(head -c 8 $out/sp.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && ok || bad "sp.png is not a PNG"
fi

# --- the checkpoint in plain Python (the safetensors layout) ------------------------------
python3 - "$out/a.safetensors" <<'PY' && ok || bad "python could not read the checkpoint"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
meta = head.pop("__metadata__")
assert meta["model"] == "spirals" and meta["format"] == "spdl-weights-1", meta
shapes = {k: v["shape"] for k, v in head.items() if not k.startswith("optimizer.")}
assert shapes == {"K": [32, 8, 8], "b": [32, 8], "W": [2, 8], "w": [2]}, shapes
for k, v in head.items():
    b, e = v["data_offsets"]
    vals = struct.unpack("<%dd" % ((e - b) // 8), raw[8 + n + b: 8 + n + e])
    size = 1
    for d in v["shape"]:
        size *= d
    assert v["dtype"] == "F64" and len(vals) == size and all(x == x for x in vals), k
PY

# --- divergence: a huge learning rate stops with the epoch and batch, and the
#     last good checkpoint stays on disk -----------------------------------------------------
expect div_first 1 "no checkpoint was written" $sp train --data builtin:spirals --epochs 3 --lr 1e200 --opt sgd \
    --out $out/div0.safetensors
[ ! -e $out/div0.safetensors ] && ok || bad "a diverged first epoch left a checkpoint"
expect div_good 0 "" $sp train --data builtin:spirals --epochs 2 --opt sgd --out $out/div.safetensors --quiet
cp $out/div.safetensors $out/div.before
expect diverge 1 "training diverged" $sp train --data builtin:spirals --epochs 5 --lr 1e200 --opt sgd \
    --resume $out/div.safetensors --out $out/div.safetensors
grep -q "at epoch [0-9]*, batch [0-9]*" $out/diverge.log && ok || bad "divergence message names no epoch and batch"
grep -q "last good checkpoint (epoch 2)" $out/diverge.log && ok || bad "divergence note names no checkpoint"
cmp -s $out/div.safetensors $out/div.before && ok || bad "divergence overwrote the last good checkpoint"
expect eval_after_divergence 0 "accuracy" $sp eval --data builtin:spirals --weights $out/div.safetensors

# --- certify, invert, sample ----------------------------------------------------------------
expect train_robust 0 "" $out/robust train --data "builtin:digits?split=0.2&part=train" --epochs 2 --lr 0.01 \
    --out $out/r.safetensors --quiet
expect certify 0 "certified accuracy at eps 0.1" $out/robust certify --data "builtin:digits?split=0.2&part=test" \
    --weights $out/r.safetensors --eps 0.1,0.3
expect certify_no_bound 1 "no certified Lipschitz bound" $sp certify --data builtin:spirals --weights $out/a.safetensors
expect train_moons 0 "" $out/moons train --data "builtin:moons?n=400" --epochs 3 --out $out/m.safetensors --quiet
expect invert 0 "to latents and back" $out/moons invert --data "builtin:moons?n=100" --weights $out/m.safetensors
expect sample 0 "x0,x1" $out/moons sample -n 20 --weights $out/m.safetensors
expect sample_not_density 1 "not a density" $sp sample -n 5 --weights $out/a.safetensors

# --- threads (DESIGN §9): any --threads gives the same bits -------------------------------------
# weights, logged losses and accuracies, eval and predict, for the spirals model, a model with lu
# and orth parameters (their parameter code runs once per step) and a C4 group convolution; a run
# trained on one thread and resumed on three equals one run on two
awk 'BEGIN { srand(7); for (i = 0; i < 700; i++) printf "%.4f,%.4f,%.4f,%.4f,%d\n", rand(), rand(), rand(), rand(), i % 3 }' \
    > $out/d4big.csv
# the logs compared, without the note a machine with fewer CPUs than threads adds
nonote() { grep -v ': note: --threads' "$1"; }
expect build_structured 0 "" $spdlc build tests/gen/structured_linear.spn -o $out/structured
expect build_c4 0 "" $spdlc build tests/design/digits_c4.spn -o $out/c4
for m in sp structured c4; do
    case $m in
        sp) exe=$sp; data="builtin:spirals?n=1500"; test="builtin:spirals?n=1000&seed=4"; opts="--batch 256 --epochs 4 --lr 0.02" ;;
        structured) exe=$out/structured; data=$out/d4big.csv; test=$out/d4big.csv; opts="--batch 200 --epochs 3" ;;
        c4) exe=$out/c4; data="builtin:digits?n=400"; test="builtin:digits?n=300&seed=2"; opts="--batch 128 --epochs 2 --lr 0.01" ;;
    esac
    for n in 1 2 3; do
        expect "threads_${m}_$n" 0 "[0-9] threads*$" $exe train --data "$data" $opts --seed 5 --threads $n \
            --out $out/th_${m}_$n.safetensors
        cut -d, -f1-5 $out/th_${m}_$n.log.csv > $out/th_${m}_$n.cols
        expect "threads_${m}_eval_$n" 0 "loss" $exe eval --data "$test" --weights $out/th_${m}_1.safetensors --threads $n
        expect "threads_${m}_predict_$n" 0 "" $exe predict --data "$test" --weights $out/th_${m}_1.safetensors \
            --threads $n --out $out/th_${m}_$n.pred.csv
    done
    for n in 2 3; do
        cmp -s $out/th_${m}_1.safetensors $out/th_${m}_$n.safetensors && ok ||
            bad "$m: weights trained on $n threads differ from one thread's"
        cmp -s $out/th_${m}_1.cols $out/th_${m}_$n.cols && ok ||
            { bad "$m: the log on $n threads differs"; diff $out/th_${m}_1.cols $out/th_${m}_$n.cols | head -4; }
        nonote $out/threads_${m}_eval_$n.log | cmp -s $out/threads_${m}_eval_1.log - && ok || bad "$m: eval on $n threads differs"
        cmp -s $out/th_${m}_1.pred.csv $out/th_${m}_$n.pred.csv && ok || bad "$m: predict on $n threads differs"
    done
done
expect threads_half 0 "" $sp train --data "builtin:spirals?n=1500" --batch 256 --epochs 2 --lr 0.02 --seed 5 --threads 1 \
    --out $out/th_resume.safetensors --quiet
expect threads_resume 0 "" $sp train --data "builtin:spirals?n=1500" --batch 256 --epochs 4 --lr 0.02 --seed 5 --threads 3 \
    --resume $out/th_resume.safetensors --out $out/th_resume.safetensors --quiet
cmp -s $out/th_resume.safetensors $out/th_sp_2.safetensors && ok || bad "1 thread, resumed on 3, differs from 2 threads"
expect threads_default 0 "" $sp train --data "builtin:spirals?n=1500" --batch 256 --epochs 4 --lr 0.02 --seed 5 \
    --out $out/th_default.safetensors --quiet
cmp -s $out/th_default.safetensors $out/th_sp_1.safetensors && ok || bad "the default thread count gives other bits"
expect threads_env 0 " 2 threads$" env SPDL_THREADS=2 $sp train --data "builtin:spirals?n=300" --batch 128 --epochs 1 \
    --out $out/th_env.safetensors
expect threads_certify 0 "certified accuracy" $out/robust certify --data "builtin:digits?split=0.2&part=test" \
    --weights $out/r.safetensors --threads 3
$out/robust certify --data "builtin:digits?split=0.2&part=test" --weights $out/r.safetensors --threads 1 > $out/cert1.txt 2>&1
nonote $out/threads_certify.log | cmp -s - $out/cert1.txt && ok || bad "certify on 3 threads differs"
expect threads_small_batch 0 "a step uses 1 of the 2 threads" $sp train --data "builtin:spirals?n=300" --epochs 1 \
    --threads 2 --out $out/th_small.safetensors
for v in 0 -1 abc 1e9 2.5 99999999999999999999; do
    expect "threads_bad_$v" 2 "bad value for --threads: '$v' (expected an integer from 1 to 1024)" \
        $sp train --data builtin:spirals --threads "$v"
done
expect threads_bad_eval 2 "bad value for --threads: '0'" $sp eval --data builtin:spirals --weights $out/a.safetensors --threads 0
expect threads_bad_env 2 "bad value for SPDL_THREADS: 'many' (expected an integer from 1 to 1024)" \
    env SPDL_THREADS=many $sp predict --data builtin:spirals --weights $out/a.safetensors
expect threads_bad_env0 2 "bad value for SPDL_THREADS: '0'" env SPDL_THREADS=0 $sp eval --data builtin:spirals \
    --weights $out/a.safetensors
expect threads_env_ignored 0 "" env SPDL_THREADS=many $out/moons sample -n 3 --weights $out/m.safetensors
expect threads_ignored 0 "warning: '--threads' does nothing for 'sample'" $out/moons sample -n 3 --weights $out/m.safetensors \
    --threads 2
expect threads_help 0 "^  --threads N  *threads, each taking tiles of 64 samples" $sp train --help

# --- weights outside the declared bounds are refused by every command that loads them -------------
# sttensor SRC DST NAME INDEX=VALUE...: a copy of a safetensors file with elements of tensor NAME set
sttensor() {
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, name, edits = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
raw = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
b, e = json.loads(raw[8:8 + n])[name]["data_offsets"]
for ed in edits:
    i, v = ed.split("=")
    struct.pack_into("<d", raw, 8 + n + b + 8 * int(i), float(v))
open(dst, "wb").write(raw)
PY
}
kmsg="parameter 'K' (layer 1 of 32) has spectral norm 1e+308, but the model declares norm(K) <= 4"
sttensor $out/a.safetensors $out/k308.safetensors K 0=1e308 9=1e308
for c in eval predict invert; do
    expect "bound_$c" 1 "$kmsg" $sp $c --data builtin:spirals --weights $out/k308.safetensors
done
expect bound_plot 1 "$kmsg" $sp plot --data builtin:spirals --weights $out/k308.safetensors -o $out/k308.png
expect bound_resume 1 "$kmsg" $sp train --data "builtin:spirals?n=600" --epochs 30 --resume $out/k308.safetensors \
    --out $out/k308_out.safetensors
# within the projection's tolerance (1e-3) is inside; beyond it is not
diag() { v=$1; i=0; while [ $i -lt 64 ]; do if [ $((i % 9)) -eq 0 ]; then printf ' %d=%s' $i $v; else printf ' %d=0' $i; fi; i=$((i+1)); done; }
sttensor $out/a.safetensors $out/k4002.safetensors K $(diag 4.002)
expect bound_tolerance 0 "accuracy" $sp eval --data builtin:spirals --weights $out/k4002.safetensors
sttensor $out/a.safetensors $out/k401.safetensors K $(diag 4.01)
expect bound_beyond 1 "parameter 'K' (layer 1 of 32) has spectral norm 4.01[0-9]*, but the model declares norm(K) <= 4" \
    $sp eval --data builtin:spirals --weights $out/k401.safetensors
sttensor $out/r.safetensors $out/r_bad.safetensors W 5=1.5
expect bound_certify 1 "parameter 'W' has spectral norm [0-9.]*, but the model declares norm(W) <= 1" \
    $out/robust certify --data "builtin:digits?split=0.2&part=test" --weights $out/r_bad.safetensors
# sample: a density with a norm bound
sed 's/param  S : R\[1, 1\] per layer;/param  S : R[1, 1] per layer where norm(S) <= 1;/; s/moons_flow/bflow/' \
    examples/moons_flow.spn > $out/bflow.spn
expect build_bflow 0 "" $spdlc build $out/bflow.spn -o $out/bflow
expect train_bflow 0 "" $out/bflow train --data "builtin:moons?n=200" --epochs 1 --out $out/bf.safetensors --quiet
sttensor $out/bf.safetensors $out/bf_bad.safetensors S 3=-1.5
expect bound_sample 1 "parameter 'S' (layer 4 of 8) has spectral norm 1.5, but the model declares norm(S) <= 1" \
    $out/bflow sample -n 3 --weights $out/bf_bad.safetensors
# C4 kernels with norm bounds (DESIGN §8; GUARANTEES.md, Convolution kernels): training keeps them (M_project
# after every step), certify re-checks every layer's map through M_project, and a kernel taken past its bound
# is refused on load. In k, stored [layer, o, i, h, u, v], entry 580 is layer 2's k[0, 0, 0] centre tap.
cat > $out/c4b.spn <<'SPN'
model c4b {
    input  x : R[1, 8, 8];
    label  c : class[10];
    group  C4 acts on x;
    param  k0 : lift[C4, 1 -> 4, 3] where norm(k0) <= 1;
    param  b0 : R[4];
    state  h : R[4, 4, 8, 8] = relu(lift(k0, x) + b0);
    param  k  : gconv[C4, 4 -> 4, 3] per layer where norm(k) <= 1;
    param  b  : R[4] per layer;
    flow over [0, 2] in 2 layers by euler {
        dh/dt = -gconv'(k, relu(gconv(k, h) + b));
    }
    param  W : R[10, 4] where norm(W) <= 8;
    param  w : R[10];
    output p = softmax(W * mean_space(gpool(h)) + w);
    loss   cross_entropy(p, c);
    require invariant(C4), nonexpansive, lipschitz <= 0.5;
}
SPN
expect build_c4b 0 "" $spdlc build $out/c4b.spn -o $out/c4b
expect train_c4b 0 "" $out/c4b train --data "builtin:digits?split=0.2&part=train" --epochs 1 --lr 0.01 \
    --out $out/c4b.safetensors --quiet
expect certify_c4b 0 "certified accuracy at eps 0.1" $out/c4b certify --data "builtin:digits?split=0.2&part=test" \
    --weights $out/c4b.safetensors
grep -q "^  k  *bound 1 " $out/certify_c4b.log && grep -q "^  k0  *bound 1 " $out/certify_c4b.log && ok ||
    bad "certify_c4b does not list the kernels' bounds"
sttensor $out/c4b.safetensors $out/c4b_bad.safetensors k 580=3
expect bound_c4b 1 "parameter 'k' (layer 2 of 2) has spectral norm [0-9.]*, but the model declares norm(k) <= 1" \
    $out/c4b eval --data "builtin:digits?split=0.2&part=test" --weights $out/c4b_bad.safetensors
# learned steps: 0 <= dt_k <= 0.25, sum 2 (tests/design/antisym.spn)
awk 'BEGIN { srand(1); for (i = 0; i < 120; i++) printf "%.4f,%.4f,%.4f,%.4f,%d\n", rand(), rand(), rand(), rand(), i % 3 }' \
    > $out/d4.csv
expect build_antisym 0 "" $spdlc build tests/design/antisym.spn -o $out/antisym
expect train_antisym 0 "" $out/antisym train --data $out/d4.csv --epochs 1 --out $out/an.safetensors --quiet
sttensor $out/an.safetensors $out/an_neg.safetensors dt 0=-0.1 1=0.35
expect steps_negative 1 "parameter 'dt' (the learned steps) has dt_1 = -0.1, but the model declares 0 <= dt_k <= 0.25 with sum 2" \
    $out/antisym eval --data $out/d4.csv --weights $out/an_neg.safetensors
sttensor $out/an.safetensors $out/an_big.safetensors dt 0=0.3 1=0.075
expect steps_above 1 "has dt_1 = 0.3, but the model declares 0 <= dt_k <= 0.25 with sum 2" \
    $out/antisym predict --data $out/d4.csv --weights $out/an_big.safetensors
sttensor $out/an.safetensors $out/an_sum.safetensors dt 0=0.2
expect steps_sum 1 "parameter 'dt' (the learned steps) sums to 2.07" \
    $out/antisym eval --data $out/d4.csv --weights $out/an_sum.safetensors
# an orth[n] parameter is orthogonal whatever its generator: never refused (tests/inv/orth100.spn)
awk 'BEGIN { srand(2); for (i = 0; i < 60; i++) printf "%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", rand(), rand(), rand(), rand(), rand(), rand() }' \
    > $out/d6.csv
expect build_orth 0 "" $spdlc build tests/inv/orth100.spn -o $out/orth
expect train_orth 0 "" $out/orth train --data $out/d6.csv --epochs 1 --out $out/o.safetensors --quiet
sttensor $out/o.safetensors $out/o_big.safetensors Q 0=50 1=-30 2=7
expect orth_big 0 "to latents and back" $out/orth invert --data $out/d6.csv --weights $out/o_big.safetensors --out $out/o.csv
# certify: an orth[n] parameter has norm 1 whatever its generator (it printed the generator's norm, and
# refused a generator of norm 5 as a violated bound)
cat > $out/orthc.spn <<'SPN'
model orthc {
    input  x : R[4];
    label  c : class[3];
    state  u : R[4] = x;
    param  Q : orth[4] per layer;
    repeat 2 layers {
        u = Q * u;
    }
    param  W : R[3, 4] where norm(W) <= 1;
    output p = softmax(W * u);
    loss   cross_entropy(p, c);
    require lipschitz <= 3;
}
SPN
expect build_orthc 0 "" $spdlc build $out/orthc.spn -o $out/orthc
expect train_orthc 0 "" $out/orthc train --data $out/d4.csv --epochs 1 --out $out/oc.safetensors --quiet
sttensor $out/oc.safetensors $out/oc_big.safetensors Q 0=5
expect certify_orth 0 "Q  *bound 1  *1 (orthogonal by construction)" $out/orthc certify --data $out/d4.csv \
    --weights $out/oc_big.safetensors
grep -q "certified accuracy" $out/certify_orth.log && ok || bad "certify with an orth parameter certified nothing"

# --- images, signals and point sets (DESIGN §8 "Data for images", runtime/DATA.md) -------------------
expect build_c4 0 "" $spdlc build tests/design/digits_c4.spn -o $out/c4
expect build_waves 0 "" $spdlc build tests/design/waves.spn -o $out/waves
expect build_pointsets 0 "" $spdlc build tests/design/pointsets.spn -o $out/pointsets
# builtin:digits feeds R[1, 8, 8]; a C4-invariant model has the same loss on every quarter turn, not on a mirror image
expect train_c4 0 "epoch 2/2" $out/c4 train --data "builtin:digits?n=300" --epochs 2 --lr 0.01 --out $out/c4.safetensors
for r in 0 90 180 270 -90 37.5 random; do
    expect "c4_rotate_$r" 0 "rotated" $out/c4 eval --data "builtin:digits?n=300&rotate=$r" --weights $out/c4.safetensors
done
expect c4_mirror 0 "mirrored" $out/c4 eval --data "builtin:digits?n=300&mirror=1" --weights $out/c4.safetensors
loss_of() { sed -n 's/^loss  *//p' $out/$1.log; }
for r in 90 180 270 -90; do
    [ -n "$(loss_of c4_rotate_0)" ] && [ "$(loss_of c4_rotate_$r)" = "$(loss_of c4_rotate_0)" ] && ok ||
        bad "digits_c4: the loss at rotate=$r ($(loss_of c4_rotate_$r)) differs from rotate=0 ($(loss_of c4_rotate_0))"
done
for r in 37.5 random; do
    [ "$(loss_of c4_rotate_$r)" != "$(loss_of c4_rotate_0)" ] && ok || bad "digits_c4: rotate=$r left the loss unchanged"
done
[ "$(loss_of c4_mirror)" != "$(loss_of c4_rotate_0)" ] && ok || bad "digits_c4: a mirror image left the loss unchanged"
# EXE plot of an image classifier: accuracy against the rotation angle, the same at every quarter turn
expect plot_c4 0 "wrote" $out/c4 plot --data "builtin:digits?n=300" --weights $out/c4.safetensors -o $out/c4plot.png
acc_at() { sed -n "s/^$1,\([^,]*\),.*/\1/p" $out/c4plot.rotation.csv; }
[ "$(wc -l < $out/c4plot.rotation.csv)" = 26 ] && [ -n "$(acc_at 0)" ] && [ "$(acc_at 90)" = "$(acc_at 0)" ] &&
    [ "$(acc_at 180)" = "$(acc_at 0)" ] && [ "$(acc_at 270)" = "$(acc_at 0)" ] && [ "$(acc_at 360)" = "$(acc_at 0)" ] && ok ||
    bad "digits_c4 plot: the accuracy against the angle is not the same at every quarter turn: $(tr '\n' ' ' < $out/c4plot.rotation.csv)"
# an image target (target t : R[1, 5, 5]) is fed from the row after the input and rotates with it:
# an equivariant image-to-image model has the same loss on every quarter turn of inputs and targets
awk 'BEGIN { srand(5); for (s = 0; s < 200; s++) { for (i = 0; i < 50; i++) printf "%s%.6f", i ? "," : "", rand() - 0.5; print "" } }' \
    > $out/img_pairs.csv
expect build_imgt 0 "" $spdlc build tests/gen/c4_image_target.spn -o $out/imgt
expect train_imgt 0 "epoch 2/2" $out/imgt train --data $out/img_pairs.csv --epochs 2 --lr 0.01 --out $out/imgt.safetensors
for r in 0 90 270; do
    expect "imgt_rotate_$r" 0 "loss" $out/imgt eval --data "$out/img_pairs.csv?rotate=$r" --weights $out/imgt.safetensors
done
for r in 90 270; do
    [ -n "$(loss_of imgt_rotate_0)" ] && [ "$(loss_of imgt_rotate_$r)" = "$(loss_of imgt_rotate_0)" ] && ok ||
        bad "c4_image_target: the loss at rotate=$r ($(loss_of imgt_rotate_$r)) differs from rotate=0 ($(loss_of imgt_rotate_0))"
done
expect rotate_not_image 1 "rotate= acts on images, but the model's input R\[64\] is not an image" \
    $out/digits eval --data "builtin:digits?rotate=90" --weights $out/d.safetensors
expect rotate_bad 1 "rotate=ninety: expected rotate=90, 180, 270, random or an angle in degrees" \
    $out/c4 eval --data "builtin:digits?rotate=ninety" --weights $out/c4.safetensors
expect c4_mnist 1 "builtin:mnist has 784 inputs per sample, the model has 64" \
    $out/c4 eval --data builtin:mnist --weights $out/c4.safetensors
# DESIGN's waves and pointsets on their data sets: well above chance after a few seconds
expect train_waves 0 "" $out/waves train --data "builtin:waves?n=800" --epochs 6 --lr 0.02 --out $out/wv.safetensors --quiet
expect eval_waves 0 "accuracy" $out/waves eval --data "builtin:waves?n=1000&seed=99" --weights $out/wv.safetensors
awk '/^accuracy/ { if ($2 > 0.6) ok = 1 } END { exit !ok }' $out/eval_waves.log && ok || bad "waves: $(grep accuracy $out/eval_waves.log)"
expect train_pointsets 0 "" $out/pointsets train --data "builtin:pointsets?n=1500" --epochs 40 --lr 0.01 \
    --out $out/ps.safetensors --quiet
expect eval_pointsets 0 "accuracy" $out/pointsets eval --data "builtin:pointsets?n=1000&seed=99" --weights $out/ps.safetensors
awk '/^accuracy/ { if ($2 > 0.9) ok = 1 } END { exit !ok }' $out/eval_pointsets.log && ok ||
    bad "pointsets: $(grep accuracy $out/eval_pointsets.log)"
expect waves_wrong_model 1 "builtin:waves makes signals R\[1, L\] (one channel of L samples), the model's input is R\[2, 16\]" \
    $out/pointsets eval --data builtin:waves --weights $out/ps.safetensors
expect pointsets_rotate 1 "(builtin:pointsets turns its shapes with angle=)" \
    $out/pointsets eval --data "builtin:pointsets?rotate=90" --weights $out/ps.safetensors
expect pointsets_angle 0 "angle=30" $out/pointsets eval --data "builtin:pointsets?angle=30&n=30" --weights $out/ps.safetensors
# permute= reorders the points of every set (S(16), exact): the invariant model gives the same loss on every
# order to the last digit, examples/pointsets_dense.spn (not invariant, refused as such) does not
expect build_pointsets_dense 0 "" $spdlc build examples/pointsets_dense.spn -o $out/pointsets_dense
sed 's/^    label  c : class\[3\];/&\n    group  S(16) acts on x;/; s/require nonexpansive;/require invariant(S(16)), nonexpansive;/' \
    examples/pointsets_dense.spn > $out/pointsets_dense_inv.spn
expect pointsets_dense_not_invariant 1 "error: required guarantee 'invariant' does not hold" \
    $spdlc check $out/pointsets_dense_inv.spn
expect train_pointsets_dense 0 "" $out/pointsets_dense train --data "builtin:pointsets?n=600&order=angle" --epochs 5 \
    --lr 0.01 --out $out/psd.safetensors --quiet
for m in pointsets pointsets_dense; do
    w=$out/ps.safetensors; [ $m = pointsets ] || w=$out/psd.safetensors
    for p in none reverse random draw; do
        q="&order=angle&permute=$p"; [ $p = none ] && q="&order=angle"; [ $p = draw ] && q=""
        expect "${m}_permute_$p" 0 "loss" $out/$m eval --data "builtin:pointsets?n=300&seed=99$q" --weights $w
    done
done
for p in reverse random draw; do
    [ -n "$(loss_of pointsets_permute_none)" ] && [ "$(loss_of pointsets_permute_$p)" = "$(loss_of pointsets_permute_none)" ] &&
        ok || bad "pointsets: the loss at permute=$p ($(loss_of pointsets_permute_$p)) differs from the sorted order ($(loss_of pointsets_permute_none))"
    [ "$(loss_of pointsets_dense_permute_$p)" != "$(loss_of pointsets_dense_permute_none)" ] && ok ||
        bad "pointsets_dense: permute=$p left the loss unchanged"
done
expect permute_not_set 1 "permute= reorders the members of sets, but the model's input R\[1, 8, 8\] is not a set R\[c, n\]" \
    $out/c4 eval --data "builtin:digits?permute=reverse" --weights $out/c4.safetensors

# --- bad inputs: a clear error each --------------------------------------------------------------
printf 'x0,x1,label\n0.1,0.2,1\n0.3,abc,0\n' > $out/bad.csv
expect bad_csv 1 "bad.csv:3:5" $sp eval --data $out/bad.csv --weights $out/a.safetensors
printf '0.1,0.2,7\n' > $out/badlabel.csv
expect bad_label 1 "" $sp eval --data $out/badlabel.csv --weights $out/a.safetensors
# huge inputs: the loss prints in %.6g (it was a 310-digit %f), an infinite one is refused like NaN
printf '1e308,-1e308,0\n' > $out/huge.csv
expect eval_huge 0 "^loss  *[0-9.]*e+30[0-9]$" $sp eval --data $out/huge.csv --weights $out/a.safetensors
printf '1e308,0,0\n' > $out/huge_inf.csv
expect eval_inf 1 "the loss is not finite" $sp eval --data $out/huge_inf.csv --weights $out/a.safetensors
# a label that underflows (1e-400 is 0 to strtod) is not class 0
printf '0.1,0.2,1e-400\n' > $out/tinylabel.csv
expect tiny_label 1 "tinylabel.csv:1:9: expected a class label (a non-negative integer), found '1e-400'" \
    $sp eval --data $out/tinylabel.csv --weights $out/a.safetensors
expect missing_data 1 "nothere.csv" $sp eval --data $out/nothere.csv --weights $out/a.safetensors
expect missing_weights 1 "nothere.safetensors" $sp eval --data builtin:spirals --weights $out/nothere.safetensors
expect train_digits 0 "" $out/digits train --data "builtin:digits?n=100" --epochs 1 --out $out/d.safetensors --quiet
expect other_model 1 "holds weights for model 'digits', not 'spirals'" $sp eval --data builtin:spirals --weights $out/d.safetensors
head -c 300 $out/a.safetensors > $out/trunc.safetensors
expect truncated 1 "" $sp eval --data builtin:spirals --weights $out/trunc.safetensors
python3 - "$out/a.safetensors" "$out/nan.safetensors" <<'PY'
import struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
raw[8 + n: 8 + n + 8] = struct.pack("<d", float("nan"))
open(sys.argv[2], "wb").write(raw)
PY
expect nan_weights 1 "" $sp eval --data builtin:spirals --weights $out/nan.safetensors
expect bad_option 2 "unknown option" $sp train --data builtin:spirals --frobnicate
expect bad_epochs 2 "bad value for --epochs" $sp train --data builtin:spirals --epochs abc
expect no_command 2 "no command" $sp
expect no_data 2 "needs --data" $sp eval --weights $out/a.safetensors
expect help 0 "usage:" $sp --help
# the options table: --help per command, the same option spelled either way, a warning for one a command ignores
expect help_train 0 "^  --checkpoint-every K  *epochs between checkpoints" $sp train --help
expect help_train_after 0 "^usage: spirals train" $sp --data x --help train
expect help_sample 0 "^  -n N  *how many samples" $sp sample -h
grep -q -- "--data" $out/help_sample.log && bad "sample --help lists --data" || ok
expect help_plot 0 "^  plot  *--data D \[--weights W\] -o out.png" $sp --help
expect bad_int 2 "bad value for --epochs: '2.5' (expected an integer from 1 to 10000000)" $sp train --data builtin:spirals --epochs 2.5
expect bad_choice 2 "--schedule takes constant or cosine, not 'linear'" $sp train --data builtin:spirals --schedule linear
expect no_value 2 "option '--lr' needs a value" $sp train --data builtin:spirals --lr
expect ignored 0 "warning: '--epochs' does nothing for 'eval'" $sp eval --data builtin:spirals --weights $out/a.safetensors --epochs 3
expect plot_needs_o 2 "'plot' needs -o out.png" $sp plot --data builtin:spirals --weights $out/a.safetensors
expect unknown_cmd 2 "unknown command 'frob'" $sp frob --data builtin:spirals
expect two_cmds 2 "unexpected argument 'predict'" $sp eval predict --data builtin:spirals
# spdlc build without a compiler: one line
expect no_cc 1 "cannot run the C compiler" env CC=/nonexistent/cc $spdlc build examples/spirals.spn -o $out/x
# spdlc build compiles with -Wall -Wextra (DESIGN §6: the generated C is warning-free), so the builds above
# printed nothing; a C compiler's warning is shown as printed, with the sources it points into kept
for b in build_spirals build_moons build_robust build_digits build_c4 build_waves build_pointsets build_pointsets_dense; do
    [ ! -s $out/$b.log ] && ok || { bad "$b: spdlc build printed something"; sed 's/^/    /' $out/$b.log | head -8; }
done
printf '#!/bin/sh\necho "$@" > "$0.args"\necho "fake.c:1:1: warning: a warning [-Wfake]" >&2\nexec cc "$@"\n' > $out/warncc
chmod +x $out/warncc
expect cc_warns 0 "^fake.c:1:1: warning: a warning \[-Wfake\]$" env CC=$out/warncc $spdlc build tests/gen/no_param.spn -o $out/np
kept=$(sed -n 's/.*the generated sources are kept in //p' $out/cc_warns.log)
[ -n "$kept" ] && [ -f "$kept/no_param.c" ] && ok || bad "cc_warns: the generated sources are not kept"
[ -n "$kept" ] && rm -rf "$kept"
grep -q -- "-Wall -Wextra" $out/warncc.args && ok || bad "spdlc build does not pass -Wall -Wextra: $(cat $out/warncc.args)"

# --- make install: an installed spdlc finds its stdlib, libspdl and data ---------------------
inst=$(pwd)/$out/inst
expect install 0 "" make --no-print-directory install DESTDIR=$inst PREFIX=/usr/local
expect inst_check 0 "certificate for model antisym" $inst/usr/local/bin/spdlc check tests/design/antisym.spn
expect inst_build 0 "" $inst/usr/local/bin/spdlc build examples/digits.spn -o $out/inst_digits
expect inst_digits 0 "epoch 1/1" $out/inst_digits train --data "builtin:digits?n=60" --epochs 1 --out $out/id.safetensors
[ -f $inst/usr/local/share/spdl/data/mnist.u8.gz ] && ok || bad "make install did not install data/mnist.u8.gz"

# --- scratch independent of depth (issue 12): M_work_size of the spirals model at width 64 under
# --memory=invert, 20 against 1000 layers, in double (theta read in place, K' through strides, the
# gradient added into the caller's array: nothing parameter-sized is left in the work buffer) ------
work_reals() { # MODEL.c: the reals M_work_size asks for
    sed -n 's/.*return sizeof(real) \* \([0-9]*\) + 64;.*/\1/p' "$1"
}
for n in 20 1000; do
    sh bench/model.sh 64 $n > $out/depth$n.spn
    expect emit_depth$n 0 "" $spdlc emit $out/depth$n.spn -o $out/depth$n --memory=invert
done
w20=$(work_reals $out/depth20/spirals.c) w1000=$(work_reals $out/depth1000/spirals.c)
[ -n "$w20" ] && [ -n "$w1000" ] && [ $((w1000 * 10)) -le $((w20 * 11)) ] && ok ||
    bad "--memory=invert work buffer grows with depth: $w20 reals at N = 20, $w1000 at N = 1000"

echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
