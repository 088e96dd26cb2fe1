"""Plot a training run's curves (loss terms and held-out PSNR) from its ``logs/metrics.jsonl``.

    python benchmarks/plot_training_curves.py checkpoints/mira-demo/logs/metrics.jsonl docs/figures/mira-demo-curves.png

A run made in stages (a continuation from another run's weights, which counts its steps from 0 again) is
plotted as one: give each stage's file in order, and each later stage's steps are moved on by the steps
before it. Each stage's held-out PSNR is its own line, as stages may validate on different objects:

    python benchmarks/plot_training_curves.py stage1/logs/metrics.jsonl stage2/logs/metrics.jsonl curves.png

Needs matplotlib (``pip install matplotlib``; not a MIRA dependency).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mira.training.logger import read_metrics  # noqa: E402


def join_stages(metrics_files: list[str | Path]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], list[int]]:
    """One step axis for the stages of a run.

    Returns:
        the train records of all stages, the val records of each stage, and the step where each stage after the
        first begins; every record's ``step`` is moved on by the last train step of the stages before it.
    """
    train: list[dict[str, Any]] = []
    val_per_stage: list[list[dict[str, Any]]] = []
    boundaries: list[int] = []
    offset = 0
    for index, path in enumerate(metrics_files):
        stage_train = read_metrics(path, "train")
        if not stage_train:
            raise ValueError(f"{path}: no training records (is it a run's logs/metrics.jsonl?)")
        if index > 0:
            boundaries.append(offset)
        train += [{**record, "step": record["step"] + offset} for record in stage_train]
        val_per_stage.append([{**record, "step": record["step"] + offset} for record in read_metrics(path, "val")])
        offset += stage_train[-1]["step"]
    return train, val_per_stage, boundaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", nargs="+", help="logs/metrics.jsonl of a run (or of each stage of it, in order)")
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title (default: the first metrics file's run folder)")
    args = parser.parse_args(argv)
    train, val_per_stage, boundaries = join_stages(args.metrics)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["step"] for r in train]
    left.plot(steps, [r["loss"] for r in train], label="loss (MSE + mask)")
    left.plot(steps, [r["mse"] for r in train], label="RGB MSE")
    left.plot(steps, [r["mask"] for r in train], label="mask MSE")
    left.set_xlabel("step")
    left.set_yscale("log")
    left.legend()
    left.set_title("training loss")
    for index, val in enumerate(val_per_stage):
        label = "held-out PSNR" if len(val_per_stage) == 1 else f"held-out PSNR, stage {index + 1}"
        right.plot([r["step"] for r in val], [r["psnr"] for r in val], marker="o", label=label)
    right.plot(steps, [-10 * math.log10(r["mse"]) for r in train], alpha=0.5, label="train RGB PSNR (patches)")
    for axis in (left, right):
        for boundary in boundaries:
            axis.axvline(boundary, color="grey", linestyle="--", linewidth=0.8)
    right.set_xlabel("step")
    right.set_ylabel("dB")
    right.legend()
    right.set_title("PSNR")
    figure.suptitle(args.title or Path(args.metrics[0]).resolve().parents[1].name)
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
