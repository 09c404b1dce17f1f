#!/usr/bin/env bash
# Trains sound presets on FSDD for a fixed wall-clock budget each, then evaluates them with one
# spectrogram classifier and the same protocol, and writes listening and looking material.
#
#   scripts/audio_results.sh MINUTES 'PRESET[ TRAIN_OPTIONS]' ...
#   e.g. scripts/audio_results.sh 30 wavegan 'wavegan --conditional' ddpm-1d
#
# Environment: BIN (default .build/release/conjure), DATA (default ../shared/data/fsdd/recordings),
# RUNS (default runs/audio), OUT (default docs/samples), COUNT (evaluate's sample count, default
# 1000), THREADS (default 1), CLASSIFIER (default RUNS/fsdd-classifier.safetensors, trained
# with `conjure classifier train` when missing; FSDD's own test split is its held-out part).
# Per preset: RUNS/NAME (training stops with SIGINT at the budget, which writes a checkpoint),
# OUT/NAME.png (spectrograms of 16 samples, seed 1), OUT/NAME.wav (4 samples, seed 1, 0.25 s
# apart), RUNS/NAME/eval.json, and one line of RUNS/results.tsv: name, steps, seconds,
# classifier score, the same for the real held-out clips, their ratio, FID, KID, classes >= 2%,
# label agreement.
set -euo pipefail
minutes=${1:?usage: $0 MINUTES PRESET...}
shift
BIN=${BIN:-.build/release/conjure}
DATA=${DATA:-../shared/data/fsdd/recordings}
RUNS=${RUNS:-runs/audio}
OUT=${OUT:-docs/samples}
COUNT=${COUNT:-1000}
THREADS=${THREADS:-1}
CLASSIFIER=${CLASSIFIER:-$RUNS/fsdd-classifier.safetensors}
mkdir -p "$RUNS" "$OUT"
if [ ! -f "$CLASSIFIER" ]; then
    "$BIN" classifier train --data "$DATA" --out "$CLASSIFIER" --threads "$THREADS" 2>"$RUNS/classifier.log"
fi
for spec in "$@"; do
    read -r preset extra <<<"$spec"
    name=$preset
    case "$extra" in *--conditional*) name=$preset-cond ;; esac
    echo "== $name ($minutes min) $extra"
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout --preserve-status -s INT "$((minutes * 60))" "$BIN" train --data "$DATA" --model "$preset" --name "$name" --runs-dir "$RUNS" \
        --overwrite --epochs 100000 --sample-every 500 --checkpoint-every 500 --plain --log-every 50 --threads "$THREADS" $extra \
        >"$RUNS/$name.log" 2>&1 || [ $? -eq 130 ] || { echo "training $name failed: see $RUNS/$name.log"; exit 1; }  # 130: stopped at the budget
    seconds=$(($(date +%s) - start))
    ckpt="$RUNS/$name/checkpoints/latest.safetensors"
    "$BIN" sample --checkpoint "$ckpt" --count 16 --seed 1 --out "$OUT/$name.png" --threads "$THREADS"
    "$BIN" sample --checkpoint "$ckpt" --count 4 --seed 1 --out "$OUT/$name.wav" --threads "$THREADS"
    "$BIN" evaluate --checkpoint "$ckpt" --classifier "$CLASSIFIER" --count "$COUNT" --seed 0 --threads "$THREADS" \
        --metrics fid,kid,score,modes >"$RUNS/$name.eval.txt" 2>&1
    python3 - "$RUNS/$name/eval.json" "$name" "$seconds" >>"$RUNS/results.tsv" <<'EOF'
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
score, real = g("classifier_score", "mean"), g("real_reference", "classifier_score", "mean")
ratio = f"{float(score) / float(real):.3f}" if score and real else ""
print("\t".join([sys.argv[2], str(r["step"]), sys.argv[3], score, real, ratio, g("fid", "value"), g("kid", "mean"),
                 g("modes", "classesCovered"), g("label_agreement", "fraction")]))
EOF
    tail -1 "$RUNS/results.tsv"
done
