#!/usr/bin/env bash
# Regenerate the example inputs in docs/examples/ (README command 1 reconstructs one of them).
# Objects of mira.data.procedural drawn with seed 7, which no training run here used (mira-demo
# trained on seed 42), exported as meshes and rendered by Blender through our dataset script:
# images of objects the model never saw, made by a different renderer than its training data.
#   bash docs/examples/make_examples.sh        (needs .venv and .venv-blender, see the README)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m mira.data.procedural meshes --output_dir "$work/meshes" --count 3 --seed 7 --device cpu
blender=${MIRA_BLENDER:-.venv-blender/bin/python}
for mesh in "$work"/meshes/*.ply; do
  name=$(basename "$mesh" .ply)
  "$blender" blender_scripts/dataset_rendering.py -- --object_path "$mesh" --output_dir "$work/renders" \
    --num_renders 1 --resolution 384 --engine CYCLES --samples 64 --seed 11 --elevation_min 15 --elevation_max 35 \
    > "$work/$name.log" 2>&1
  cp "$work/renders/$name/000.png" "docs/examples/${name}_blender.png"
done
ls -la docs/examples/*.png
