"""The per-object triplane fit on the evaluation objects: the upper bound beside a model's scores.

``docs/EVALUATION.md`` scores a checkpoint on held-out procedural objects. This script fits a free triplane of
the checkpoint's size (and the renderer MLP) to each object's views with :mod:`mira.fit` (views ``0, k, 2k, ...``
held out) and prints the held-out scores, one object at a time, appending each object's ``metrics.json`` to
``--out/fits.jsonl`` as it finishes (a run cut short keeps what it did). With ``--write_objects`` it first writes
the procedural evaluation objects (seed and indices as docs/EVALUATION.md's set: an object depends only on
``(seed, index)``), so a bare GPU machine needs nothing but the repository.

    python benchmarks/fit_upper_bound.py --data data/procedural-eval --objects 6 --out out/fits --batch_rays 1024
    python benchmarks/fit_upper_bound.py --write_objects 20 --data /tmp/eval --out OUT --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mira.evaluation.protocol import list_objects  # noqa: E402
from mira.evaluation.report import json_safe  # noqa: E402

EVALUATION_SEED = 2026  # docs/EVALUATION.md's held-out procedural set
HEADLINE = ("psnr", "ssim", "mask_iou", "chamfer", "fscore@0.1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset root with index.json (written first with --write_objects)")
    parser.add_argument("--out", required=True, help="folder for each object's fit outputs (and fits.jsonl)")
    parser.add_argument("--jsonl", default=None, help="where the per-object records go (default: OUT/fits.jsonl)")
    parser.add_argument("--checkpoint_config", default=str(REPO_ROOT / "mira" / "weights" / "mira-demo" / "config.json"),
                        help="config whose triplane size and renderer are fitted (default: the shipped model's)")
    parser.add_argument("--objects", type=int, default=None, help="fit the first N objects of the val split")
    parser.add_argument("--write_objects", type=int, default=0,
                        help="first write N procedural evaluation objects (8 views of 128 px, seed 2026) into --data")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch_rays", type=int, default=4096)
    parser.add_argument("--mesh_resolution", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def write_objects(data: Path, count: int, device: str) -> None:
    """The first ``count`` objects of docs/EVALUATION.md's procedural set (8 views, 128 px, seed 2026)."""
    from mira.data.procedural.export import write_procedural_dataset

    write_procedural_dataset(data, num_train=0, num_val=count, num_views=8, size=128, seed=EVALUATION_SEED,
                             device=device)


def fit_one(folder: Path, out: Path, args: argparse.Namespace) -> dict:
    """``python -m mira.fit`` on one object folder; its metrics."""
    from mira.fit import main as fit_main

    return fit_main(["--data_dir", str(folder), "--output_path", str(out / folder.name),
                     "--config_path", args.checkpoint_config, "--steps", str(args.steps),
                     "--batch_rays", str(args.batch_rays), "--lpips_backbone", "none", "--num_frames", "0",
                     "--mesh_resolution", str(args.mesh_resolution), "--no_tensorboard", "--device", args.device])


def summary_table(results: list[dict]) -> str:
    """Mean and range of the headline held-out scores over the fitted objects, as Markdown."""
    lines = [f"| held-out score ({len(results)} objects) | mean | min | max |", "|---|---:|---:|---:|"]
    for key in HEADLINE:
        values = [r[key] for r in results if isinstance(r.get(key), float) and r[key] == r[key]]
        if values:
            lines.append(f"| {key} | {statistics.mean(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.write_objects:
        start = time.perf_counter()
        write_objects(data, args.write_objects, args.device)
        print(f"wrote {args.write_objects} objects in {time.perf_counter() - start:.1f} s", flush=True)
    objects = list_objects(data, "val")[: args.objects]
    results = []
    for name, folder in objects:
        metrics = fit_one(folder, out, args)
        results.append(metrics)
        with open(args.jsonl or out / "fits.jsonl", "a") as handle:
            scores = {key: value for key, value in metrics.items() if not isinstance(value, (dict, list))}
            handle.write(json.dumps(json_safe({"object": name, **scores})) + "\n")
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
