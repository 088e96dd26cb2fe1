"""What the scripts in ``benchmarks/`` share: a random-weight DINOv2-base of the hub architecture (so timing
needs no download) and a table of the operators a call spends its time in (``torch.profiler``)."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from mira.config import MiraConfig

# facebook/dinov2-base (ViT-B/14), as in its hub config.json.
DINOV2_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, patch_size=14,
                   image_size=518, layerscale_value=1.0, use_swiglu_ffn=False)


def dinov2_base_encoder_config() -> dict[str, Any]:
    """``model.encoder_config`` of a random-weight DINOv2-base (the JSON form MIRA configs store)."""
    from transformers import Dinov2Config

    from mira.models.encoder import dinov2_config_dict

    return dinov2_config_dict(Dinov2Config(**DINOV2_BASE))


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of ``call()``: matrix products, convolutions and attention, as ``torch.utils.flop_counter`` counts
    them (2 per multiply-add; attention as its two matrix products, q k^T and p v).

    The counter knows SDPA's CUDA kernels only; on the CPU attention runs as its own op, which is counted here the
    same way (without it, TripoSR's forward counted 2.10 TFLOP instead of 2.96)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    counter = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops})
    with counter:
        call()
    return counter.get_total_flops()


def benchmark_config(config_path: str, architecture: str | None = None) -> "MiraConfig":
    """The config a benchmark times: ``architecture`` "openlrm-<small|base|large>" or "triposr" gives the
    published architecture as MIRA builds it (docs/PRETRAINED.md), for rows beside the upstream pipelines;
    otherwise the file at ``config_path``, with a random DINOv2-base encoder if it names none."""
    from mira.config import load_config

    if architecture is not None and architecture.startswith("openlrm-"):
        from mira.pretrained.openlrm import published_openlrm_config

        return published_openlrm_config(architecture.removeprefix("openlrm-"))
    if architecture == "triposr":
        from mira.pretrained.triposr import published_triposr_config

        return published_triposr_config()
    if architecture is not None:
        raise ValueError(f"unknown architecture '{architecture}': openlrm-small, openlrm-base, openlrm-large or triposr")
    cfg = load_config(config_path)
    if cfg.model.encoder_config is None:
        cfg.model.encoder_config = dinov2_base_encoder_config()
    return cfg


def print_top_operators(call: Callable[[], object], device: torch.device, rows: int = 30, title: str = "") -> None:
    """Run ``call`` once under ``torch.profiler`` and print its operators by self device time (CPU time on
    the CPU), ``rows`` of them, under ``title``."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        call()
        if cuda:
            torch.cuda.synchronize(device)
    if title:
        print(title)
    print(prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                    row_limit=rows, max_name_column_width=60), flush=True)


def median_seconds(call: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``call`` over ``repeats`` runs after ``warmup`` (CUDA-synchronised)."""
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
