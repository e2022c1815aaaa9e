#!/usr/bin/env bash
# Runs the distillation ablation one variant at a time and evaluates each finished variant
# while the next one trains (evaluation is resumable and keyed by model, so the final
# `python -m training.ablation` call only reuses the cached results and writes the report).
#
#   tools/ablation_pipeline.sh OUT STEPS SHARED_STEPS DATA [--set KEY=VALUE ...]
#
# Example (the CPU pilot of 2026-11-28, docs/default_model.md):
#   tools/ablation_pipeline.sh runs/ablation_tiny 2500 1500 data/tts_corpus/test_subset100.tsv \
#       --set model.n_filters=8 model.dimension=128 model.lstm_layers=1
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1 STEPS=$2 SHARED=$3 DATA=$4
shift 4
PY=${PY:-.venv/bin/python}
VARIANTS=${VARIANTS:-"none lm_sm lm sm lm_sm_positional"}
mkdir -p "$OUT"
eval_pid=""
for variant in $VARIANTS; do
  "$PY" -m training.ablation --steps "$STEPS" --shared-steps "$SHARED" --out "$OUT" \
    --variants "$variant" --train-only "$@"
  if [ -n "$eval_pid" ]; then wait "$eval_pid"; fi  # one evaluation at a time (one results file)
  TF_CPP_MIN_LOG_LEVEL=3 "$PY" -m keras_dmcodec evaluate --data "$DATA" --n-q 8 \
    -o "$OUT/eval" --no-progress --no-plots --model "$OUT/presets/ablation_$variant" \
    >> "$OUT/eval.log" 2>&1 &
  eval_pid=$!
done
wait "$eval_pid"
# All variants trained and evaluated: this only collects the results and writes the report.
# shellcheck disable=SC2086
"$PY" -m training.ablation --steps "$STEPS" --shared-steps "$SHARED" --out "$OUT" \
  --data "$DATA" --variants $VARIANTS "$@"
