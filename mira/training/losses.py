"""The training objective: MSE + lpips_weight * LPIPS (+ mask_loss_weight * opacity MSE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mira.config import TrainConfig
from mira.evaluation.metrics import build_lpips, lpips_distance


class ReconstructionLoss(nn.Module):
    """Photometric loss on rendered patches.

    Args:
        lpips_weight: weight of LPIPS (0: LPIPS is not built nor computed).
        mask_loss_weight: weight of the MSE between rendered opacity and the target mask.
        lpips_module: an ``lpips.LPIPS`` (frozen, eval); required if ``lpips_weight > 0``.
    """

    def __init__(self, lpips_weight: float, mask_loss_weight: float, lpips_module: nn.Module | None = None) -> None:
        super().__init__()
        if lpips_weight > 0 and lpips_module is None:
            raise ValueError("lpips_weight > 0 needs an LPIPS module (mira.evaluation.metrics.build_lpips)")
        self.lpips_weight = lpips_weight
        self.mask_loss_weight = mask_loss_weight
        self.lpips = lpips_module

    def forward(self, rgb: Tensor, target_rgb: Tensor, opacity: Tensor | None = None,
                target_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Loss terms in float32.

        Args:
            rgb: (N, 3, P, P) rendered colours in [0, 1].
            target_rgb: (N, 3, P, P) ground truth on the same background.
            opacity: (N, 1, P, P) accumulated alpha (needed when ``mask_loss_weight > 0``).
            target_mask: (N, 1, P, P) object mask in [0, 1].
        Returns:
            ``{"loss", "mse", "lpips", "mask"}`` scalars; unused terms are 0.
        """
        rgb, target_rgb = rgb.float(), target_rgb.float()
        mse = F.mse_loss(rgb, target_rgb)
        zero = mse.new_zeros(())
        perceptual = lpips_distance(self.lpips, rgb, target_rgb) if self.lpips_weight > 0 else zero
        mask = zero
        if self.mask_loss_weight > 0:
            if opacity is None or target_mask is None:
                raise ValueError("mask_loss_weight > 0 needs the rendered opacity and the target masks")
            mask = F.mse_loss(opacity.float(), target_mask.float())
        loss = mse + self.lpips_weight * perceptual + self.mask_loss_weight * mask
        return {"loss": loss, "mse": mse.detach(), "lpips": perceptual.detach(), "mask": mask.detach()}


def build_lpips_for_training(config: TrainConfig, device: torch.device) -> nn.Module:
    """The frozen LPIPS network named by ``lpips_net`` on ``device``."""
    return build_lpips(config.lpips_net, pretrained_backbone=config.lpips_pretrained_backbone).to(device)
