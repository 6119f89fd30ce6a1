#!/usr/bin/env bash
# The paper's training findings in miniature, every arm for every seed, scored per identity on >= 32 held-out
# identities per benchmark (person-only metrics), then tabulated with 95% intervals by bench/findings.py:
#   (1) pre-train (wild) then post-train (studio)  vs  studio-only  vs  mixed, at the same number of steps;
#   (2) pre-training on 12 / 36 / 96 wild identities, wild-test;
#   (3) dual-branch vs single-branch decoder (both pre-train then post-train);
#   (4) feed-forward vs an independent per-subject optimisation from the template (and feed-forward + refinement);
#   (5) the paper's loose-garment deformer (skinning-weight correction) as a post-training extension, against the
#       same extra post-training without it, on identities in skirts and dresses (loose-test) and on studio-test.
# Every arm: the `base` model, batch 4, 192 px synthetic data, a held-out curve on split 'val' every 50 steps.
# One command, any number of GPUs of one host (one run per GPU at a time):
#   ARMS=pilot SEEDS="0 1 2" bash bench/findings.sh          # the pilot: 2 recipes x 3 seeds, seed vs identity spread
#   SEEDS="0 1 2" PRE=800 POST=400 bash bench/findings.sh    # the five findings, 3 seeds
#   ARMS=trio SEEDS="0 1 2" bash bench/findings.sh           # findings (1) and (2) only
#   python bench/findings.py ${OUT:-out/findings} --png docs/training/findings.png --md out/findings/findings.md
# Results: $OUT/<arm>/seed<k>/{eval.json,metrics.jsonl,train.log}, $OUT/personalise/seed<k>.json.
# BUDGET=S stops this call after S seconds: runs still training checkpoint and pause (SIGTERM), nothing new starts,
# and the same command later resumes them and skips what is done (data, runs and results stay where they are).
set -euo pipefail
OUT=${OUT:-out/findings}
PRE=${PRE:-150}
POST=${POST:-75}
SEEDS=${SEEDS:-0}
COUNT=${COUNT:-32}
ARMS=${ARMS:-all}
WILD=${WILD:-96}  # training identities (nested subsets of 12 and 36 are cut from them)
STUDIO=${STUDIO:-48}
VAL=${VAL:-8}  # validation identities of each kind (the held-out curve; at least the batch)
BUDGET=${BUDGET:-0}  # seconds for this call (0: no limit)
P_SEEDS=${P_SEEDS:-$SEEDS} P_COUNT=${P_COUNT:-$COUNT} P_STEPS=${P_STEPS:-300} P_BASE=${P_BASE:-2000}  # finding (4)

RUNS=${RUNS:-runs}  # run folders (relative to the project root)
GPUS=${GPUS:-$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))")}
LANES=${LANES:-$GPUS}  # jobs running at once, spread over the GPUs (a large GPU takes several small runs)
DATA_WORKERS=${DATA_WORKERS:-$(( $(nproc) / LANES > 2 ? $(nproc) / LANES - 1 : 1 ))}  # loader processes per run
TOTAL=$((PRE + POST))
mkdir -p "$OUT" data
rm -f data/bench192-*.failed
# data sets are kept between calls (a second call with the same sizes skips straight to training)
BENCH=data/bench192-c$COUNT DATA=data/findings-w$WILD-s$STUDIO-v$VAL
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
COMMON=(--no-progress --set out_dir="$RUNS" optim.ema_decay=0.98 optim.warmup=30 log_every=5 sample_every=100000
        eval_every=50 eval_split=val eval_batches=4 data.workers="$DATA_WORKERS")
# shellcheck disable=SC2206
COMMON+=(${EXTRA:-})  # more --set items for every run (a dry run on a CPU: EXTRA="data.render_size=48 ...")
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
left() {  # seconds this call may still spend (a large number without a budget); fails when under 20 s
    local l=1000000
    [ "$BUDGET" -gt 0 ] && l=$((BUDGET - ($(date +%s) - t0)))
    [ "$l" -ge 20 ] && echo "$l"
}
waitfor() {  # file: wait for it while the budget lasts
    while [ ! -f "$1" ]; do left > /dev/null || return 1; sleep 5; done
}

# held-out benchmarks (CPU), meanwhile the training data (with a validation split for the held-out curve)
[ -f "$BENCH.done" ] || python3 -c "
from pathlib import Path
from core.data.benchmarks import BENCHMARKS, write_benchmark
from core.data.synth import SynthConfig
W = max(1, $(nproc) // 2)
for name in BENCHMARKS:
    write_benchmark(Path('$BENCH'), name, $COUNT, SynthConfig(width=192, height=192, detail=1.0), workers=W)
if '$ARMS' == 'all':  # finding (5) only
    write_benchmark(Path('$BENCH'), 'loose-test', $COUNT, SynthConfig(width=192, height=192, detail=1.0), workers=W)
" && touch "$BENCH.done" || touch "$BENCH.failed" &
[ -f "$DATA.done" ] || { python3 main.py prepare synth --wild "$WILD" --studio "$STUDIO" --val-wild "$VAL" --val-studio "$VAL" --size 192 --frames 8 \
    --cameras 8 16 --detail 0.6 --per-shard 4 --workers "$(( $(nproc) / 2 ))" --out "$DATA" > "$OUT/prepare.log" 2>&1 && touch "$DATA.done"; } \
    || { tail -30 "$OUT/prepare.log"; exit 1; }
for n in 12 36; do  # nested wild subsets: the first n identities (4 per shard), the same validation split
    rm -rf "data/wild-$n" && mkdir -p "data/wild-$n/train" "data/wild-$n/val"
    ln -s "$PWD/$DATA"/val/*.tar "data/wild-$n/val/"  # file links: the shard search does not enter linked folders
    for f in $(ls $DATA/train/wild-train-*.tar | head -$((n / 4))); do ln -s "$PWD/$f" "data/wild-$n/train/"; done
done
stamp "data ready"

train() {  # gpu arm seed config [more --set items]
    local gpu=$1 arm=$2 seed=$3 config=$4; shift 4
    local dir="$OUT/$arm/seed$seed"
    mkdir -p "$dir"
    [ -f "$dir/metrics.jsonl" ] && [ -f "$RUNS/$arm-s$seed/last.safetensors" ] && return 0  # done by an earlier call
    local l; l=$(left) || return 1
    # without --fresh: a run an earlier call paused resumes where it stopped (--foreground: only the trainer gets
    # the TERM and checkpoints; its data workers must not get it)
    CUDA_VISIBLE_DEVICES=$gpu timeout --foreground -s TERM -k 90 "$l" python3 main.py train "$config" "${COMMON[@]}" name="$arm-s$seed" seed="$seed" \
        data.root=$DATA "$@" > "$dir/train.log" 2>&1 || { tail -20 "$dir/train.log"; return 1; }
    cp "$RUNS/$arm-s$seed/metrics.jsonl" "$dir/metrics.jsonl"
    stamp "trained $arm seed $seed"
}
evaluate() {  # gpu arm seed [sets...]
    while [ ! -f "$BENCH.done" ]; do
        [ -f "$BENCH.failed" ] && { echo "benchmarks failed" >&2; return 1; }
        left > /dev/null || return 1; sleep 2
    done
    local gpu=$1 arm=$2 seed=$3 l; shift 3
    local dir="$OUT/$arm/seed$seed" sets=("$@")
    [ ${#sets[@]} -eq 0 ] && sets=(wild-test studio-test)
    mkdir -p "$dir"
    [ -f "$dir/eval.json" ] && return 0  # done by an earlier call
    l=$(left) || return 1
    CUDA_VISIBLE_DEVICES=$gpu timeout "$l" python3 main.py eval "$RUNS/$arm-s$seed/last.safetensors" --count "$COUNT" \
        --resolution 192 --bench-root "$BENCH" --out "$dir" --sets "${sets[@]}" \
        > "$dir/eval.log" 2>&1 || { tail -20 "$dir/eval.log"; rm -f "$dir/eval.json"; return 1; }
    stamp "evaluated $arm seed $seed"
}
prepost() {  # gpu seed prefix [model]
    local model=${4:-${MODEL:-base}}
    train "$1" "$3-pre" "$2" configs/train/pretrain-base.yaml steps=$PRE model="$model" || return 1
    train "$1" "$3-post" "$2" configs/train/posttrain-base.yaml steps=$POST model="$model" \
        init_from="$RUNS/$3-pre-s$2/last.safetensors" || return 1
    evaluate "$1" "$3-post" "$2"
    if [ "$3" = f ]; then evaluate "$1" "$3-pre" "$2"; fi  # pre-train only on 96 wild identities: finding (2)
}

# one job per line: "<function> <args...>" (the gpu is prepended when it runs)
# the pre -> post arm of every seed first (finding (4) and (5) start from it), then the others, longest first
case "$ARMS" in pilot | trio | all) ;; *) echo "ARMS must be pilot, trio or all" >&2; exit 2 ;; esac
jobs=()
for s in $SEEDS; do jobs+=("prepost $s f"); done
for s in $SEEDS; do
    jobs+=("single $s f-studio-only configs/train/studio-only-base.yaml steps=$TOTAL")
    [ "$ARMS" = pilot ] || jobs+=("single $s f-mixed configs/train/mixed-base.yaml steps=$TOTAL")
    [ "$ARMS" = all ] && jobs+=("prepost $s f-single base-single")
done
if [ "$ARMS" = all ]; then
    for s in $SEEDS; do jobs+=("loose $s"); done
    for s in $P_SEEDS; do jobs+=("personalise $s"); done
fi
if [ "$ARMS" != pilot ]; then  # finding (2): the 96-identity arm is f-pre
    for s in $SEEDS; do
        jobs+=("single $s f-wild-36 configs/train/pretrain-base.yaml steps=$PRE data.root=data/wild-36"
               "single $s f-wild-12 configs/train/pretrain-base.yaml steps=$PRE data.root=data/wild-12")
    done
fi
single() {  # gpu seed arm config [--set items]
    local gpu=$1 seed=$2 arm=$3; shift 3
    train "$gpu" "$arm" "$seed" "$@" && evaluate "$gpu" "$arm" "$seed"
}
personalise() {  # gpu seed: finding (4) on the pre -> post model of this seed (waits for it)
    waitfor "$OUT/f-post/seed$2/eval.json" || return 1
    [ -f "$OUT/personalise/seed$2.json" ] && return 0  # done by an earlier call
    local l; l=$(left) || return 1
    mkdir -p "$OUT/personalise"
    CUDA_VISIBLE_DEVICES=$1 timeout "$l" python3 bench/personalise.py "$RUNS/f-post-s$2/last.safetensors" \
        --count "$P_COUNT" --bench-root "$BENCH" --steps "$P_STEPS" --baseline-steps "$P_BASE" \
        --out "$OUT/personalise/seed$2.json" > "$OUT/personalise/seed$2.log" 2>&1 \
        || { tail -20 "$OUT/personalise/seed$2.log"; rm -f "$OUT/personalise/seed$2.json"; return 1; }
    stamp "finding (4) seed $2"
}
loose() {  # gpu seed: finding (5), from the pre -> post model of this seed (waits for it)
    waitfor "$OUT/f-post/seed$2/eval.json" || return 1
    train "$1" f-loose "$2" configs/train/posttrain-loose.yaml steps=$POST init_from="$RUNS/f-post-s$2/last.safetensors"
    evaluate "$1" f-loose "$2" loose-test studio-test
    train "$1" f-post-more "$2" configs/train/posttrain-base.yaml steps=$POST init_from="$RUNS/f-post-s$2/last.safetensors"
    evaluate "$1" f-post-more "$2" loose-test studio-test
}
# the pre -> post arm is stored as f-post, its pre-training as f-pre (linked as f-posttrain / f-pretrain at the end)
QUEUE="$OUT/.queue"  # the index of the next job to take, shared by the lanes
echo 0 > "$QUEUE"
take() {  # prints the next job's index, or fails when none is left (or the budget is spent)
    left > /dev/null || return 1
    local i
    i=$(flock "$QUEUE" sh -c 'i=$(cat "$1"); echo $((i + 1)) > "$1"; echo "$i"' _ "$QUEUE")
    [ "$i" -lt ${#jobs[@]} ] && echo "$i"
}
lane() {  # lane: take jobs from the queue until it is empty, on GPU (lane mod GPUS)
    local gpu=$(($1 % GPUS)) i
    while i=$(take); do
        # shellcheck disable=SC2086
        set -- ${jobs[$i]}
        local fn=$1; shift
        "$fn" "$gpu" "$@" || true
    done
}
for ((l = 0; l < LANES; l++)); do lane "$l" & done
wait
[ -d "$OUT/f-post" ] && rm -rf "$OUT/f-posttrain" && ln -s f-post "$OUT/f-posttrain"
[ -d "$OUT/f-pre" ] && rm -rf "$OUT/f-pretrain" && ln -s f-pre "$OUT/f-pretrain"
stamp "done"
python3 bench/findings.py "$OUT" --wild "$WILD" --png "$OUT/findings.png" --md "$OUT/findings.md" --json "$OUT/findings.json" || true
