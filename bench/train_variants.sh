#!/usr/bin/env bash
# The training step several ways on one GPU, in one run (machines differ; compare variants side by side):
# the batched step eager, with its stages as CUDA graphs, compiled, and the per-target reference step
# (VARIANTS picks and orders them). JSON per variant in ${OUT:-bench/results}; data generated first when
# data/synth holds none.
set -uo pipefail
OUT=${OUT:-bench/results}
CONFIG=${CONFIG:-configs/train/pretrain-base.yaml}
STEPS=${STEPS:-30}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
if [ -z "$(find data/synth -name '*.tar' 2>/dev/null | head -1)" ]; then
    python3 main.py prepare synth --wild "${WILD:-24}" --studio 0 --size 192 --frames 8 --detail 0.6 \
        --workers "$(( $(nproc) - 1 ))" --out data/synth
fi
dev=$(python3 -c "import torch; print(torch.cuda.get_device_name().lower().replace(' ', '-'))" 2>/dev/null || echo cpu)
for variant in ${VARIANTS:-batched-eager batched-graphs batched-compiled per-target}; do
    case $variant in
        batched-eager) set_args="compile=false" limit=150 ;;
        batched-graphs) set_args="compile=false graphs=true" limit=150 ;;
        batched-compiled) set_args="compile=true" limit=240 ;;  # the first steps compile
        per-target) set_args="compile=false per_target=true" limit=150 ;;
    esac
    timeout "$limit" python3 bench/train.py "$CONFIG" --steps "$STEPS" --warmup "${WARMUP:-5}" \
        --set $set_args --out "$OUT/train-$variant-$dev.json" > "$OUT/train-$variant.log" 2>&1
    echo "$variant: exit $? $(grep -o '"identities_per_s": [0-9.]*' "$OUT/train-$variant-$dev.json" 2>/dev/null)"
done
