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
shared ``ConvTranspose2d(D, C, kernel 2, stride 2)`` to the (C, 2R, 2R) triplane (``triplane_upsample_kernel``
4: kernel 4, padding 1, so each cell mixes its neighbouring tokens and the 2 x 2 lattice can blend).

Options that TripoSR's decoder needs: ``camera_conditioning`` false (no camera: each block norm is an
affine LayerNorm, :class:`AffineLayerNorm`, of eps ``block_norm_eps``), ``decoder_block_order``
"self_cross_mlp", ``decoder_mlp_activation`` "geglu", ``attention_bias`` false with
``attention_output_bias`` true, ``decoder_final_norm`` false and ``decoder_residual_projection``::

    x = tokens + proj_out(blocks(proj_in(GroupNorm(tokens))))

Options that OpenLRM's decoder needs (``ModelConfig``): ``context_projection`` false (keys and
values are projected from the encoder width directly), ``attention_bias`` false,
``decoder_mlp_activation`` "gelu" (exact), ``triplane_token_sincos`` false (learned tokens only)
and ``final_norm_eps`` 1e-6. OpenLRM's affine LayerNorm before each modulation is folded into the
modulation's projection by the converter (``mira/pretrained/openlrm.py``), so the block is the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mira.config import ModelConfig
from mira.models.attention import MultiHeadAttention
from mira.models.modulate import ModulatedLayerNorm
from mira.models.projective_bias import AttentionLocality, ProjectiveAttentionBias

NUM_PLANES = 3
TOKEN_INIT_STD = 0.02
# decoder_mlp_activation -> nn.GELU's ``approximate``.
GELU_APPROXIMATIONS = {"gelu_tanh": "tanh", "gelu": "none"}
SINCOS_BASE = 10000.0
# Epsilon of the GroupNorm of decoder_residual_projection (TripoSR's Transformer1D).
GROUP_NORM_EPS = 1e-6


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


class AffineLayerNorm(nn.LayerNorm):
    """A LayerNorm with its affine parameters that takes (and ignores) a condition, so that it stands in
    for :class:`ModulatedLayerNorm` in a decoder without camera input."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """(B, N, D) tokens -> (B, N, D); ``cond`` is unused."""
        return super().forward(x)


class GEGLU(nn.Module):
    """Gated GELU: (..., 2H) -> (..., H), ``h * gelu(g)`` with ``(h, g)`` the two halves (exact GELU)."""

    def forward(self, x: Tensor) -> Tensor:
        hidden, gate = x.chunk(2, dim=-1)
        return hidden * F.gelu(gate)


def block_mlp(dim: int, hidden: int, activation: str) -> nn.Sequential:
    """The decoder blocks' MLP: ``Linear(D, H) -> GELU -> Linear(H, D)``, or with "geglu"
    ``Linear(D, 2H) -> GEGLU -> Linear(H, D)``."""
    if activation == "geglu":
        return nn.Sequential(nn.Linear(dim, 2 * hidden), GEGLU(), nn.Linear(hidden, dim))
    if activation not in GELU_APPROXIMATIONS:
        raise ValueError(f"decoder_mlp_activation must be one of {sorted(GELU_APPROXIMATIONS) + ['geglu']}, "
                         f"got '{activation}'")
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate=GELU_APPROXIMATIONS[activation]),
                         nn.Linear(hidden, dim))


class TriplaneDecoderBlock(nn.Module):
    """adaLN cross-attention -> adaLN self-attention -> adaLN MLP, each residual (order: ``order``).

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        cond_dim: camera-embedding width E.
        context_dim: width Dc of the image tokens cross-attention reads (D after a context projection).
        attention_bias: biases in the attention projections.
        activation: "gelu_tanh", "gelu" (exact) or "geglu", the MLP's activation.
        output_bias: bias of the attention output projections (None: ``attention_bias``).
        order: "cross_self_mlp" or "self_cross_mlp" (``decoder_block_order``).
        cond_dim None: no conditioning; the norms are :class:`AffineLayerNorm` of eps ``norm_eps``
        (else :class:`ModulatedLayerNorm` of eps ``norm_eps``).
        projective_bias: learn per-head slopes (:class:`~mira.models.projective_bias.AttentionLocality`)
        that turn the projected distances given to :meth:`forward` into a cross-attention bias.
        attention_backend: the SDPA kernel tried first (:data:`~mira.models.attention.ATTENTION_BACKENDS`).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cond_dim: int | None, context_dim: int | None = None,
                 attention_bias: bool = True, activation: str = "gelu_tanh", output_bias: bool | None = None,
                 order: str = "cross_self_mlp", norm_eps: float = 1e-6, projective_bias: bool = False,
                 attention_backend: str = "auto") -> None:
        super().__init__()
        if order not in ("cross_self_mlp", "self_cross_mlp"):
            raise ValueError(f"decoder_block_order must be cross_self_mlp or self_cross_mlp, got '{order}'")
        self.self_first = order == "self_cross_mlp"

        def norm() -> nn.Module:
            return AffineLayerNorm(dim, eps=norm_eps) if cond_dim is None else ModulatedLayerNorm(dim, cond_dim, norm_eps)

        self.norm_cross = norm()
        self.cross_attention = MultiHeadAttention(dim, num_heads, context_dim=context_dim, bias=attention_bias,
                                                  output_bias=output_bias, backend=attention_backend)
        self.norm_self = norm()
        self.self_attention = MultiHeadAttention(dim, num_heads, bias=attention_bias, output_bias=output_bias,
                                                 backend=attention_backend)
        self.norm_mlp = norm()
        self.mlp = block_mlp(dim, int(dim * mlp_ratio), activation)
        self.locality = AttentionLocality(num_heads) if projective_bias else None

    def forward(self, x: Tensor, context: Tensor, cond: Tensor | None, distance: Tensor | None = None) -> Tensor:
        """x (B, N, D) triplane tokens, context (B, T, Dc) image tokens, cond (B, E) or None -> (B, N, D).

        ``distance`` (B, N, T): squared projected distances (:class:`ProjectiveAttentionBias`), needed
        when the block was built with ``projective_bias`` and ignored otherwise."""
        bias = None
        if self.locality is not None:
            if distance is None:
                raise ValueError("this decoder block uses the projective attention bias: pass the projected distances")
            bias = self.locality(distance)
        if self.self_first:
            x = x + self.self_attention(self.norm_self(x, cond))
            x = x + self.cross_attention(self.norm_cross(x, cond), context, bias)
        else:
            x = x + self.cross_attention(self.norm_cross(x, cond), context, bias)
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

    def __init__(self, model_cfg: ModelConfig, encoder_dim: int, projection: ProjectiveAttentionBias | None = None) -> None:
        super().__init__()
        if model_cfg.projective_attention_bias and projection is None:
            raise ValueError("projective_attention_bias needs the triplane box and the encoder's patch size "
                             "(TriplaneDecoder(..., projection=ProjectiveAttentionBias(...)), as MIRA builds it)")
        self.projection = projection if model_cfg.projective_attention_bias else None
        dim, resolution = model_cfg.decoder_hidden_dim, model_cfg.triplane_feat_res
        self.resolution = resolution
        self.triplane_dim = model_cfg.triplane_dim
        self.gradient_checkpointing = model_cfg.gradient_checkpointing
        if model_cfg.gradient_checkpointing_every < 1:
            raise ValueError(f"gradient_checkpointing_every must be >= 1, got {model_cfg.gradient_checkpointing_every}")
        self.gradient_checkpointing_every = model_cfg.gradient_checkpointing_every
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
        cond_dim = model_cfg.camera_embed_dim if model_cfg.camera_conditioning else None
        self.blocks = nn.ModuleList(
            TriplaneDecoderBlock(dim, model_cfg.num_heads, model_cfg.mlp_ratio, cond_dim,
                                 context_dim=context_dim, attention_bias=model_cfg.attention_bias,
                                 activation=model_cfg.decoder_mlp_activation,
                                 output_bias=model_cfg.attention_output_bias, order=model_cfg.decoder_block_order,
                                 norm_eps=model_cfg.block_norm_eps, projective_bias=self.projection is not None,
                                 attention_backend=model_cfg.attention_backend)
            for _ in range(model_cfg.num_layers)
        )
        if model_cfg.decoder_residual_projection:  # TripoSR's Transformer1D wrapper
            self.token_norm: nn.Module | None = nn.GroupNorm(model_cfg.decoder_norm_groups, dim, eps=GROUP_NORM_EPS)
            self.proj_in: nn.Module | None = nn.Linear(dim, dim)
            self.proj_out: nn.Module | None = nn.Linear(dim, dim)
        else:
            self.token_norm = self.proj_in = self.proj_out = None
        self.final_norm = nn.LayerNorm(dim, eps=model_cfg.final_norm_eps) if model_cfg.decoder_final_norm else nn.Identity()
        kernel = model_cfg.triplane_upsample_kernel  # 2: each token its own 2 x 2 cells; 4: overlapping 4 x 4
        self.upsample = nn.ConvTranspose2d(dim, model_cfg.triplane_dim, kernel_size=kernel, stride=2,
                                           padding=(kernel - 2) // 2)

    def _run_block(self, index: int, block: TriplaneDecoderBlock, x: Tensor, context: Tensor,
                   cond: Tensor | None, distance: Tensor | None) -> Tensor:
        """Block ``index``; recomputed in the backward pass when checkpointing covers it."""
        recompute = self.gradient_checkpointing and index % self.gradient_checkpointing_every == 0
        if recompute and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, context, cond, distance, use_reentrant=False)
        return block(x, context, cond, distance)

    def tokens_to_triplanes(self, x: Tensor) -> Tensor:
        """(B, 3 * R * R, D) tokens -> (B, 3, C, 2R, 2R) triplanes (shared transposed conv, per plane)."""
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

    def forward(self, image_tokens: Tensor, camera_embedding: Tensor | None, source_c2w: Tensor | None = None,
                source_intrinsics: Tensor | None = None, image_size: tuple[int, int] | None = None,
                token_offsets: Tensor | None = None) -> Tensor:
        """Decode triplanes.

        Args:
            image_tokens: (B, T, encoder_dim) encoder output.
            camera_embedding: (B, E) source-camera embedding; None without ``camera_conditioning``.
            source_c2w, source_intrinsics, image_size: (B, 4, 4), (B, 4) and the encoder input's (H, W);
                needed with ``projective_attention_bias`` (the source camera places each image patch).
            token_offsets: optional (B, 3 * R * R, D) added to the triplane tokens before the blocks
                (``image_lifting``'s pixel-aligned features).
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
        if token_offsets is not None:
            x = x + token_offsets.to(x.dtype)
        residual = x
        if self.token_norm is not None:  # GroupNorm over (channels, all tokens) per group, then Linear
            x = self.proj_in(self.token_norm(x.transpose(1, 2)).transpose(1, 2))
        distance = None
        if self.projection is not None:
            if source_c2w is None or source_intrinsics is None or image_size is None:
                raise ValueError("projective_attention_bias: the decoder needs source_c2w, source_intrinsics and image_size")
            distance = self.projection(source_c2w, source_intrinsics, image_size, context.shape[1])
        for index, block in enumerate(self.blocks):
            x = self._run_block(index, block, x, context, camera_embedding, distance)
        if self.proj_out is not None:
            x = residual + self.proj_out(x)
        return self.tokens_to_triplanes(self.final_norm(x))
