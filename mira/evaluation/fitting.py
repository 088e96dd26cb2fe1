"""Per-object triplane fit: optimise a triplane and the renderer's MLP directly on posed views.

This is the check of a dataset and its cameras (a wrong camera convention cannot be fitted
consistently, so held-out views and the mesh come out wrong), and the upper bound of what the
feed-forward model can reach at a given triplane size. ``python -m mira.fit`` is its CLI.

Loop: each step draws ``batch_rays`` pixels uniformly from all training views, casts rays
through their centres (:func:`mira.cameras.rays_from_pixels`), renders them with
:class:`mira.rendering.TriplaneRenderer` and minimises

    MSE(rgb, target) + mask_loss_weight * MSE(opacity, alpha) + tv_weight * TV(triplanes)

with Adam (separate learning rates for the triplane and the MLP, exponential decay to
``final_lr_ratio`` of them). The held-out views are then rendered in eval mode (deterministic
samples) and scored; the mesh comes from :func:`mira.export.mesh.extract_mesh`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mira.cameras import rays_from_pixels
from mira.config import MiraConfig
from mira.evaluation.options import FitOptions  # noqa: F401 - re-exported (kept with the CLI options)
from mira.evaluation.views import ViewSet
from mira.progress import bar_disabled
from mira.rendering import TriplaneRenderer


class TriplaneFit(nn.Module):
    """A free triplane parameter (1, 3, C, R, R) and the renderer that draws it."""

    def __init__(self, config: MiraConfig, triplane_res: int, triplane_dim: int, init_std: float = 0.1) -> None:
        super().__init__()
        self.triplanes = nn.Parameter(torch.randn(1, 3, triplane_dim, triplane_res, triplane_res) * init_std)
        self.renderer = TriplaneRenderer(config.renderer, triplane_dim=triplane_dim)

    def render_rays(self, origins: Tensor, directions: Tensor) -> dict[str, Tensor]:
        """Rays (N, 3) -> {"rgb": (N, 3), "depth": (N, 1), "opacity": (N, 1)}."""
        out = self.renderer(self.triplanes, origins.unsqueeze(0), directions.unsqueeze(0))
        return {key: value[0] for key, value in out.items()}

    @torch.no_grad()
    def render_views(self, c2w: Tensor, intrinsics: Tensor, size: int) -> dict[str, Tensor]:
        """Whole images of V views, one view at a time, in eval mode.

        Args:
            c2w: (V, 4, 4); intrinsics: (V, 4) normalised.
        Returns:
            {"rgb": (V, 3, H, W), "depth": (V, 1, H, W), "opacity": (V, 1, H, W)} with H = W = size.
        """
        was_training = self.training
        self.eval()
        try:
            outputs = [
                self.renderer.render_images(self.triplanes, c2w[v : v + 1][None], intrinsics[v : v + 1][None], size, size)
                for v in range(c2w.shape[0])
            ]
        finally:
            self.train(was_training)
        return {key: torch.cat([out[key][0] for out in outputs], dim=0) for key in outputs[0]}


def sample_training_rays(views: ViewSet, count: int, generator: torch.Generator) -> dict[str, Tensor]:
    """``count`` pixels drawn uniformly over all views, with their rays and targets.

    Returns:
        {"origins": (count, 3), "directions": (count, 3), "rgb": (count, 3), "mask": (count, 1)}.
    """
    num_views = len(views)
    height, width = views.size
    device = views.rgb.device
    flat = torch.randint(num_views * height * width, (count,), generator=generator, device="cpu").to(device)
    view = flat // (height * width)
    row = (flat // width) % height
    col = flat % width
    uv = torch.stack([col, row], dim=-1).to(views.c2w.dtype).add(0.5).unsqueeze(1)  # (count, 1, 2) pixel centres
    origins, directions = rays_from_pixels(views.c2w[view], views.intrinsics[view], uv, width, height)
    return {
        "origins": origins[:, 0],
        "directions": directions[:, 0],
        "rgb": views.rgb[view, :, row, col],
        "mask": views.mask[view, :, row, col],
    }


def total_variation(triplanes: Tensor) -> Tensor:
    """Mean squared difference of neighbouring features of (B, 3, C, R, R) planes."""
    dx = triplanes[..., :, 1:] - triplanes[..., :, :-1]
    dy = triplanes[..., 1:, :] - triplanes[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def build_optimizer(model: TriplaneFit, options: FitOptions) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam over the triplane (``lr``) and the MLP (``mlp_lr``), decaying to ``final_lr_ratio``."""
    optimizer = torch.optim.Adam(
        [
            {"params": [model.triplanes], "lr": options.lr},
            {"params": list(model.renderer.parameters()), "lr": options.mlp_lr},
        ],
        betas=(0.9, 0.99),
    )
    gamma = options.final_lr_ratio ** (1.0 / max(1, options.steps))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    return optimizer, scheduler


def fit_triplane(
    train_views: ViewSet,
    config: MiraConfig,
    options: FitOptions,
    device: torch.device | str = "cpu",
    progress: bool = True,
    log_scalars: Callable[[int, dict[str, float]], None] | None = None,
) -> TriplaneFit:
    """Optimise a triplane and the renderer MLP to reproduce ``train_views``.

    Deterministic for a given ``options.seed`` on a given device (the seed fixes the
    initial weights, the pixel draws and the renderer's sample jitter).

    Args:
        train_views: the views to fit (any size; rays use their own pixel grid).
        config: renderer settings (samples per ray, MLP size, box, background) and the
            default triplane size.
        log_scalars: called as ``log_scalars(step, {"loss": ..., "psnr": ...})`` every 50 steps.
    """
    options.validate()
    torch.manual_seed(options.seed)
    model = TriplaneFit(
        config,
        triplane_res=options.triplane_res or config.model.triplane_res,
        triplane_dim=options.triplane_dim or config.model.triplane_dim,
        init_std=options.init_std,
    ).to(device)
    model.train()
    views = train_views.to(device)
    optimizer, scheduler = build_optimizer(model, options)
    generator = torch.Generator().manual_seed(options.seed)
    bar = tqdm(range(options.steps), desc="fit", disable=bar_disabled(progress), dynamic_ncols=True)
    for step in bar:
        batch = sample_training_rays(views, options.batch_rays, generator)
        out = model.render_rays(batch["origins"], batch["directions"])
        rgb_loss = F.mse_loss(out["rgb"], batch["rgb"])
        loss = rgb_loss
        if options.mask_loss_weight > 0:
            loss = loss + options.mask_loss_weight * F.mse_loss(out["opacity"], batch["mask"])
        if options.tv_weight > 0:
            loss = loss + options.tv_weight * total_variation(model.triplanes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 0 or step == options.steps - 1:
            train_psnr = -10.0 * math.log10(max(rgb_loss.item(), 1e-10))
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{train_psnr:.2f}")
            if log_scalars is not None:
                log_scalars(step, {"loss": loss.item(), "train_psnr": train_psnr, "lr": scheduler.get_last_lr()[0]})
    model.eval()
    return model
