#!/usr/bin/env bash
# Fine-tunes the shipped model with head close-up supervision (configs/train/finetune-face.yaml) on one GPU and
# compares it with the shipped model on one benchmark with close-ups: person and face PSNR per set (main.py eval,
# both models), a face sheet (the two models' head close-ups beside the truth) and the paired per-identity
# difference (bench/face_model.py). The new model is exported to $OUT/default_model.safetensors.
#   bash bench/face_model.sh                                  # one GPU machine (16 cores)
#   CONFIG=configs/train/finetune-face-head.yaml STEPS=4000 bash bench/face_model.sh   # denser anchors on the head
#   ... FRESH= bash bench/face_model.sh                      # a second call: resume the stopped training
# A CPU dry run (about 19 min on 2 cores, nearly all of it the base model's steps and evaluations on the torch
# rasteriser; its folders in /tmp):
#   D=/tmp/face-dry OUT=$D/out DATA=$D/data BENCH=$D/bench RUNS=$D/runs LCA_DATA_DIR=$D/home STEPS=2 WILD=2 \
#   STUDIO=1 VAL=1 SIZE=32 FRAMES=3 CAMERAS="2 2" DETAIL=0.05 FACE=32 COUNT=1 BENCH_SIZE=32 BENCH_DETAIL=0.08 \
#   SHEET_IDS=2 WORKERS=1 TRAIN_SET="batch_size=1 data.num_refs=2 data.num_targets=1 data.render_size=32 \
#   data.closeup_render_size=32 data.workers=0 log_every=1 sample_every=1 ckpt_every=2 eval_every=1 eval_batches=1" \
#   bash bench/face_model.sh
# Results: $OUT/{prepare.log,train.log,metrics.jsonl,samples/,eval_old/,eval_new/,face_sheet.png,
# face_compare.json,default_model.safetensors}.
set -euo pipefail
OUT=${OUT:-out/face}
CONFIG=${CONFIG:-configs/train/finetune-face.yaml}  # its run folder is named as the file (the config's name)
FRESH=${FRESH---fresh}  # FRESH= (empty): resume a run an earlier call stopped (its data sets are kept too)
STEPS=${STEPS:-2000}
WILD=${WILD:-64}
STUDIO=${STUDIO:-64}
VAL=${VAL:-8}                  # validation identities of each kind (the held-out curve)
SIZE=${SIZE:-192}              # frame side of the training data
FRAMES=${FRAMES:-8}
CAMERAS=${CAMERAS:-"8 16"}     # studio cameras per capture (min max)
DETAIL=${DETAIL:-0.6}
FACE=${FACE:-256}              # head close-up side (training data and benchmark)
COUNT=${COUNT:-32}             # benchmark identities per set
BENCH_SIZE=${BENCH_SIZE:-192}
BENCH_DETAIL=${BENCH_DETAIL:-1.0}
SHEET_IDS=${SHEET_IDS:-6}      # identities on the face sheet
WORKERS=${WORKERS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}
DATA=${DATA:-data/synth-face}
BENCH=${BENCH:-data/bench-face$BENCH_SIZE}
RUNS=${RUNS:-runs}
OLD=${OLD:-assets/default_model.safetensors}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
# The configs' relative folders live under the user's data folder; this script keeps them in the current directory.
export LCA_DATA_DIR="${LCA_DATA_DIR:-$PWD}"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

stamp "training data with close-ups -> $DATA"
if [ ! -f "$DATA.done" ]; then  # made once: a later call with the same folders goes straight to training
    # shellcheck disable=SC2086
    python3 main.py prepare synth --wild "$WILD" --studio "$STUDIO" --val-wild "$VAL" --val-studio "$VAL" \
        --size "$SIZE" --frames "$FRAMES" --cameras $CAMERAS --detail "$DETAIL" --face-size "$FACE" \
        --workers "$WORKERS" --out "$DATA" > "$OUT/prepare.log" 2>&1 || { tail -30 "$OUT/prepare.log"; exit 1; }
    touch "$DATA.done"
fi
stamp "benchmark with close-ups -> $BENCH"
if [ ! -f "$BENCH.done" ]; then
    python3 main.py prepare benchmark --out "$BENCH" --count "$COUNT" --size "$BENCH_SIZE" --detail "$BENCH_DETAIL" \
        --face-size "$FACE" --workers "$WORKERS" >> "$OUT/prepare.log" 2>&1 || { tail -30 "$OUT/prepare.log"; exit 1; }
    touch "$BENCH.done"
fi

stamp "fine-tuning $STEPS steps"
# shellcheck disable=SC2206
SETS=(steps="$STEPS" data.root="$DATA" out_dir="$RUNS" ${TRAIN_SET:-})  # TRAIN_SET: more --set items (a dry run)
# shellcheck disable=SC2086
python3 main.py train "$CONFIG" --no-progress $FRESH --set "${SETS[@]}" \
    > "$OUT/train.log" 2>&1 || { tail -40 "$OUT/train.log"; exit 1; }
RUN="$RUNS/$(basename "$CONFIG" .yaml)"
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
rm -rf "$OUT/samples" && cp -r "$RUN/samples" "$OUT/samples"
python3 -c "from core.train.export import export_model; export_model('$RUN/last.safetensors', '$OUT/default_model.safetensors')"

for arm in old new; do
    model=$OLD; [ "$arm" = new ] && model="$OUT/default_model.safetensors"
    stamp "eval $arm ($model)"
    python3 main.py eval "$model" --count "$COUNT" --resolution "$BENCH_SIZE" --face-size "$FACE" \
        --bench-root "$BENCH" --out "$OUT/eval_$arm" > "$OUT/eval_$arm.log" 2>&1 \
        || { tail -30 "$OUT/eval_$arm.log"; exit 1; }
done
stamp "face sheet and comparison"
python3 bench/face_model.py --old "$OLD" --new "$OUT/default_model.safetensors" --bench "$BENCH" \
    --old-eval "$OUT/eval_old/eval.json" --new-eval "$OUT/eval_new/eval.json" --identities "$SHEET_IDS" \
    --sheet "$OUT/face_sheet.png" --json "$OUT/face_compare.json"
stamp "done: $OUT"
