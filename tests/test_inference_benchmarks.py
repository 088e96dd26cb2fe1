"""The inference benchmark scripts run (their --quick modes, on the CPU) and print their tables, so that a GPU
session never starts with a broken script. Timings are not checked."""

from __future__ import annotations

import pytest

from helpers_training import load_benchmark


@pytest.mark.parametrize("name, argv, expected", [
    ("bench_ray_ops", ["--device", "cpu", "--quick"], "| video chunk, demo"),
    ("bench_reconstruct", ["--quick", "--profile", "--attention_backend", "cudnn"], "attention cudnn"),
    ("bench_mesh", ["--quick", "--profile"], "coarse-to-fine + torch (default)"),
    ("bench_quickstart", ["--quick"], "| exhaustive |"),
])
def test_benchmark_script_prints_its_table(name, argv, expected, capsys):
    assert load_benchmark(name).main(argv) == 0
    printed = capsys.readouterr().out
    assert expected in printed
    if name == "bench_mesh":  # every path gave the old path's triangles
        assert "differs" not in printed
    if name == "bench_quickstart":  # the video render time is reported beside the stage's total
        assert "video (render)" in printed
