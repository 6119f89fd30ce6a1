#!/usr/bin/env bash
# Trains the shipped default model on one GPU: synthetic data, pre-training (wild), post-training (studio),
# export (half precision) and evaluation on the held-out sets. Results go to ${OUT:-out/default}.
set -euo pipefail
OUT=${OUT:-out/default}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
# The configs' relative folders (runs/, data/synth, init_from runs/...) live under the user's data folder; this
# script keeps them in the current directory, where the commands below read them.
export LCA_DATA_DIR="${LCA_DATA_DIR:-$PWD}"
python3 main.py prepare synth --wild 200 --studio 50 --size 192 --frames 8 --cameras 8 16 --detail 0.6 \
    --val-wild 8 --val-studio 8 --workers "$(( $(nproc) - 1 ))" --out data/synth
python3 main.py train configs/train/pretrain-base.yaml --no-progress
cp runs/pretrain-base/metrics.jsonl "$OUT/pretrain_metrics.jsonl"
python3 main.py train configs/train/posttrain-base.yaml --no-progress
cp runs/posttrain-base/metrics.jsonl "$OUT/posttrain_metrics.jsonl"
cp "$(ls runs/posttrain-base/samples/*.png | tail -1)" "$OUT/posttrain_samples.png"
python3 -c "from core.train.export import export_model; export_model('runs/posttrain-base/last.safetensors', 'assets/default_model.safetensors')"
# more post-training, then the pixel-aligned appearance path (each continues from assets/default_model.safetensors)
python3 main.py prepare synth --wild 8 --studio 60 --size 192 --frames 8 --cameras 8 16 --detail 0.6 \
    --val-wild 8 --val-studio 8 --workers "$(( $(nproc) - 1 ))" --out data/synth
python3 main.py train configs/train/finetune-default.yaml --no-progress
python3 -c "from core.train.export import export_model; export_model('runs/finetune-default/last.safetensors', 'assets/default_model.safetensors')"
python3 main.py train configs/train/finetune-pixel.yaml --set steps=600 --no-progress
cp runs/finetune-pixel/metrics.jsonl "$OUT/finetune_pixel_metrics.jsonl"
python3 -c "from core.train.export import export_model; export_model('runs/finetune-pixel/last.safetensors', '$OUT/default_model.safetensors')"
python3 main.py eval "$OUT/default_model.safetensors" --count 32 --resolution 192 --bench-root data/bench192 --out "$OUT"
python3 -m core.eval.bundle_examples --bench data/bench192 --out "$OUT/examples"
