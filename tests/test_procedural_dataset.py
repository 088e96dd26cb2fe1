"""ProceduralDataset: procedural objects as training samples through the source-view contract."""

from __future__ import annotations

import torch

from helpers_inference import tiny_config
from mira.cameras import similarity_scale, transform_cameras
from mira.data.procedural import render_views, sample_objects
from mira.data.procedural.dataset import VAL_OBJECT_OFFSET, ProceduralDataset, mixed_lighting


def small_config(**overrides):
    cfg = tiny_config()
    cfg.override(data_source="procedural", supervision_k=2, render_size=16, procedural_epoch_size=6,
                 val_max_objects=2, **overrides)
    return cfg


def test_items_have_the_dataset_layout_and_are_deterministic():
    cfg = small_config()
    dataset = ProceduralDataset(cfg, "train")
    items = dataset.__getitems__([0, 3])
    s, k, h = cfg.model.source_size, 2, 16
    item = items[0]
    assert item["source_image"].shape == (3, s, s) and item["target_images"].shape == (k, 3, h, h)
    assert item["target_masks"].shape == (k, 1, h, h) and item["target_c2w"].shape == (k, 4, 4)
    assert item["background"].shape == (3,) and item["world_to_canonical"].shape == (4, 4)
    again = dataset[3]  # another batch composition: the same sample
    torch.testing.assert_close(again["target_images"], items[1]["target_images"], atol=2e-3, rtol=0)
    torch.testing.assert_close(again["source_c2w"], items[1]["source_c2w"])
    dataset.set_epoch(1)  # the endless stream: new objects in a new epoch
    assert dataset[0]["object_id"] != item["object_id"]
    val = ProceduralDataset(cfg, "val")
    assert val[0]["object_id"] == f"procedural_{VAL_OBJECT_OFFSET:010d}"
    torch.testing.assert_close(val[0]["background"], torch.tensor(cfg.renderer.background_color))


def test_targets_are_the_object_seen_by_the_canonical_cameras():
    """Moving the item's cameras back to the object's world reproduces its target renders."""
    cfg = small_config(random_background=False, procedural_random_lighting=0.0)
    dataset = ProceduralDataset(cfg, "train")
    item = dataset[1]
    to_world = torch.linalg.inv(item["world_to_canonical"].double()).float()
    c2w = transform_cameras(to_world[None], item["target_c2w"][None])
    objects = sample_objects([dataset.object_index(1)], dataset.seed)
    rgba = render_views(objects, c2w, item["target_intrinsics"][None], 16, 16, supersample=2)[0]
    torch.testing.assert_close(rgba[:, 3:], item["target_masks"], atol=0.02, rtol=0)
    scale = float(similarity_scale(item["world_to_canonical"][None])[0])
    assert 0.9 * scale <= 0.95 + 1e-4  # the canonical object stays in the renderer box
    # the source camera is the canonical one at distance k * framed focal
    distance = float(item["source_c2w"][:3, 3].norm())
    assert abs(distance - cfg.data.source_distance_per_focal * float(item["source_intrinsics"][:2].mean())) < 1e-4


def test_fixed_set_fixed_views_and_lighting_mix():
    cfg = small_config(procedural_objects=2, fixed_source_view=True)
    dataset = ProceduralDataset(cfg, "train")
    first = dataset[1]
    dataset.set_epoch(5)
    later = dataset[1]
    assert len(dataset) == 2 and first["object_id"] == later["object_id"]
    torch.testing.assert_close(first["source_c2w"], later["source_c2w"])  # the same source view ...
    assert not torch.allclose(first["target_c2w"], later["target_c2w"])  # ... and new target views
    mixed = mixed_lighting([1, 2, 3], 0, torch.tensor([True, False, True]), "cpu")
    assert mixed.sun_direction.shape[0] == 3
    assert abs(float(mixed.environment[1].max()) - 0.7) < 1e-6  # the Blender script's default environment


def first_batches(config, count: int) -> tuple[list[dict], object]:
    from mira.training.trainer import Trainer

    trainer = Trainer(config)
    batches = []
    for batch in trainer._epoch_micro_batches():
        batches.append(batch)
        if len(batches) == count:
            break
    return batches, trainer.train_loader


def test_worker_processes_make_the_same_batches_as_the_training_process(tmp_path):
    """data.procedural_workers: batches rendered in spawned worker processes (CPU tensors back) are the batches the
    training process renders itself, in the same order."""
    common = dict(batch_size=2, val_every_steps=0, device="cpu")
    own, own_loader = first_batches(small_config(model_save_path=str(tmp_path / "own"), **common), 2)
    spawned, loader = first_batches(small_config(model_save_path=str(tmp_path / "workers"), procedural_workers=1,
                                                 **common), 2)
    assert own_loader.num_workers == 0 and loader.num_workers == 1 and loader.persistent_workers
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    for a, b in zip(own, spawned):
        assert a["object_id"] == b["object_id"]
        for key in ("source_image", "target_images", "target_masks", "target_c2w", "background"):
            torch.testing.assert_close(b[key], a[key], atol=2e-3, rtol=0, msg=key)


def test_epoch_tagged_batches_render_each_epoch_in_one_call():
    from mira.training.sampler import EpochIndexedDataset

    dataset = ProceduralDataset(small_config(), "train")
    calls = []
    render = dataset.__getitems__
    dataset.__getitems__ = lambda indices: calls.append(list(indices)) or render(indices)
    items = EpochIndexedDataset(dataset).__getitems__([4, 5, 6, 7])  # epoch 0: 4, 5; epoch 1: 0, 1
    assert calls == [[4, 5], [0, 1]]
    assert [item["object_id"] for item in items] == [f"procedural_{i:010d}" for i in (4, 5, 6, 7)]
