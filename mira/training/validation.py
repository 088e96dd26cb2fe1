"""Validation on held-out objects: whole-view renders scored with PSNR, SSIM and LPIPS."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mira.evaluation.metrics import lpips_distance, psnr, ssim
from mira.training.distributed import DistributedContext, all_reduce_sum
from mira.training.logger import image_grid


@torch.no_grad()
def run_validation(
    model: nn.Module,
    loader: DataLoader,
    lpips_module: nn.Module | None,
    context: DistributedContext,
    autocast: Callable[[], AbstractContextManager],
    render_size: int,
) -> tuple[dict[str, float], Tensor | None]:
    """Render every supervision view of this rank's share of ``loader`` and score it.

    Args:
        model: the bare MIRA model (not DDP-wrapped); put in eval mode here and back after.
        loader: yields dataset items batched (see :class:`mira.data.MultiViewDataset`).
        lpips_module: frozen LPIPS network, or None to skip LPIPS.
        autocast: a factory of the mixed-precision context used in training.
    Returns:
        ``{"psnr", "ssim", "lpips", "mse", "num_views"}`` averaged over all ranks' views, and on
        each rank a preview grid (3, 2 * H, V * W) (targets over predictions) of its first object.
        LPIPS from a random-weight backbone (``lpips_pretrained_backbone: false``, tests) is
        reported as ``"lpips_random_backbone"``: it is no perceptual distance.
    """
    was_training = model.training
    model.eval()
    device = context.device
    sums = torch.zeros(5, dtype=torch.float64, device=device)  # psnr, ssim, lpips, mse, count
    preview = None
    try:
        for batch in loader:
            targets = batch["target_images"].to(device)
            background = batch["background"].to(device) if "background" in batch else None
            with autocast():
                output = model(batch["source_image"].to(device), batch["source_c2w"].to(device),
                               batch["source_intrinsics"].to(device), batch["target_c2w"].to(device),
                               batch["target_intrinsics"].to(device), render_size, background=background)
            prediction = output["rgb"].float().clamp(0, 1)  # (B, V, 3, H, W)
            flat_prediction, flat_target = prediction.flatten(0, 1), targets.flatten(0, 1)
            views = flat_target.shape[0]
            for index in range(views):  # per view, so every view weighs the same on every rank
                p, t = flat_prediction[index:index + 1], flat_target[index:index + 1]
                sums[0] += psnr(p, t).double()
                sums[1] += ssim(p, t).double()
                if lpips_module is not None:
                    sums[2] += lpips_distance(lpips_module, p, t).double()
                sums[3] += torch.mean((p - t) ** 2).double()
            sums[4] += views
            if preview is None:
                preview = image_grid([targets[0].cpu(), prediction[0].cpu()])
    finally:
        model.train(was_training)
    all_reduce_sum(sums, context)
    count = max(1.0, float(sums[4]))
    metrics = {"psnr": float(sums[0]) / count, "ssim": float(sums[1]) / count, "mse": float(sums[3]) / count,
               "num_views": float(sums[4])}
    if lpips_module is not None:
        metrics[lpips_metric_name(lpips_module)] = float(sums[2]) / count
    return metrics, preview


def lpips_metric_name(lpips_module: nn.Module) -> str:
    """``"lpips"``, or ``"lpips_random_backbone"`` for an LPIPS network whose backbone has random weights."""
    return "lpips_random_backbone" if getattr(lpips_module, "pnet_rand", False) else "lpips"
