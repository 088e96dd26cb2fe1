"""benchmarks/plot_training_curves.py: the stages of a run share one step axis."""

from __future__ import annotations

import json

import pytest

from helpers_training import load_benchmark


def _write_run(path, train_steps, val_steps, psnr):
    lines = [{"split": "train", "step": s, "loss": 0.1, "mse": 0.01, "mask": 0.05} for s in train_steps]
    lines += [{"split": "val", "step": s, "psnr": psnr} for s in val_steps]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_later_stages_continue_the_step_axis(tmp_path):
    plot = load_benchmark("plot_training_curves")
    first = _write_run(tmp_path / "a.jsonl", [50, 100, 4000], [2000, 4000], 20.0)
    second = _write_run(tmp_path / "b.jsonl", [50, 7000], [1000, 7000], 22.0)
    train, val_per_stage, boundaries = plot.join_stages([first, second])
    assert [r["step"] for r in train] == [50, 100, 4000, 4050, 11000]
    assert [[r["step"] for r in val] for val in val_per_stage] == [[2000, 4000], [5000, 11000]]
    assert [r["psnr"] for r in val_per_stage[1]] == [22.0, 22.0]
    assert boundaries == [4000]


def test_a_file_without_training_records_is_named(tmp_path):
    plot = load_benchmark("plot_training_curves")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"split": "val", "step": 5, "psnr": 1.0}) + "\n")
    with pytest.raises(ValueError, match="empty.jsonl: no training records"):
        plot.join_stages([empty])
