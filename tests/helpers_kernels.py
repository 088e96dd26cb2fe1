"""Compile a Triton kernel for an H100 (sm_90) without a GPU: what the kernels' compile-check tests share."""

from __future__ import annotations

from typing import Callable


def compile_for_hopper(kernel_fn: Callable, constants: dict, pointer_types: dict[str, str], num_warps: int,
                       multiples_of_16: tuple[str, ...] = ()) -> str:
    """PTX of ``kernel_fn`` (a plain function written for ``triton.jit``) compiled for sm_90.

    Specialised as a CUDA launch specialises it: every pointer 16-byte aligned (PyTorch's allocations are), and
    the integer arguments named in ``multiples_of_16`` divisible by 16 (Triton marks such values at launch) -- what
    lets the compiler vectorise loads, so a kernel compiled without it would not be the one that runs.

    Args:
        kernel_fn: the kernel's Python function.
        constants: value of every ``tl.constexpr`` argument.
        pointer_types: Triton type of each pointer argument (e.g. ``"*bf16"``); other arguments are ``i32``.
        num_warps: the launch's warps.
        multiples_of_16: integer arguments the launch passes as multiples of 16.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = triton.jit(kernel_fn)
    signature = {name: "constexpr" if name in constants else pointer_types.get(name, "i32") for name in kernel.arg_names}
    aligned = [name for name in kernel.arg_names if name in pointer_types or name in multiples_of_16]
    source = ASTSource(fn=kernel, signature=signature,
                       constexprs={(kernel.arg_names.index(name),): value for name, value in constants.items()},
                       attrs={(kernel.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned})
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps}).asm["ptx"]


def render_training_case_on_cuda(config, triplane_dim: int = 80):
    """Training's case on the GPU, the same for every setting compared: a renderer of ``config`` (weights seeded),
    two bf16 triplanes (B 2, C ``triplane_dim``, 64^2) rendered along 4096 rays each under bf16 autocast, and
    the backward of the squared colours. Returns (rgb fp32, the triplanes' gradient fp32, the renderer)."""
    import torch

    from mira.rendering import TriplaneRenderer

    torch.manual_seed(2)
    renderer = TriplaneRenderer(config, triplane_dim=triplane_dim).cuda().train()
    generator = torch.Generator().manual_seed(3)
    planes = (torch.randn(2, 3, triplane_dim, 64, 64, generator=generator) * 0.5).cuda().bfloat16().requires_grad_(True)
    origins = torch.tensor([0.2, -0.1, 3.0]).expand(2, 4096, 3).contiguous().cuda()
    directions = torch.nn.functional.normalize(torch.randn(2, 4096, 3, generator=generator) * 0.25
                                               + torch.tensor([0.0, 0.0, -1.0]), dim=-1).cuda()
    torch.manual_seed(5)  # the same stratified jitter and importance samples
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rgb = renderer(planes, origins, directions)["rgb"]
    rgb.square().sum().backward()
    return rgb.float(), planes.grad.float(), renderer
