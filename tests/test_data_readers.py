"""mira.data readers and MultiViewDataset on small folders written without Blender.

Images are exact silhouettes of a trimesh object through ``mira.cameras`` (tests/helpers_data.py),
so the dataset's cameras, crops and intrinsics can be checked against the mesh itself.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from torch.utils.data import DataLoader, DistributedSampler

from mira import cameras
from mira.config import load_config
from mira.data import (DatasetFormatError, ImageLoadError, MultiViewDataset, detect_format, load_object_views,
                       read_view_index)
from mira.data.index import assign_splits
from helpers_data import REPO_ROOT, iou, orbit_views, silhouette, write_software_object

SIZE = 48
VIEWS = 6


def object_mesh(seed: int) -> trimesh.Trimesh:
    """A box and a sphere inside [-0.8, 0.8]^3, different per seed."""
    rng = np.random.default_rng(seed)
    box = trimesh.creation.box(extents=rng.uniform(0.4, 1.0, size=3))
    ball = trimesh.creation.icosphere(subdivisions=2, radius=rng.uniform(0.2, 0.4))
    ball.apply_translation(rng.uniform(-0.4, 0.4, size=3))
    return trimesh.util.concatenate([box, ball])


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """Three objects in our format (train: a, b; val: c)."""
    root = tmp_path_factory.mktemp("dataset")
    for seed, name in enumerate("abc"):
        write_software_object(root / name, object_mesh(seed), orbit_views(VIEWS, elevation_deg=10.0 + 10 * seed), SIZE)
    (root / "index.json").write_text(json.dumps({"train": ["a", "b"], "val": ["c"]}))
    return root


def tiny_config(root: Path, **overrides):
    return load_config(REPO_ROOT / "configs" / "tiny.json", data_dir=str(root), **overrides)


# ----------------------------------------------------------------------------- readers
def test_our_format_round_trips_cameras(dataset_root):
    views = load_object_views(dataset_root / "a")
    assert views.format == "mira" and views.images.shape == (VIEWS, 4, SIZE, SIZE)
    assert views.names == [f"{i:03d}" for i in range(VIEWS)] and views.mesh_path == dataset_root / "a" / "mesh.ply"
    assert torch.allclose(views.c2w, orbit_views(VIEWS, elevation_deg=10.0).float(), atol=1e-5)
    assert torch.allclose(views.intrinsics[0], cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG), atol=1e-6)
    subset = load_object_views(dataset_root / "a", views=[4, 1], size=24)
    assert subset.names == ["004", "001"] and subset.images.shape == (2, 4, 24, 24)


def test_nerfstudio_per_frame_intrinsics_and_nerf_synthetic_splits(dataset_root, tmp_path):
    source = load_object_views(dataset_root / "a")
    folder = tmp_path / "nerfstudio"
    (folder / "images").mkdir(parents=True)
    frames = []
    for index in range(3):
        shutil.copy(dataset_root / "a" / f"{index:03d}.png", folder / "images" / f"f{index}.png")
        c2w_gl = cameras.opencv_to_opengl(source.c2w[index])
        frames.append({"file_path": f"images/f{index}.png", "transform_matrix": c2w_gl.tolist(),
                       "fl_x": 40.0 + index, "fl_y": 41.0, "cx": 23.0, "cy": 25.0, "w": SIZE, "h": SIZE})
    (folder / "transforms.json").write_text(json.dumps({"camera_model": "OPENCV", "frames": frames}))
    views = load_object_views(folder)
    assert views.format == "transforms" and views.mesh_path is None
    assert torch.allclose(views.c2w, source.c2w[:3], atol=1e-6)
    assert torch.allclose(views.intrinsics[2], torch.tensor([42 / SIZE, 41 / SIZE, 23 / SIZE, 25 / SIZE]))

    synthetic = tmp_path / "lego"
    for split, picked in (("train", [0, 1]), ("test", [2])):
        (synthetic / split).mkdir(parents=True)
        split_frames = []
        for index in picked:
            shutil.copy(dataset_root / "a" / f"{index:03d}.png", synthetic / split / f"r_{index}.png")
            split_frames.append({"file_path": f"./{split}/r_{index}",
                                 "transform_matrix": cameras.opencv_to_opengl(source.c2w[index]).tolist()})
        (synthetic / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": math.radians(cameras.ZERO123_FOV_DEG), "frames": split_frames}))
    assert detect_format(synthetic) == "transforms"
    assert load_object_views(synthetic).names == ["train/r_0", "train/r_1", "test/r_2"]
    test_views = load_object_views(synthetic, split="test")
    assert test_views.names == ["test/r_2"] and torch.allclose(test_views.c2w[0], source.c2w[2], atol=1e-6)
    assert torch.allclose(test_views.intrinsics[0], source.intrinsics[2], atol=1e-6)


def test_zero123_world_scale_is_explicit(dataset_root, tmp_path):
    folder = tmp_path / "views_release_object"
    folder.mkdir()
    for index in range(2):
        shutil.copy(dataset_root / "a" / f"{index:03d}.png", folder)
        w2c = np.load(dataset_root / "a" / f"{index:03d}.npy")
        w2c[:, 3] /= 1.6
        np.save(folder / f"{index:03d}.npy", w2c)
    default = read_view_index(folder)
    assert default.format == "zero123" and default.world_scale == pytest.approx(1.6)
    ours = load_object_views(dataset_root / "a", views=[0, 1])
    assert torch.allclose(default.c2w, ours.c2w, atol=1e-5)
    halved = read_view_index(folder, world_scale=0.8)
    assert torch.allclose(halved.c2w[:, :3, 3] * 2, default.c2w[:, :3, 3], atol=1e-5)


def test_clear_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="no views found"):
        load_object_views(tmp_path)
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="transforms.json"):
        load_object_views(tmp_path)
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": [{"file_path": "a.png"}], "camera_angle_x": 0.8}))
    with pytest.raises(DatasetFormatError, match="no 'w'/'h' keys and none of its 1 images"):
        load_object_views(tmp_path)
    (tmp_path / "transforms.json").write_text(
        json.dumps({"frames": [{"file_path": "a.png"}], "camera_angle_x": 0.8, "w": 8, "h": 8}))
    with pytest.raises(DatasetFormatError, match="transform_matrix"):
        load_object_views(tmp_path)


def test_load_rgba_decodes_every_mode_like_the_inference_preprocessing(tmp_path):
    """One PIL-mode decoder (mira.data.images.image_to_float_rgba) for datasets and user images."""
    from PIL import Image

    from mira.data import load_rgba

    grey16 = np.linspace(0, 65535, 32 * 16).reshape(16, 32).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    rgba = load_rgba(tmp_path / "grey16.png")
    assert rgba.shape == (4, 16, 32) and torch.equal(rgba[3], torch.ones(16, 32))
    torch.testing.assert_close(rgba[0], torch.from_numpy(grey16 / 65535.0).float())  # 16-bit precision kept
    grey_alpha = np.stack([np.full((8, 8), 200, np.uint8), np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))], -1)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    rgba = load_rgba(tmp_path / "la.png")
    torch.testing.assert_close(rgba[:3], torch.full((3, 8, 8), 200 / 255.0))
    torch.testing.assert_close(rgba[3], torch.from_numpy(grey_alpha[..., 1] / 255.0).float())


def test_corrupt_and_missing_images_are_skipped_by_load_object_views(dataset_root, tmp_path, caplog):
    folder = tmp_path / "object"
    shutil.copytree(dataset_root / "a", folder)
    (folder / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "003.png").unlink()
    with caplog.at_level(logging.WARNING):
        views = load_object_views(folder)
    assert views.names == ["000", "002", "004", "005"] and len(views.skipped) == 2
    assert "001.png" in caplog.text and "003.png" in caplog.text
    for path in folder.glob("*.png"):
        path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="none of its"):
        load_object_views(folder)


# ----------------------------------------------------------------------------- dataset
def canonical_mesh(path, item) -> trimesh.Trimesh:
    """The ground-truth mesh moved into the item's canonical source frame."""
    return trimesh.load(path).apply_transform(item["world_to_canonical"].double().numpy())


def test_items_have_the_spec_layout_and_match_the_mesh(dataset_root):
    config = tiny_config(dataset_root, supervision_k=3)
    dataset = MultiViewDataset(config, split="train")
    assert len(dataset) == 2 and len(MultiViewDataset(config, split="val")) == 1
    item = dataset[1]
    s, k, h = config.model.source_size, 3, config.data.render_size
    assert item["object_id"] == "b"
    assert item["source_image"].shape == (3, s, s) and item["source_c2w"].shape == (4, 4)
    assert item["source_intrinsics"].shape == (4,)
    assert item["target_images"].shape == (k, 3, h, h) and item["target_masks"].shape == (k, 1, h, h)
    assert item["target_c2w"].shape == (k, 4, 4) and item["target_intrinsics"].shape == (k, 4)
    assert all(v.dtype == torch.float32 for v in item.values() if torch.is_tensor(v))
    torch.testing.assert_close(item["source_c2w"], item["target_c2w"][0], atol=1e-5, rtol=0)  # source_in_targets
    mesh = canonical_mesh(dataset_root / "b" / "mesh.ply", item)
    for view in range(k):
        coverage = silhouette(mesh, item["target_c2w"][view].double(), item["target_intrinsics"][view].double(), h, h)
        assert iou(coverage, item["target_masks"][view, 0].numpy()) > 0.9
    apart = MultiViewDataset(tiny_config(dataset_root, supervision_k=3, source_in_targets=False), split="train")[1]
    assert not (apart["target_c2w"] == apart["source_c2w"]).all(-1).all(-1).any()  # K other views
    # composited on the sample's background colour where the mask is empty
    empty = item["target_masks"][:, 0] == 0
    assert torch.allclose(item["target_images"].permute(0, 2, 3, 1)[empty], item["background"])


def test_random_crops_keep_cameras_consistent(dataset_root):
    config = tiny_config(dataset_root, supervision_k=4, random_crop_scale=[0.5, 0.8], render_size=32)
    item = MultiViewDataset(config, split="train", seed=3)[0]
    full = cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG)
    assert (item["target_intrinsics"][:, 0] > full[0] * 1.2).all()  # zoomed in
    mesh = canonical_mesh(dataset_root / "a" / "mesh.ply", item)
    for view in range(4):
        coverage = silhouette(mesh, item["target_c2w"][view].double(), item["target_intrinsics"][view].double(), 32, 32)
        assert iou(coverage, item["target_masks"][view, 0].numpy()) > 0.85


def test_sampling_is_deterministic_per_seed_epoch_index(dataset_root):
    config = tiny_config(dataset_root, random_crop_scale=[0.6, 1.0])
    first, second = MultiViewDataset(config, "train", seed=5), MultiViewDataset(config, "train", seed=5)
    for name in ("target_c2w", "target_intrinsics", "target_images"):
        assert torch.equal(first[0][name], second[0][name])
    other_seed = MultiViewDataset(config, "train", seed=6)
    first.set_epoch(1)
    assert not torch.equal(first[0]["target_c2w"], second[0]["target_c2w"])
    assert not torch.equal(other_seed[0]["target_c2w"], second[0]["target_c2w"])
    second.set_epoch(1)
    assert torch.equal(first[0]["target_c2w"], second[0]["target_c2w"])
    copied = pickle.loads(pickle.dumps(first))  # plain values outside worker start-up
    assert copied.epoch == 1 and torch.equal(copied[0]["target_c2w"], first[0]["target_c2w"])
    validation = MultiViewDataset(config, "val", seed=5)
    before = validation[0]["target_c2w"]
    validation.set_epoch(7)  # validation samples never change
    assert torch.equal(validation[0]["target_c2w"], before)


def test_distributed_sampler_and_persistent_workers(dataset_root):
    config = tiny_config(dataset_root)
    dataset = MultiViewDataset(config, "train", seed=1)
    ranks = [list(DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == [0, 1]
    loader = DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True, shuffle=False)
    for epoch in range(2):
        dataset.set_epoch(epoch)  # reaches the running worker through shared memory
        batch = next(iter(loader))
        assert batch["target_c2w"].shape[0] == 2
        assert torch.equal(batch["target_c2w"][0], dataset[0]["target_c2w"])


def test_corrupt_images_are_skipped_and_counted(dataset_root, tmp_path, caplog):
    root = tmp_path / "broken"
    shutil.copytree(dataset_root, root)
    for index in range(VIEWS - 1):  # object a keeps one readable view
        (root / "a" / f"{index:03d}.png").write_bytes(b"garbage")
    shutil.rmtree(root / "b")  # object b is gone entirely
    for index in range(1, VIEWS):  # object c keeps one view; the others are missing
        (root / "c" / f"{index:03d}.png").unlink()
    (root / "index.json").write_text(json.dumps({"train": ["a", "b", "c"], "val": []}))
    dataset = MultiViewDataset(tiny_config(root), "train", seed=0)
    with caplog.at_level(logging.WARNING):
        items = [dataset[i] for i in range(len(dataset))]
    assert [item["object_id"] for item in items] == ["a", "c", "c"]  # b falls through to the next object
    torch.testing.assert_close(items[0]["target_c2w"], items[0]["source_c2w"].expand_as(items[0]["target_c2w"]),
                               atol=1e-5, rtol=0)  # the one readable view, repeated
    assert dataset.num_skipped == 2 * (VIEWS - 1)  # each unreadable file counted once
    assert "a/001.png" in caplog.text and "c/005.png" in caplog.text and "skipping object b" in caplog.text


def test_missing_index_and_split_assignment(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_input_data.py"):
        MultiViewDataset(tiny_config(tmp_path), "train")
    ids = [f"object_{i}" for i in range(200)]
    splits = assign_splits(ids, 0.1, seed=0)
    assert 5 <= sum(s == "val" for s in splits.values()) <= 40
    assert assign_splits(ids[:50], 0.1, seed=0) == {i: splits[i] for i in ids[:50]}  # stable as data grows
    assert list(assign_splits(["x", "y"], 0.01).values()).count("val") == 1
