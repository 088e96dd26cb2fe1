"""Triplane decoder: learned triplane tokens attend to image tokens, modulated by the camera.

Tokens: ``3 * R * R`` learned tokens (one per cell of each R x R plane, planes in the
order XY, XZ, YZ), plus a fixed 2D sine-cosine position embedding of each token's
(row, column) in its plane (a buffer computed from the config, not a weight). With
``context_position_embedding`` the image tokens get the same kind of code for their patch's
place in the image, so cross-attention can match planes to image regions from the first step
(DINOv2's own learned position embeddings start near zero when it is trained from scratch).

Each :class:`TriplaneDecoderBlock` is (pre-norm, residual)::

    x = x + CrossAttention(adaLN(x, cam), image_tokens)
    x = x + SelfAttention(adaLN(x, cam))
    x = x + MLP(adaLN(x, cam))

After a final LayerNorm, each plane's R x R grid of D-wide tokens is upsampled by a
shared ``ConvTranspose2d(D, C, kernel 2, stride 2)`` to the (C, 2R, 2R) triplane.

Options that OpenLRM's decoder needs (``ModelConfig``): ``context_projection`` false (keys and
values are projected from the encoder width directly), ``attention_bias`` false,
``decoder_mlp_activation`` "gelu" (exact), ``triplane_token_sincos`` false (learned tokens only)
and ``final_norm_eps`` 1e-6. OpenLRM's affine LayerNorm before each modulation is folded into the
modulation's projection by the converter (``mira/pretrained/openlrm.py``), so the block is the same.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mira.config import ModelConfig
from mira.models.attention import MultiHeadAttention
from mira.models.modulate import ModulatedLayerNorm

NUM_PLANES = 3
TOKEN_INIT_STD = 0.02
# decoder_mlp_activation -> nn.GELU's ``approximate``.
GELU_APPROXIMATIONS = {"gelu_tanh": "tanh", "gelu": "none"}
SINCOS_BASE = 10000.0


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """(N,) positions -> (N, dim) ``[sin(p * w_k), cos(p * w_k)]``, w_k = base^(-k / (dim/2))."""
    half = dim // 2
    frequencies = SINCOS_BASE ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


def grid_position_embedding(size: int, dim: int, cell: float = 1.0) -> Tensor:
    """(size * size, D) fixed 2D sine-cosine embedding of a grid's (row, column), row-major.

    Row r sits at position ``(r + 0.5) * cell - 0.5`` (so a grid of ``size`` cells of ``cell``
    spans the same extent as ``size * cell`` unit cells); half of the channels encode the row,
    half the column; ``dim`` must be divisible by 4.
    """
    if dim % 4 != 0:
        raise ValueError(f"decoder_hidden_dim must be divisible by 4 for the 2D position embedding, got {dim}")
    positions = (torch.arange(size, dtype=torch.float64) + 0.5) * cell - 0.5
    rows, cols = torch.meshgrid(positions, positions, indexing="ij")
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=-1)


def triplane_position_embedding(resolution: int, dim: int) -> Tensor:
    """(3 * R * R, D) fixed 2D sine-cosine embedding of (row, column), the same for each plane."""
    return grid_position_embedding(resolution, dim).repeat(NUM_PLANES, 1)


class TriplaneDecoderBlock(nn.Module):
    """adaLN cross-attention -> adaLN self-attention -> adaLN MLP, each residual.

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        cond_dim: camera-embedding width E.
        context_dim: width Dc of the image tokens cross-attention reads (D after a context projection).
        attention_bias: biases in the attention projections.
        activation: "gelu_tanh" or "gelu" (exact), the MLP's activation.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cond_dim: int, context_dim: int | None = None,
                 attention_bias: bool = True, activation: str = "gelu_tanh") -> None:
        super().__init__()
        if activation not in GELU_APPROXIMATIONS:
            raise ValueError(f"decoder_mlp_activation must be one of {sorted(GELU_APPROXIMATIONS)}, got '{activation}'")
        self.norm_cross = ModulatedLayerNorm(dim, cond_dim)
        self.cross_attention = MultiHeadAttention(dim, num_heads, context_dim=context_dim, bias=attention_bias)
        self.norm_self = ModulatedLayerNorm(dim, cond_dim)
        self.self_attention = MultiHeadAttention(dim, num_heads, bias=attention_bias)
        self.norm_mlp = ModulatedLayerNorm(dim, cond_dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate=GELU_APPROXIMATIONS[activation]),
                                 nn.Linear(hidden, dim))

    def forward(self, x: Tensor, context: Tensor, cond: Tensor) -> Tensor:
        """x (B, N, D) triplane tokens, context (B, T, Dc) image tokens, cond (B, E) -> (B, N, D)."""
        x = x + self.cross_attention(self.norm_cross(x, cond), context)
        x = x + self.self_attention(self.norm_self(x, cond))
        return x + self.mlp(self.norm_mlp(x, cond))


class TriplaneDecoder(nn.Module):
    """Image tokens + camera embedding -> triplanes (B, 3, C, 2R, 2R).

    Args:
        model_cfg: ``decoder_hidden_dim`` (D), ``num_layers``, ``num_heads``, ``mlp_ratio``,
            ``camera_embed_dim`` (E), ``triplane_feat_res`` (R), ``triplane_dim`` (C),
            ``gradient_checkpointing``, and the options in the module docstring.
        encoder_dim: width of the image tokens (projected to D when ``context_projection``).
    """

    def __init__(self, model_cfg: ModelConfig, encoder_dim: int) -> None:
        super().__init__()
        dim, resolution = model_cfg.decoder_hidden_dim, model_cfg.triplane_feat_res
        self.resolution = resolution
        self.triplane_dim = model_cfg.triplane_dim
        self.gradient_checkpointing = model_cfg.gradient_checkpointing
        self.tokens = nn.Parameter(torch.empty(NUM_PLANES * resolution**2, dim))
        nn.init.trunc_normal_(self.tokens, std=TOKEN_INIT_STD)
        position = triplane_position_embedding(resolution, dim) if model_cfg.triplane_token_sincos else None
        self.register_buffer("position_embedding", position, persistent=False)
        if model_cfg.context_projection:
            self.context_proj: nn.Module | None = nn.Linear(encoder_dim, dim)
            self.context_norm: nn.Module | None = nn.LayerNorm(dim)
        else:
            self.context_proj = self.context_norm = None
        context_dim = dim if model_cfg.context_projection else encoder_dim
        self.context_position_embedding = model_cfg.context_position_embedding
        if self.context_position_embedding and context_dim != dim:
            raise ValueError("context_position_embedding needs context_projection (the code is D wide)")
        self._context_codes: dict[tuple[int, int, torch.device], Tensor] = {}
        self.blocks = nn.ModuleList(
            TriplaneDecoderBlock(dim, model_cfg.num_heads, model_cfg.mlp_ratio, model_cfg.camera_embed_dim,
                                 context_dim=context_dim, attention_bias=model_cfg.attention_bias,
                                 activation=model_cfg.decoder_mlp_activation)
            for _ in range(model_cfg.num_layers)
        )
        self.final_norm = nn.LayerNorm(dim, eps=model_cfg.final_norm_eps)
        self.upsample = nn.ConvTranspose2d(dim, model_cfg.triplane_dim, kernel_size=2, stride=2)

    def _run_block(self, block: TriplaneDecoderBlock, x: Tensor, context: Tensor, cond: Tensor) -> Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, context, cond, use_reentrant=False)
        return block(x, context, cond)

    def tokens_to_triplanes(self, x: Tensor) -> Tensor:
        """(B, 3 * R * R, D) tokens -> (B, 3, C, 2R, 2R) triplanes (shared transposed conv)."""
        batch, _, dim = x.shape
        r = self.resolution
        planes = x.view(batch * NUM_PLANES, r, r, dim).permute(0, 3, 1, 2)  # (B*3, D, R, R)
        planes = self.upsample(planes)  # (B*3, C, 2R, 2R)
        return planes.view(batch, NUM_PLANES, self.triplane_dim, 2 * r, 2 * r)

    def context_code(self, num_tokens: int, device: torch.device) -> Tensor:
        """(T, D) fixed position code of the image tokens: 0 for the leading (CLS / register) tokens,
        and :func:`grid_position_embedding` of the n x n patch grid, scaled onto the R x R grid of
        the triplane tokens so that the same frequencies describe the same fraction of the image."""
        dim = self.tokens.shape[1]
        patches = int(round(math.sqrt(num_tokens - 1)))
        while patches > 0 and num_tokens - patches * patches < 1:
            patches -= 1
        key = (num_tokens, patches, device)
        if key not in self._context_codes:
            code = torch.zeros(num_tokens, dim)
            code[num_tokens - patches * patches:] = grid_position_embedding(patches, dim, self.resolution / patches)
            self._context_codes[key] = code.to(device)
        return self._context_codes[key]

    def forward(self, image_tokens: Tensor, camera_embedding: Tensor) -> Tensor:
        """Decode triplanes.

        Args:
            image_tokens: (B, T, encoder_dim) encoder output.
            camera_embedding: (B, E) source-camera embedding.
        Returns:
            (B, 3, C, 2R, 2R) triplanes; planes XY, XZ, YZ (rows index the plane's second
            axis, columns its first, as ``grid_sample`` reads them).
        """
        batch = image_tokens.shape[0]
        context = image_tokens
        if self.context_proj is not None:
            context = self.context_norm(self.context_proj(image_tokens))
        if self.context_position_embedding:
            context = context + self.context_code(context.shape[1], context.device).to(context.dtype)
        tokens = self.tokens if self.position_embedding is None else self.tokens + self.position_embedding
        x = tokens.unsqueeze(0).expand(batch, -1, -1)
        for block in self.blocks:
            x = self._run_block(block, x, context, camera_embedding)
        return self.tokens_to_triplanes(self.final_norm(x))
