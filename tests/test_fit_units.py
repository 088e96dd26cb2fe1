"""mira.fit without Blender: view split, ray sampling, determinism, learning, CLI outputs and errors."""

from __future__ import annotations

import json

import pytest
import torch

from helpers_evaluation import box_mesh, render_box_views, write_sphere_dataset
from mira.cameras import image_rays
from mira.config import load_config
from mira.evaluation.fit_object import FitEvaluationSettings, fit_object
from mira.evaluation.fitting import FitOptions, fit_triplane, sample_training_rays
from mira.evaluation.views import holdout_split, prepare_views

TINY = "configs/tiny.json"


@pytest.fixture
def tiny_config(repo_root):
    return load_config(repo_root / TINY)


def test_holdout_split_every_kth_view():
    train, heldout = holdout_split(10, 4)
    assert heldout == [0, 4, 8]
    assert train == [1, 2, 3, 5, 6, 7, 9]
    with pytest.raises(ValueError, match="holdout_every"):
        holdout_split(10, 1)
    with pytest.raises(ValueError, match="no training"):
        holdout_split(1, 4)


def test_sampled_rays_are_pixel_centre_rays_with_their_targets(tiny_config):
    views = prepare_views(render_box_views(num_views=3, size=8), 8, tiny_config.renderer.background_color)
    batch = sample_training_rays(views, 64, torch.Generator().manual_seed(0))
    origins, directions = image_rays(views.c2w, views.intrinsics, 8, 8)  # (3, 64, 3), row-major pixels
    all_rays = torch.cat([origins, directions], dim=-1).reshape(-1, 6)
    all_rgb = views.rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    all_mask = views.mask.permute(0, 2, 3, 1).reshape(-1, 1)
    sampled = torch.cat([batch["origins"], batch["directions"]], dim=-1)
    distance, match = torch.cdist(sampled, all_rays, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    assert distance.max() < 1e-5  # every sampled ray is exactly some pixel-centre ray
    torch.testing.assert_close(batch["rgb"], all_rgb[match])
    torch.testing.assert_close(batch["mask"], all_mask[match])


def test_fit_is_deterministic_for_a_seed(tiny_config):
    views = prepare_views(render_box_views(num_views=4, size=8), 8, tiny_config.renderer.background_color)
    options = FitOptions(steps=5, batch_rays=64, triplane_res=8, triplane_dim=4, seed=3)
    first = fit_triplane(views, tiny_config, options, progress=False)
    second = fit_triplane(views, tiny_config, options, progress=False)
    other = fit_triplane(views, tiny_config, FitOptions(steps=5, batch_rays=64, triplane_res=8, triplane_dim=4, seed=4), progress=False)
    assert torch.equal(first.triplanes, second.triplanes)
    assert not torch.equal(first.triplanes, other.triplanes)


def test_fit_learns_an_analytic_box_and_writes_outputs(tiny_config, tmp_path):
    """A ray-traced box (no Blender, no MIRA renderer in the data): held-out views must be learnt."""
    views = render_box_views(num_views=24, size=24)
    # Seeds 0-3 reach 23.2-25.7 dB, mask IoU 0.89-0.91, Chamfer 0.014-0.046.
    options = FitOptions(steps=250, batch_rays=512, lr=0.05, mlp_lr=0.005, tv_weight=0.01, triplane_res=16, triplane_dim=8)
    settings = FitEvaluationSettings(render_size=24, lpips_backbone="none", mesh_resolution=48, video_frames=4,
                                     video_name="orbit.gif", progress=False, tensorboard=False)
    metrics = fit_object(views, tmp_path, tiny_config, options, settings, device="cpu", truth_mesh=box_mesh(), object_name="box")
    assert metrics["psnr"] > 21.0, metrics["psnr"]
    assert metrics["mask_iou"] > 0.85
    assert metrics["chamfer"] < 0.08
    assert metrics["heldout_views"] == ["000", "004", "008", "012", "016", "020"]
    assert metrics["lpips"] is None or metrics["lpips"] != metrics["lpips"]  # not computed
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["lpips"] is None and saved["object"] == "box"
    assert {"mesh.ply", "orbit.gif", "heldout.png", "fit.safetensors"} <= {p.name for p in tmp_path.iterdir()}


def test_fit_cli_on_our_render_format(tmp_path, repo_root, monkeypatch):
    from mira.fit import main

    root = write_sphere_dataset(tmp_path / "data", num_val=1, num_views=8, size=24)
    object_dir = next(p for p in root.iterdir() if p.is_dir() and (p / "mesh.ply").exists())
    monkeypatch.chdir(repo_root)
    metrics = main(["--data", str(object_dir), "--out", str(tmp_path / "out"), "--config", TINY, "--steps", "60",
                    "--batch_rays", "256", "--triplane_res", "16", "--triplane_dim", "4", "--render_size", "24",
                    "--lpips_backbone", "random", "--lpips_net", "vgg", "--mesh_resolution", "32", "--density_threshold", "1",
                    "--video_frames", "2", "--set", "rendering_samples_per_ray=8", "--quiet", "--device", "cpu"])
    assert metrics["num_heldout_views"] == 2 and metrics["num_train_views"] == 6
    assert metrics["has_ground_truth_mesh"] and "chamfer" in metrics and "fscore@0.1" in metrics
    assert metrics["renderer"]["rendering_samples_per_ray"] == 8
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["options"]["steps"] == 60 and saved["render_size"] == 24
    assert (tmp_path / "out" / "logs").is_dir()  # TensorBoard


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "/nonexistent/object"], "object directory not found"),
        (["--set", "no_such_key=1"], "unknown key 'no_such_key'"),
        (["--steps", "0"], "--steps must be positive"),
        (["--lpips_backbone", "random", "--lpips_net", "alex", "--render_size", "24"], "at least 31 px"),
    ],
)
def test_fit_cli_errors_are_clear(extra, message, tmp_path, repo_root, monkeypatch):
    from mira.fit import main

    root = write_sphere_dataset(tmp_path / "data", num_val=1, num_views=4, size=16)
    object_dir = next(p for p in root.iterdir() if p.is_dir())
    monkeypatch.chdir(repo_root)
    argv = ["--data", str(object_dir), "--out", str(tmp_path / "out"), "--config", TINY, "--lpips_backbone", "none",
            "--device", "cpu", *extra]
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_fit_keeps_its_metrics_when_the_video_cannot_be_written(tiny_config, tmp_path, monkeypatch):
    """A missing video encoder (imageio-ffmpeg absent on a GPU image) must not lose the fit's figures."""
    import mira.evaluation.fit_object as fit_module

    def no_encoder(*args, **kwargs):
        raise ImportError("orbit.mp4: writing .mp4 needs imageio-ffmpeg")

    monkeypatch.setattr(fit_module, "write_orbit_video", no_encoder)
    views = render_box_views(num_views=8, size=8)
    options = FitOptions(steps=3, batch_rays=64, triplane_res=8, triplane_dim=4)
    settings = FitEvaluationSettings(render_size=8, lpips_backbone="none", mesh_resolution=16, video_frames=4,
                                     progress=False, tensorboard=False)
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        fit_object(views, tmp_path, tiny_config, options, settings, device="cpu", object_name="box")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["object"] == "box" and "psnr" in saved and "video" not in saved["outputs"]
