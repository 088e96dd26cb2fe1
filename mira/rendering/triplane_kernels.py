"""Fused bilinear triplane lookup in Triton: the training hot spot of the renderer.

``F.grid_sample`` on ``(B*3, C, R, R)`` planes reads each corner's ``C`` channels ``R*R`` elements
apart and, in its backward, scatters ``4 C`` atomic adds per point at those strided addresses: on
one H100 it was 26 % of a ``mira-base`` training step (163 ms of 628, ``benchmarks/bench_train.py
--profile``), and the ``(B, 3, C, P)`` -> ``(B, P, 3C)`` permute plus the fp32 casts around it
another 17 %. Here the planes are laid out channels-last, ``(B*3, R, R, C)``, so one corner is one
contiguous ``C``-vector: the forward reads four vectors per point and plane and writes the
concatenated ``(B, P, 3C)`` features directly in the output dtype; the backward adds four
contiguous, coalesced vectors into fp32 plane gradients. Arithmetic is fp32 throughout.

Semantics are exactly :func:`mira.rendering.triplane.sample_triplane`'s (``align_corners=False``,
zero padding, ``plane_axes``); gradients flow to the triplanes only (ray sample points are
functions of cameras, not of weights). The same kernels run on CPU tensors through Triton's
interpreter (``TRITON_INTERPRET``-style, :class:`triton.runtime.interpreter.InterpretedFunction`),
which is how the CPU tests check them against ``grid_sample``, values and gradients.

Why Triton and not ``torch.compile``: inductor lowers ``grid_sample`` to gathers on the NCHW
layout and keeps the strided atomics in the backward; the layout change is the gain.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

try:  # Triton ships with PyTorch's Linux wheels; elsewhere the grid_sample path is used.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - platform without Triton
    triton = None

    class tl:  # noqa: N801 - lets the kernel signatures below be defined without Triton
        constexpr = int

def fused_sampling_available(triplanes: Tensor) -> bool:
    """Whether :func:`fused_sample_triplane` can run on ``triplanes``' device (CUDA with Triton)."""
    return triton is not None and triplanes.is_cuda


def _sample_kernel(src_ptr, grid_ptr, dst_ptr, num_points, CHANNELS: tl.constexpr, size_u, size_v,
                   axis_0u, axis_0v, axis_1u, axis_1v, axis_2u, axis_2v,
                   BACKWARD: tl.constexpr, SUM_PLANES: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """One program of the lookup or of its adjoint: a block of points of one batch element and one plane
    (``SUM_PLANES`` false; program axis 1 = batch * 3 + plane) or all three planes (``SUM_PLANES`` true; axis 1 =
    batch).

    Forward (``BACKWARD`` false): src = planes (B*3, R_v, R_u, C) channels-last, dst = features, either
    concatenated (B, P, 3C): ``dst[b, p, plane*C:(plane+1)*C] = bilinear(plane, p)``, or summed (B, P, C):
    ``dst[b, p] = sum over planes of bilinear(plane, p)``. Backward: src = feature gradients of that shape,
    dst = plane gradients (B*3, R_v, R_u, C) fp32: ``dst[corner] += weight * src[...]`` (atomics, coalesced over
    the channels of a corner). grid: (B, P, 3) fp32 in [-1, 1]. Channels are visited BLOCK_C at a time (no lanes
    wasted on a C that is not a power of two).
    """
    block = tl.program_id(0)
    if SUM_PLANES:
        batch = tl.program_id(1)
        first_plane = batch * 0
        feature_width = CHANNELS
    else:
        batch = tl.program_id(1) // 3
        first_plane = tl.program_id(1) % 3
        feature_width = 3 * CHANNELS
    if BACKWARD:
        # Points BLOCK-strided: consecutive points are consecutive samples of one ray and hit the same
        # corners, so a contiguous block would send many atomics to one address at once (serialised);
        # strided, one block's points come from different rays.
        points = block + tl.arange(0, BLOCK_P) * tl.num_programs(0)
    else:
        points = block * BLOCK_P + tl.arange(0, BLOCK_P)
    point_mask = points < num_points
    grid_rows = grid_ptr + (batch.to(tl.int64) * num_points + points) * 3
    feature_rows = (batch.to(tl.int64) * num_points + points) * feature_width
    for c0 in range(0, CHANNELS, BLOCK_C):
        channel = c0 + tl.arange(0, BLOCK_C)
        channel_mask = channel < CHANNELS
        column = channel[None, :]
        tile_mask = point_mask[:, None] & channel_mask[None, :]
        if BACKWARD:
            if SUM_PLANES:
                grad = tl.load(src_ptr + feature_rows[:, None] + column, mask=tile_mask, other=0.0).to(tl.float32)
        else:
            acc = tl.full((BLOCK_P, BLOCK_C), 0.0, tl.float32)
        for index in tl.static_range(3 if SUM_PLANES else 1):
            plane = first_plane + index
            axis_u = tl.where(plane == 0, axis_0u, tl.where(plane == 1, axis_1u, axis_2u))
            axis_v = tl.where(plane == 0, axis_0v, tl.where(plane == 1, axis_1v, axis_2v))
            u = tl.load(grid_rows + axis_u, mask=point_mask, other=0.0).to(tl.float32)
            v = tl.load(grid_rows + axis_v, mask=point_mask, other=0.0).to(tl.float32)
            x = ((u + 1.0) * size_u - 1.0) * 0.5  # align_corners=False
            y = ((v + 1.0) * size_v - 1.0) * 0.5
            x0 = tl.floor(x)
            y0 = tl.floor(y)
            wx = x - x0
            wy = y - y0
            # Far outside the box the float -> int conversion is clamped first (any corner there is masked off).
            x0i = tl.minimum(tl.maximum(x0, -2.0), size_u + 1.0).to(tl.int32)
            y0i = tl.minimum(tl.maximum(y0, -2.0), size_v + 1.0).to(tl.int32)
            in_x0 = (x0i >= 0) & (x0i < size_u)
            in_x1 = (x0i + 1 >= 0) & (x0i + 1 < size_u)
            in_y0 = (y0i >= 0) & (y0i < size_v)
            in_y1 = (y0i + 1 >= 0) & (y0i + 1 < size_v)
            # Rows of the four corners (masked loads and atomics never touch the rows of corners outside the plane).
            row00 = (y0i * size_u + x0i).to(tl.int64) * CHANNELS
            row01 = row00 + CHANNELS
            row10 = row00 + size_u * CHANNELS
            row11 = row10 + CHANNELS
            w00 = (1.0 - wx) * (1.0 - wy)
            w01 = wx * (1.0 - wy)
            w10 = (1.0 - wx) * wy
            w11 = wx * wy
            plane_base = (batch * 3 + plane).to(tl.int64) * size_u * size_v * CHANNELS
            mask00 = (in_x0 & in_y0)[:, None] & tile_mask
            mask01 = (in_x1 & in_y0)[:, None] & tile_mask
            mask10 = (in_x0 & in_y1)[:, None] & tile_mask
            mask11 = (in_x1 & in_y1)[:, None] & tile_mask
            if BACKWARD:
                if not SUM_PLANES:
                    grad = tl.load(src_ptr + feature_rows[:, None] + plane * CHANNELS + column, mask=tile_mask,
                                   other=0.0).to(tl.float32)
                target = dst_ptr + plane_base
                tl.atomic_add(target + row00[:, None] + column, w00[:, None] * grad, mask=mask00, sem="relaxed")
                tl.atomic_add(target + row01[:, None] + column, w01[:, None] * grad, mask=mask01, sem="relaxed")
                tl.atomic_add(target + row10[:, None] + column, w10[:, None] * grad, mask=mask10, sem="relaxed")
                tl.atomic_add(target + row11[:, None] + column, w11[:, None] * grad, mask=mask11, sem="relaxed")
            else:
                source = src_ptr + plane_base
                acc += w00[:, None] * tl.load(source + row00[:, None] + column, mask=mask00, other=0.0).to(tl.float32)
                acc += w01[:, None] * tl.load(source + row01[:, None] + column, mask=mask01, other=0.0).to(tl.float32)
                acc += w10[:, None] * tl.load(source + row10[:, None] + column, mask=mask10, other=0.0).to(tl.float32)
                acc += w11[:, None] * tl.load(source + row11[:, None] + column, mask=mask11, other=0.0).to(tl.float32)
                if not SUM_PLANES:
                    tl.store(dst_ptr + feature_rows[:, None] + plane * CHANNELS + column,
                             acc.to(dst_ptr.dtype.element_ty), mask=tile_mask)
        if not BACKWARD:
            if SUM_PLANES:
                tl.store(dst_ptr + feature_rows[:, None] + column, acc.to(dst_ptr.dtype.element_ty), mask=tile_mask)


# Launch shapes tried on the first CUDA call per channel count (triton.autotune); the interpreter uses the first.
TUNING = [(64, 16, 4), (128, 16, 4), (128, 32, 4), (256, 16, 8), (256, 32, 8), (64, 32, 2), (64, 64, 4), (128, 64, 8)]


@functools.lru_cache(maxsize=None)
def _kernels(interpreted: bool):
    """(forward, backward) kernels: compiled and autotuned for CUDA tensors, run by Triton's interpreter
    (one fixed launch shape) for CPU tensors."""
    if triton is None:
        raise RuntimeError("mira/rendering/triplane_kernels.py: Triton is not installed (it ships with PyTorch's "
                           "Linux wheels: pip install torch); set renderer.fused_sampling false")
    if interpreted:
        from triton.runtime.interpreter import InterpretedFunction

        fixed = {"BLOCK_P": TUNING[0][0], "BLOCK_C": TUNING[0][1]}
        kernel = _Interpreted(InterpretedFunction(_sample_kernel))
        return (functools.partial(kernel, BACKWARD=False, **fixed), functools.partial(kernel, BACKWARD=True, **fixed))
    configs = [triton.Config({"BLOCK_P": block_p, "BLOCK_C": block_c}, num_warps=warps) for block_p, block_c, warps in TUNING]
    forward = triton.autotune(configs, key=["CHANNELS", "SUM_PLANES"])(triton.jit(_sample_kernel))
    # Each tuning trial adds into the gradient: zero it before every trial.
    backward = triton.autotune(configs, key=["CHANNELS", "SUM_PLANES"], reset_to_zero=["dst_ptr"])(
        triton.jit(_sample_kernel))
    return functools.partial(_Tuned(forward), BACKWARD=False), functools.partial(_Tuned(backward), BACKWARD=True)


class _Tuned:
    """Launch an autotuned kernel over (point blocks of its chosen BLOCK_P, batch * 3 planes or batch)."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def __call__(self, *args, num_points: int, programs: int, BACKWARD: bool, SUM_PLANES: bool) -> None:  # noqa: N803
        grid = lambda meta: (triton.cdiv(max(num_points, 1), meta["BLOCK_P"]), programs)  # noqa: E731
        self.kernel[grid](*args, BACKWARD=BACKWARD, SUM_PLANES=SUM_PLANES)


class _Interpreted:
    """Launch an interpreted kernel with a fixed launch shape."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def __call__(self, *args, num_points: int, programs: int, BACKWARD: bool, SUM_PLANES: bool,  # noqa: N803
                 BLOCK_P: int, BLOCK_C: int) -> None:  # noqa: N803
        grid = (triton.cdiv(max(num_points, 1), BLOCK_P), programs)
        self.kernel[grid](*args, BACKWARD=BACKWARD, SUM_PLANES=SUM_PLANES, BLOCK_P=BLOCK_P, BLOCK_C=BLOCK_C)


def on_device_of(tensor: Tensor) -> contextlib.AbstractContextManager:
    """The CUDA device of ``tensor`` made current (a no-op on the CPU): Triton launches on the current device, so a
    kernel given tensors on ``cuda:1`` while ``cuda:0`` is current would read pointers it cannot access."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _launch(kernel, tensors: tuple[Tensor, ...], num_points: int, batch: int, channels: int, height: int,
            width: int, axes: tuple[tuple[int, int], ...], sum_planes: bool) -> None:
    """Run ``kernel`` over (point blocks, batch * 3 planes), or (point blocks, batch) when ``sum_planes``."""
    with on_device_of(tensors[0]):
        kernel(*tensors, num_points, channels, width, height, axes[0][0], axes[0][1], axes[1][0], axes[1][1],
               axes[2][0], axes[2][1], num_points=num_points, programs=batch if sum_planes else batch * 3,
               SUM_PLANES=sum_planes)


class _FusedTriplaneSample(torch.autograd.Function):
    """Autograd wrapper: forward/backward kernels above; gradients for the triplanes only."""

    @staticmethod
    def forward(ctx, triplanes: Tensor, grid: Tensor, axes: tuple, out_dtype: torch.dtype, sum_planes: bool) -> Tensor:
        batch, _, channels, height, width = triplanes.shape
        num_points = grid.shape[1]
        planes = triplanes.permute(0, 1, 3, 4, 2).contiguous()  # (B, 3, R, R, C); free if already channels-last
        width_out = channels if sum_planes else 3 * channels
        out = torch.empty(batch, num_points, width_out, device=grid.device, dtype=out_dtype)
        if num_points > 0:
            forward_kernel, _ = _kernels(not grid.is_cuda)
            _launch(forward_kernel, (planes, grid, out), num_points, batch, channels, height, width, axes, sum_planes)
        ctx.save_for_backward(grid)
        ctx.shape = (batch, channels, height, width)
        ctx.axes = axes
        ctx.sum_planes = sum_planes
        ctx.plane_dtype = triplanes.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (grid,) = ctx.saved_tensors
        batch, channels, height, width = ctx.shape
        grad_planes = torch.zeros(batch, 3, height, width, channels, device=grid.device, dtype=torch.float32)
        num_points = grid.shape[1]
        if num_points > 0 and ctx.needs_input_grad[0]:
            _, backward_kernel = _kernels(not grid.is_cuda)
            _launch(backward_kernel, (grad_out.contiguous(), grid, grad_planes), num_points, batch, channels,
                    height, width, ctx.axes, ctx.sum_planes)
        return grad_planes.permute(0, 1, 4, 2, 3).to(ctx.plane_dtype), None, None, None, None


def fused_sample_triplane(triplanes: Tensor, normalized_points: Tensor, axes: tuple[tuple[int, int], ...],
                          out_dtype: torch.dtype, sum_planes: bool = False) -> Tensor:
    """Concatenated (or summed) bilinear features of box-normalised points (the fused kernels).

    Args:
        triplanes: (B, 3, C, R, R), any float dtype (read as is, accumulated in fp32).
        normalized_points: (B, P, 3) points with the box mapped to [-1, 1]^3 (no gradient taken).
        axes: for each plane, the two point axes that become its grid (x, y).
        out_dtype: dtype of the features.
        sum_planes: add the three planes' features instead of concatenating them (one pass, 3x narrower output).
    Returns:
        (B, P, 3C) features, planes in order, or their sum (B, P, C); zeros outside the planes.
    """
    grid = normalized_points.detach().to(torch.float32).contiguous()
    return _FusedTriplaneSample.apply(triplanes, grid, tuple(tuple(a) for a in axes), out_dtype, sum_planes)
