"""Image metrics shared by training validation, ``mira.fit`` and ``mira.evaluate``.

PSNR and SSIM come from ``torchmetrics`` and LPIPS from the ``lpips`` package (the
reference implementation): well-kept code rather than our own. Both are imported on first
use (``torchmetrics`` alone takes seconds, paid by every ``train_ddp.py`` process otherwise).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

# torchvision backbone files that lpips loads through torch.hub on first use.
LPIPS_BACKBONE_FILES = {
    "vgg": "vgg16-397923af.pth",
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
# Smallest image side (px) each LPIPS backbone accepts: its pooling stages need at least one pixel.
LPIPS_MIN_SIZE = {"vgg": 16, "alex": 31, "squeeze": 17}


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not on disk and cannot be downloaded here."""


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean PSNR (dB) over a batch; images (B, 3, H, W) in [0, 1]."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(prediction.clamp(0, 1), target, data_range=1.0, dim=(1, 2, 3))


def ssim(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM (Gaussian window 11, sigma 1.5) over a batch; images (B, 3, H, W) in [0, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(prediction.clamp(0, 1).float(), target.float(), data_range=1.0)


def mask_iou(prediction: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union of two soft masks (..., H, W) thresholded at ``threshold``."""
    a, b = prediction > threshold, target > threshold
    union = (a | b).sum().clamp_min(1)
    return (a & b).sum() / union


def build_lpips(net: str = "vgg", pretrained_backbone: bool = True) -> torch.nn.Module:
    """An ``lpips.LPIPS`` module in eval mode with frozen weights.

    The linear heads ship inside the ``lpips`` package; the ImageNet backbone is a
    torchvision file in the torch hub cache. ``pretrained_backbone=False`` builds a
    random backbone (tests, no download). A missing backbone file raises
    :class:`MissingWeightsError` that names the file and where to put it.
    """
    import lpips

    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"lpips_net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got '{net}'")
    if pretrained_backbone:
        path = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
        if not path.is_file():
            try:
                return _make_lpips(lpips, net, pnet_rand=False)
            except Exception as error:  # no network: say exactly what to fetch
                raise MissingWeightsError(
                    f"LPIPS needs the torchvision '{net}' backbone at {path}; download "
                    f"https://download.pytorch.org/models/{LPIPS_BACKBONE_FILES[net]} to that path "
                    f"(or set TORCH_HOME) ({error})"
                ) from error
    return _make_lpips(lpips, net, pnet_rand=not pretrained_backbone)


def _make_lpips(lpips_module, net: str, pnet_rand: bool) -> torch.nn.Module:
    with warnings.catch_warnings():  # lpips passes torchvision the deprecated ``pretrained=`` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips_module.LPIPS(net=net, pretrained=True, pnet_rand=pnet_rand, verbose=False)
    model.eval().requires_grad_(False)
    return model


def lpips_distance(model: torch.nn.Module, prediction: Tensor, target: Tensor) -> Tensor:
    """Mean LPIPS over a batch; images (B, 3, H, W) in [0, 1] (mapped to [-1, 1] here)."""
    return model(prediction.clamp(0, 1) * 2 - 1, target * 2 - 1).mean()
