"""Does MIRA learn? Two training runs on procedural objects, with their curves as a table.

* ``overfit``: a fixed small set of objects, each always seen from the same source view. A model
  that can tell objects apart by their images fits them: PSNR on those objects must pass 30 dB.
* ``generalise``: the endless stream of new objects; PSNR on held-out objects (never trained on)
  must rise steadily.

Both use the real trainer (:class:`mira.training.Trainer`) and the real data path
(:class:`mira.data.procedural.dataset.ProceduralDataset`, the source-view contract), on whatever
device is there; validation renders whole views of the evaluation objects (eval-mode sampling).

    python benchmarks/bench_learning.py --config_path configs/mira-demo.json --phase overfit --steps 1500
    python benchmarks/bench_learning.py --config_path configs/mira-demo.json --phase generalise --minutes 3
    python benchmarks/bench_learning.py --quick          # seconds on a CPU: checks the script

``--set key=value`` overrides any config key (JSON values); ``--out DIR`` keeps the run (its
``logs/metrics.jsonl`` holds every logged figure) and writes ``curves.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mira.config import MiraConfig, load_config  # noqa: E402
from mira.data.procedural.dataset import ProceduralDataset  # noqa: E402
from mira.devices import resolve_device  # noqa: E402
from mira.training.logger import read_metrics  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402
from mira.training.trainer import Trainer  # noqa: E402
from mira.training.validation import run_validation  # noqa: E402

OVERFIT_TARGET_PSNR = 30.0
QUICK_OVERRIDES = {"render_size": 16, "supervision_k": 2, "batch_size": 2, "val_max_objects": 2,
                   "rendering_samples_per_ray": 8, "importance_samples_per_ray": 8, "patch_size": 0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", default=str(REPO_ROOT / "configs" / "mira-demo.json"), help="model/training config")
    parser.add_argument("--phase", choices=("overfit", "generalise"), default="overfit", help="which run (see above)")
    parser.add_argument("--objects", type=int, default=8, help="overfit: size of the fixed object set")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (the schedule's length)")
    parser.add_argument("--minutes", type=float, default=0.0, help="> 0: stop after this long (schedule unchanged)")
    parser.add_argument("--val_every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--renders", type=int, default=0,
                        help="> 0: write renders.png, these many evaluation objects (source | truth | model)")
    parser.add_argument("--final_eval", type=int, default=0, metavar="N",
                        help="> 0 (generalise): after training, PSNR / SSIM on N held-out objects, more than the periodic "
                             "validation's, so that runs can be compared beyond its noise")
    parser.add_argument("--quick", action="store_true", help="tiny config, a few CPU steps (checks the script)")
    return parser.parse_args(argv)


def parse_overrides(pairs: list[str]) -> dict:
    """``["lr=1e-3", "context_position_embedding=true"]`` -> {key: JSON value (or the raw string)}."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def phase_config(args: argparse.Namespace, out: Path) -> MiraConfig:
    """The run's config: the file, the phase's data settings, then ``--set``."""
    path = REPO_ROOT / "configs" / "tiny.json" if args.quick else Path(args.config_path)
    config = load_config(path)
    steps = 3 if args.quick else args.steps
    values = {"data_source": "procedural", "max_steps": steps, "num_epochs": 1_000_000, "device": args.device,
              "val_every_steps": 1 if args.quick else args.val_every, "checkpoint_every_steps": 0,
              "save_every_epoch": 0, "log_every_steps": 1 if args.quick else max(1, args.val_every // 4),
              "model_save_path": str(out), "model_preloading_strategy": "none", "lpips_weight": 0.0}
    if args.phase == "overfit":
        values.update({"procedural_objects": args.objects, "fixed_source_view": True, "random_background": False,
                       "procedural_random_lighting": 0.0, "val_max_objects": args.objects})
    if args.quick:
        values.update(QUICK_OVERRIDES)
    values.update(parse_overrides(args.set))
    config.override(source="bench_learning", **values)
    return config


def run(args: argparse.Namespace) -> dict:
    """Train one phase; returns its curves and summary."""
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"mira-learning-{args.phase}-"))
    config = phase_config(args, out)
    if args.phase == "overfit":  # evaluated on the training objects themselves (fixed views, same lights)
        device = resolve_device(config.train.device)
        trainer = Trainer(config, train_dataset=ProceduralDataset(config, "train", device=device),
                          val_dataset=ProceduralDataset(config, "train", device=device))
    else:  # the trainer's own procedural datasets: the stream, and held-out validation objects
        trainer = Trainer(config)
    if args.minutes > 0:
        deadline = time.monotonic() + 60.0 * args.minutes
        original = trainer._should_stop
        trainer._should_stop = lambda result: original(result) or time.monotonic() > deadline
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    if not (out / "final").exists():  # stopped by --minutes: the trainer kept a checkpoint; export the weights too
        trainer.export_final()
    validation = read_metrics(out / "logs" / "metrics.jsonl", "val")
    training = read_metrics(out / "logs" / "metrics.jsonl", "train")
    curves = {
        "phase": args.phase, "config": str(args.config_path), "overrides": parse_overrides(args.set),
        "steps": result.step, "seconds": seconds, "device": str(trainer.device),
        "validation": [{k: r[k] for k in ("step", "psnr", "ssim", "mse") if k in r} for r in validation],
        "training": [{k: r[k] for k in ("step", "loss", "mse", "mask", "samples_per_s") if k in r} for r in training],
    }
    if args.final_eval > 0 and args.phase == "generalise":
        curves["final_eval"] = final_evaluation(trainer, args.final_eval)
    (out / "curves.json").write_text(json.dumps(curves, indent=2) + "\n")
    if args.renders > 0:
        write_renders(trainer, "train" if args.phase == "overfit" else "val", args.renders, out / "renders.png")
    return curves


@torch.no_grad()
def final_evaluation(trainer: Trainer, count: int, batch: int = 8) -> dict:
    """The trainer's validation (whole views, eval-mode sampling) on ``count`` held-out procedural objects (the
    first ``count`` of the val split, the same for every run of a seed): ``{"objects", "psnr", "ssim", ...}``."""
    dataset = ProceduralDataset(trainer.config, "val", device=trainer.device, num_objects=count)
    batches = [default_collate(dataset.__getitems__(list(range(start, min(start + batch, count)))))
               for start in range(0, count, batch)]
    metrics, _ = run_validation(trainer.model, batches, None, trainer.context, trainer.autocast,
                                trainer.config.data.render_size)
    return {"objects": count, **metrics}


@torch.no_grad()
def write_renders(trainer: Trainer, split: str, count: int, path: Path) -> None:
    """A PNG of ``count`` evaluation objects, one row each: the source image, the true target views, the model's
    renders of them (whole views at ``render_size``, eval-mode sampling, the evaluation background)."""
    import imageio.v3 as iio

    model, config = trainer.model, trainer.config
    model.eval()
    count = min(count, config.data.procedural_objects or count) if split == "train" else count
    dataset = ProceduralDataset(config, split, device=trainer.device, num_objects=max(count, 1))
    batch = default_collate(dataset.__getitems__(list(range(count))))
    size = config.data.render_size
    with trainer.autocast():
        out = model(batch["source_image"], batch["source_c2w"], batch["source_intrinsics"], batch["target_c2w"],
                    batch["target_intrinsics"], size, background=batch["background"])
    source = torch.nn.functional.interpolate(batch["source_image"].float(), size=(size, size), mode="area")
    rows = []
    for b in range(count):
        tiles = [source[b]] + list(batch["target_images"][b].float()) + list(out["rgb"][b].float())
        rows.append(torch.cat(tiles, dim=-1))
    grid = torch.cat(rows, dim=-2).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    iio.imwrite(path, grid)


def print_table(curves: dict) -> None:
    print(f"\n{curves['phase']}: {curves['steps']} steps in {curves['seconds']:.0f} s on {curves['device']}"
          f" ({curves['config']}, overrides {curves['overrides']})")
    train = {r["step"]: r for r in curves["training"]}
    print("| step | train loss | train PSNR (MSE) | eval PSNR | eval SSIM |")
    print("|---:|---:|---:|---:|---:|")
    for record in curves["validation"]:
        near = min(train, key=lambda s: abs(s - record["step"])) if train else None
        loss = train[near]["loss"] if near is not None else float("nan")
        mse = train[near]["mse"] if near is not None else float("nan")
        train_psnr = -10 * math.log10(mse) if mse and mse > 0 else float("nan")
        print(f"| {record['step']} | {loss:.4f} | {train_psnr:.2f} | {record['psnr']:.2f} | {record.get('ssim', float('nan')):.3f} |")
    if "final_eval" in curves:
        final = curves["final_eval"]
        print(f"final evaluation on {final['objects']} held-out objects: PSNR {final['psnr']:.2f} dB, "
              f"SSIM {final['ssim']:.3f}")
    if curves["phase"] == "overfit" and curves["validation"]:
        best = max(r["psnr"] for r in curves["validation"])
        verdict = "PASS" if best >= OVERFIT_TARGET_PSNR else "FAIL"
        print(f"overfit: best PSNR on the training objects {best:.2f} dB (target {OVERFIT_TARGET_PSNR}): {verdict}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    curves = run(args)
    print_table(curves)
    return 0


if __name__ == "__main__":
    torch.backends.cuda.matmul.allow_tf32 = True
    sys.exit(main())
