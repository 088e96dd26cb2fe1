"""Plot a training run's curves (loss terms and held-out PSNR) from its ``logs/metrics.jsonl``.

    python benchmarks/plot_training_curves.py checkpoints/mira-demo/logs/metrics.jsonl docs/figures/mira-demo-curves.png

Needs matplotlib (``pip install matplotlib``; not a MIRA dependency).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mira.training.logger import read_metrics  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", help="logs/metrics.jsonl of a run")
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title (default: the metrics file's run folder)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = read_metrics(args.metrics, "train")
    val = read_metrics(args.metrics, "val")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["step"] for r in train]
    left.plot(steps, [r["loss"] for r in train], label="loss (MSE + mask)")
    left.plot(steps, [r["mse"] for r in train], label="RGB MSE")
    left.plot(steps, [r["mask"] for r in train], label="mask MSE")
    left.set_xlabel("step")
    left.set_yscale("log")
    left.legend()
    left.set_title("training loss")
    right.plot([r["step"] for r in val], [r["psnr"] for r in val], marker="o", label="held-out PSNR")
    right.plot(steps, [-10 * math.log10(r["mse"]) for r in train], alpha=0.5, label="train RGB PSNR (patches)")
    right.set_xlabel("step")
    right.set_ylabel("dB")
    right.legend()
    right.set_title("PSNR")
    figure.suptitle(args.title or Path(args.metrics).resolve().parents[1].name)
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
