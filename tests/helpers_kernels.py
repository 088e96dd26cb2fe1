"""Compile a Triton kernel for an H100 (sm_90) without a GPU: what the kernels' compile-check tests share."""

from __future__ import annotations

from typing import Callable


def compile_for_hopper(kernel_fn: Callable, constants: dict, pointer_types: dict[str, str], num_warps: int) -> str:
    """PTX of ``kernel_fn`` (a plain function written for ``triton.jit``) compiled for sm_90.

    Args:
        kernel_fn: the kernel's Python function.
        constants: value of every ``tl.constexpr`` argument.
        pointer_types: Triton type of each pointer argument (e.g. ``"*bf16"``); other arguments are ``i32``.
        num_warps: the launch's warps.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = triton.jit(kernel_fn)
    signature = {name: "constexpr" if name in constants else pointer_types.get(name, "i32") for name in kernel.arg_names}
    source = ASTSource(fn=kernel, signature=signature,
                       constexprs={(kernel.arg_names.index(name),): value for name, value in constants.items()})
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps}).asm["ptx"]
