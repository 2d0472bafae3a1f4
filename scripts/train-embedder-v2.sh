#!/usr/bin/env bash
# The second embedder end to end, resumable: every step is skipped when its output is there, so rerunning the
# script after an interruption continues where it stopped (the training from its newest epoch checkpoint).
#
#   scripts/train-embedder-v2.sh            data (about 15 min), training (about 2 h on 2 cores), the benchmarks
#   OUT=runs/recognition-v2 DATA=data/synth-v2 scripts/train-embedder-v2.sh     (the defaults)
#
# It never writes into model_store/: ship the export with `cp -r $OUT/export model_store/embedder/<version>` and
# `shitu eval --record` once its scores are read (docs/trainer-training.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHITU="${SHITU:-.venv/bin/shitu}"
NICE="${NICE:-nice -n 15}"
DATA="${DATA:-data/synth-v2}"
OUT="${OUT:-runs/recognition-v2}"
BENCH="${BENCH:-data/bench-v2}"
CONFIG="${CONFIG:-trainer/configs/recognition_v2.yaml}"

synth() {  # synth DIR ARGS...: generate once (a finished run leaves synth.json)
  local out="$1"; shift
  [[ -f "$out/synth.json" ]] || $NICE "$SHITU" data synth --out "$out" --overwrite "$@"
}

# Training data: every training family as packages; the detector's scene kinds are not needed here. Debian's
# openclipart-png (`make assets ASSETS=--full`) adds its product folders as classes when it is installed: install it
# before the first run, since the class list of data/synth-v2 is fixed once generated.
synth "$DATA" --classes 3000 --scenes-per-class 3 --products package --shelf-share 0 --empty-share 0
if compgen -G "$OUT/checkpoints/*" >/dev/null; then
  $NICE "$SHITU" train rec --config "$CONFIG" --set "data.root=$DATA/recognition" --set "output=$OUT" --resume
else
  $NICE "$SHITU" train rec --config "$CONFIG" --set "data.root=$DATA/recognition" --set "output=$OUT"
fi

# The benchmarks of issue 15 (other seeds than the training data's: the classes differ by split anyway).
synth "$BENCH/packaging" --seed 7 --classes 1500 --scenes-per-class 2 --products package --shelf-share 0.1 \
  --empty-share 0
scripts/install-assets.sh --heldout
synth "$BENCH/heldout" --seed 7 --classes 1000 --scenes-per-class 2 --products package --families heldout \
  --shelf-share 0 --empty-share 0
synth "$BENCH/cards" --seed 7 --classes 1500 --scenes-per-class 2 --shelf-share 0.1 --empty-share 0
for bench in packaging heldout cards; do
  for model in "$OUT/export" model_store/embedder/default; do
    name="$(basename "$(dirname "$model")")-$(basename "$model")"
    $NICE "$SHITU" eval --data "$BENCH/$bench" --split test --embedder "$model" \
      --detector model_store/detector/default --out "reports/v2/$bench/$name"
  done
done
