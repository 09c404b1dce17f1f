#!/usr/bin/env bash
# The evaluations of docs/diffusion.md for a trained `ddpm` and `ddpm-cond` run (MNIST subset):
# sample grids, the reverse process, `conjure evaluate` at one sample count with one classifier,
# the guidance sweep of the conditional model and FID against the sampler's steps.
#
#   scripts/diffusion_results.sh PART...     PART: grids main guidance steps
#
# Environment: BIN (default .build/release/conjure), UNCOND / COND (run folders, default
# runs/ddpm and runs/ddpm-cond), CLASSIFIER (default UNCOND/classifier.safetensors, trained by
# the first evaluate when missing), COUNT (main rows, default 2000), SWEEP (guidance and steps
# rows, default 1000), OUT (grids, default docs/samples), THREADS (default 1).
# Each evaluation writes RUN/eval-NAME.json and a line of RESULTS (default results-diffusion.tsv):
# name, sampler, samples, FID, KID (eval.json's kid.mean), precision, recall, IS, label agreement, seconds.
set -euo pipefail
BIN=${BIN:-.build/release/conjure}
UNCOND=${UNCOND:-runs/ddpm}
COND=${COND:-runs/ddpm-cond}
CLASSIFIER=${CLASSIFIER:-$UNCOND/classifier.safetensors}
COUNT=${COUNT:-2000}
SWEEP=${SWEEP:-1000}
OUT=${OUT:-docs/samples}
THREADS=${THREADS:-1}
RESULTS=${RESULTS:-results-diffusion.tsv}
mkdir -p "$OUT"
ckpt() { echo "$1/checkpoints/latest.safetensors"; }

# evaluate NAME RUN COUNT [sampler options...]
evaluate() {
    local name=$1 run=$2 count=$3
    shift 3
    local start classifier=()
    start=$(date +%s)
    # The first evaluation trains the classifier into UNCOND when it is missing.
    [ -f "$CLASSIFIER" ] && classifier=(--classifier "$CLASSIFIER")
    "$BIN" evaluate --checkpoint "$(ckpt "$run")" --count "$count" --seed 0 --threads "$THREADS" "${classifier[@]}" \
        --out "$run/eval-$name.json" "$@" >"$run/eval-$name.txt" 2>&1
    python3 - "$run/eval-$name.json" "$name" "$(($(date +%s) - start))" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]
def g(*path):
    v = m
    for p in path:
        if not isinstance(v, dict) or p not in v: return ""
        v = v[p]
    return f"{v:.4g}" if isinstance(v, float) else str(v)
print("\t".join([sys.argv[2], r["samples"]["source"].split("sampler ")[-1], str(r["samples"].get("count", "")), g("fid", "value"),
                 g("kid", "mean"), g("precision_recall", "precision"), g("precision_recall", "recall"),
                 g("classifier_score", "mean"), g("label_agreement", "fraction"), sys.argv[3]]))
PY
    tail -n 1 "$RESULTS"
}

for part in "$@"; do
    case $part in
    grids)
        "$BIN" sample --checkpoint "$(ckpt "$UNCOND")" --count 64 --seed 1 --threads "$THREADS" --out "$OUT/ddpm.png"
        "$BIN" sample --checkpoint "$(ckpt "$COND")" --count 64 --seed 1 --guidance 3 --columns 8 --threads "$THREADS" --out "$OUT/ddpm-cond.png"
        "$BIN" sample --checkpoint "$(ckpt "$UNCOND")" --count 8 --seed 1 --trajectory 11 --threads "$THREADS" --out "$OUT/ddpm-reverse.png"
        ;;
    main)
        evaluate ddpm "$UNCOND" "$COUNT"
        evaluate ddpm-cond-g3 "$COND" "$COUNT" --guidance 3
        ;;
    guidance)
        for w in 0 1 3 5; do evaluate "ddpm-cond-g$w-n$SWEEP" "$COND" "$SWEEP" --guidance "$w"; done
        ;;
    steps)
        for s in 10 20 50 100; do evaluate "ddpm-ddim$s-n$SWEEP" "$UNCOND" "$SWEEP" --sampler ddim --steps "$s"; done
        evaluate "ddpm-ddpm1000-n$SWEEP" "$UNCOND" "$SWEEP" --sampler ddpm
        ;;
    *) echo "unknown part '$part' (grids main guidance steps)" >&2; exit 2 ;;
    esac
done
