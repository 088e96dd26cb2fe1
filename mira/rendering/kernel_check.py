"""MIRA's Triton kernels compiled for an H100 (sm_90) without a GPU, and what ``ptxas`` says about them.

Triton compiles for any target on any machine; the ``ptxas`` that ships with it assembles the PTX and reports the
registers and spilled bytes per thread. That is enough to check, on a laptop or in CI, that a kernel compiles for
the lent GPUs (a kernel that only Triton's interpreter accepts would otherwise fail there) and to see what a change
does to its register budget and loads before spending GPU time on timing it (``benchmarks/kernel_resources.py``).

The compilation is specialised as a CUDA launch specialises it: every pointer 16-byte aligned (PyTorch's allocations
are) and the named integer arguments multiples of 16 (Triton marks such values at launch). Without that the
compiler cannot vectorise loads, and the kernel compiled would not be the one that runs.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HOPPER = 90


@dataclass(frozen=True)
class KernelResources:
    """Per-thread resources of one compiled kernel, from ``ptxas -v`` and the PTX.

    registers: registers per thread (255 is the ceiling); spill_store_bytes / spill_load_bytes: local-memory
    traffic per thread forced by register pressure; scalar_16bit_loads: ``ld.global.b16`` instructions (one bf16
    or fp16 value each: unvectorised reads); vector_loads: ``ld.global.v2/v4`` instructions.
    """

    registers: int
    spill_store_bytes: int
    spill_load_bytes: int
    scalar_16bit_loads: int
    vector_loads: int


def compile_for_hopper(kernel_fn: Callable, constants: dict, pointer_types: dict[str, str], num_warps: int,
                       multiples_of_16: tuple[str, ...] = (), maxnreg: int | None = None) -> str:
    """PTX of ``kernel_fn`` (a plain function written for ``triton.jit``) compiled for sm_90.

    Args:
        kernel_fn: the kernel's Python function.
        constants: value of every ``tl.constexpr`` argument.
        pointer_types: Triton type of each pointer argument (e.g. ``"*bf16"``); other arguments are ``i32``.
        num_warps: the launch's warps.
        multiples_of_16: integer arguments the launch passes as multiples of 16.
        maxnreg: cap on registers per thread (``triton.Config``'s ``maxnreg``); None: the compiler's choice.
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
    options = {"num_warps": num_warps} if maxnreg is None else {"num_warps": num_warps, "maxnreg": maxnreg}
    return triton.compile(source, target=GPUTarget("cuda", HOPPER, 32), options=options).asm["ptx"]


def ptxas_path() -> Path:
    """The ``ptxas`` bundled with Triton's NVIDIA backend."""
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Triton's bundled ptxas is missing (it ships with the triton wheel that "
                                "PyTorch installs on Linux: pip install --force-reinstall triton)")
    return path


def kernel_resources(ptx: str) -> KernelResources:
    """Assemble ``ptx`` for sm_90a with the bundled ``ptxas -v`` and read its register and spill report."""
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([str(ptxas_path()), f"-arch=sm_{HOPPER}a", "-v", str(source), "-o",
                                 str(Path(directory) / "kernel.cubin")], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed on the kernel's PTX:\n{result.stderr[-2000:]}")
    report = result.stderr

    def number(pattern: str) -> int:
        match = re.search(pattern, report)
        if match is None:
            raise RuntimeError(f"ptxas -v printed no '{pattern}' (its report format changed?):\n{report[-2000:]}")
        return int(match.group(1))

    return KernelResources(registers=number(r"Used (\d+) registers"),
                           spill_store_bytes=number(r"(\d+) bytes spill stores"),
                           spill_load_bytes=number(r"(\d+) bytes spill loads"),
                           scalar_16bit_loads=len(re.findall(r"\bld\.global(?:\.[a-z]+)*\.b16\b", ptx)),
                           vector_loads=len(re.findall(r"\bld\.global(?:\.[a-z]+)*\.v[24]\.", ptx)))
