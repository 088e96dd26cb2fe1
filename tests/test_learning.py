"""Does MIRA learn? The CPU version of benchmarks/bench_learning.py (docs/TRAINING.md).

1. Telling objects apart: single balls of random colours, each seen from a random source view;
   held-out balls must come out in their own colours (a model that fits one mean object renders
   every ball the same grey, which is what the untrained-MLP initialisation used to do).
2. Overfitting: a fixed small set, each object always seen from the same source view, is fitted.

The full-size runs (procedural objects, GPU) are in benchmarks/bench_learning.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_training import tiny_config
from mira.training import Trainer
from mira.training.logger import read_metrics
from mira.training.synthetic_scenes import VAL_OBJECT_OFFSET, SphereScene, SyntheticSceneDataset


def ball(object_index: int, seed: int) -> SphereScene:
    """One ball of radius 0.6 at the origin in a random colour."""
    generator = torch.Generator().manual_seed(seed * 7919 + object_index)
    return SphereScene(centers=torch.zeros(1, 3), radii=torch.full((1,), 0.6), colors=torch.rand(1, 3, generator=generator))


def learning_config(tmp_path, **overrides):
    values = dict(max_steps=500, render_size=16, patch_size=0, supervision_k=2, lpips_weight=0.0, mask_loss_weight=1.0,
                  learning_rate=1e-3, warmup_steps=30, val_every_steps=125, val_max_objects=8, batch_size=8,
                  checkpoint_every_steps=0, log_every_steps=125, random_background=False, num_workers=0)
    values.update(overrides)
    return tiny_config(tmp_path, **values)


@pytest.mark.slow
def test_held_out_objects_come_out_in_their_own_colours(tmp_path):
    config = learning_config(tmp_path, synthetic_objects=512)
    torch.manual_seed(0)
    trainer = Trainer(config, train_dataset=SyntheticSceneDataset(config, "train", scene_maker=ball),
                      val_dataset=SyntheticSceneDataset(config, "val", num_objects=8, scene_maker=ball))
    trainer.fit()
    curve = [record["psnr"] for record in read_metrics(tmp_path / "logs" / "metrics.jsonl", "val")]
    print("held-out PSNR", [round(p, 2) for p in curve])
    assert len(curve) == 4 and curve[-1] > curve[0] + 2.0 and curve[-1] > 22.0, curve
    # the colour of each held-out ball's centre follows its albedo (shading scales it, hence a correlation)
    held_out = SyntheticSceneDataset(config, "val", num_objects=8, scene_maker=ball)
    items = [held_out[i] for i in range(8)]
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0] if k != "object_id"}
    model = trainer.model.eval()
    with torch.no_grad():
        out = model(batch["source_image"], batch["source_c2w"], batch["source_intrinsics"], batch["target_c2w"],
                    batch["target_intrinsics"], 16, background=batch["background"])
    centre = out["rgb"][:, :, :, 7:9, 7:9].mean(dim=(1, 3, 4))  # (8, 3)
    truth = torch.stack([ball(VAL_OBJECT_OFFSET + i, config.train.seed).colors[0] for i in range(8)])
    chroma = lambda c: (c - c.mean(dim=1, keepdim=True)).flatten().numpy()  # hue, not brightness
    correlation = np.corrcoef(chroma(centre), chroma(truth))[0, 1]
    print("colour correlation", round(float(correlation), 3))
    assert correlation > 0.7, (correlation, centre, truth)


@pytest.mark.slow
def test_a_fixed_small_set_is_overfitted(tmp_path):
    config = learning_config(tmp_path, synthetic_objects=2, fixed_source_view=True, batch_size=2, max_steps=400,
                             learning_rate=2e-3, val_every_steps=100, val_max_objects=2)
    torch.manual_seed(0)
    same_objects = SyntheticSceneDataset(config, "train", num_objects=2)  # their own (fixed) source views
    trainer = Trainer(config, train_dataset=SyntheticSceneDataset(config, "train", num_objects=2), val_dataset=same_objects)
    trainer.fit()
    curve = [record["psnr"] for record in read_metrics(tmp_path / "logs" / "metrics.jsonl", "val")]
    print("PSNR on the training objects", [round(p, 2) for p in curve])
    assert curve[-1] > 24.0 and curve[-1] > curve[0] + 4.0, curve
