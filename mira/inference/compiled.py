"""Image -> triplane as one compiled, CUDA-graphed call (``test.py --compile``).

At batch 1 a large model's forward is mostly kernel launches: mira-base (encoder 12 x 768 at 448 px,
decoder 16 x 1024) takes 20.5 ms under bf16 autocast on an H100, of which 11 ms are kernels. On CUDA the encoder
and decoder run in bfloat16 weights, ``torch.compile``d (``mode="default"``), and the compiled call is captured as
one plain CUDA graph, so a call is an input copy and a replay: no dynamo guards and no graph-tree bookkeeping of
``mode="reduce-overhead"`` on the host, which cost 0.5-0.8 ms a call (OpenLRM-base 4.70 -> 4.23 ms, TripoSR
8.14 -> 7.31 ms on one H100; ``benchmarks/bench_reconstruct.py``, docs/BENCHMARKS.md).
Compiling costs about a minute on the first image, so it pays for many images (a folder, the web app).

The renderer stays in float32: only the triplanes come from the compiled call.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

ReconstructFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def cast_reconstruction_parts(model, dtype: torch.dtype | None) -> None:
    """Cast ``model``'s encoder, camera embedder and decoder to ``dtype`` in place (None: leave them); the renderer
    stays as it is."""
    if dtype is not None:
        for part in (model.encoder, model.camera_embedder, model.decoder):
            if part is not None:
                part.to(dtype)


CONTIGUOUS_SDPA = "mira_contiguous_sdpa"


def _contiguous_sdpa(module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                     dropout: float = 0.0, scaling: float | None = None, **kwargs) -> tuple[Tensor, None]:
    """transformers' SDPA attention function with contiguous (B, H, N, d) queries, keys and values.

    Returns (B, N, H, d) outputs, as transformers' attention functions do, and no attention weights."""
    out = torch.nn.functional.scaled_dot_product_attention(
        query.contiguous(), key.contiguous(), value.contiguous(), attn_mask=attention_mask, dropout_p=dropout,
        scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def feed_attention_contiguous(backbone) -> None:
    """Make a transformers encoder ``backbone`` give its attention contiguous queries, keys and values (its
    config's attention implementation set to :func:`_contiguous_sdpa`, registered with ``AttentionInterface``)."""
    from transformers import AttentionInterface

    AttentionInterface.register(CONTIGUOUS_SDPA, _contiguous_sdpa)
    backbone.config._attn_implementation = CONTIGUOUS_SDPA


def compiles_vit_attention_contiguous(model) -> bool:
    """Whether :func:`compile_reconstruction` feeds ``model``'s encoder attention contiguous tensors: for ViT
    encoders (``model.encoder_architecture`` "vit", TripoSR's).

    Compiled, transformers' ViT hands SDPA strided views, and inductor then ran its 12 attention calls as fp32
    math instead of a fused kernel: TripoSR's image -> triplane took 10.0 ms compiled and graphed on an H100 and
    7.7-8.2 ms with contiguous inputs (``benchmarks/bench_reconstruct.py --architecture triposr``, docs/BENCHMARKS.md).
    DINOv2 encoders are left as they are: OpenLRM-base measured slower with it (5.2 against 4.7 ms)."""
    return model.config.model.encoder_architecture == "vit"


def compile_reconstruction(model, dtype: torch.dtype | None, backend: str = "inductor") -> ReconstructFn:
    """A compiled ``model.forward_triplanes`` (images (B, 3, S, S), c2w (B, 4, 4), intrinsics (B, 4)) ->
    float32 triplanes (B, 3, C, R, R), each call's output a fresh tensor.

    Args:
        model: a :class:`mira.models.MIRA` in eval mode. With ``dtype`` its encoder, camera embedder and
            decoder are cast to ``dtype`` in place (the renderer is not).
        dtype: bfloat16 / float16 weights, or None to keep float32.
        backend: ``torch.compile``'s backend (``"eager"`` checks the wiring in seconds, as the tests do).
    """
    on_cuda = next(model.parameters()).device.type == "cuda"
    if on_cuda and backend == "inductor":  # inductor's kernels in one plain CUDA graph: no guards per call
        return graph_reconstruction(model, dtype, compile_mode="default")
    cast_reconstruction_parts(model, dtype)
    compiled = torch.compile(model.forward_triplanes, backend=backend)  # the CPU, or the tests' "eager"
    input_dtype = dtype or torch.float32

    def reconstruct(images: Tensor, c2w: Tensor, intrinsics: Tensor) -> Tensor:
        with torch.inference_mode():
            return compiled(images.to(input_dtype), c2w, intrinsics).float()

    return reconstruct


def graph_reconstruction(model, dtype: torch.dtype | None, compile_mode: str | None = None) -> ReconstructFn:
    """``model.forward_triplanes`` captured as one CUDA graph per input shape, then replayed.

    ``compile_mode`` None captures the eager kernels (cuDNN attention, cuBLAS matmuls) without their launch cost;
    a ``torch.compile`` mode ("default", "max-autotune-no-cudagraphs") captures inductor's kernels instead, so a
    call is one input copy and one replay, without dynamo's guards or the bookkeeping of
    ``mode="reduce-overhead"``'s graph trees on the host (:func:`compile_reconstruction` on CUDA).

    Same interface as :func:`compile_reconstruction`: images (B, 3, S, S), c2w (B, 4, 4), intrinsics (B, 4) on a
    CUDA device -> float32 triplanes (B, 3, C, R, R), a fresh tensor per call. The first call of a shape runs the
    forward three times (two warm-ups on a side stream, which compile, then the capture); later calls copy the
    inputs into the graph's buffers and replay it. With ``dtype`` the encoder, camera embedder and decoder are cast
    in place.
    """
    cast_reconstruction_parts(model, dtype)
    forward = model.forward_triplanes
    if compile_mode is not None:
        if compiles_vit_attention_contiguous(model):
            feed_attention_contiguous(model.encoder.backbone)
        forward = torch.compile(forward, mode=compile_mode)
    input_dtype = dtype or torch.float32
    graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, tuple[Tensor, Tensor, Tensor], Tensor]] = {}

    def capture(images: Tensor, c2w: Tensor, intrinsics: Tensor):
        buffers = (images.clone(), c2w.clone(), intrinsics.clone())
        side = torch.cuda.Stream(device=images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):  # warm-up outside the capture: workspaces, caches of shape-derived tensors
            for _ in range(2):
                forward(*buffers)
        torch.cuda.current_stream(images.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = forward(*buffers)
        return graph, buffers, output

    def reconstruct(images: Tensor, c2w: Tensor, intrinsics: Tensor) -> Tensor:
        if images.device.type != "cuda":
            raise ValueError(f"mira/inference/compiled.py: CUDA graphs need CUDA inputs, got {images.device}")
        with torch.inference_mode():
            images = images.to(input_dtype)
            key = (tuple(images.shape), tuple(c2w.shape), tuple(intrinsics.shape), images.device)
            if key not in graphs:
                graphs[key] = capture(images, c2w, intrinsics)
            graph, buffers, output = graphs[key]
            for buffer, value in zip(buffers, (images, c2w, intrinsics)):
                buffer.copy_(value)
            graph.replay()
            return output.float().clone()

    return reconstruct
