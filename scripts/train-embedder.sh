#!/usr/bin/env bash
# A shipped embedder's training end to end, resumable: every step is skipped when its output is there, so rerunning
# the script after an interruption continues where it stopped (the training from its newest epoch checkpoint).
#
#   scripts/train-embedder.sh 3   the third version: the second's weights as the start (START, default
#                                 model_store/embedder/v2), data/synth-v3 (5,000 classes as packages, about 25 min),
#                                 about 90 min of training on 2 cores
#   scripts/train-embedder.sh 4   the fourth: the third's weights as the start (START, default
#                                 model_store/embedder/v3, or the default while the third is it), data/synth-v4
#                                 (every training-family class, 2 scenes each), about 90 min of training on 2 cores
#   scripts/train-embedder.sh 2   the second: data/synth-v2 (3,000 classes, about 15 min), about 2 h of training, then
#                                 its benchmarks against the default (reports/v2/)
#   OUT=runs/recognition-v3 DATA=data/synth-v3 scripts/train-embedder.sh 3       (the defaults)
#
# It never writes into model_store/: ship the export with `cp -r $OUT/export model_store/embedder/<version>` and
# `shitu eval --record` once its scores are read (the README's embedder sections; docs/trainer-training.md).
set -euo pipefail

VERSION="${1:?usage: $0 2|3|4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHITU="${SHITU:-.venv/bin/shitu}"
NICE="${NICE:-nice -n 15}"
DATA="${DATA:-data/synth-v$VERSION}"
OUT="${OUT:-runs/recognition-v$VERSION}"
CONFIG="${CONFIG:-trainer/configs/recognition_v$VERSION.yaml}"

synth() {  # synth DIR ARGS...: generate once (a finished run leaves synth.json)
  local out="$1"; shift
  [[ -f "$out/synth.json" ]] || $NICE "$SHITU" data synth --out "$out" --overwrite "$@"
}

train() {  # from the newest checkpoint of $OUT when there is one
  local resume=()
  compgen -G "$OUT/checkpoints/*" >/dev/null && resume=(--resume)
  $NICE "$SHITU" train rec --config "$CONFIG" --set "data.root=$DATA/recognition" --set "output=$OUT" "${resume[@]}"
}

second_benchmarks() {  # issue 15's benchmarks of the second version (seed 7; the classes differ by split anyway)
  local bench="${BENCH:-data/bench-v2}"
  synth "$bench/packaging" --seed 7 --classes 1500 --scenes-per-class 2 --products package --shelf-share 0.1 \
    --empty-share 0
  scripts/install-assets.sh --heldout
  synth "$bench/heldout" --seed 7 --classes 1000 --scenes-per-class 2 --products package --families heldout \
    --shelf-share 0 --empty-share 0
  synth "$bench/cards" --seed 7 --classes 1500 --scenes-per-class 2 --shelf-share 0.1 --empty-share 0
  for kind in packaging heldout cards; do
    for model in "$OUT/export" model_store/embedder/default; do
      $NICE "$SHITU" eval --data "$bench/$kind" --split test --embedder "$model" \
        --detector model_store/detector/default --out "reports/v2/$kind/$(basename "$(dirname "$model")")-$(basename "$model")"
    done
  done
}

case "$VERSION" in
  2)
    # Every training family as packages; the detector's scene kinds are not needed here. Debian's openclipart-png
    # (`make assets ASSETS=--full`) adds its product folders as classes when it is installed: install it before the
    # first run, since the class list of data/synth-v2 is fixed once generated.
    synth "$DATA" --classes 3000 --scenes-per-class 3 --products package --shelf-share 0 --empty-share 0
    train
    second_benchmarks ;;
  3)
    start=runs/starts/embedder_v2.pdparams  # the recipe's model.init_checkpoint
    [[ -f "$start" ]] || "$SHITU" train rec-start --from "${START:-model_store/embedder/v2}" --out "$start"
    # a superset of the second's classes (selection ranks by a stable hash), new scenes (seed 1)
    synth "$DATA" --seed 1 --classes 5000 --scenes-per-class 3 --products package --shelf-share 0 --empty-share 0
    train ;;
  4)
    start=runs/starts/embedder_v3.pdparams
    third=model_store/embedder/v3
    [[ -d "$third" ]] || third=model_store/embedder/default  # before the fourth ships, the third is the default
    [[ -f "$start" ]] || "$SHITU" train rec-start --from "${START:-$third}" --out "$start"
    # every installed training-family product (no --classes), new photos (seed 2)
    synth "$DATA" --seed 2 --scenes-per-class 2 --products package --shelf-share 0 --empty-share 0
    train ;;
  *) echo "usage: $0 2|3|4" >&2; exit 2 ;;
esac
