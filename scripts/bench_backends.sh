#!/usr/bin/env bash
# Steps/s of `conjure bench` per matrix backend, interleaved over ROUNDS rounds (these machines
# are noisy); prints every run's figure and the median per model, configuration and backend.
#
#   ROUNDS=2 BACKENDS="openblas onednn" CONFIGS=64x1,64x2 scripts/bench_backends.sh [seed] [gan] [dcgan]
#
# scipy-openblas joins BACKENDS when CONJURE_SCIPY_OPENBLAS is set (scripts/fetch-scipy-openblas.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/conjure}
ROUNDS=${ROUNDS:-2}
CONFIGS=${CONFIGS:-64x1,64x2}
BACKENDS=${BACKENDS:-"openblas onednn${CONJURE_SCIPY_OPENBLAS:+ scipy-openblas}"}
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(seed gan dcgan)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  for model in "${MODELS[@]}"; do
    case $model in dcgan|cdcgan|ddpm*|conv-vae) steps=20; warmup=5; repeats=3;; *) steps=100; warmup=20; repeats=3;; esac
    for backend in $BACKENDS; do
      "$BIN" bench --model "$model" --configs "$CONFIGS" --backend "$backend" --steps $steps --warmup $warmup --repeats $repeats 2>/dev/null \
        | sed -n 's/^batch *\([0-9]*\) *threads \([0-9]*\) *\([0-9.]*\) steps\/s.*/\1x\2 \3/p' \
        | while read -r cfg v; do echo "$model $cfg $backend $v" | tee -a "$OUT"; done
    done
  done
done
echo "median steps/s over $ROUNDS rounds:"
python3 - "$OUT" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, c, b, v = line.split()
    d[(m, c, b)].append(float(v))
for (m, c, b), vs in sorted(d.items()):
    print(f"{m:8} {c:6} {b:15} {statistics.median(vs):8.2f}  ({', '.join(f'{v:.2f}' for v in vs)})")
PY
