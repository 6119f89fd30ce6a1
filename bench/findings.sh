#!/usr/bin/env bash
# The paper's training findings in miniature, on two GPUs of one host (two runs at a time, one per GPU):
#   (1) pre-train (wild) then post-train (studio)  vs  studio-only  vs  mixed, at the same number of steps;
#   (2) pre-training on 12 / 36 / 96 wild identities, PSNR on wild-test;
#   (3) dual-branch vs single-branch decoder (both pre-train then post-train).
# Every arm: the `base` model, batch 4, seed 0, 192 px synthetic data; evaluation on 4 held-out identities per
# benchmark (wild-test, studio-test) at 192 px. Results (eval JSON, metrics) go to ${OUT:-out/findings};
# `python bench/findings.py ${OUT:-out/findings}` tabulates them.
#   PRE=150 POST=75 bash bench/findings.sh     # the step counts used for docs/RESULTS.md
#   ARMS=trio PRE=400 POST=200 bash bench/findings.sh   # only (1), at a longer budget: pre -> post on GPU 0,
#                                                       # studio-only and mixed side by side on GPU 1
set -euo pipefail
OUT=${OUT:-out/findings}
PRE=${PRE:-150}
POST=${POST:-75}
ARMS=${ARMS:-all}
TOTAL=$((PRE + POST))
mkdir -p "$OUT"
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
COMMON=(--no-progress --fresh --set seed=0 optim.ema_decay=0.98 optim.warmup=30 log_every=5 sample_every=100000
        eval_every=0)
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

# held-out benchmarks (CPU), meanwhile the training data
python3 -c "
from pathlib import Path
from core.data.benchmarks import BENCHMARKS, write_benchmark
from core.data.synth import SynthConfig
for name in BENCHMARKS:
    write_benchmark(Path('data/bench192'), name, 4, SynthConfig(width=192, height=192, detail=1.0))
" && touch data/bench192.done &
python3 main.py prepare synth --wild 96 --studio 48 --size 192 --frames 8 --cameras 8 16 --detail 0.6 \
    --per-shard 4 --workers 28 --out data/findings > "$OUT/prepare.log" 2>&1
for n in 12 36; do  # nested wild subsets: the first n identities (4 per shard)
    rm -rf "data/wild-$n" && mkdir -p "data/wild-$n/train"
    for f in $(ls data/findings/train/wild-train-*.tar | head -$((n / 4))); do ln -s "$PWD/$f" "data/wild-$n/train/"; done
done
stamp "data ready"

train() {  # gpu name config [more --set items]
    local gpu=$1 name=$2 config=$3; shift 3
    CUDA_VISIBLE_DEVICES=$gpu python3 main.py train "$config" "${COMMON[@]}" name="$name" data.root=data/findings "$@" \
        > "$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; return 1; }
    cp "runs/$name/metrics.jsonl" "$OUT/$name.metrics.jsonl"
    stamp "trained $name"
}
evaluate() {  # gpu name
    while [ ! -f data/bench192.done ]; do sleep 2; done
    mkdir -p "$OUT/$2"
    CUDA_VISIBLE_DEVICES=$1 python3 main.py eval "runs/$2/last.safetensors" --count 4 --resolution 192 \
        --bench-root data/bench192 --out "$OUT/$2" > "$OUT/$2/eval.log" 2>&1 || tail -20 "$OUT/$2/eval.log"
    stamp "evaluated $2"
}

if [ "$ARMS" = trio ]; then
    (   train 0 f-pretrain configs/train/pretrain-base.yaml steps=$PRE
        train 0 f-posttrain configs/train/posttrain-base.yaml steps=$POST init_from=runs/f-pretrain/last.safetensors
        evaluate 0 f-posttrain ) &
    ( train 1 f-studio-only configs/train/studio-only-base.yaml steps=$TOTAL && evaluate 1 f-studio-only ) &
    ( train 1 f-mixed configs/train/mixed-base.yaml steps=$TOTAL && evaluate 1 f-mixed ) &
    wait
    stamp "done"
    exit 0
fi

(   # GPU 0: pre-train -> post-train (dual), the same with the single-branch decoder, 36 wild identities
    train 0 f-pretrain configs/train/pretrain-base.yaml steps=$PRE && evaluate 0 f-pretrain
    train 0 f-posttrain configs/train/posttrain-base.yaml steps=$POST init_from=runs/f-pretrain/last.safetensors
    evaluate 0 f-posttrain
    train 0 f-single-pre configs/train/pretrain-base.yaml steps=$PRE model=base-single
    train 0 f-single-post configs/train/posttrain-base.yaml steps=$POST model=base-single \
        init_from=runs/f-single-pre/last.safetensors
    evaluate 0 f-single-post
    train 0 f-wild-36 configs/train/pretrain-base.yaml steps=$PRE data.root=data/wild-36 && evaluate 0 f-wild-36
) &
(   # GPU 1: studio-only and mixed for the same total steps, 12 wild identities
    train 1 f-studio-only configs/train/studio-only-base.yaml steps=$TOTAL && evaluate 1 f-studio-only
    train 1 f-mixed configs/train/mixed-base.yaml steps=$TOTAL && evaluate 1 f-mixed
    train 1 f-wild-12 configs/train/pretrain-base.yaml steps=$PRE data.root=data/wild-12 && evaluate 1 f-wild-12
) &
wait
stamp "done"
