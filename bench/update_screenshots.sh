#!/usr/bin/env bash
# Rewrite the reference screenshots in docs/screenshots/ from the GUI tests (a normal test run saves its
# screenshots to a temporary folder and changes no tracked file). Needs Xvfb and Mesa (see .ci/run).
# Usage: bench/update_screenshots.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
xvfb-run -a -s "-screen 0 1280x800x24" python -m pytest -p no:cacheprovider --update-screenshots \
    tests/test_app_gui.py tests/test_app_personalise_and_keys.py tests/test_app_training.py \
    tests/test_app_training_launch.py tests/test_drive_gui.py tests/test_app_startup.py "$@"
git status --short docs/screenshots/
