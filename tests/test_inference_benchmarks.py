"""The inference benchmark scripts run (their --quick modes, on the CPU) and print their tables, so that a GPU
session never starts with a broken script. Timings are not checked."""

from __future__ import annotations

import pytest
import torch

from helpers_training import load_benchmark


@pytest.mark.parametrize("name, argv, expected", [
    ("bench_ray_ops", ["--device", "cpu", "--quick"], "| video chunk, demo"),
    ("bench_reconstruct", ["--quick", "--profile", "--attention_backend", "cudnn"], "attention cudnn"),
    ("bench_mesh", ["--quick", "--profile"], "coarse-to-fine + torch (default)"),
    ("bench_quickstart", ["--quick"], "| exhaustive |"),
    ("bench_inference", ["--quick"], "**end to end**"),
])
def test_benchmark_script_prints_its_table(name, argv, expected, capsys):
    assert load_benchmark(name).main(argv) == 0
    printed = capsys.readouterr().out
    assert expected in printed
    if name == "bench_mesh":  # every path gave the old path's triangles
        assert "differs" not in printed
    if name == "bench_quickstart":  # the video render time is reported beside the stage's total
        assert "video (render)" in printed
    if name == "bench_reconstruct":  # the forward's FLOPs counted (the TFLOP/s column divides them)
        gflop = float(printed.split(" GFLOP per forward")[0].split()[-1])
        assert gflop > 0 and "| TFLOP/s |" in printed


def test_fit_upper_bound_writes_the_evaluation_objects_and_records_each_fit(tmp_path, capsys):
    """benchmarks/fit_upper_bound.py on a bare machine: writes object 0 of the evaluation set, fits it briefly,
    appends its held-out scores to fits.jsonl and prints the summary table."""
    import json

    argv = ["--write_objects", "1", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
            "--steps", "3", "--batch_rays", "128", "--mesh_resolution", "24"]
    assert load_benchmark("fit_upper_bound").main(argv) == 0
    assert "| held-out score (1 objects) |" in capsys.readouterr().out
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "fits.jsonl").read_text().splitlines()]
    assert record["object"] == "procedural_100000000" and record["num_heldout_views"] == 2
    assert 0.0 < record["psnr"] < 60.0


def test_benchmarks_time_the_published_architectures_like_for_like():
    """An architecture name gives the published OpenLRM / TripoSR architecture as MIRA builds it (not --config);
    without one, the file, with a random DINOv2-base encoder where it names none."""
    from mira.benchmarking import benchmark_config, dinov2_base_encoder_config
    from mira.pretrained.openlrm import published_openlrm_config
    from mira.pretrained.triposr import published_triposr_config

    assert benchmark_config("unused.json", "openlrm-base").model == published_openlrm_config("base").model
    assert benchmark_config("unused.json", "openlrm-small").model == published_openlrm_config("small").model
    assert benchmark_config("unused.json", "triposr").model == published_triposr_config().model
    assert benchmark_config("configs/mira-base.json").model.encoder_config == dinov2_base_encoder_config()
    with pytest.raises(ValueError, match="unknown architecture"):
        benchmark_config("configs/mira-base.json", "lrm-huge")
    with pytest.raises(SystemExit):
        load_benchmark("bench_reconstruct").main(["--quick", "--architecture", "openlrm-large"])


def test_flop_count_includes_attention_on_the_cpu():
    """The TFLOP/s column's count (mira.benchmarking.count_flops) includes attention on the CPU too: q k^T and p v
    of one (1, 2, 8, 4) attention are 2 x (2 x 2 x 8 x 8 x 4) FLOPs; a 16 x 32 by 32 x 8 product 2 x 16 x 32 x 8."""
    from mira.benchmarking import count_flops

    q = k = v = torch.randn(1, 2, 8, 4)
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)) == 2048
    assert count_flops(lambda: torch.randn(16, 32) @ torch.randn(32, 8)) == 8192
