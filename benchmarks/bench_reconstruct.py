"""Image -> triplane (encoder + decoder, batch 1) in the ways it can run, and where its time goes.

Random weights of ``--config`` (default ``configs/mira-base.json``; the DINOv2-base architecture built from a
``Dinov2Config``, nothing downloaded). Variants, each timed ``--repeats`` times after warm-up with CUDA events:

* ``fp32``: float32 weights, no autocast (test.py ``--precision fp32``);
* ``autocast bf16``: float32 weights under ``torch.autocast`` (test.py ``--precision bf16``);
* ``bf16 weights``: the model cast to bfloat16 (no per-op casts of the weights);
* ``bf16 weights + compile``: and ``torch.compile`` of the whole ``forward_triplanes``;
* ``bf16 weights + compile + CUDA graphs``: ``torch.compile(mode="reduce-overhead")``;
* ``test.py --compile --precision bf16``: :func:`mira.inference.compiled.compile_reconstruction` as the pipeline
  runs it: encoder and decoder in bf16 (renderer in fp32), compiled (``mode="default"``; a ViT encoder's attention
  fed contiguous tensors, as below) and captured as one plain CUDA graph, so a call is an input copy and a replay
  without ``reduce-overhead``'s guard checks and graph-tree bookkeeping on the host;
* ``bf16 weights + CUDA graphs, no compile``: :func:`mira.inference.compiled.graph_reconstruction`, the eager
  bf16 forward captured as a CUDA graph (CUDA only);
* ``bf16 weights + compile + CUDA graphs, fused attention only``: compiled and traced with SDPA's math kernel
  excluded (``sdpa_kernel``), so inductor cannot run an attention call as unfused math (CUDA only);
* ``bf16 weights + compile + CUDA graphs, encoder q/k/v contiguous``: compiled, the encoder's attention fed
  contiguous queries, keys and values (:func:`mira.inference.compiled.feed_attention_contiguous`; CUDA only).
  These two asked why inductor ran TripoSR's ViT attention as unfused fp32 math; the second is the answer
  (docs/BENCHMARKS.md), and ``test.py --compile`` does it for ViT encoders.

Each variant's triplanes are compared with fp32's (relative error); the TFLOP/s column divides the forward's FLOPs
(matrix products and attention, ``torch.utils.flop_counter``) by its time. ``--profile`` prints the top operators of
one ``autocast bf16`` call (``torch.profiler``, device time), to say whether the time is kernels or launches.

    python benchmarks/bench_reconstruct.py --device cuda --profile
    python benchmarks/bench_reconstruct.py --device cuda --architecture openlrm-base   # beside bench_reference.py's upstream
    python benchmarks/bench_reconstruct.py --quick          # tiny config on the CPU (checks the script)
"""

from __future__ import annotations

import argparse
import copy
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.cameras import canonical_source_c2w  # noqa: E402
from mira.benchmarking import benchmark_config, count_flops, median_seconds, print_top_operators  # noqa: E402
from mira.config import MiraConfig  # noqa: E402
from mira.inference.compiled import (compile_reconstruction, feed_attention_contiguous,  # noqa: E402
                                     graph_reconstruction)
from mira.models import MIRA  # noqa: E402


# SDPA's fused kernels, the math fallback left out.
FUSED_ATTENTION = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def build_model(cfg: MiraConfig, device: torch.device,
                attention_backend: str | None = None) -> tuple[MIRA, tuple[torch.Tensor, ...]]:
    """The model of ``cfg`` (eval, float32, random weights) and one input: images (1, 3, S, S), c2w (1, 4, 4),
    intrinsics (1, 4). ``attention_backend``: the decoder's ``model.attention_backend`` (None: the config's)."""
    if attention_backend is not None:
        cfg.model.attention_backend = attention_backend
    torch.manual_seed(0)
    with torch.device(device):
        model = MIRA(cfg).eval()
    size = cfg.model.source_size
    focal = cfg.data.source_model_focal or cfg.data.focal_length
    c2w = canonical_source_c2w(torch.tensor([cfg.data.source_distance_per_focal * focal], device=device),
                               cfg.data.source_camera_azimuth_deg)
    intrinsics = torch.tensor([[focal, focal, 0.5, 0.5]], device=device)
    return model, (torch.rand(1, 3, size, size, device=device), c2w, intrinsics)


def forward_flops(model: MIRA, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one ``forward_triplanes`` (:func:`mira.benchmarking.count_flops`): what the TFLOP/s column divides
    by each variant's time."""
    model.requires_grad_(False)  # an inference forward: no autograd hooks for the counter's module tracker
    with torch.no_grad():
        return count_flops(lambda: model.forward_triplanes(*inputs))


def variants(model: MIRA, inputs: tuple[torch.Tensor, ...], device: torch.device, quick: bool) -> dict[str, Callable]:
    """name -> a no-argument call returning the triplanes (float32)."""
    images, c2w, intrinsics = inputs
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    bf16_images = images.to(torch.bfloat16)

    def plain(net, image, context=nullcontext):
        def call():
            with torch.inference_mode(), context():
                return net.forward_triplanes(image, c2w, intrinsics).float()
        return call

    calls = {"fp32": plain(model, images), "autocast bf16": plain(model, images, lambda: autocast),
             "bf16 weights": plain(bf16, bf16_images)}
    if not quick:
        compiled = torch.compile(bf16.forward_triplanes)
        graphed = torch.compile(bf16.forward_triplanes, mode="reduce-overhead")
        calls["bf16 weights + compile"] = lambda: _inference(compiled, bf16_images, c2w, intrinsics)
        calls["bf16 weights + compile + CUDA graphs"] = lambda: _inference(graphed, bf16_images, c2w, intrinsics)
        if device.type == "cuda":  # what test.py --compile --precision bf16 runs
            pipeline_call = compile_reconstruction(copy.deepcopy(model), torch.bfloat16)
            calls["test.py --compile --precision bf16"] = lambda: pipeline_call(images, c2w, intrinsics)
            eager_graph = graph_reconstruction(copy.deepcopy(model), torch.bfloat16)
            calls["bf16 weights + CUDA graphs, no compile"] = lambda: eager_graph(images, c2w, intrinsics)
            # Compiled with SDPA's math kernel excluded while tracing: whether inductor then keeps every attention
            # call (the encoder's too) on a fused kernel.
            pinned = torch.compile(copy.deepcopy(bf16).forward_triplanes, mode="reduce-overhead")

            def pinned_call() -> torch.Tensor:
                with sdpa_kernel(FUSED_ATTENTION, set_priority=True):
                    return _inference(pinned, bf16_images, c2w, intrinsics)

            calls["bf16 weights + compile + CUDA graphs, fused attention only"] = pinned_call
            # Compiled with the encoder's attention given contiguous queries, keys and values (a layout every fused
            # SDPA kernel takes), through transformers' attention interface.
            contiguous = copy.deepcopy(bf16)
            feed_attention_contiguous(contiguous.encoder.backbone)
            contiguous_graphed = torch.compile(contiguous.forward_triplanes, mode="reduce-overhead")
            calls["bf16 weights + compile + CUDA graphs, encoder q/k/v contiguous"] = (
                lambda: _inference(contiguous_graphed, bf16_images, c2w, intrinsics))
    return calls


def _inference(function, images, c2w, intrinsics) -> torch.Tensor:
    with torch.inference_mode():
        return function(images, c2w, intrinsics).float().clone()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "mira-base.json"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top operators of one autocast call")
    parser.add_argument("--quick", action="store_true", help="tiny config on the CPU, no compile (checks the script)")
    parser.add_argument("--architecture", choices=("openlrm-base", "triposr"), default=None,
                        help="time the published OpenLRM-base or TripoSR architecture (random weights) instead of --config")
    parser.add_argument("--attention_backend", default=None,
                        help="the decoder's SDPA kernel first (model.attention_backend: auto, cudnn, flash, ...)")
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="time only the variants whose name contains one of these texts (fp32 always runs: "
                             "the reference)")
    args = parser.parse_args(argv)
    if args.quick:
        args.device, args.config, args.repeats, args.warmup = "cpu", str(REPO_ROOT / "configs" / "tiny.json"), 2, 1
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    if args.quick:
        args.architecture = None
    model, inputs = build_model(benchmark_config(args.config, args.architecture), device, args.attention_backend)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"image -> triplane, {args.architecture or args.config}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"attention {model.config.model.attention_backend}, {name}, torch {torch.__version__}", flush=True)
    flops = forward_flops(model, inputs)
    print(f"{flops / 1e9:.4g} GFLOP per forward (matrix products and attention, torch.utils.flop_counter)")
    calls = variants(model, inputs, device, args.quick)
    if args.only:
        calls = {label: call for label, call in calls.items()
                 if label == "fp32" or any(text in label for text in args.only)}
    reference = calls["fp32"]()
    print("| variant | ms (median) | TFLOP/s | relative error vs fp32 |\n|---|---:|---:|---:|")
    for label, call in calls.items():
        try:
            seconds = median_seconds(call, device, args.repeats, args.warmup)
            error = float((call() - reference).norm() / reference.norm())
            print(f"| {label} | {seconds * 1e3:.2f} | {flops / seconds / 1e12:.3g} | {error:.2e} |", flush=True)
        except Exception as exc:  # a compile failure must not hide the other rows
            print(f"| {label} | failed: {type(exc).__name__}: {str(exc)[:200]} | | |", flush=True)
    if args.profile:
        print_top_operators(calls["autocast bf16"], device, 25, "autocast bf16, one call:")
        print_top_operators(calls["bf16 weights"], device, 25, "bf16 weights, one call:")
        if "bf16 weights + compile" in calls:  # the compiled kernels (outside a graph, so the profiler sees each)
            print_top_operators(calls["bf16 weights + compile"], device, 25, "bf16 weights + compile, one call:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
