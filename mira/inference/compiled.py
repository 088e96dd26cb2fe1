"""Image -> triplane as one compiled, CUDA-graphed call (``test.py --compile``).

At batch 1 a large model's forward is mostly kernel launches: mira-base (encoder 12 x 768 at 448 px,
decoder 16 x 1024) takes 20.5 ms under bf16 autocast on an H100, of which 11 ms are kernels; the
encoder and decoder in bfloat16 weights, ``torch.compile``d and replayed as a CUDA graph
(``mode="reduce-overhead"``), take 7.5 ms (``benchmarks/bench_reconstruct.py``, docs/BENCHMARKS.md; that
figure is of the same compiled call made by the benchmark, this module's own path is still to be timed).
Compiling costs about a minute on the first image, so it pays for many images (a folder, the web app).

The renderer stays in float32: only the triplanes come from the compiled call.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

ReconstructFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def compile_reconstruction(model, dtype: torch.dtype | None, backend: str = "inductor") -> ReconstructFn:
    """A compiled ``model.forward_triplanes`` (images (B, 3, S, S), c2w (B, 4, 4), intrinsics (B, 4)) ->
    float32 triplanes (B, 3, C, R, R), each call's output a fresh tensor.

    Args:
        model: a :class:`mira.models.MIRA` in eval mode. With ``dtype`` its encoder, camera embedder and
            decoder are cast to ``dtype`` in place (the renderer is not).
        dtype: bfloat16 / float16 weights, or None to keep float32.
        backend: ``torch.compile``'s backend (``"eager"`` checks the wiring in seconds, as the tests do).
    """
    if dtype is not None:
        for part in (model.encoder, model.camera_embedder, model.decoder):
            if part is not None:
                part.to(dtype)
    on_cuda = next(model.parameters()).device.type == "cuda"
    mode = "reduce-overhead" if on_cuda and backend == "inductor" else None
    compiled = torch.compile(model.forward_triplanes, backend=backend, mode=mode)
    input_dtype = dtype or torch.float32

    def reconstruct(images: Tensor, c2w: Tensor, intrinsics: Tensor) -> Tensor:
        with torch.inference_mode():
            # a CUDA graph reuses its output buffer on the next replay: copy it out
            return compiled(images.to(input_dtype), c2w, intrinsics).float().clone()

    return reconstruct
