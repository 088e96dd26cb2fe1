#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md in one go, on a lent machine with the repo checked out.
#   bash benchmarks/gpu_suite.sh inference OUTDIR   # bench_inference fp32 + bf16, CUDA tests
#   bash benchmarks/gpu_suite.sh train OUTDIR       # bench_train on 1 GPU, then DDP on all GPUs
# Wheels missing from the GPU image (trimesh, PyMCubes, imageio-ffmpeg, lpips, tensorboard)
# are installed from ./.whl when that folder exists.
set -uo pipefail
part=$1; out=$2; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
case "$part" in
  inference)
    python3 benchmarks/bench_inference.py --device cuda --repeats 3 --warmup 1 --json "$out/inference_fp32.json" 2>&1 | tee "$out/inference_fp32.log"
    python3 benchmarks/bench_inference.py --device cuda --precision bf16 --repeats 3 --warmup 1 --json "$out/inference_bf16.json" 2>&1 | tee "$out/inference_bf16.log"
    python3 -m pytest -q -p no:cacheprovider tests/test_evaluate_cli.py -k cuda 2>&1 | tail -5 | tee "$out/cuda_tests.log"
    ;;
  train)
    python3 benchmarks/bench_train.py --device cuda --json "$out/train_1gpu.json" 2>&1 | tee "$out/train_1gpu.log"
    ngpu=$(nvidia-smi -L | wc -l)
    if [ "$ngpu" -gt 1 ]; then
      python3 -m torch.distributed.run --standalone --nproc_per_node="$ngpu" benchmarks/bench_train.py --device cuda \
        --baseline "$out/train_1gpu.json" --json "$out/train_${ngpu}gpu.json" 2>&1 | tee "$out/train_${ngpu}gpu.log"
    fi
    ;;
esac
