"""Multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``.

SDPA dispatches to the flash / memory-efficient kernels on CUDA (fp16/bf16) and to a
fused math kernel on the CPU; the result equals ``softmax(Q K^T / sqrt(d)) V``. ``backend`` puts one of
SDPA's kernels first (``model.attention_backend``), e.g. to pin flash where a cuDNN version misbehaves;
where a kernel does not apply (the CPU, a float bias it cannot take) SDPA falls through to the next of
:data:`ATTENTION_BACKENDS`' list. Not a speed-up on an H100 with PyTorch 2.11, which already picks cuDNN's
attention there (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

_FALLBACKS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
# model.attention_backend -> SDPA's kernels in priority order (None: PyTorch's own choice).
ATTENTION_BACKENDS: dict[str, list[SDPBackend] | None] = {
    "auto": None,
    "cudnn": [SDPBackend.CUDNN_ATTENTION, *_FALLBACKS],
    "flash": _FALLBACKS,
    "efficient": [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.MATH],
    "math": [SDPBackend.MATH],
}


class MultiHeadAttention(nn.Module):
    """Self-attention (``context=None``) or cross-attention to a context sequence.

    Args:
        dim: query / output width D (divisible by ``num_heads``).
        num_heads: number of heads H; head width d = D / H.
        context_dim: width of the keys/values' source; defaults to ``dim``.
        bias: use biases in the projections.
        output_bias: bias of the output projection; None: ``bias``.
        backend: a key of :data:`ATTENTION_BACKENDS`, the SDPA kernel tried first.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, bias: bool = True,
                 output_bias: bool | None = None, backend: str = "auto") -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide the attention width {dim}")
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(f"attention_backend must be one of {sorted(ATTENTION_BACKENDS)}, got '{backend}'")
        self.backends = ATTENTION_BACKENDS[backend]
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=bias)
        self.to_out = nn.Linear(dim, dim, bias=bias if output_bias is None else output_bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        """(B, N, H * d) -> (B, H, N, d)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def project(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries from ``x`` (B, N, D), keys/values from ``context`` (B, M, Dc) or ``x``; each (B, H, *, d)."""
        key, value = self.to_kv(x if context is None else context).chunk(2, dim=-1)
        return self._split_heads(self.to_q(x)), self._split_heads(key), self._split_heads(value)

    def forward(self, x: Tensor, context: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """Attend.

        Args:
            x: (B, N, D) queries' tokens.
            context: (B, M, Dc) tokens to attend to; None for self-attention.
            bias: optional (B, H, N, M) added to the attention logits (SDPA's float ``attn_mask``, cast to the
                queries' dtype, which autocast decides).
        Returns:
            (B, N, D)
        """
        query, key, value = self.project(x, context)
        mask = None if bias is None else bias.to(query.dtype)
        # inside forward, so that a checkpointed block's recomputation uses the same kernel
        with nullcontext() if self.backends is None else sdpa_kernel(self.backends, set_priority=True):
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)  # (B, H, N, d)
        batch, _, length, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))
