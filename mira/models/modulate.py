"""adaLN modulation: how the camera enters the triplane decoder.

``ModulatedLayerNorm(x, c) = LayerNorm(x) * (1 + scale(c)) + shift(c)``, with a
LayerNorm without its own affine parameters and ``(scale, shift)`` predicted from the
camera embedding ``c`` by ``SiLU -> Linear``.

Initialisation: the projection is **zero-initialised**, so at the start of training
``scale = shift = 0`` and the modulated norm is exactly a plain LayerNorm: every
decoder block starts as a standard pre-LN transformer block (residual + attention /
MLP) that ignores the camera, and the camera's influence grows from zero as the
projection learns (its gradient is non-zero from the first step). We do not add a
zero-initialised residual gate (DiT's adaLN-Zero): that would also zero the gradient
of every attention/MLP weight at step 0.
"""

from __future__ import annotations

from torch import Tensor, nn


class ModulatedLayerNorm(nn.Module):
    """LayerNorm (no affine) followed by a camera-conditioned scale and shift.

    Args:
        dim: feature width D of the modulated tokens.
        cond_dim: width E of the conditioning (camera) embedding.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Modulate tokens.

        Args:
            x: (B, N, D) tokens.
            cond: (B, E) conditioning embedding.
        Returns:
            (B, N, D) ``LayerNorm(x) * (1 + scale) + shift``.
        """
        scale, shift = self.modulation(cond).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, D) each
        return self.norm(x) * (1 + scale) + shift
