"""Training throughput of MIRA: samples/s per GPU, rays/s, peak memory and model FLOPs utilisation.

Runs the real training step (:meth:`mira.training.Trainer.train_step`: patch sampling, forward,
MSE + LPIPS loss, backward, gradient clipping, AdamW) on a fixed batch of analytic sphere
scenes, with random weights (DINOv2-base *architecture* from a ``Dinov2Config``, random LPIPS
backbone): no dataset and no download.

    # one GPU, the LRM-base-sized config
    python benchmarks/bench_train.py --device cuda --json bench_1gpu.json
    # two GPUs (DDP over NCCL); scaling efficiency against the 1-GPU run
    torchrun --standalone --nproc_per_node=2 benchmarks/bench_train.py --device cuda \\
        --baseline bench_1gpu.json --json bench_2gpu.json
    # a seconds-long CPU check of the script itself
    python benchmarks/bench_train.py --quick

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions,
attention; elementwise ops and grid_sample are not counted) over forward + backward of one
sample with gradient checkpointing switched off, so recomputation is not credited (model
FLOPs, including the LPIPS network of the loss). MFU = FLOPs/sample x samples/s per GPU /
peak; the peak assumed is dense BF16 tensor-core throughput: 989 TFLOP/s for H100/H200 SXM
(``--peak_tflops`` overrides).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mira.cli_options import add_set_option, parse_set_pairs  # noqa: E402
from mira.config import MiraConfig, load_config  # noqa: E402
from mira.training.distributed import (DistributedContext, all_gather_objects, cleanup_distributed,  # noqa: E402
                                       setup_distributed)
from mira.training.synthetic_scenes import SyntheticSceneDataset  # noqa: E402
from mira.training.patches import sample_patches  # noqa: E402
from mira.training.trainer import Trainer  # noqa: E402
from mira.benchmarking import dinov2_base_encoder_config, print_top_operators  # noqa: E402

# Dense BF16 tensor-core peak, TFLOP/s, by a substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", default=str(REPO_ROOT / "configs" / "mira-base.json"))
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny config on the CPU, a few steps (checks the script)")
    parser.add_argument("--batch_size", type=int, default=None, help="per GPU; default: the config's")
    parser.add_argument("--patch_size", type=int, default=None, help="default: the config's")
    parser.add_argument("--mixed_precision", default="bf16", choices=["bf16", "fp16", "no"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no_lpips", action="store_true", help="MSE only (lpips_weight 0)")
    parser.add_argument("--warmup_steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps")
    parser.add_argument("--peak_tflops", type=float, default=None, help="per-GPU peak; default from the GPU name")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (rank 0)")
    parser.add_argument("--baseline", type=Path, default=None, help="a 1-GPU --json result: report scaling efficiency")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="after timing, run STEPS more steps under torch.profiler and print the kernels by GPU time")
    parser.add_argument("--curve_steps", type=int, default=0, metavar="N",
                        help="instead of timing: N training steps on fresh analytic scenes (the same for the same "
                             "--seed), the loss of each written to --json (compare two settings' learning)")
    parser.add_argument("--curve_pool", type=int, default=64, help="--curve_steps: scenes rendered once and cycled")
    parser.add_argument("--seed", type=int, default=0, help="--curve_steps: weights, scenes and patches")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the step's parts alone: encoder, decoder, renderer, loss, optimiser")
    add_set_option(parser)
    return parser.parse_args(argv)


def bench_config(args: argparse.Namespace, output_dir: str) -> MiraConfig:
    """The benchmarked config: the file + random DINOv2-base + benchmark overrides."""
    path = REPO_ROOT / "configs" / "tiny.json" if args.quick else Path(args.config_path)
    overrides = {"model_save_path": output_dir, "val_every_steps": 0, "checkpoint_every_steps": 0,
                 "lpips_pretrained_backbone": False, "mixed_precision": args.mixed_precision,
                 "compile": args.compile, "device": args.device, "num_workers": 0, "warmup_steps": 0,
                 "log_every_steps": 10**9, "max_steps": 10**9, "num_epochs": 10**9,
                 "model_preloading_strategy": "none", "synthetic_objects": 1}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.patch_size is not None:
        overrides["patch_size"] = args.patch_size
    if args.no_lpips:
        overrides["lpips_weight"] = 0.0
    overrides.update(parse_set_pairs(args.set))
    config = load_config(path, **overrides)
    if config.model.encoder_config is None:
        config.model.encoder_config = dinov2_base_encoder_config()  # random weights: nothing is downloaded
    return config


def make_batch(config: MiraConfig, rank: int, device: torch.device) -> dict:
    """One batch of ``batch_size`` analytic scenes on ``device`` (different per rank)."""
    batch_size = config.train.batch_size
    dataset = SyntheticSceneDataset(config, num_objects=batch_size * (rank + 1))
    items = [dataset[i] for i in range(batch_size * rank, batch_size * (rank + 1))]
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in default_collate(items).items()}


def effective_patch(config: MiraConfig) -> int:
    """Side of the supervised patches (the whole view when patch_size is 0 or too large)."""
    size, patch = config.data.render_size, config.train.patch_size
    return size if patch <= 0 or patch >= size else patch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops_per_sample(trainer: Trainer, batch: dict) -> float:
    """Forward + loss + backward FLOPs of one sample, without checkpoint recomputation."""
    from torch.utils.flop_counter import FlopCounterMode

    one = {k: v[:1] if torch.is_tensor(v) else v[:1] for k, v in batch.items()}
    toggled = [m for m in trainer.model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for module in toggled:
        module.gradient_checkpointing = False
    wrapped, trainer.train_model = trainer.train_model, trainer.model  # no DDP hooks, no compile
    try:
        with FlopCounterMode(display=False) as counter:
            terms, _ = trainer.compute_loss(one)
            terms["loss"].backward()
    finally:
        trainer.train_model = wrapped
        for module in toggled:
            module.gradient_checkpointing = True
        trainer.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def run_benchmark(args: argparse.Namespace, context: DistributedContext, output_dir: str) -> dict:
    config = bench_config(args, output_dir)
    device = context.device
    dataset = SyntheticSceneDataset(config, num_objects=config.train.batch_size * context.world_size)
    trainer = Trainer(config, context=context, train_dataset=dataset)
    trainer.logger.close()
    batch = make_batch(config, context.rank, device)
    accum = [batch] * config.train.grad_accum_steps

    flops_per_sample = count_flops_per_sample(trainer, batch)
    for _ in range(args.warmup_steps):
        trainer.train_step(accum)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    rays = 0
    for _ in range(args.steps):
        rays += trainer.train_step(accum).rays
    synchronize(device)
    elapsed = time.perf_counter() - start
    if args.profile > 0 and context.is_main:
        print_profile(trainer, accum, args.profile, device)
    if args.breakdown and context.is_main:
        print(format_breakdown(time_parts(trainer, batch, device, args.steps)))

    world = context.world_size
    samples_per_gpu = args.steps * config.train.batch_size * config.train.grad_accum_steps / elapsed
    per_rank = {
        "samples_per_s": samples_per_gpu,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "peak_reserved_gb": torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None,
    }
    gathered = all_gather_objects(per_rank, context)
    mean_samples = sum(g["samples_per_s"] for g in gathered) / world
    peak = peak_tflops(device, args.peak_tflops)
    result = {
        "config": str(args.config_path if not args.quick else "configs/tiny.json"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "num_gpus" if device.type == "cuda" else "num_processes": world,
        "batch_size_per_gpu": config.train.batch_size,
        "render_size": config.data.render_size,
        "patch_size": effective_patch(config),
        "supervision_k": config.data.supervision_k,
        "samples_per_ray": config.renderer.rendering_samples_per_ray + config.renderer.importance_samples_per_ray,
        "mixed_precision": config.train.mixed_precision if device.type == "cuda" else "no (CPU)",
        "compile": config.train.compile,
        "gradient_checkpointing": config.model.gradient_checkpointing,
        "lpips": config.train.lpips_weight > 0,
        "samples_per_s_per_gpu": mean_samples,
        "samples_per_s_total": mean_samples * world,
        # rays accumulated over the timed steps are already summed over ranks
        "rays_per_s_total": rays / elapsed,
        "rays_per_s_per_gpu": rays / elapsed / world,
        "step_time_s": elapsed / args.steps,
        "peak_memory_gb": max((g["peak_memory_gb"] or 0.0) for g in gathered) or None,
        "peak_reserved_gb": max((g["peak_reserved_gb"] or 0.0) for g in gathered) or None,
        "model_tflops_per_sample": flops_per_sample / 1e12,
        "achieved_tflops_per_gpu": flops_per_sample * mean_samples / 1e12,
        "peak_tflops_assumed": peak,
        "mfu": flops_per_sample * mean_samples / (peak * 1e12) if peak else None,
    }
    if args.baseline is not None:
        baseline = json.loads(Path(args.baseline).read_text())
        result["baseline_samples_per_s_per_gpu"] = baseline["samples_per_s_per_gpu"]
        result["scaling_efficiency"] = mean_samples / baseline["samples_per_s_per_gpu"]
    return result


def print_profile(trainer: Trainer, accum: list[dict], steps: int, device: torch.device) -> None:
    """Run ``steps`` training steps under ``torch.profiler``; print operators by self device time."""
    print_top_operators(lambda: [trainer.train_step(accum) for _ in range(steps)], device, rows=40)


def time_parts(trainer: Trainer, batch: dict, device: torch.device, steps: int) -> dict[str, float]:
    """Seconds per step of each part of the training step run alone, on ``batch``, as the trainer runs it.

    encoder (forward; frozen or not), decoder (forward + backward from the encoder's tokens), renderer
    (the step's patches rendered from fixed triplanes, forward + backward), loss (MSE + LPIPS forward +
    backward on fixed renders) and optimiser (clipping + AdamW over the trainable weights)."""
    model, config = trainer.model, trainer.config
    size = config.data.render_size
    patches = sample_patches(batch["target_images"].shape[0], batch["target_images"].shape[1], size,
                             config.train.patch_size, device)
    with torch.no_grad(), trainer.autocast():
        tokens = model.encoder(batch["source_image"])
        camera = None
        if model.camera_embedder is not None:
            camera = model.camera_embedder.embed_camera(batch["source_c2w"], batch["source_intrinsics"])
        source = (batch["source_c2w"], batch["source_intrinsics"], tuple(batch["source_image"].shape[-2:]))
        triplanes = model.decoder(tokens, camera, *source)

    def encoder() -> None:
        with trainer.autocast(), torch.set_grad_enabled(not model.encoder.is_frozen):
            model.encoder(batch["source_image"])

    def decoder() -> None:
        with trainer.autocast():
            out = model.decoder(tokens, camera, *source)
        out.float().square().mean().backward()

    def renderer() -> None:
        planes = triplanes.detach().requires_grad_(True)
        with trainer.autocast():
            out = model.renderer.render_pixels(planes, batch["target_c2w"], batch["target_intrinsics"],
                                               patches.pixel_uv(), size, size)
        out["rgb"].float().square().mean().backward()

    target = patches.gather(batch["target_images"]).flatten(0, 1)
    target_mask = patches.gather(batch["target_masks"]).flatten(0, 1) if "target_masks" in batch else None
    rendered = torch.rand_like(target)
    rendered_opacity = torch.rand_like(target[:, :1])

    def loss() -> None:
        rgb = rendered.clone().requires_grad_(True)
        trainer.loss_fn(rgb, target, rendered_opacity, target_mask)["loss"].backward()

    parameters = trainer._trainable_parameters()

    def optimiser() -> None:
        for parameter in parameters:
            parameter.grad = torch.zeros_like(parameter)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        trainer.optimizer.step()

    timings = {}
    for name, part in (("encoder", encoder), ("decoder", decoder), ("renderer", renderer), ("loss", loss),
                       ("optimiser", optimiser)):
        part()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            part()
        synchronize(device)
        timings[name] = (time.perf_counter() - start) / steps
        trainer.optimizer.zero_grad(set_to_none=True)
    return timings


def format_breakdown(timings: dict[str, float]) -> str:
    """The parts' seconds per step and their sum as a markdown table."""
    rows = [f"| {name} | {seconds * 1e3:.1f} |" for name, seconds in timings.items()]
    rows.append(f"| sum | {sum(timings.values()) * 1e3:.1f} |")
    return "| part (alone) | ms per step |\n|---|---:|\n" + "\n".join(rows)


def run_curve(args: argparse.Namespace, context: DistributedContext, output_dir: str) -> dict:
    """``--curve_steps`` training steps over a pool of ``--curve_pool`` analytic scenes; the loss of every step.

    The pool is rendered once (on the CPU, about 0.2 s a scene) and kept on the device; step k trains on
    its batch ``k mod (pool / batch)``. Weights, scenes, cameras and patches depend only on ``--seed`` (and
    the rank), so two runs that differ in a setting that should not change learning (a fused kernel,
    checkpointing) can be compared step by step; two seeds of one setting give the run-to-run noise."""
    torch.manual_seed(args.seed + 1000 * context.rank)
    config = bench_config(args, output_dir)
    config.train.seed = args.seed
    batch_size = config.train.batch_size
    num_batches = max(1, args.curve_pool // batch_size)
    dataset = SyntheticSceneDataset(config, num_objects=batch_size * num_batches * context.world_size, seed=args.seed)
    first = context.rank * batch_size * num_batches
    batches = []
    for index in range(num_batches):
        items = [dataset[first + index * batch_size + i] for i in range(batch_size)]
        batches.append({k: v.to(context.device) if torch.is_tensor(v) else v for k, v in default_collate(items).items()})
    trainer = Trainer(config, context=context, train_dataset=dataset)
    trainer.logger.close()
    losses, start = [], time.perf_counter()
    for step in range(args.curve_steps):
        losses.append(trainer.train_step([batches[step % num_batches]]).loss)
        if args.json is not None and context.is_main and (step + 1) % 25 == 0:  # partial curve, kept if stopped
            args.json.write_text(json.dumps({"seed": args.seed, "set": list(args.set), "losses": losses}) + "\n")
    elapsed = time.perf_counter() - start
    tail = losses[-50:]
    return {"config": str(args.config_path if not args.quick else "configs/tiny.json"), "seed": args.seed,
            "set": list(args.set), "steps": args.curve_steps, "pool": batch_size * num_batches,
            "num_gpus": context.world_size, "seconds": elapsed, "mean_loss_last_50": sum(tail) / len(tail),
            "losses": losses}


def format_table(result: dict) -> str:
    rows = []
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        rows.append(f"| {key} | {value} |")
    return "| metric | value |\n|---|---|\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.device = "cpu" if args.device == "auto" else args.device
        args.steps, args.warmup_steps = min(args.steps, 3), min(args.warmup_steps, 1)
    logging.basicConfig(level=logging.WARNING)
    context = setup_distributed(args.device)
    output_dir = tempfile.mkdtemp(prefix="mira_bench_train_") if context.is_main else ""
    output_dir = all_gather_objects(output_dir, context)[0]
    try:
        result = run_curve(args, context, output_dir) if args.curve_steps > 0 else run_benchmark(args, context, output_dir)
    finally:
        cleanup_distributed(context)
        if context.is_main:
            shutil.rmtree(output_dir, ignore_errors=True)
    if context.is_main:
        print(format_table({k: v for k, v in result.items() if k != "losses"}))
        print(json.dumps(result))
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
