#!/usr/bin/env python3
"""Plot FID against wall-clock training time from Conjure runs trained with --eval-every.

Usage: scripts/plot_fid_vs_time.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Reads the evaluation lines of each RUN_DIR/metrics.jsonl (those with "fid" and
"wall_seconds") and draws one curve per run. Needs matplotlib (pip install matplotlib).
"""
import json
import os
import sys


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__.strip().splitlines()[2])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = argv[1]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for spec in argv[2:]:
        label, run = spec.split("=", 1)
        path = os.path.join(run, "metrics.jsonl")
        points = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n}: not JSON ({e})")
                if "fid" in rec and "wall_seconds" in rec:
                    points.append((rec["wall_seconds"] / 60, rec["fid"]))
        if not points:
            sys.exit(f"{path}: no FID lines (train with --eval-every K)")
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, label=f"{label} (best {min(ys):.1f})")
    ax.set_xlabel("wall-clock time since the start of training (minutes)")
    ax.set_ylabel("FID, held-out split (classifier features)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out + ".tmp"
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv)
