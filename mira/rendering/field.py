"""The radiance field decoded from triplane features: a small MLP to density and colour."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TriplaneField(nn.Module):
    """MLP from aggregated triplane features to density and colour.

    ``num_layers`` linear layers (SiLU between them): ``in -> hidden -> ... -> hidden -> 4``.
    Density = ``softplus(raw + density_bias)`` (non-negative; a negative bias starts the
    field mostly transparent, as EG3D's ``softplus(x - 1)``). Colour = the widened sigmoid
    ``sigmoid(x) * (1 + 2w) - w`` of EG3D (``w = color_widening``; 0 is a plain sigmoid), so
    colours 0 and 1 are reached with finite logits.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        num_layers: int,
        density_bias: float = -1.0,
        color_widening: float = 0.001,
    ) -> None:
        super().__init__()
        if num_layers < 1 or hidden_dim < 1 or input_dim < 1:
            raise ValueError(
                "mira/rendering/field.py: mlp_num_layers, mlp_hidden_dim and the triplane feature size must be "
                f"positive, got num_layers={num_layers}, hidden_dim={hidden_dim}, input_dim={input_dim}"
            )
        if color_widening < 0:
            raise ValueError(f"mira/rendering/field.py: color_sigmoid_widening must be >= 0, got {color_widening}")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [4]
        layers: list[nn.Module] = []
        for index, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(dim_in, dim_out))
            if index < num_layers - 1:
                layers.append(nn.SiLU())
        self.mlp = nn.Sequential(*layers)
        self.density_bias = density_bias
        self.color_widening = color_widening

    @property
    def output_layer(self) -> nn.Linear:
        """The last linear layer (row 0: density logit, rows 1..3: colour logits)."""
        return self.mlp[-1]

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Features (..., F) -> density (..., 1) >= 0 and colour (..., 3) in [-w, 1 + w]."""
        raw = self.mlp(features)
        density = F.softplus(raw[..., :1] + self.density_bias)
        rgb = torch.sigmoid(raw[..., 1:]) * (1.0 + 2.0 * self.color_widening) - self.color_widening
        return density, rgb
