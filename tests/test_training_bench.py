"""benchmarks/bench_train.py runs end to end on the CPU (--quick) and counts FLOPs without recomputation."""

from __future__ import annotations

import json

import pytest

from helpers_training import load_benchmark, tiny_config
from mira.training import Trainer
from mira.training.synthetic_scenes import SyntheticSceneDataset


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_train")


def test_quick_benchmark_reports_throughput_and_mfu(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--steps", "2", "--warmup_steps", "0", "--peak_tflops", "1.0",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["num_processes"] == 1
    assert result["samples_per_s_per_gpu"] > 0 and result["rays_per_s_per_gpu"] > 0
    # rays/s = samples/s x K views x patch^2 pixels
    rays_per_sample = result["supervision_k"] * result["patch_size"] ** 2
    assert result["rays_per_s_per_gpu"] == pytest.approx(result["samples_per_s_per_gpu"] * rays_per_sample, rel=1e-6)
    assert result["model_tflops_per_sample"] > 0
    assert result["mfu"] == pytest.approx(result["achieved_tflops_per_gpu"] / 1.0)
    assert "| samples_per_s_per_gpu |" in capsys.readouterr().out


def test_flop_count_excludes_checkpoint_recomputation(bench, tmp_path):
    counts = []
    for checkpointing in (False, True):
        config = tiny_config(tmp_path / str(checkpointing), gradient_checkpointing=checkpointing, lpips_weight=0.0,
                             val_every_steps=0)
        trainer = Trainer(config, train_dataset=SyntheticSceneDataset(config, num_objects=2))
        batch = bench.make_batch(config, 0, trainer.device)
        counts.append(bench.count_flops_per_sample(trainer, batch))
        assert all(getattr(m, "gradient_checkpointing", checkpointing) == checkpointing for m in trainer.model.modules())
    assert counts[0] > 0 and counts[0] == counts[1]


def test_loss_curves_repeat_exactly_and_ignore_field_checkpointing(bench, tmp_path):
    """--curve_steps gives the same losses for the same seed, the same (to rounding) with the field
    recomputed in the backward pass, and other losses for another seed."""
    def curve(name: str, *extra: str) -> list[float]:
        out = tmp_path / f"{name}.json"
        assert bench.main(["--quick", "--curve_steps", "4", "--curve_pool", "4", "--json", str(out), *extra]) == 0
        return json.loads(out.read_text())["losses"]

    first = curve("a")
    assert len(first) == 4
    assert curve("b") == first
    assert curve("c", "--set", "field_checkpointing=true") == pytest.approx(first, rel=1e-5)
    assert curve("d", "--seed", "1") != pytest.approx(first, rel=1e-3)


def test_breakdown_times_every_part(bench, capsys):
    assert bench.main(["--quick", "--steps", "1", "--warmup_steps", "0", "--breakdown"]) == 0
    out = capsys.readouterr().out
    for part in ("encoder", "decoder", "renderer", "loss", "optimiser", "sum"):
        assert f"| {part} |" in out
