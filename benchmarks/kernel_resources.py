"""Registers, spills and loads per thread of MIRA's Triton kernels compiled for an H100, without a GPU.

For each kernel (the fused field, :mod:`mira.rendering.field_kernels`; the triplane lookup,
:mod:`mira.rendering.triplane_kernels`), each pass (forward, backward) and each launch shape of its ``TUNING`` list,
the kernel is compiled for sm_90 at ``mira-base``'s sizes (bf16 planes; 80 channels, projected to 64; a 4-layer
SiLU field) and assembled by the ``ptxas`` that ships with Triton (:mod:`mira.rendering.kernel_check`). A kernel at
255 registers with spilled bytes is register-bound; ``b16 loads`` > 0 means unvectorised reads of bf16 data. Use it
to see what a kernel change does before timing it on a GPU (``benchmarks/bench_field.py``,
``benchmarks/bench_train.py``); docs/BENCHMARKS.md records what it showed for the fused field's backward.

    python benchmarks/kernel_resources.py                                  # every kernel, pass and shape (minutes)
    python benchmarks/kernel_resources.py --kernel field --shapes 128x8 64x8x168 --passes backward
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.rendering import field_kernels, triplane_kernels  # noqa: E402
from mira.rendering.kernel_check import compile_for_hopper, kernel_resources  # noqa: E402

PASSES = ("forward", "backward")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", choices=("field", "lookup", "all"), default="all")
    parser.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    parser.add_argument("--shapes", nargs="+", default=None,
                        help="launch shapes instead of each kernel's TUNING list: field BLOCKxWARPS[xMAXNREG], "
                             "lookup BLOCK_PxBLOCK_CxWARPS")
    return parser.parse_args(argv)


def field_rows(passes: list[str], shapes: list[tuple[int, ...]]):
    """(kernel, pass, shape, resources) of the fused field at mira-base's sizes (H 64, 2 hidden layers, bf16)."""
    pointers = {name: "*fp32" for name in inspect.signature(field_kernels._field_kernel).parameters
                if name.endswith("_ptr")}
    pointers["planes_ptr"] = "*bf16"
    for name in passes:
        for shape in shapes:
            constants = {"HIDDEN": 64, "NUM_HIDDEN": 2, "RELU": False, "DOT": 1, "PRECISION": "tf32",
                         "OUT_PAD": field_kernels.OUT_PAD, "SLOTS": field_kernels.SLOTS,
                         "BACKWARD": name == "backward", "BLOCK_P": shape[0]}
            ptx = compile_for_hopper(field_kernels._field_kernel, constants, pointers, shape[1],
                                     multiples_of_16=("size_u", "size_v"), maxnreg=shape[2] if len(shape) > 2 else None)
            yield "fused field", name, "x".join(map(str, shape)), kernel_resources(ptx)


def lookup_rows(passes: list[str], shapes: list[tuple[int, ...]]):
    """(kernel, pass, shape, resources) of the triplane lookup: concatenated planes (C 80) and summed projected
    planes (C 64), bf16 planes forward, fp32 gradients backward."""
    for name in passes:
        backward = name == "backward"
        data = "*fp32" if backward else "*bf16"
        for sum_planes in (False, True):
            for block_p, block_c, warps in shapes:
                constants = {"CHANNELS": 64 if sum_planes else 80, "BACKWARD": backward, "SUM_PLANES": sum_planes,
                             "BLOCK_P": block_p, "BLOCK_C": block_c}
                ptx = compile_for_hopper(triplane_kernels._sample_kernel, constants,
                                         {"src_ptr": data, "dst_ptr": data, "grid_ptr": "*fp32"}, warps,
                                         multiples_of_16=("size_u", "size_v"))
                label = "lookup, summed planes" if sum_planes else "lookup, concatenated"
                yield label, name, f"{block_p}x{block_c}x{warps}", kernel_resources(ptx)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    custom = [tuple(int(value) for value in shape.lower().split("x")) for shape in args.shapes or []]
    print("| kernel | pass | shape | registers | spill stores B | spill loads B | b16 loads | vector loads |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows = []
    if args.kernel in ("field", "all"):
        rows.append(field_rows(args.passes, custom or field_kernels.TUNING))
    if args.kernel in ("lookup", "all"):
        rows.append(lookup_rows(args.passes, custom or triplane_kernels.TUNING))
    for generator in rows:
        for kernel, name, shape, used in generator:
            print(f"| {kernel} | {name} | {shape} | {used.registers} | {used.spill_store_bytes} | "
                  f"{used.spill_load_bytes} | {used.scalar_16bit_loads} | {used.vector_loads} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
