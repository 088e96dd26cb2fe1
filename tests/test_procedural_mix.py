"""data.procedural_mix_*: renders from disk mixed into the procedural training stream."""

from __future__ import annotations

import json

import pytest
import torch

from mira.config import ConfigError
from mira.data import MultiViewDataset
from mira.data.procedural import write_procedural_dataset
from mira.data.procedural.dataset import ProceduralDataset
from mira.data.procedural.mix import ITEM_KEYS, RenderMixDataset
from mira.training.factories import build_datasets
from test_procedural_dataset import first_batches, small_config


@pytest.fixture(scope="module")
def renders_dir(tmp_path_factory):
    """Two objects in our render layout (sphere traced here; Blender renders in a real run), 4 views of 24 px."""
    root = write_procedural_dataset(tmp_path_factory.mktemp("mix") / "renders", num_train=2, num_val=0, num_views=4,
                                    size=24, seed=7, mesh_resolution=8)
    index = json.loads((root / "index.json").read_text())
    renamed = []
    for number, object_id in enumerate(index["train"]):  # names unlike the procedural stream's
        (root / object_id).rename(root / f"scan_{number}")
        renamed.append(f"scan_{number}")
    (root / "index.json").write_text(json.dumps({"train": renamed, "val": []}))
    return root


def mix_config(renders_dir, **overrides):
    config = small_config(procedural_mix_fraction=0.5, procedural_mix_dir=str(renders_dir))
    config.override(**overrides)
    return config


def mix_dataset(config) -> RenderMixDataset:
    train, _ = build_datasets(config)
    assert isinstance(train, RenderMixDataset)
    return train


def test_samples_are_either_kind_with_the_same_layout_and_replay(renders_dir):
    dataset = mix_dataset(mix_config(renders_dir))
    assert len(dataset) == len(dataset.procedural) == 6
    kinds = [dataset.is_render(i) for i in range(len(dataset))]
    assert any(kinds) and not all(kinds), kinds  # seed 42, fraction 0.5: both kinds among the 6 samples
    items = dataset.__getitems__(list(range(len(dataset))))
    render_ids = set(dataset.renders.object_ids)
    for item, is_render in zip(items, kinds):
        assert set(item) == set(ITEM_KEYS)
        assert (item["object_id"] in render_ids) == is_render
        side = dataset.procedural.config.model.source_size
        assert item["source_image"].shape == (3, side, side)
        assert item["target_images"].shape == (2, 3, 16, 16) and item["target_masks"].shape == (2, 1, 16, 16)
        assert item["target_images"].dtype == torch.float32 and item["world_to_canonical"].shape == (4, 4)
    batch = torch.utils.data.default_collate(items)  # one batch holds both kinds
    assert batch["target_images"].shape == (6, 2, 3, 16, 16)
    # a pure function of (seed, epoch, index): the same sample alone, or in another batch
    index = kinds.index(True)
    for key in ("source_image", "target_images", "target_c2w", "background"):
        torch.testing.assert_close(dataset[index][key], items[index][key], msg=key)


def test_render_objects_get_new_views_in_every_sample(renders_dir):
    """The samples that show the same render object in one epoch, and across epochs, differ (views, background)."""
    dataset = mix_dataset(mix_config(renders_dir, procedural_epoch_size=40))
    count = len(dataset.renders)
    render_indices = [i for i in range(len(dataset)) if dataset.is_render(i)]
    same_object = [i for i in render_indices if i % count == render_indices[0] % count][:2]
    assert len(same_object) == 2
    first, second = (dataset[i] for i in same_object)
    assert first["object_id"] == second["object_id"]
    assert not torch.allclose(first["background"], second["background"])
    again = dataset[same_object[0]]
    dataset.set_epoch(1)
    if dataset.is_render(same_object[0]):
        assert not torch.allclose(dataset[same_object[0]]["background"], again["background"])
    else:
        assert dataset[same_object[0]]["object_id"].startswith("procedural_")
    # the items are the render dataset's own, drawn with a per-sample key
    direct = dataset.renders.draw(same_object[0] % count, same_object[0] // count)  # epoch 0
    torch.testing.assert_close(direct["target_images"], again["target_images"])


def test_the_trainer_takes_mixed_batches(renders_dir, tmp_path):
    config = mix_config(renders_dir, batch_size=6, val_every_steps=0, device="cpu", model_save_path=str(tmp_path))
    (batch,), loader = first_batches(config, 1)
    ids = list(batch["object_id"])
    assert any(i.startswith("procedural_") for i in ids) and any(i.startswith("scan_") for i in ids), ids
    assert batch["target_images"].shape[0] == 6 and torch.isfinite(batch["target_images"]).all()


def test_bad_mix_settings_are_named(renders_dir, tmp_path):
    with pytest.raises(ConfigError, match="procedural_mix_fraction"):
        mix_config(renders_dir, procedural_mix_fraction=1.0).validate()
    with pytest.raises(ConfigError, match="procedural_mix_dir"):
        small_config(procedural_mix_fraction=0.2).validate()
    with pytest.raises(ConfigError, match="data_source 'procedural'"):
        mix_config(renders_dir, data_source="renders").validate()
    with pytest.raises(FileNotFoundError, match="load_input_data.py"):
        build_datasets(mix_config(tmp_path / "missing"))
    procedural = ProceduralDataset(small_config(), "train")
    empty = MultiViewDataset(small_config(), "val", root=renders_dir)  # no val objects were written
    with pytest.raises(ValueError, match="no objects in its 'val' split"):
        RenderMixDataset(procedural, empty, 0.5, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        RenderMixDataset(procedural, MultiViewDataset(small_config(), "train", root=renders_dir), 0.0, seed=0)


def test_worker_processes_make_the_same_mixed_batches(renders_dir, tmp_path):
    """Spawned data workers (data.procedural_workers) read the renders and render the procedural samples as the
    training process does: the same batches, in the same order."""
    common = dict(batch_size=6, val_every_steps=0, device="cpu")
    own, _ = first_batches(mix_config(renders_dir, model_save_path=str(tmp_path / "own"), **common), 1)
    spawned, loader = first_batches(mix_config(renders_dir, model_save_path=str(tmp_path / "workers"),
                                               procedural_workers=1, **common), 1)
    assert loader.num_workers == 1
    assert list(own[0]["object_id"]) == list(spawned[0]["object_id"])
    for key in ("source_image", "target_images", "target_masks", "target_c2w", "background"):
        torch.testing.assert_close(spawned[0][key], own[0][key], atol=2e-3, rtol=0, msg=key)
