#!/usr/bin/env bash
# Interleaved `conjure bench` of two builds (for example the commit before a change and after
# it) in one run: for each round and model, A then B, so drift of a noisy machine hits both.
# Prints each configuration's median over the rounds (of each run's median steps/s) and B/A.
#
#   A=/path/old/conjure B=.build/release/conjure ROUNDS=3 scripts/bench_versions.sh seed gan dcgan
#
# Per-model settings keep slow models short: seed all four configurations at the defaults;
# gan and dcgan 64x1 and 64x2 with fewer steps (a dcgan step is ~40x a seed step).
set -euo pipefail
A=${A:?set A to the first conjure binary}
B=${B:?set B to the second conjure binary}
ROUNDS=${ROUNDS:-3}
MODELS=("$@"); [ ${#MODELS[@]} -eq 0 ] && MODELS=(seed gan dcgan)
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
args() {
    case $1 in
    seed) echo "--configs 64x1,64x2,256x1,256x2" ;;
    gan) echo "--configs 64x1,64x2 --repeats 5 --steps 100 --warmup 20" ;;
    *) echo "--configs 64x1,64x2 --repeats 5 --steps 20 --warmup 5" ;;
    esac
}
for r in $(seq "$ROUNDS"); do
    for m in "${MODELS[@]}"; do
        for which in A B; do
            bin=${!which}
            echo "round $r $m $which" >&2
            # shellcheck disable=SC2046
            "$bin" bench --model "$m" $(args "$m") --json | grep '^{' | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print('$which', r['model'], '%dx%d' % (r['batch'], r['threads']), r['stepsPerSecondMedian'])" >> "$OUT"
        done
    done
done
python3 - "$OUT" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w, m, c, s = line.split(); v[(w, m, c)].append(float(s))
keys = sorted({(m, c) for (_, m, c) in v}, key=lambda k: (k[0], k[1]))
print("| model | batch x threads | A steps/s | B steps/s | B/A | rounds |")
print("|---|---|---|---|---|---|")
for m, c in keys:
    a, b = statistics.median(v[("A", m, c)]), statistics.median(v[("B", m, c)])
    print(f"| {m} | {c} | {a:.1f} | {b:.1f} | {b / a:.3f} | {len(v[('A', m, c)])} |")
PY
