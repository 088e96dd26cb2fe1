"""mira.evaluate with a tiny random-weight MIRA on analytic objects in our render format."""

from __future__ import annotations

import json

import pytest
import torch

from helpers_evaluation import write_sphere_dataset
from mira.config import load_config
from mira.data import load_object_views
from mira.evaluation.metrics import psnr
from mira.evaluation.protocol import angles_from_source_deg, list_objects, scores_by_angle, source_and_targets

NUM_VIEWS = 4
SIZE = 32


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, repo_root):
    from mira.models import MIRA

    torch.manual_seed(0)
    model = MIRA(load_config(repo_root / "configs" / "tiny.json"))
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """2 val objects with meshes, plus one broken object listed in the val split."""
    root = write_sphere_dataset(tmp_path_factory.mktemp("data"), num_val=2, num_views=NUM_VIEWS, size=SIZE)
    index = json.loads((root / "index.json").read_text())
    broken = root / "broken_object"
    broken.mkdir()
    (broken / "transforms.json").write_text("{ not json")
    index["val"].append("broken_object")
    (root / "index.json").write_text(json.dumps(index))
    return root


def run_evaluate(tiny_checkpoint, data, out, *extra):
    from mira.evaluate import main

    return main(["--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out), "--device", "cpu",
                 "--lpips_backbone", "random", "--lpips_net", "alex", "--mesh_resolution", "32",
                 "--geometry_samples", "2000", "--quiet", *extra])


def test_source_view_choice_is_deterministic():
    from mira.cameras import look_at, spherical_to_cartesian

    elevations = torch.tensor([-40.0, 35.0, 17.0, 24.0, 60.0])
    eyes = spherical_to_cartesian(torch.arange(5) * 70.0, elevations, torch.full((5,), 2.5))
    c2w = look_at(eyes)
    assert source_and_targets(c2w, None) == (2, [0, 1, 3, 4])  # 17 deg is nearest 20
    assert source_and_targets(c2w, None, elevation_deg=50.0)[0] == 4
    tied = torch.cat([c2w[3:4], c2w[:3], c2w[3:]])  # the 24 deg camera at positions 0 and 4
    assert source_and_targets(tied, None, elevation_deg=24.0)[0] == 0  # ties -> the first
    assert source_and_targets(c2w, 1) == (1, [0, 2, 3, 4])
    assert source_and_targets(c2w, -1) == (4, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="out of range"):
        source_and_targets(c2w, 5)
    with pytest.raises(ValueError, match="at least 2 views"):
        source_and_targets(c2w[:1], None)


def test_angles_from_source_and_their_bins():
    """Cameras on the equator at azimuths 0, 45, 90, 180 degrees and one 60 degrees up at azimuth 0, at
    different distances: their angles from the first one around the origin; per-view scores binned by angle
    (view-weighted; 180 in the last bin)."""
    from mira.cameras import look_at, spherical_to_cartesian

    cameras = ((0, 0, 2.5), (45, 0, 2.2), (90, 0, 2.8), (180, 0, 2.5), (0, 60, 2.4))
    centres = torch.stack([spherical_to_cartesian(*(torch.tensor(float(x)) for x in camera)) for camera in cameras])
    c2w = look_at(centres)
    assert angles_from_source_deg(c2w, 0, [1, 2, 3, 4]) == pytest.approx([45, 90, 180, 60], abs=1e-3)
    assert angles_from_source_deg(c2w, 2, [0, 3]) == pytest.approx([90, 90], abs=1e-3)
    results = {"a": {"per_view": [{"angle_from_source_deg": 10.0, "psnr": 30.0, "ssim": 0.9, "lpips": None, "mask_iou": 1.0},
                                  {"angle_from_source_deg": 20.0, "psnr": 20.0, "ssim": 0.7, "lpips": None, "mask_iou": 0.5}]},
               "b": {"per_view": [{"angle_from_source_deg": 180.0, "psnr": 10.0, "ssim": 0.1, "lpips": None, "mask_iou": 0.0}]}}
    rows = scores_by_angle(results)
    assert [row["angle_deg"] for row in rows] == [[0, 30], [150, 180]]
    assert [row["num_views"] for row in rows] == [2, 1]
    assert rows[0]["psnr"] == pytest.approx(25.0) and rows[1]["psnr"] == pytest.approx(10.0)


def test_object_listing(dataset, tmp_path):
    ids = [object_id for object_id, _ in list_objects(dataset, "val")]
    assert ids == ["sphere_1000000", "sphere_1000001", "broken_object"]
    assert [i for i, _ in list_objects(dataset / "sphere_1000000", "val")] == ["sphere_1000000"]  # one object
    with pytest.raises(ValueError, match="no 'test' split"):
        list_objects(dataset, "test")
    with pytest.raises(FileNotFoundError, match="no index.json"):
        list_objects(tmp_path, "val")


def test_evaluate_writes_per_object_and_mean_figures(tiny_checkpoint, dataset, tmp_path):
    # A random model has no surface at the default level; a low one exercises the geometry path.
    summary = run_evaluate(tiny_checkpoint, dataset, tmp_path, "--density_threshold", "0.05", "--save_meshes")
    assert summary["num_objects"] == 2
    assert [item["object"] for item in summary["failed"]] == ["broken_object"]
    objects = summary["objects"]
    for object_id, metrics in objects.items():
        views = load_object_views(dataset / object_id)
        centres = views.c2w[:, :3, 3]
        elevation = torch.rad2deg(torch.atan2(centres[:, 2], centres[:, :2].norm(dim=-1)))
        source = int((elevation - 20.0).abs().argmin())
        assert metrics["source_view"] == views.names[source]
        assert metrics["source_elevation_deg"] == pytest.approx(float(elevation[source]), abs=1e-3)
        assert [v["view"] for v in metrics["per_view"]] == [n for i, n in enumerate(views.names) if i != source]
        assert metrics["psnr"] == pytest.approx(sum(v["psnr"] for v in metrics["per_view"]) / 3)
        directions = centres / centres.norm(dim=-1, keepdim=True)
        others = [i for i in range(len(views.names)) if i != source]
        expected = torch.rad2deg(torch.acos((directions[others] @ directions[source]).clamp(-1, 1)))
        assert [v["angle_from_source_deg"] for v in metrics["per_view"]] == pytest.approx(expected.tolist(), abs=1e-4)
        assert metrics["has_ground_truth_mesh"] and metrics["chamfer"] > 0
    assert summary["mean"]["psnr"] == pytest.approx(sum(m["psnr"] for m in objects.values()) / 2)
    assert summary["mean"]["chamfer"] == pytest.approx(sum(m["chamfer"] for m in objects.values()) / 2)
    saved = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON, same figures
    assert saved["mean"]["psnr"] == pytest.approx(summary["mean"]["psnr"])
    assert saved["protocol"]["render_size"] == SIZE and saved["protocol"]["source_view"] is None
    views_by_angle = summary["by_angle_from_source"]
    assert sum(row["num_views"] for row in views_by_angle) == 2 * (NUM_VIEWS - 1)
    all_views = [v["psnr"] for m in objects.values() for v in m["per_view"]]
    assert sum(row["psnr"] * row["num_views"] for row in views_by_angle) / len(all_views) == pytest.approx(
        sum(all_views) / len(all_views))
    table = (tmp_path / "metrics.md").read_text()
    assert "| Angle |" in table
    assert "| sphere_1000000 |" in table and "| **mean** |" in table and "broken_object" in table
    assert (tmp_path / "renders" / "sphere_1000000.png").is_file()
    assert (tmp_path / "meshes" / "sphere_1000000.ply").is_file()


def test_evaluate_scores_match_a_direct_model_call(tiny_checkpoint, dataset, tmp_path):
    """Recompute one view's PSNR by hand: source 002 (through the source-view contract) -> render view 000,
    over a white background."""
    from mira.cameras import transform_cameras
    from mira.data.images import composite, resize
    from mira.data.source_view import prepare_training_source_view
    from mira.models import MIRA

    summary = run_evaluate(tiny_checkpoint, dataset / "sphere_1000001", tmp_path, "--source_view", "2",
                           "--lpips_backbone", "none", "--render_size", "24")
    metrics = summary["objects"]["sphere_1000001"]
    assert metrics["source_view"] == "002"
    model = MIRA.from_pretrained(tiny_checkpoint)
    views = load_object_views(dataset / "sphere_1000001")
    white = [1.0, 1.0, 1.0]
    source = prepare_training_source_view(views.images[2:3], views.c2w[2:3], views.intrinsics[2:3], model.config, white)
    target_c2w = transform_cameras(source.world_to_canonical, views.c2w[None, 0:1])  # moved with the source camera
    with torch.no_grad():
        out = model(source.image, source.c2w, source.intrinsics, target_c2w, views.intrinsics[None, 0:1], 24)
    target = resize(composite(views.images[0], white), 24)
    expected = float(psnr(out["rgb"][0], target[None]))
    assert metrics["per_view"][0]["view"] == "000"
    assert metrics["per_view"][0]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert metrics["lpips"] is None or metrics["lpips"] != metrics["lpips"]
    assert "chamfer" in metrics  # the default threshold finds no surface in a random model: a failed mesh
    assert summary["num_failed_meshes"] == 1 and metrics["fscore@0.1"] == 0.0


def test_missing_lpips_weights_is_a_clear_error(tiny_checkpoint, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    from mira.evaluate import main

    with pytest.raises(SystemExit, match="download https://download.pytorch.org/models/alexnet"):
        main(["--checkpoint", str(tiny_checkpoint), "--data", str(dataset), "--out", str(tmp_path / "out"),
              "--device", "cpu", "--lpips_backbone", "pretrained", "--lpips_net", "alex", "--quiet"])


def test_missing_checkpoint_is_a_clear_error(dataset, tmp_path):
    from mira.evaluate import main

    with pytest.raises(SystemExit, match="mira.evaluate: error"):
        main(["--checkpoint", str(tmp_path / "no_such_checkpoint"), "--data", str(dataset), "--out", str(tmp_path / "o"),
              "--device", "cpu", "--lpips_backbone", "none"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluate_on_cuda(tiny_checkpoint, dataset, tmp_path):
    cpu = run_evaluate(tiny_checkpoint, dataset, tmp_path / "cpu", "--lpips_backbone", "none")
    cuda = run_evaluate(tiny_checkpoint, dataset, tmp_path / "cuda", "--lpips_backbone", "none", "--device", "cuda")
    assert cuda["device"].startswith("cuda")
    assert cuda["mean"]["psnr"] == pytest.approx(cpu["mean"]["psnr"], abs=0.05)


def test_sphere_baseline_recovers_a_sphere_and_scores_through_the_same_protocol(tmp_path, repo_root):
    """The trivial baseline of docs/EVALUATION.md: on an object that is one flat-coloured sphere at the
    origin it is (nearly) exact, so its figures are the floor a model must clear by a margin."""
    from mira.cameras import ZERO123_FOV_DEG, intrinsics_from_fov
    from mira.data.formats import write_object_views
    from mira.evaluate import main
    from mira.training.synthetic_scenes import SphereScene, random_cameras, render_scene

    sphere = SphereScene(centers=torch.zeros(1, 3), radii=torch.tensor([0.6]), colors=torch.tensor([[0.8, 0.3, 0.1]]))
    c2w = random_cameras(6, torch.Generator().manual_seed(0))
    intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG)
    rgb, mask = render_scene(sphere, c2w, intrinsics.expand(6, 4), 96, (0.0, 0.0, 0.0))
    flat = torch.where(mask > 0, sphere.colors[0].view(1, 3, 1, 1), torch.zeros_like(rgb))  # unlit, like the baseline
    rgba = torch.cat([flat, mask], dim=1).permute(0, 2, 3, 1)
    folder = write_object_views(tmp_path / "data" / "ball", (rgba.numpy() * 255).round().astype("uint8"), c2w,
                                intrinsics, {"source": "test"})
    import trimesh

    trimesh.creation.icosphere(subdivisions=4, radius=0.6).export(folder / "mesh.ply")
    summary = main(["--baseline", "sphere", "--config_path", str(repo_root / "configs" / "tiny.json"),
                    "--data", str(folder), "--out", str(tmp_path / "out"), "--device", "cpu", "--render_size", "64",
                    "--lpips_backbone", "none", "--geometry_samples", "4000", "--quiet"])
    mean = summary["mean"]
    assert summary["predictor"] == "sphere baseline" and summary["num_objects"] == 1
    assert mean["mask_iou"] > 0.95 and mean["psnr"] > 25.0, mean
    assert mean["chamfer"] < 0.02 and mean["fscore@0.05"] > 0.95, mean
    with pytest.raises(SystemExit, match="needs --config_path"):
        main(["--baseline", "sphere", "--data", str(folder), "--out", str(tmp_path / "x")])
