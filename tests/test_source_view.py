"""The source-view contract (mira/data/source_view.py): framing, canonical pose, and one function
shared by the dataset, the evaluation and test.py's preprocessing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers_inference import tiny_config
from mira import cameras
from mira.data import MultiViewDataset
from mira.data.images import load_rgba
from mira.data.source_view import (
    CANONICAL_RADIUS_LIMIT,
    EmptyForegroundError,
    SourceFraming,
    box_half_side,
    crop_and_resize,
    foreground_boxes,
    prepare_source_view,
    prepare_training_source_view,
)
from mira.inference.preprocess import load_image, preprocess_image
from mira.training.synthetic_scenes import SphereScene, make_scene, random_cameras, render_scene, write_synthetic_dataset

FOV = cameras.ZERO123_FOV_DEG


def _random_source_cameras(count: int, seed: int) -> torch.Tensor:
    """(count, 4, 4) float64 cameras looking at the origin from random directions and distances."""
    generator = torch.Generator().manual_seed(seed)
    azimuth = 360.0 * torch.rand(count, generator=generator, dtype=torch.float64)
    elevation = -80.0 + 160.0 * torch.rand(count, generator=generator, dtype=torch.float64)
    distance = 2.0 + torch.rand(count, generator=generator, dtype=torch.float64)
    return cameras.look_at(cameras.spherical_to_cartesian(azimuth, elevation, distance))


def test_source_to_canonical_moves_the_source_camera_to_the_canonical_pose_and_keeps_images():
    c2w = _random_source_cameras(4, 0)
    distance = torch.tensor([1.5, 2.0, 2.5, 3.0], dtype=torch.float64)
    similarity = cameras.source_to_canonical(c2w, distance)
    moved = cameras.transform_cameras(similarity, c2w[:, None])[:, 0]
    torch.testing.assert_close(moved, cameras.canonical_source_c2w(distance), atol=1e-12, rtol=0)
    torch.testing.assert_close(cameras.similarity_scale(similarity), distance / c2w[:, :3, 3].norm(dim=-1))
    # The world origin (object centre) stays at the origin; any camera sees moved points where it saw them.
    origin = cameras.transform_points(similarity, torch.zeros(4, 1, 3, dtype=torch.float64))
    torch.testing.assert_close(origin, torch.zeros_like(origin), atol=1e-12, rtol=0)
    others = _random_source_cameras(4, 1)
    points = torch.rand(4, 50, 3, dtype=torch.float64) - 0.5
    intrinsics = cameras.intrinsics_from_fov(FOV).double().expand(4, 4)
    uv, depth = cameras.project_points(points, others, intrinsics, 64, 64)
    uv_moved, depth_moved = cameras.project_points(
        cameras.transform_points(similarity, points), cameras.transform_cameras(similarity, others[:, None])[:, 0],
        intrinsics, 64, 64)
    torch.testing.assert_close(uv_moved, uv, atol=1e-9, rtol=0)
    torch.testing.assert_close(depth_moved, depth * cameras.similarity_scale(similarity)[:, None], atol=1e-9, rtol=0)


def test_an_origin_behind_the_source_camera_is_refused():
    c2w = cameras.look_at(torch.tensor([[2.0, 0.0, 0.0]]), target=torch.tensor([[4.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="behind"):
        cameras.source_to_canonical(c2w, torch.tensor([2.0]))


def test_crop_and_resize_samples_pixel_centres_exactly():
    """A linear ramp image: each output pixel must read the ramp at its own centre in the box."""
    height, width = 40, 50
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    image = torch.stack([u, v])[None].double()
    box = torch.tensor([[7.0, 5.5, 31.0, 29.5]], dtype=torch.float64)
    out = crop_and_resize(image, box, 12)[0]
    centres = 7.0 + (torch.arange(12, dtype=torch.float64) + 0.5) * 24.0 / 12
    torch.testing.assert_close(out[0, 0], centres, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, :, 0], centres - 1.5, atol=1e-6, rtol=0)


def test_foreground_boxes_and_empty_images():
    alpha = torch.zeros(2, 10, 12)
    alpha[0, 2:5, 3:9] = 1.0
    alpha[1, 0:10, 11] = 0.5
    torch.testing.assert_close(foreground_boxes(alpha), torch.tensor([[3.0, 2, 9, 5], [11, 0, 12, 10]]))
    alpha[1] = 0.05
    with pytest.raises(EmptyForegroundError, match=r"\[1\]"):
        foreground_boxes(alpha)


def _scene_in_canonical_frame(scene: SphereScene, similarity: torch.Tensor) -> SphereScene:
    centers = cameras.transform_points(similarity.float()[None], scene.centers[None])[0]
    return SphereScene(centers=centers, radii=scene.radii * cameras.similarity_scale(similarity).float(), colors=scene.colors)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_framed_view_is_what_the_canonical_camera_sees(seed):
    """Framing + canonical pose are exact: rendering the canonical scene through the canonical
    camera with the framed intrinsics gives the framed image (up to resampling at the edges)."""
    cfg = tiny_config()
    scene = make_scene(seed, 7)
    c2w = random_cameras(1, torch.Generator().manual_seed(seed + 10))
    intrinsics = cameras.intrinsics_from_fov(FOV)[None]
    rgb, mask = render_scene(scene, c2w, intrinsics, 256, (0.0, 0.0, 0.0))
    framing = SourceFraming(size=48, foreground_ratio=0.8, distance_per_focal=1.6)
    view = prepare_source_view(torch.cat([rgb, mask], dim=1), framing, (0.0, 0.0, 0.0), intrinsics, c2w)
    canonical = _scene_in_canonical_frame(scene, view.world_to_canonical[0])
    _, expected = render_scene(canonical, view.c2w, view.intrinsics, 48, (0.0, 0.0, 0.0))
    difference = (view.alpha - expected).abs()
    assert difference.mean() < 0.02, difference.mean()
    assert (difference > 0.5).float().mean() < 0.02
    # The object fills foreground_ratio of the input and sits at the canonical distance k * f.
    rows, cols = torch.nonzero(view.alpha[0, 0] > 0.5, as_tuple=True)
    extent = max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1
    assert extent == pytest.approx(0.8 * 48, abs=2)
    focal = float(view.intrinsics[0, 0])
    assert float(view.c2w[0, :3, 3].norm()) == pytest.approx(1.6 * focal, rel=1e-5)
    del cfg


def test_object_radius_keeps_the_canonical_object_in_the_box():
    """An object seen end-on would be scaled up past the box: the crop grows so that it is not."""
    rod = SphereScene(centers=torch.tensor([[0.8 * i / 4, 0.0, 0.0] for i in range(-4, 5)]),
                      radii=torch.full((9,), 0.1), colors=torch.rand(9, 3))
    c2w = cameras.look_at(torch.tensor([[2.5, 0.0, 0.0]]))  # looking down the rod
    intrinsics = cameras.intrinsics_from_fov(FOV)[None]
    rgb, mask = render_scene(rod, c2w, intrinsics, 128, (0.0, 0.0, 0.0))
    framing = SourceFraming(size=32)
    free = prepare_source_view(torch.cat([rgb, mask], 1), framing, (1.0, 1.0, 1.0), intrinsics, c2w)
    limited = prepare_source_view(torch.cat([rgb, mask], 1), framing, (1.0, 1.0, 1.0), intrinsics, c2w,
                                  object_radius=0.9, box_half_side=1.0)
    assert 0.9 * float(cameras.similarity_scale(free.world_to_canonical)[0]) > 1.0  # without the limit: out of the box
    scale = float(cameras.similarity_scale(limited.world_to_canonical)[0])
    assert 0.9 * scale == pytest.approx(CANONICAL_RADIUS_LIMIT, rel=1e-4)


def _equal_to_test_py(cfg, root, split):
    dataset = MultiViewDataset(cfg, split=split, root=root)
    checked = 0
    for index in range(len(dataset)):
        item = dataset[index]
        view_file = root / item["object_id"] / f"{item['source_view']}.png"
        prepared = preprocess_image(load_image(view_file), SourceFraming.from_config(cfg), cfg.renderer.background_color)
        torch.testing.assert_close(prepared.c2w, item["source_c2w"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(prepared.intrinsics, item["source_intrinsics"], atol=1e-5, rtol=1e-5)
        assert (prepared.image - item["source_image"]).abs().max() < 2e-3  # float32 decode paths
        checked += 1
    return checked


def test_a_dataset_view_through_test_py_preprocessing_equals_the_dataset_item(tmp_path):
    """The issue's contract test: a rendered view of our dataset pushed through test.py's
    preprocessing gives the same source image and camera as the dataset item for that view."""
    root = write_synthetic_dataset(tmp_path / "data", num_train=2, num_val=3, num_views=4, size=96, seed=3)
    cfg = tiny_config()
    cfg.override(data_dir=str(root), object_radius=0.3)  # radius limit never binds here: test.py has no radius
    assert _equal_to_test_py(cfg, root, "val") == 3


def test_dataset_targets_move_with_the_source_camera(tmp_path):
    """Item target cameras see the canonical scene exactly as the data cameras saw the original."""
    root = write_synthetic_dataset(tmp_path / "data", num_train=2, num_val=0, num_views=6, size=64, seed=5)
    cfg = tiny_config()
    cfg.override(data_dir=str(root), supervision_k=3, render_size=64, random_background=False)
    dataset = MultiViewDataset(cfg, split="train", root=root)
    for index in range(len(dataset)):
        item = dataset[index]
        scene = make_scene(index, 5)
        views = dataset.view_index(item["object_id"])
        source = views.names.index(item["source_view"])
        view = prepare_training_source_view(load_rgba(views.image_paths[source])[None], views.c2w[source][None],
                                            views.intrinsics[source][None], cfg, cfg.renderer.background_color)
        canonical = _scene_in_canonical_frame(scene, view.world_to_canonical[0])
        _, masks = render_scene(canonical, item["target_c2w"], item["target_intrinsics"], 64, (0.0, 0.0, 0.0))
        assert (masks - item["target_masks"]).abs().mean() < 0.03


def test_random_backgrounds_in_training_and_the_fixed_one_in_validation(tmp_path):
    root = write_synthetic_dataset(tmp_path / "data", num_train=3, num_val=2, num_views=4, size=48, seed=0)
    cfg = tiny_config()
    cfg.override(data_dir=str(root))
    train = MultiViewDataset(cfg, split="train", root=root)
    colours = {tuple(train[i]["background"].tolist()) for i in range(3)}
    assert len(colours) == 3
    item = train[0]
    corner = item["source_image"][:, 0, 0]
    torch.testing.assert_close(corner, item["background"])  # the framed source is on the sample's colour
    val = MultiViewDataset(cfg, split="val", root=root)
    torch.testing.assert_close(val[0]["background"], torch.tensor(cfg.renderer.background_color))


def test_box_half_side_and_framing_errors():
    cfg = tiny_config()
    cfg.override(box_min=[-1.0, -0.5, -1.0], box_max=[1.0, 0.5, 1.0])
    assert box_half_side(cfg) == 0.5
    with pytest.raises(ValueError, match="foreground_ratio"):
        SourceFraming(size=32, foreground_ratio=0.0)
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        prepare_source_view(torch.zeros(3, 8, 8), SourceFraming(size=8), (1.0, 1.0, 1.0))
    assert math.isclose(SourceFraming.from_config(cfg, 0.5).foreground_ratio, 0.5)
    np.testing.assert_allclose(SourceFraming.from_config(cfg).default_principal_point, cfg.data.principal_point)
