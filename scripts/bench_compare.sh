#!/usr/bin/env bash
# Same-session speed comparison: `conjure bench` next to the reference scripts, interleaved over
# several rounds (these machines are noisy), printing each figure's median over the rounds and
# Conjure's ratio to it.
#
#   PY=/path/to/venv/bin/python ROUNDS=3 scripts/bench_compare.sh [seed] [gan] [dcgan] [char-transformer] [char-gru] [ddpm] [ddpm-cond]
#
# PY needs torch (and jax + optax for the JAX rows; they are skipped when missing). The reference
# scripts are ../shared/bench/*.py (BENCH_DIR overrides) and scripts/bench_torch_{gan,text,ddpm}.py.
# One-thread JAX runs are pinned to one core with taskset, as in ../shared/bench/REFERENCE.md.
# ddpm and ddpm-cond add sampling rows: images/s of the preset's DDIM 50 sampler (ddpm-cond with
# guidance, 2N network evaluations per step) from runs of SAMPLE_STEPS (default 10) DDIM steps
# at batch 64, the same in `conjure bench --sample-steps` and scripts/bench_torch_ddpm.py.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/conjure}
PY=${PY:-python3}
ROUNDS=${ROUNDS:-3}
SAMPLE_STEPS=${SAMPLE_STEPS:-10}
BENCH_DIR=${BENCH_DIR:-../shared/bench}
export BENCH_DIR
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(seed gan dcgan)
[ -x "$BIN" ] || { echo "bench_compare: $BIN not found; run 'swift build -c release' first" >&2; exit 1; }
[ -d "$BENCH_DIR" ] || { echo "bench_compare: reference scripts not found in $BENCH_DIR" >&2; exit 1; }
"$PY" -c "import torch" 2>/dev/null || { echo "bench_compare: $PY cannot import torch" >&2; exit 1; }
HAVE_JAX=0
"$PY" -c "import jax, optax" 2>/dev/null && HAVE_JAX=1
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# One line per measurement: KEY VALUE (steps/s; images/s for a MODEL:sampling key).
ref() {  # ref FRAMEWORK/MODEL/BxT SCRIPT ARGS...
    local key=$1; shift
    local v
    v=$("$@" 2>/dev/null | sed -n 's/^RESULT //p' | "$PY" -c "
import json, sys
key = sys.argv[1]
fw, model, cfg = key.split('/')
r = json.load(sys.stdin)
print(key, r['steps_per_s_median'])
if 'images_per_s_median' in r:
    print('%s/%s:sampling/%s %s' % (fw, model, cfg, r['images_per_s_median']))" "$key") || v=""
    [ -n "$v" ] && echo "$v" >> "$OUT"
    return 0
}
conj() {  # conj MODEL CONFIGS EXTRA...
    local model=$1 configs=$2; shift 2
    "$BIN" bench --model "$model" --configs "$configs" --json "$@" | grep '^{' | "$PY" -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print('conjure/%s/%dx%d %s' % (r['model'], r['batch'], r['threads'], r['stepsPerSecondMedian']))
    if 'imagesPerSecondMedian' in r:
        print('conjure/%s:sampling/%dx%d %s' % (r['model'], r['batch'], r['threads'], r['imagesPerSecondMedian']))" >> "$OUT"
}

for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    for m in "${MODELS[@]}"; do
        case $m in
        seed)
            conj seed 64x1,64x2,256x1,256x2
            for c in "64 1" "64 2" "256 1" "256 2"; do
                set -- $c
                ref "torch/seed/${1}x$2" "$PY" "$BENCH_DIR/bench_torch.py" --batch "$1" --threads "$2"
                if [ $HAVE_JAX = 1 ]; then
                    if [ "$2" = 1 ]; then
                        ref "jaxscan/seed/${1}x$2" taskset -c 0 "$PY" "$BENCH_DIR/bench_jax.py" --variant scan --batch "$1" --threads 1
                    else
                        ref "jaxscan/seed/${1}x$2" "$PY" "$BENCH_DIR/bench_jax.py" --variant scan --batch "$1" --threads "$2"
                    fi
                fi
            done ;;
        gan)
            conj gan 64x1,64x2
            for t in 1 2; do ref "torch/gan/64x$t" "$PY" scripts/bench_torch_gan.py --batch 64 --threads $t; done ;;
        dcgan)
            conj dcgan 64x1,64x2 --repeats 5 --steps 20 --warmup 5
            for t in 1 2; do ref "torch/dcgan/64x$t" "$PY" "$BENCH_DIR/bench_torch_dcgan.py" --batch 64 --threads $t; done ;;
        char-transformer|char-gru)
            # Stream mode, 65-character vocabulary, batch 32, context 64 (conjure bench's text setup).
            conj "$m" 32x1,32x2 --repeats 5 --steps 50 --warmup 10
            for t in 1 2; do ref "torch/$m/32x$t" "$PY" scripts/bench_torch_text.py --model "$m" --batch 32 --threads $t; done ;;
        ddpm|ddpm-cond)
            # Training step at batch 64 (uniform t, epsilon MSE, Adam, clipping, EMA) and DDIM 50 sampling.
            conj "$m" 64x1,64x2 --repeats 5 --steps 10 --warmup 2 --sample-steps "$SAMPLE_STEPS"
            for t in 1 2; do
                ref "torch/$m/64x$t" "$PY" scripts/bench_torch_ddpm.py --model "$m" --batch 64 --threads $t \
                    --repeats 5 --steps 10 --warmup 2 --sample-steps "$SAMPLE_STEPS"
            done ;;
        *) echo "bench_compare: unknown model '$m' (seed, gan, dcgan, char-transformer, char-gru, ddpm, ddpm-cond)" >&2; exit 1 ;;
        esac
    done
done

"$PY" - "$OUT" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split()
    runs[k].append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
print("| model | batch x threads | Conjure steps/s (sampling rows: images/s) | PyTorch eager | ratio | JAX lax.scan | ratio |")
print("|---|---|---|---|---|---|---|")
for k in sorted(med):
    if not k.startswith("conjure/"):
        continue
    _, model, cfg = k.split("/")
    c = med[k]
    label = model.replace(":sampling", " sampling (DDIM 50, images/s)")
    row = [label, cfg, "%.2f (%s)" % (c, ", ".join("%.2f" % x for x in runs[k]))]
    for fw in ("torch", "jaxscan"):
        r = med.get("%s/%s/%s" % (fw, model, cfg))
        row += ["%.2f" % r, "x%.2f" % (c / r)] if r else ["", ""]
    print("| " + " | ".join(row) + " |")
EOF
