#!/usr/bin/env bash
# Mode-collapse yardstick on the 2-D mixtures (VEEGAN / PacGAN protocol): train the seed GAN
# architecture scaled to 2-D on ring8 and grid25 over several seeds, with and without PacGAN
# packing, and report modes captured and % high-quality samples (2500 samples each).
# Usage: scripts/yardstick_2d.sh [seeds=10] [epochs=20]   (run from the package root after a release build)
set -euo pipefail
seeds=${1:-10}; epochs=${2:-20}
bin=.build/release/conjure
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf "%-7s %-5s %-14s %-14s\n" data pack "modes (mean)" "HQ % (mean)"
for data in ring8 grid25; do
  for pack in 1 4; do
    modes=0; hq=0
    for s in $(seq 0 $((seeds - 1))); do
      $bin train --data "$data" --model seed --pack "$pack" --seed "$s" --epochs "$epochs" --runs-dir "$out" \
        --name "$data-$pack-$s" --held-out 0.05 --quiet --sample-every 0 >/dev/null 2>&1
      $bin evaluate --checkpoint "$out/$data-$pack-$s/checkpoints/latest.safetensors" --count 2500 --seed "$s" \
        --metrics mixture >/dev/null 2>&1
      read -r m h < <(python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['metrics']['mixture']; print(e['modesCaptured'], 100*e['highQualityFraction'])" "$out/$data-$pack-$s/eval.json")
      modes=$(python3 -c "print($modes + $m)"); hq=$(python3 -c "print($hq + $h)")
    done
    printf "%-7s %-5s %-14.1f %-14.1f\n" "$data" "$pack" "$(python3 -c "print($modes/$seeds)")" "$(python3 -c "print($hq/$seeds)")"
  done
done
