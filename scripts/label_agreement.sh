#!/usr/bin/env bash
# How often the run's domain classifier agrees with the requested class of a conditional model.
#   scripts/label_agreement.sh RUN_DIR [COUNT] [SEED]
# For each class L: `conjure sample --label L --count COUNT`, then `conjure classifier score`
# with RUN_DIR/classifier.safetensors (written by `conjure evaluate` or `--eval-every`); prints
# the fraction classified as L, and the mean over classes.
set -euo pipefail
run=${1:?usage: $0 RUN_DIR [COUNT] [SEED]}
count=${2:-1000}
seed=${3:-2}
BIN=${BIN:-.build/release/conjure}
ckpt="$run/checkpoints/latest.safetensors"
classifier="$run/classifier.safetensors"
[ -f "$classifier" ] || { echo "$classifier is missing: run \`conjure evaluate --checkpoint $ckpt\` first" >&2; exit 1; }
classes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['model']['conditionalClasses'])" "$run/config.json")
[ "$classes" -gt 0 ] || { echo "$run is not a conditional model" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((l = 0; l < classes; l++)); do
    "$BIN" sample --checkpoint "$ckpt" --label "$l" --count "$count" --seed "$seed" --out "$tmp/$l.npy" >/dev/null
    "$BIN" classifier score --classifier "$classifier" --samples "$tmp/$l.npy" >"$tmp/$l.json"
done
python3 - "$tmp" "$classes" <<'PY'
import json, sys
tmp, k = sys.argv[1], int(sys.argv[2])
fr = [json.load(open(f"{tmp}/{l}.json"))["classFractions"][l] for l in range(k)]
for l, f in enumerate(fr):
    print(f"label {l}: {100 * f:.1f}%")
print(f"mean: {100 * sum(fr) / k:.1f}%  min: {100 * min(fr):.1f}%")
PY
