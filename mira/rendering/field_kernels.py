"""The whole radiance field in one Triton kernel: projected-plane lookup + the field MLP, forward and backward.

With ``renderer.project_planes`` the field at a point is ``MLP_rest(sum over planes of bilinear(Q_plane, p) + b1)``,
where ``Q`` are the planes multiplied by the first layer's weight (:meth:`mira.rendering.field.TriplaneField.
project_planes`). Run op by op, the rest of the MLP writes and reads several (P, H) tensors per layer and pass
(bias adds, activations, casts, their backward, bias-gradient reductions): on a ``mira-base`` training step (16.8 M
samples, H = 64) that is tens of GB of memory traffic for a few hundred GFLOP. Here one program takes a block of
points through the lookup and every layer in registers and writes the four raw outputs (density logit, three
colour logits); the backward recomputes the block's activations in registers (nothing but the points and the
small projected planes is kept for it, so no field checkpointing is needed), adds the weight and bias gradients
of the block into one of ``SLOTS`` fp32 partial sums (atomics spread over slots, then summed) and the first
layer's output gradient into the projected planes' gradient with coalesced fp32 atomics, as the lookup does.

Semantics are exactly the op-by-op path's (same lookup as :mod:`mira.rendering.triplane_kernels`, the same
layers); matrix products run in the projected planes' dtype (bf16 under autocast, as autocast's ``Linear`` does)
with fp32 accumulation, or in full fp32 (``ieee``) for fp32 planes. The CPU tests check values and every
gradient against the op-by-op field through Triton's interpreter. Only builtins of ``triton.language`` are used in
the kernel (no ``tl.sum``, ``tl.sigmoid``, nested ``@triton.jit`` helpers): the interpreter that runs it on CPU
tensors here cannot call the library's jitted functions; column sums are products with a block of ones.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mira.rendering.triplane_kernels import on_device_of, triton, tl

# The output layer is padded to this many columns (tl.dot needs >= 16); its first OUTPUTS are real.
OUT_PAD = 16
OUTPUTS = 4
# Partial sums of the weight gradients: each block adds into slot (block id % SLOTS).
SLOTS = 128
# Activations the kernel knows (TriplaneField's field_activation).
ACTIVATION_CODES = {"silu": 0, "relu": 1}
# Hidden widths the kernel takes (tl.dot and tl.arange need powers of two >= 16).
SUPPORTED_HIDDEN = (16, 32, 64, 128)


def _field_kernel(planes_ptr, grid_ptr, first_bias_ptr, hidden_w_ptr, hidden_b_ptr, out_w_ptr, out_b_ptr,
                  result_ptr, grad_result_ptr, grad_planes_ptr, grad_first_bias_ptr, grad_hidden_w_ptr,
                  grad_hidden_b_ptr, grad_out_w_ptr, grad_out_b_ptr,
                  num_points, size_u, size_v, axis_0u, axis_0v, axis_1u, axis_1v, axis_2u, axis_2v,
                  HIDDEN: tl.constexpr, NUM_HIDDEN: tl.constexpr, RELU: tl.constexpr, DOT: tl.constexpr,
                  PRECISION: tl.constexpr, OUT_PAD: tl.constexpr, SLOTS: tl.constexpr, BACKWARD: tl.constexpr,
                  BLOCK_P: tl.constexpr):
    """One program: BLOCK_P points of one batch element (program axis 1) through the field, or its adjoint.

    planes: (B*3, R_v, R_u, H) projected planes, channels-last; grid: (B, P, 3) fp32 box-normalised points;
    first_bias (H,); hidden_w (NUM_HIDDEN, H_out, H_in) and hidden_b (NUM_HIDDEN, H) fp32 (nn.Linear layout);
    out_w (OUT_PAD, H), out_b (OUT_PAD,) fp32, rows past OUTPUTS zero. Forward: result (B, P, OUTPUTS) fp32 raw
    outputs. Backward: grad_result (B, P, OUTPUTS) -> grad_planes (B*3, R_v, R_u, H) fp32 and the weight and bias
    gradients as (SLOTS, ...) fp32 partial sums. DOT: 0 = fp32 operands, 1 = bf16, 2 = fp16; PRECISION: tl.dot's
    input_precision ("ieee" for fp32).
    """
    block = tl.program_id(0)
    batch = tl.program_id(1)
    # Consecutive points in both passes: in the backward too, where strided points (one block's atomics into the
    # planes from different rays) measured 2-5 ms slower per 16.8 M points on an H100 (texel locality beats
    # contention).
    points = block * BLOCK_P + tl.arange(0, BLOCK_P)
    point_mask = points < num_points
    rows_of_points = batch.to(tl.int64) * num_points + points
    grid_rows = grid_ptr + rows_of_points * 3
    channel = tl.arange(0, HIDDEN)
    if DOT == 1:
        dot_type = tl.bfloat16
    elif DOT == 2:
        dot_type = tl.float16
    else:
        dot_type = tl.float32

    # The first layer's output: the three projected planes' bilinear values, added, plus its bias.
    first = tl.full((BLOCK_P, HIDDEN), 0.0, tl.float32)
    for plane in tl.static_range(3):
        axis_u = axis_0u if plane == 0 else (axis_1u if plane == 1 else axis_2u)
        axis_v = axis_0v if plane == 0 else (axis_1v if plane == 1 else axis_2v)
        u = tl.load(grid_rows + axis_u, mask=point_mask, other=0.0)
        v = tl.load(grid_rows + axis_v, mask=point_mask, other=0.0)
        x = ((u + 1.0) * size_u - 1.0) * 0.5  # align_corners=False
        y = ((v + 1.0) * size_v - 1.0) * 0.5
        x0 = tl.floor(x)
        y0 = tl.floor(y)
        wx = x - x0
        wy = y - y0
        x0i = tl.minimum(tl.maximum(x0, -2.0), size_u + 1.0).to(tl.int32)
        y0i = tl.minimum(tl.maximum(y0, -2.0), size_v + 1.0).to(tl.int32)
        in_x0 = point_mask & (x0i >= 0) & (x0i < size_u)
        in_x1 = point_mask & (x0i + 1 >= 0) & (x0i + 1 < size_u)
        in_y0 = (y0i >= 0) & (y0i < size_v)
        in_y1 = (y0i + 1 >= 0) & (y0i + 1 < size_v)
        row00 = (y0i * size_u + x0i).to(tl.int64) * HIDDEN
        base = planes_ptr + (batch * 3 + plane).to(tl.int64) * size_u * size_v * HIDDEN
        column = channel[None, :]
        first += ((1.0 - wx) * (1.0 - wy))[:, None] * tl.load(
            base + row00[:, None] + column, mask=(in_x0 & in_y0)[:, None], other=0.0).to(tl.float32)
        first += (wx * (1.0 - wy))[:, None] * tl.load(
            base + (row00 + HIDDEN)[:, None] + column, mask=(in_x1 & in_y0)[:, None], other=0.0).to(tl.float32)
        first += ((1.0 - wx) * wy)[:, None] * tl.load(
            base + (row00 + size_u * HIDDEN)[:, None] + column, mask=(in_x0 & in_y1)[:, None], other=0.0).to(tl.float32)
        first += (wx * wy)[:, None] * tl.load(
            base + (row00 + size_u * HIDDEN + HIDDEN)[:, None] + column, mask=(in_x1 & in_y1)[:, None],
            other=0.0).to(tl.float32)
    first += tl.load(first_bias_ptr + channel)[None, :]

    # Weight tiles (H_in, H_out) read from nn.Linear's (H_out, H_in) layout; the output layer's (H, OUT_PAD).
    w_rows = channel[:, None]
    w_cols = channel[None, :] * HIDDEN
    out_cols = tl.arange(0, OUT_PAD)
    out_w = tl.load(out_w_ptr + w_rows + out_cols[None, :] * HIDDEN).to(dot_type)  # (H, OUT_PAD)
    out_b = tl.load(out_b_ptr + out_cols)

    # Forward through the hidden layers to the last pre-activation.
    last = first
    for k in tl.static_range(NUM_HIDDEN):
        if RELU:
            act = tl.maximum(last, 0.0)
        else:
            act = last / (1.0 + tl.exp(-last))
        weight = tl.load(hidden_w_ptr + k * HIDDEN * HIDDEN + w_rows + w_cols).to(dot_type)
        last = tl.dot(act.to(dot_type), weight, input_precision=PRECISION) + tl.load(hidden_b_ptr + k * HIDDEN + channel)[None, :]
    if RELU:
        last_act = tl.maximum(last, 0.0)
    else:
        last_act = last / (1.0 + tl.exp(-last))
    out_mask = point_mask[:, None] & (out_cols[None, :] < 4)
    out_offsets = rows_of_points[:, None] * 4 + out_cols[None, :]

    if not BACKWARD:
        raw = tl.dot(last_act.to(dot_type), out_w, input_precision=PRECISION) + out_b[None, :]
        tl.store(result_ptr + out_offsets, raw, mask=out_mask)
    else:
        ones = tl.full((16, BLOCK_P), 1.0, dot_type)  # column sums as products: row 0 of ones @ x
        first_row = tl.arange(0, 16)[:, None] == 0
        slot = (batch * tl.num_programs(0) + block) % SLOTS
        grad = tl.load(grad_result_ptr + out_offsets, mask=out_mask, other=0.0).to(tl.float32)  # (BP, OUT_PAD)
        grad_op = grad.to(dot_type)
        # Output layer: d out_w[o, i] = sum_p act[p, i] grad[p, o]; d out_b = sum_p grad.
        grad_out_w = tl.dot(tl.trans(last_act.to(dot_type)), grad_op, input_precision=PRECISION)  # (H, OUT_PAD)
        tl.atomic_add(grad_out_w_ptr + slot * OUT_PAD * HIDDEN + w_rows + out_cols[None, :] * HIDDEN, grad_out_w,
                      sem="relaxed")
        column_sums = tl.dot(ones, grad_op, input_precision=PRECISION)
        tl.atomic_add(grad_out_b_ptr + slot * OUT_PAD + out_cols[None, :] + 0 * tl.arange(0, 16)[:, None],
                      column_sums, mask=first_row, sem="relaxed")
        grad_act = tl.dot(grad_op, tl.trans(out_w), input_precision=PRECISION)  # (BP, H)
        if RELU:
            grad_pre = tl.where(last > 0.0, grad_act, 0.0)
        else:
            sig = 1.0 / (1.0 + tl.exp(-last))
            grad_pre = grad_act * sig * (1.0 + last * (1.0 - sig))
        # Hidden layers, last to first; each one's input pre-activation recomputed from the first layer's output.
        for k in tl.static_range(NUM_HIDDEN - 1, -1, -1):
            pre = first
            for i in tl.static_range(k):
                if RELU:
                    act_i = tl.maximum(pre, 0.0)
                else:
                    act_i = pre / (1.0 + tl.exp(-pre))
                weight_i = tl.load(hidden_w_ptr + i * HIDDEN * HIDDEN + w_rows + w_cols).to(dot_type)
                pre = tl.dot(act_i.to(dot_type), weight_i, input_precision=PRECISION) + tl.load(
                    hidden_b_ptr + i * HIDDEN + channel)[None, :]
            if RELU:
                act_in = tl.maximum(pre, 0.0)
            else:
                act_in = pre / (1.0 + tl.exp(-pre))
            grad_pre_op = grad_pre.to(dot_type)
            grad_weight = tl.dot(tl.trans(act_in.to(dot_type)), grad_pre_op, input_precision=PRECISION)  # (H_in, H_out)
            tl.atomic_add(grad_hidden_w_ptr + (slot * NUM_HIDDEN + k) * HIDDEN * HIDDEN + w_rows + w_cols, grad_weight,
                          sem="relaxed")
            sums = tl.dot(ones, grad_pre_op, input_precision=PRECISION)
            tl.atomic_add(grad_hidden_b_ptr + (slot * NUM_HIDDEN + k) * HIDDEN + channel[None, :]
                          + 0 * tl.arange(0, 16)[:, None], sums, mask=first_row, sem="relaxed")
            weight = tl.load(hidden_w_ptr + k * HIDDEN * HIDDEN + w_rows + w_cols).to(dot_type)
            grad_act = tl.dot(grad_pre_op, tl.trans(weight), input_precision=PRECISION)
            if RELU:
                grad_pre = tl.where(pre > 0.0, grad_act, 0.0)
            else:
                sig = 1.0 / (1.0 + tl.exp(-pre))
                grad_pre = grad_act * sig * (1.0 + pre * (1.0 - sig))
        # grad_pre is now the gradient of the first layer's output: its bias, then the projected planes.
        sums = tl.dot(ones, grad_pre.to(dot_type), input_precision=PRECISION)
        tl.atomic_add(grad_first_bias_ptr + slot * HIDDEN + channel[None, :] + 0 * tl.arange(0, 16)[:, None], sums,
                      mask=first_row, sem="relaxed")
        for plane in tl.static_range(3):
            axis_u = axis_0u if plane == 0 else (axis_1u if plane == 1 else axis_2u)
            axis_v = axis_0v if plane == 0 else (axis_1v if plane == 1 else axis_2v)
            u = tl.load(grid_rows + axis_u, mask=point_mask, other=0.0)
            v = tl.load(grid_rows + axis_v, mask=point_mask, other=0.0)
            x = ((u + 1.0) * size_u - 1.0) * 0.5
            y = ((v + 1.0) * size_v - 1.0) * 0.5
            x0 = tl.floor(x)
            y0 = tl.floor(y)
            wx = x - x0
            wy = y - y0
            x0i = tl.minimum(tl.maximum(x0, -2.0), size_u + 1.0).to(tl.int32)
            y0i = tl.minimum(tl.maximum(y0, -2.0), size_v + 1.0).to(tl.int32)
            in_x0 = point_mask & (x0i >= 0) & (x0i < size_u)
            in_x1 = point_mask & (x0i + 1 >= 0) & (x0i + 1 < size_u)
            in_y0 = (y0i >= 0) & (y0i < size_v)
            in_y1 = (y0i + 1 >= 0) & (y0i + 1 < size_v)
            row00 = (y0i * size_u + x0i).to(tl.int64) * HIDDEN
            target = grad_planes_ptr + (batch * 3 + plane).to(tl.int64) * size_u * size_v * HIDDEN
            column = channel[None, :]
            tl.atomic_add(target + row00[:, None] + column, ((1.0 - wx) * (1.0 - wy))[:, None] * grad_pre,
                          mask=(in_x0 & in_y0)[:, None], sem="relaxed")
            tl.atomic_add(target + (row00 + HIDDEN)[:, None] + column, (wx * (1.0 - wy))[:, None] * grad_pre,
                          mask=(in_x1 & in_y0)[:, None], sem="relaxed")
            tl.atomic_add(target + (row00 + size_u * HIDDEN)[:, None] + column, ((1.0 - wx) * wy)[:, None] * grad_pre,
                          mask=(in_x0 & in_y1)[:, None], sem="relaxed")
            tl.atomic_add(target + (row00 + size_u * HIDDEN + HIDDEN)[:, None] + column, (wx * wy)[:, None] * grad_pre,
                          mask=(in_x1 & in_y1)[:, None], sem="relaxed")


# (BLOCK_P, num_warps[, maxnreg]) tried on the first CUDA call per shape (triton.autotune); the interpreter uses
# the first.
TUNING: list[tuple[int, ...]] = [(32, 4), (64, 4), (64, 8), (128, 8)]
_DOT_CODES = {torch.float32: (0, "ieee"), torch.bfloat16: (1, "tf32"), torch.float16: (2, "tf32")}


@functools.lru_cache(maxsize=None)
def _kernel(interpreted: bool):
    """The field kernel: autotuned for CUDA tensors, run by Triton's interpreter (BLOCK_P fixed) for CPU tensors."""
    if triton is None:
        raise RuntimeError("mira/rendering/field_kernels.py: Triton is not installed (it ships with PyTorch's Linux "
                           "wheels: pip install torch); set renderer.fused_field false")
    if interpreted:
        from triton.runtime.interpreter import InterpretedFunction

        kernel = InterpretedFunction(_field_kernel)

        def launch(*args, num_points: int, batch: int, **constants) -> None:
            block_p = TUNING[0][0]
            kernel[(triton.cdiv(max(num_points, 1), block_p), batch)](*args, BLOCK_P=block_p, **constants)

        return launch
    configs = [triton.Config({"BLOCK_P": shape[0]}, num_warps=shape[1], maxnreg=shape[2] if len(shape) > 2 else None)
               for shape in TUNING]
    gradients = ["grad_planes_ptr", "grad_first_bias_ptr", "grad_hidden_w_ptr", "grad_hidden_b_ptr", "grad_out_w_ptr",
                 "grad_out_b_ptr"]
    key = ["HIDDEN", "NUM_HIDDEN", "DOT", "BACKWARD"]
    forward = triton.autotune(configs, key=key)(triton.jit(_field_kernel))
    backward = triton.autotune(configs, key=key, reset_to_zero=gradients)(triton.jit(_field_kernel))

    def launch(*args, num_points: int, batch: int, BACKWARD: bool, **constants) -> None:  # noqa: N803
        grid = lambda meta: (triton.cdiv(max(num_points, 1), meta["BLOCK_P"]), batch)  # noqa: E731
        (backward if BACKWARD else forward)[grid](*args, BACKWARD=BACKWARD, **constants)

    return launch


class _FusedField(torch.autograd.Function):
    """Autograd wrapper of :func:`_field_kernel`: gradients for the projected planes and every weight and bias."""

    @staticmethod
    def forward(ctx, planes: Tensor, grid: Tensor, first_bias: Tensor, hidden_w: Tensor, hidden_b: Tensor,
                out_w: Tensor, out_b: Tensor, axes: tuple, relu: bool) -> Tensor:
        batch, num_points = grid.shape[:2]
        result = torch.empty(batch, num_points, OUTPUTS, device=grid.device, dtype=torch.float32)
        ctx.save_for_backward(planes, grid, first_bias, hidden_w, hidden_b, out_w, out_b)
        ctx.axes, ctx.relu = axes, relu
        if num_points > 0:
            dummy = result.new_empty(1)
            _launch(False, planes, grid, first_bias, hidden_w, hidden_b, out_w, out_b, result, dummy,
                    (dummy,) * 6, axes, relu)
        return result

    @staticmethod
    def backward(ctx, grad_result: Tensor):
        planes, grid, first_bias, hidden_w, hidden_b, out_w, out_b = ctx.saved_tensors
        batch, _, height, width, hidden = planes.shape
        num_hidden = hidden_w.shape[0]
        zeros = functools.partial(torch.zeros, device=grid.device, dtype=torch.float32)
        grads = (zeros(batch, 3, height, width, hidden), zeros(SLOTS, hidden), zeros(SLOTS, max(num_hidden, 1), hidden, hidden),
                 zeros(SLOTS, max(num_hidden, 1), hidden), zeros(SLOTS, OUT_PAD, hidden), zeros(SLOTS, OUT_PAD))
        if grid.shape[1] > 0:
            _launch(True, planes, grid, first_bias, hidden_w, hidden_b, out_w, out_b, grad_result.new_empty(1),
                    grad_result.to(torch.float32).contiguous(), grads, ctx.axes, ctx.relu)
        grad_planes, grad_first_bias, grad_hidden_w, grad_hidden_b, grad_out_w, grad_out_b = grads
        return (grad_planes.to(planes.dtype), None, grad_first_bias.sum(0), grad_hidden_w.sum(0)[:num_hidden],
                grad_hidden_b.sum(0)[:num_hidden], grad_out_w.sum(0), grad_out_b.sum(0), None, None)


def _launch(backward: bool, planes: Tensor, grid: Tensor, first_bias: Tensor, hidden_w: Tensor, hidden_b: Tensor,
            out_w: Tensor, out_b: Tensor, result: Tensor, grad_result: Tensor, grads: tuple[Tensor, ...],
            axes: tuple[tuple[int, int], ...], relu: bool) -> None:
    """Run the forward (``backward`` false: fills ``result``) or backward kernel (fills ``grads``)."""
    batch, _, height, width, hidden = planes.shape
    num_points = grid.shape[1]
    dot, precision = _DOT_CODES[planes.dtype]
    hidden_w_arg = hidden_w if hidden_w.numel() else first_bias  # never read when NUM_HIDDEN is 0
    hidden_b_arg = hidden_b if hidden_b.numel() else first_bias
    with on_device_of(planes):
        _kernel(not grid.is_cuda)(
            planes, grid, first_bias, hidden_w_arg, hidden_b_arg, out_w, out_b, result, grad_result, *grads,
            num_points, width, height, axes[0][0], axes[0][1], axes[1][0], axes[1][1], axes[2][0], axes[2][1],
            num_points=num_points, batch=batch, HIDDEN=hidden, NUM_HIDDEN=hidden_w.shape[0], RELU=relu, DOT=dot,
            PRECISION=precision, OUT_PAD=OUT_PAD, SLOTS=SLOTS, BACKWARD=backward)


def fused_field_supported(field: nn.Module, hidden_dim: int, activation: str) -> bool:
    """Whether :func:`fused_field_raw` can run ``field`` (a :class:`~mira.rendering.field.TriplaneField`): a hidden
    width in :data:`SUPPORTED_HIDDEN`, at least two layers (the first maps to the hidden width), a known activation."""
    linears = [layer for layer in field.mlp if isinstance(layer, nn.Linear)]
    return (hidden_dim in SUPPORTED_HIDDEN and len(linears) >= 2 and activation in ACTIVATION_CODES
            and linears[-1].out_features == OUTPUTS)


def fused_field_raw(projected: Tensor, normalized_points: Tensor, field: nn.Module, axes: tuple[tuple[int, int], ...],
                    activation: str) -> Tensor:
    """The field's raw outputs at box-normalised points from projected planes, in one kernel.

    Args:
        projected: (B, 3, H, R, R) planes times the first layer's weight
            (:meth:`~mira.rendering.field.TriplaneField.project_planes`; a channels-last view is read in place).
        normalized_points: (B, P, 3) points with the box mapped to [-1, 1]^3 (no gradient taken).
        field: the :class:`~mira.rendering.field.TriplaneField` whose first-layer bias, hidden layers and output
            layer are applied (:func:`fused_field_supported` must hold).
        axes: for each plane, the two point axes that become its grid (x, y).
        activation: the field's hidden activation, "silu" or "relu".
    Returns:
        (B, P, 4) fp32: the density logit and three colour logits (before the field's activations), as
        ``field.mlp[1:](first layer output)`` gives them.
    """
    linears = [layer for layer in field.mlp if isinstance(layer, nn.Linear)]
    first, hidden, out = linears[0], linears[1:-1], linears[-1]
    width = first.out_features
    planes = projected.permute(0, 1, 3, 4, 2).contiguous()  # (B, 3, R, R, H): free for project_planes' output
    grid = normalized_points.detach().to(torch.float32).contiguous()
    if hidden:
        hidden_w = torch.stack([layer.weight for layer in hidden]).float()
        hidden_b = torch.stack([layer.bias for layer in hidden]).float()
    else:
        hidden_w = first.bias.new_zeros(0, width, width)
        hidden_b = first.bias.new_zeros(0, width)
    out_w = F.pad(out.weight.float(), (0, 0, 0, OUT_PAD - OUTPUTS))
    out_b = F.pad(out.bias.float(), (0, OUT_PAD - OUTPUTS))
    return _FusedField.apply(planes, grid, first.bias.float(), hidden_w.contiguous(), hidden_b.contiguous(),
                             out_w.contiguous(), out_b.contiguous(), tuple(tuple(a) for a in axes), activation == "relu")
