#!/usr/bin/env bash
# Trains presets on the MNIST subset for a fixed wall-clock budget each, then evaluates them
# with the same protocol and writes a 8x8 sample grid per preset.
#
#   scripts/preset_results.sh MINUTES 'PRESET[ TRAIN_OPTIONS]' ...
#   e.g. scripts/preset_results.sh 5 lsgan 'wgan-gp --eval-every 1000' 'dcgan --ema 0.999'
#
# Environment: BIN (default .build/release/conjure), DATA (default data/mnist_5k.csv.gz, else
# ../shared/data/mnist_5k.csv.gz), RUNS (default runs/results), OUT (default docs/samples),
# COUNT (evaluate's sample count, default 10000), CLASSIFIER (one domain classifier file for every
# row, so their FIDs are comparable; default: each run's own, trained when missing).
# Per preset: RUNS/NAME (the run; training stops with SIGINT at the budget, which writes a
# checkpoint), OUT/NAME.png (64 samples, seed 1), RUNS/NAME/eval.json, and one line of
# RUNS/results.tsv: preset, steps, seconds, FID, KID, precision, recall, negative ELBO, IWAE.
set -euo pipefail
minutes=${1:?usage: $0 MINUTES PRESET...}
shift
BIN=${BIN:-.build/release/conjure}
DATA=${DATA:-data/mnist_5k.csv.gz}
[ -f "$DATA" ] || DATA=../shared/data/mnist_5k.csv.gz
RUNS=${RUNS:-runs/results}
OUT=${OUT:-docs/samples}
COUNT=${COUNT:-10000}
classifier=()
[ -n "${CLASSIFIER:-}" ] && classifier=(--classifier "$CLASSIFIER")
mkdir -p "$RUNS" "$OUT"
for spec in "$@"; do
    read -r preset extra <<<"$spec"
    name=$preset
    echo "== $preset ($minutes min) $extra"
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout --preserve-status -s INT "$((minutes * 60))" "$BIN" train --data "$DATA" --model "$preset" --name "$name" --runs-dir "$RUNS" \
        --overwrite --epochs 100000 --sample-every 0 --checkpoint-every 2000 --plain --log-every 500 $extra \
        >"$RUNS/$name.log" 2>&1 || [ $? -eq 130 ] || { echo "training $preset failed: see $RUNS/$name.log"; exit 1; }  # 130: stopped at the budget
    seconds=$(($(date +%s) - start))
    ckpt="$RUNS/$name/checkpoints/latest.safetensors"
    "$BIN" sample --checkpoint "$ckpt" --count 64 --seed 1 --out "$OUT/$name.png"
    "$BIN" evaluate --checkpoint "$ckpt" --count "$COUNT" --seed 0 "${classifier[@]}" >"$RUNS/$name.eval.txt" 2>&1
    python3 - "$RUNS/$name/eval.json" "$preset" "$seconds" >>"$RUNS/results.tsv" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["metrics"]
def g(*path):
    v = m
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return ""
        v = v[p]
    return f"{v:.4g}" if isinstance(v, float) else str(v)
print("\t".join([sys.argv[2], str(r["step"]), sys.argv[3], g("fid", "value"), g("kid", "mean"),
                 g("precision_recall", "precision"), g("precision_recall", "recall"),
                 g("elbo", "negative_elbo_nats"), g("elbo", "iwae_nats")]))
EOF
    tail -n 1 "$RUNS/results.tsv"
done
