#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md in one go, on a lent machine with the repo checked out.
#   bash benchmarks/gpu_suite.sh inference OUTDIR           # bench_inference fp32 + bf16, bench_reconstruct, CUDA tests
#   bash benchmarks/gpu_suite.sh reference OUTDIR REF_DIR   # MIRA as OpenLRM-base / TripoSR beside the upstream
#                                                           # pipelines (REF_DIR: a copy of shared/reference), and
#                                                           # bench_reconstruct of the same two architectures
#   bash benchmarks/gpu_suite.sh triplanes OUTDIR REF_DIR [TEXT ...]
#                                                           # image -> triplane only: upstream OpenLRM-base and TripoSR
#                                                           # (median of 20) and MIRA running the same architectures
#                                                           # (TEXT: only bench_reconstruct's variants naming it)
#   bash benchmarks/gpu_suite.sh mesh OUTDIR                # issue 12 without mp4: bench_mesh on the shipped model
#                                                           # (256^3, 512^3, profiled), bench_reconstruct, bench_ray_ops
#   bash benchmarks/gpu_suite.sh quickstart OUTDIR          # test.py's per-image stages (bench_quickstart, profiled);
#                                                           # needs imageio-ffmpeg (29 MB: carry it in two halves over
#                                                           # two calls on one machine, docs/BENCHMARKS.md)
#   bash benchmarks/gpu_suite.sh train OUTDIR               # lookup kernels, bench_train (+ breakdown) on 1 GPU,
#                                                           # then DDP on all GPUs
#   bash benchmarks/gpu_suite.sh field OUTDIR [CONFIG [VARIANT ...]]
#                                                           # the field alone (bench_field: op by op vs the fused kernel),
#                                                           # then bench_train of CONFIG as shipped and per VARIANT
#                                                           # (default: "fused_field=false", the op-by-op field)
#   bash benchmarks/gpu_suite.sh fitbound OUTDIR N          # per-object triplane fits of the first N evaluation objects
#                                                           # (written on the GPU first): the upper bound's scores
#   bash benchmarks/gpu_suite.sh learning OUTDIR "ARGS" ...  # bench_learning.py runs side by side, one per GPU
#                                                           # (ARGS: that run's options, e.g. "--phase overfit")
#   bash benchmarks/gpu_suite.sh curves OUTDIR              # 300-step loss curves, before/after settings x 2 seeds,
#                                                           # one run per GPU (up to 4 at once)
#   bash benchmarks/gpu_suite.sh continue OUTDIR MINUTES [KEY=VALUE ...]
#                                                           # mira-demo continued on all GPUs (DDP) from the shipped
#                                                           # weights (default: lr 1e-4, no warm-up; KEY=VALUE replaces
#                                                           # a default), resuming /tmp/mira-demo-continue, then
#                                                           # exported (float16, split into <= 15 MB parts) into OUTDIR
#   bash benchmarks/gpu_suite.sh demo OUTDIR MINUTES MAX_STEPS [KEY=VALUE ...]
#                                                           # mira-demo trained from scratch on all GPUs (DDP), resuming
#                                                           # /tmp/mira-demo-run on the same machine across calls, then
#                                                           # exported like "continue" (logs and curves in OUTDIR)
#   bash benchmarks/gpu_suite.sh evaluate OUTDIR CHECKPOINT ...
#                                                           # docs/EVALUATION.md's 100 held-out procedural objects, written
#                                                           # on the GPU, each checkpoint scored on its own GPU
#                                                           # (OUTDIR/eval_<i>.json: metrics.json of checkpoint i)
# The machine starts bare: carry .whl (trimesh is needed to import mira.inference for the export).
# A part run in the background across calls (setsid nohup bash benchmarks/gpu_suite.sh ... &) writes OUTDIR/finished
# when it ends: wait for that file (a `pgrep -f` for the command line also matches the waiting shell's own command).
# Wheels missing from the GPU image (trimesh, PyMCubes, imageio-ffmpeg, lpips, tensorboard)
# are installed from ./.whl when that folder exists.
set -uo pipefail
part=$1; out=$2; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
# MIRA_NGPU: how many GPUs this part may use (with CUDA_VISIBLE_DEVICES naming them); default every GPU
ngpu=${MIRA_NGPU:-$(nvidia-smi -L | wc -l)}
# The training settings before issue 15's changes (grid_sample, every decoder block checkpointed).
before="--set fused_sampling=false --set field_checkpointing=false --set gradient_checkpointing_every=1"
# The newest checkpoint of run folder $1, exported in float16 and split into <= 15 MB parts in $out (here:
# cat model.safetensors.part_* > model.safetensors), with the run's logs.
export_demo() {
  latest=$(ls "$1"/checkpoint-*.pt | sort | tail -n 1)
  python3 -c "import sys, torch; from mira.inference.checkpoint import load_model; \
load_model(sys.argv[1]).save_pretrained('/tmp/mira-demo-export', dtype=torch.float16)" "$latest"
  cp /tmp/mira-demo-export/config.json "$out/config.json"
  split -b 15m /tmp/mira-demo-export/model.safetensors "$out/model.safetensors.part_"
  tar czf "$out/logs.tgz" -C "$1" logs
  ls -la "$out"
}

case "$part" in
  inference)
    python3 benchmarks/bench_inference.py --device cuda --repeats 3 --warmup 1 --json "$out/inference_fp32.json" 2>&1 | tee "$out/inference_fp32.log"
    python3 benchmarks/bench_inference.py --device cuda --precision bf16 --repeats 3 --warmup 1 --json "$out/inference_bf16.json" 2>&1 | tee "$out/inference_bf16.log"
    python3 benchmarks/bench_reconstruct.py --device cuda --profile 2>&1 | tee "$out/reconstruct.log"
    python3 -m pytest -q -p no:cacheprovider tests -k cuda 2>&1 | tail -5 | tee "$out/cuda_tests.log"
    ;;
  reference)
    ref=${3:?give the folder that holds openlrm/ and triposr/ (a copy of shared/reference)}
    for model in "--openlrm base" "--triposr"; do
      name=$(echo "$model" | tr -d ' -')
      python3 benchmarks/bench_inference.py --device cuda --precision bf16 --repeats 3 --warmup 1 $model \
        --mesh_resolutions 256 --json "$out/mira_$name.json" 2>&1 | tee "$out/mira_$name.log"
    done
    python3 benchmarks/bench_reference.py --device cuda --precision bf16 --model openlrm-base --model triposr \
      --reference_dir "$ref" --repeats 1 --warmup 1 --json "$out/reference.json" 2>&1 | tee "$out/reference.log"
    for arch in openlrm-base triposr; do  # image -> triplane of the same architectures, every way MIRA can run it
      python3 benchmarks/bench_reconstruct.py --device cuda --architecture $arch > "$out/reconstruct_$arch.log" 2>&1
      grep "^|" "$out/reconstruct_$arch.log"
    done
    ;;
  triplanes)
    ref=${3:?give the folder that holds openlrm/ and triposr/ (a copy of shared/reference)}
    python3 benchmarks/bench_reference.py --device cuda --precision bf16 --model openlrm-base --model triposr \
      --reference_dir "$ref" --reconstruct_only --repeats 20 --warmup 3 --json "$out/reference_triplanes.json" \
      > "$out/reference_triplanes.log" 2>&1
    grep "^|\|^###" "$out/reference_triplanes.log"
    only=("${@:4}")
    for arch in openlrm-base triposr; do
      python3 benchmarks/bench_reconstruct.py --device cuda --architecture $arch ${only[@]:+--only "${only[@]}"} \
        > "$out/reconstruct_$arch.log" 2>&1
      grep "^|" "$out/reconstruct_$arch.log"
    done
    ;;
  mesh)
    python3 benchmarks/bench_ray_ops.py --device cuda 2>&1 | tee "$out/ray_ops.log"
    python3 benchmarks/bench_mesh.py --device cuda --resolutions 256 512 --repeats 3 --profile > "$out/mesh.log" 2>&1
    python3 benchmarks/bench_reconstruct.py --device cuda > "$out/reconstruct.log" 2>&1
    grep -h "^|" "$out/mesh.log" "$out/reconstruct.log"
    ;;
  quickstart)
    python3 benchmarks/bench_quickstart.py --device cuda --repeats 3 --profile > "$out/quickstart.log" 2>&1
    grep "^|" "$out/quickstart.log"
    ;;
  train)
    python3 benchmarks/bench_triplane.py --device cuda 2>&1 | tee "$out/triplane.log"
    CUDA_VISIBLE_DEVICES=0 python3 benchmarks/bench_train.py --device cuda --breakdown --json "$out/train_1gpu.json" 2>&1 | tee "$out/train_1gpu.log"
    if [ "$ngpu" -gt 1 ]; then
      python3 -m torch.distributed.run --standalone --nproc_per_node="$ngpu" benchmarks/bench_train.py --device cuda \
        --baseline "$out/train_1gpu.json" --json "$out/train_${ngpu}gpu.json" 2>&1 | tee "$out/train_${ngpu}gpu.log"
    fi
    ;;
  trainspeed)
    shift 2
    index=0
    for variant in "" "$@"; do
      sets=(); for kv in $variant; do sets+=(--set "$kv"); done
      echo "== variant $index: ${variant:-shipped setting}"
      CUDA_VISIBLE_DEVICES=0 python3 benchmarks/bench_train.py --device cuda --breakdown "${sets[@]}" \
        --json "$out/trainspeed_$index.json" > "$out/trainspeed_$index.log" 2>&1
      grep "^|" "$out/trainspeed_$index.log" | grep -v "^|---" ; tail -n 2 "$out/trainspeed_$index.log" | grep -i error
      index=$((index + 1))
    done
    ;;
  field)
    # bash benchmarks/gpu_suite.sh field OUT [CONFIG [VARIANT ...]]: the field alone, then bench_train of CONFIG
    # (default mira-base) as shipped and with each VARIANT ("KEY=VALUE ...", default: the op-by-op field)
    config=${3:-configs/mira-base.json}
    shift 3 2>/dev/null || shift $#
    variants=("$@"); [ ${#variants[@]} -eq 0 ] && variants=("fused_field=false")
    python3 benchmarks/bench_field.py --device cuda > "$out/field.log" 2>&1; grep "^|\|relative" "$out/field.log"
    for variant in "" "${variants[@]}"; do
      sets=(); for kv in $variant; do sets+=(--set "$kv"); done
      echo "== $config ${variant:-as shipped}"
      name=train_$(basename "$config" .json)_$(echo "${variant:-shipped}" | tr '= ' '__')
      CUDA_VISIBLE_DEVICES=0 python3 benchmarks/bench_train.py --device cuda --config_path "$config" --breakdown \
        "${sets[@]}" --json "$out/$name.json" > "$out/$name.log" 2>&1
      grep "samples_per_s_per_gpu\|step_time_s\|peak_memory_gb\|^| renderer\|^| decoder" "$out/$name.log"
      tail -n 2 "$out/$name.log" | grep -i error
    done
    ;;
  fitbound)
    # eager sphere tracing: compiling it would take ~3 minutes, writing a few objects eagerly takes seconds
    MIRA_PROCEDURAL_COMPILE=0 python3 benchmarks/fit_upper_bound.py --write_objects "${3:?give the number of objects}" --data /tmp/fitbound-data \
      --out /tmp/fitbound --jsonl "$out/fits.jsonl" --device cuda 2>&1 | grep -v "^INFO" | tail -n 20 | tee "$out/fitbound.log"
    ;;
  learning)
    shift 2
    index=0
    for run_args in "$@"; do
      CUDA_VISIBLE_DEVICES=$((index % ngpu)) python3 benchmarks/bench_learning.py $run_args --renders 8 --final_eval 64 \
        --out "$out/run_$index" > "$out/run_$index.log" 2>&1 &
      index=$((index + 1))
    done
    wait
    for log in "$out"/run_*.log; do echo "== $log"; grep -A40 "^generalise:\|^overfit:\|^final evaluation" "$log"; done
    ;;
  curves)
    runs=("--seed 0" "--seed 0 $before" "--seed 1" "--seed 1 $before")
    for index in "${!runs[@]}"; do
      gpu=$((index % ngpu))
      CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/bench_train.py --device cuda --curve_steps 300 ${runs[$index]} \
        --json "$out/curve_$index.json" > "$out/curve_$index.log" 2>&1 &
      if [ $(((index + 1) % ngpu)) -eq 0 ]; then wait; fi
    done
    wait
    python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("curve_*.json")):
    run = json.loads(path.read_text())
    losses = run["losses"]
    print(path.name, run["set"] or "after", "seed", run["seed"], "steps", len(losses),
          "mean loss of the last 50:", round(sum(losses[-50:]) / len(losses[-50:]), 5))
PY
    ;;
  continue)
    minutes=${3:?give the minutes of training}
    shift 3
    # a fresh optimiser at the full learning rate cost the shipped weights ~1 dB (docs/TRAINING.md): by default start
    # low and stay low; any KEY=VALUE given replaces the default of that key (e.g. learning_rate=2.5e-4 max_steps=7500)
    declare -A keys=([learning_rate]=1e-4 [warmup_steps]=0 [min_lr_ratio]=0.5 [max_steps]=100000 [val_every_steps]=250
                     [checkpoint_every_steps]=250 [keep_last_checkpoints]=2 [log_every_steps]=50)
    for kv in "$@"; do keys[${kv%%=*}]=${kv#*=}; done
    sets=(); for key in "${!keys[@]}"; do sets+=(--set "$key=${keys[$key]}"); done
    python3 -m torch.distributed.run --standalone --nproc_per_node="$ngpu" train_ddp.py --config_path configs/mira-demo.json \
      --init_from mira/weights/mira-demo "${sets[@]}" --time_limit_minutes "$minutes" \
      --model_save_path /tmp/mira-demo-continue 2>&1 | tee -a "$out/continue.log" | grep -i "validation\|error\|samples/s" | tail -n 40
    export_demo /tmp/mira-demo-continue
    ;;
  evaluate)
    shift 2
    [ -d /tmp/procedural-eval ] || python3 -m mira.data.procedural write --output_dir /tmp/procedural-eval --num_train 0 \
      --num_val 100 --num_views 8 --size 128 --seed 2026 --device cuda
    i=0
    for checkpoint in "$@"; do
      python3 -m mira.evaluate --checkpoint_path "$checkpoint" --data_dir /tmp/procedural-eval --split val \
        --output_path "/tmp/eval_$i" --lpips_backbone none --mesh_resolution 128 --device "cuda:$((i % ngpu))" \
        --no_progress > "$out/eval_$i.log" 2>&1 &
      i=$((i + 1))
    done
    wait
    for ((j = 0; j < i; j++)); do cp "/tmp/eval_$j/metrics.json" "$out/eval_$j.json"; tail -n 3 "$out/eval_$j.log"; done
    ;;
  demo)
    minutes=${3:?give the minutes of training}; max_steps=${4:?give the schedule length in steps}
    shift 4
    sets=(); for kv in "$@"; do sets+=(--set "$kv"); done
    python3 -m torch.distributed.run --standalone --nproc_per_node="$ngpu" train_ddp.py --config_path configs/mira-demo.json \
      "${sets[@]}" --max_steps "$max_steps" --time_limit_minutes "$minutes" --val_every_steps 500 \
      --checkpoint_every_steps 250 --keep_last_checkpoints 2 --log_every_steps 25 --model_save_path /tmp/mira-demo-run \
      2>&1 | tee -a "$out/demo.log" | grep -i "validation\|error\|samples/s" | tail -n 40
    export_demo /tmp/mira-demo-run
    ;;
  *)
    echo "unknown part '$part': see the list at the top of benchmarks/gpu_suite.sh" >&2; exit 2
    ;;
esac
date > "$out/finished"
