#!/usr/bin/env bash
# The third embedder, resumable: the second version's weights as the start, 5,000 classes as packages (about
# 25 min), then about 90 min of training on 2 cores. Every step is skipped when its output is there, so rerunning
# the script after an interruption continues where it stopped (the training from its newest epoch checkpoint).
#
#   scripts/train-embedder-v3.sh        START=model_store/embedder/v2 DATA=data/synth-v3 OUT=runs/recognition-v3
#
# It never writes into model_store/; the README's *Embedder, third version* says how it was shipped and measured.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHITU="${SHITU:-.venv/bin/shitu}"
NICE="${NICE:-nice -n 15}"
START="${START:-model_store/embedder/v2}"
DATA="${DATA:-data/synth-v3}"
OUT="${OUT:-runs/recognition-v3}"
CONFIG="${CONFIG:-trainer/configs/recognition_v3.yaml}"
WEIGHTS=runs/starts/embedder_v2.pdparams  # the recipe's model.init_checkpoint

[[ -f "$WEIGHTS" ]] || "$SHITU" train rec-start --from "$START" --out "$WEIGHTS"
[[ -f "$DATA/synth.json" ]] || $NICE "$SHITU" data synth --out "$DATA" --overwrite --seed 1 --classes 5000 \
  --scenes-per-class 3 --products package --shelf-share 0 --empty-share 0
resume=()
compgen -G "$OUT/checkpoints/*" >/dev/null && resume=(--resume)
$NICE "$SHITU" train rec --config "$CONFIG" --set "data.root=$DATA/recognition" --set "output=$OUT" "${resume[@]}"
