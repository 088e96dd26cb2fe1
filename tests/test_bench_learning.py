"""benchmarks/bench_learning.py on the CPU (--quick): curves, the renders PNG, and a final export even when
``--minutes`` stops the run (the next training starts from it with ``--init_from``)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from helpers_training import load_benchmark
from mira.inference.checkpoint import load_model


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_learning")


def test_time_limited_run_exports_weights_and_renders(bench, tmp_path, capsys):
    out = tmp_path / "run"
    assert bench.main(["--quick", "--phase", "generalise", "--minutes", "0.0001", "--renders", "2", "--final_eval", "3",
                       "--set", "projective_attention_bias=true", "--out", str(out)]) == 0
    curves = json.loads((out / "curves.json").read_text())
    assert curves["final_eval"]["objects"] == 3 and curves["final_eval"]["num_views"] == 3 * 2  # 2 views each
    assert 0 < curves["final_eval"]["psnr"] < 60
    assert curves["steps"] == 1  # stopped by the time limit after the first step (the schedule has 3)
    assert curves["overrides"] == {"projective_attention_bias": True}
    model = load_model(out / "final")
    assert model.config.model.projective_attention_bias
    # one row per object: the source, then K truth views, then K renders, each render_size wide
    image = iio.imread(out / "renders.png")
    size, views = model.config.data.render_size, model.config.data.supervision_k
    assert image.shape == (2 * size, (1 + 2 * views) * size, 3)
    printed = capsys.readouterr().out
    assert "generalise: 1 steps" in printed and "final evaluation on 3 held-out objects" in printed
