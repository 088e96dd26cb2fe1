"""test.py end to end on a tiny saved model: outputs, batches, checkpoint kinds, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v2 as imageio_v2
import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from safetensors.torch import load_file

from helpers_inference import REPO_ROOT, save_tiny_model, tiny_config, write_rgba_image
from mira.export.mesh import extract_mesh, query_density_grid, renderer_box
from mira.inference import checkpoint as checkpoint_module
from mira.inference import load_model
from mira.inference.cli import main
from mira.inference.errors import CheckpointConfigMismatchError, InferenceError, WeightsNotFoundError
from mira.inference.pipeline import InferencePipeline, InferenceSettings
from mira.data.source_view import SourceFraming
from mira.inference.preprocess import load_image, preprocess_image

FAST = ["--num_frames", "5", "--render_size", "24", "--mesh_resolution", "24", "--no_progress"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def object_png(tmp_path_factory):
    return write_rgba_image(tmp_path_factory.mktemp("inputs") / "chair.png")


def _triplanes(model, image_path):
    cfg = model.config
    prepared = preprocess_image(load_image(image_path), SourceFraming.from_config(cfg), cfg.renderer.background_color)
    with torch.no_grad():
        return model.forward_triplanes(prepared.image[None], prepared.c2w[None], prepared.intrinsics[None])


@pytest.fixture(scope="module")
def median_density(tiny_checkpoint, object_png):
    """A threshold that cuts the random tiny model's density field through the middle."""
    model = load_model(str(tiny_checkpoint))
    with torch.no_grad():
        grid = query_density_grid(model.renderer, _triplanes(model, object_png), 24, *renderer_box(model.renderer))
    return float(np.median(grid))


def test_image_mode_writes_mesh_video_and_result(tmp_path, tiny_checkpoint, object_png, median_density, capsys):
    out = tmp_path / "out"
    code = main([
        "--checkpoint_path", str(tiny_checkpoint), "--config_path", "configs/tiny.json", "--mode", "image",
        "--input", str(object_png), "--output_path", str(out), "--export_video", "--export_mesh",
        "--density_threshold", str(median_density), "--elevation", "10", "--distance", "2.4", "--fps", "12", *FAST,
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    folder = out / "chair"
    assert sorted(p.name for p in folder.iterdir()) == ["input.png", "mesh.ply", "result.json", "video.mp4"]
    # The summary line names every file written, with its size.
    assert f"wrote {folder}: input.png (" in captured.out and "mesh.ply (" in captured.out and "video.mp4 (" in captured.out

    mesh = trimesh.load(folder / "mesh.ply", process=False)
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= 1.0 + 1e-6
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    # The file holds exactly the mesh of the model's density field for this input.
    model = load_model(str(tiny_checkpoint))
    expected = extract_mesh(model.renderer, _triplanes(model, object_png), resolution=24, density_threshold=median_density)
    assert len(mesh.faces) == len(expected.faces)
    np.testing.assert_allclose(mesh.vertices, expected.vertices, atol=1e-5)

    reader = imageio_v2.get_reader(folder / "video.mp4", format="FFMPEG")
    frames = np.stack([frame for frame in reader.iter_data()])
    reader.close()
    assert frames.shape == (5, 24, 24, 3)

    assert Image.open(folder / "input.png").size == (56, 56)
    result = json.loads((folder / "result.json").read_text())
    assert result["input"] == str(object_png) and result["mode"] == "image" and result["device"] == "cpu"
    assert result["outputs"] == {"input_image": "input.png", "mesh": "mesh.ply", "video": "video.mp4"}
    assert result["mesh"]["vertices"] == len(mesh.vertices) and result["mesh"]["faces"] == len(mesh.faces)
    assert result["video"] == {"file": "video.mp4", "frames": 5, "width": 24, "height": 24, "fps": 12.0,
                               "elevation_deg": 10.0, "distance": 2.4, "occupied_fraction": result["video"]["occupied_fraction"],
                               "baked_field_resolution": 96,  # the CPU's default (mira.rendering.baked_field)
                               "render_seconds": result["video"]["render_seconds"],
                               "write_seconds": result["video"]["write_seconds"]}
    assert 0.0 < result["video"]["occupied_fraction"] <= 1.0
    video = result["video"]
    assert video["render_seconds"] > 0 and video["write_seconds"] > 0
    assert video["render_seconds"] + video["write_seconds"] <= result["timings_s"]["video"] + 1e-3
    assert result["settings"]["mesh_resolution"] == 24 and result["settings"]["config_path"] == "configs/tiny.json"
    assert result["preprocessing"]["mask_source"] == "alpha"
    timings = result["timings_s"]
    assert set(timings) == {"preprocess", "reconstruct", "mesh", "video", "total", "load_model_once"}
    assert all(value >= 0 for value in timings.values())
    assert timings["total"] == pytest.approx(sum(timings[k] for k in ("preprocess", "reconstruct", "mesh", "video")), abs=1e-3)


def test_folder_and_several_inputs_load_the_model_once(tmp_path, tiny_checkpoint, median_density, monkeypatch, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_rgba_image(folder / "a.png")
    write_rgba_image(folder / "b.png", box=(5, 5, 90, 30))
    (folder / "broken.png").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    other = tmp_path / "more"
    other.mkdir()
    write_rgba_image(other / "a.png")  # same stem as photos/a.png: gets its own folder

    calls = []
    real_load_model = checkpoint_module.load_model

    def counting_load_model(*args, **kwargs):
        calls.append(args)
        return real_load_model(*args, **kwargs)

    monkeypatch.setattr("mira.inference.pipeline.load_model", counting_load_model)
    out = tmp_path / "out"
    code = main([
        "--checkpoint_path", str(tiny_checkpoint), "--input", str(folder), str(other / "a.png"),
        "--output_path", str(out), "--export_mesh", "--mesh_format", "obj", "--export_video", "--video_format", "gif",
        "--density_threshold", str(median_density), "--save_triplanes", *FAST,
    ])
    err = capsys.readouterr().err
    assert code == 1  # one bad input in the batch
    assert "broken.png" in err and "not an image" in err and "1 of 4 inputs failed" in err
    assert len(calls) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a", "a_1", "b"]
    for name in ("a", "a_1", "b"):
        assert trimesh.load(out / name / "mesh.obj", force="mesh").faces.shape[1] == 3
        gif = imageio_v2.mimread(out / name / "video.gif")
        assert len(gif) == 5 and gif[0].shape[:2] == (24, 24)
        triplanes = load_file(str(out / name / "triplanes.safetensors"))["triplanes"]
        assert triplanes.shape == (1, 3, 8, 16, 16)


def _bad_input_run(tmp_path, tiny_checkpoint, *args, mode="image"):
    out = tmp_path / "out"
    code = main(["--checkpoint_path", str(tiny_checkpoint), "--mode", mode, "--output_path", str(out),
                 "--export_mesh", "--export_video", *FAST, "--input", *args])
    return code, out


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "input file not found"),
        ("not_an_image", "not an image"),
        ("empty_file", "empty (0 bytes)"),
        ("zero_size_folder", "holds no image files"),
        ("transparent", "fully transparent"),
        ("uniform", "same colour"),
    ],
)
def test_bad_image_inputs_fail_cleanly(tmp_path, tiny_checkpoint, capsys, case, expected):
    path = tmp_path / f"{case}.png"
    if case == "not_an_image":
        path.write_text("hello")
    elif case == "empty_file":
        path.write_bytes(b"")
    elif case == "zero_size_folder":
        path = tmp_path / "empty_folder"
        path.mkdir()
    elif case == "transparent":
        Image.fromarray(np.zeros((20, 20, 4), np.uint8), mode="RGBA").save(path)
    elif case == "uniform":
        Image.fromarray(np.full((20, 20, 3), 77, np.uint8)).save(path)
    code, out = _bad_input_run(tmp_path, tiny_checkpoint, str(path))
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and path.name in errors[0]
    assert not out.exists() or not any(out.rglob("*"))  # nothing written


def test_empty_prompt_fails_before_loading_anything(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.setattr("mira.inference.pipeline.load_model", lambda *a, **k: pytest.fail("model loaded"))
    code, out = _bad_input_run(tmp_path, tiny_checkpoint, "   ", mode="text")
    assert code == 1 and "prompt is empty" in capsys.readouterr().err
    assert not out.exists()


def test_checkpoint_config_mismatch_is_one_clear_error(tmp_path, tiny_checkpoint, object_png, capsys):
    out2 = tmp_path / "out2"
    code = main(["--checkpoint_path", str(tiny_checkpoint), "--config_path", "configs/config.json",
                 "--input", str(object_png), "--output_path", str(out2), "--export_mesh", *FAST])
    err = capsys.readouterr().err
    assert code == 1
    assert "checkpoint does not match the config" in err and "decoder_hidden_dim" in err
    assert not out2.exists()


def test_config_with_same_architecture_overrides_sampling(tmp_path, tiny_checkpoint):
    config = tiny_config()
    config.override(rendering_samples_per_ray=7, importance_samples_per_ray=0)
    config.save_json(tmp_path / "sampling.json")
    model = load_model(str(tiny_checkpoint), str(tmp_path / "sampling.json"))
    assert model.renderer.num_coarse_samples == 7 and model.renderer.num_fine_samples == 0
    config.override(triplane_aggregation="sum")
    config.save_json(tmp_path / "other_field.json")
    with pytest.raises(CheckpointConfigMismatchError, match="triplane_aggregation"):
        load_model(str(tiny_checkpoint), str(tmp_path / "other_field.json"))


def test_training_checkpoints_safetensors_and_hub_ids(tmp_path, tiny_checkpoint, object_png):
    """The checkpoint kinds users have all give the same model; missing ones say what to do."""
    from mira.training.checkpoint import CHECKPOINT_FORMAT, FINAL_EXPORT_DIR, atomic_torch_save, checkpoint_path

    assert FINAL_EXPORT_DIR == checkpoint_module.FINAL_EXPORT_DIR
    reference = load_model(str(tiny_checkpoint))
    expected = _triplanes(reference, object_png)
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}  # as saved from a DDP-wrapped model
    run_dir = tmp_path / "run"
    for step, weights in ((100, {k: torch.zeros_like(v) for k, v in state.items()}), (200, state)):
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "step": step, "model": weights, "optimizer": {},
                           "config": reference.config.to_dict()}, checkpoint_path(run_dir, step))
    for source in (run_dir, checkpoint_path(run_dir, 200)):  # a run folder: its latest checkpoint
        torch.testing.assert_close(_triplanes(load_model(str(source)), object_png), expected)
    finished = load_model(str(tiny_checkpoint))
    with torch.no_grad():
        finished.decoder.requires_grad_(False)
        for parameter in finished.decoder.parameters():
            parameter.mul_(0.5)
    finished.save_pretrained(run_dir / FINAL_EXPORT_DIR)  # a finished run: its final/ export wins
    torch.testing.assert_close(_triplanes(load_model(str(run_dir)), object_png), _triplanes(finished, object_png))

    bare = tmp_path / "bare.pt"
    torch.save({"model": state}, bare)
    with pytest.raises(InferenceError, match="carries no config"):
        load_model(str(bare))
    torch.testing.assert_close(_triplanes(load_model(str(bare), "configs/tiny.json"), object_png), expected)
    wider = tiny_config()
    wider.override(decoder_hidden_dim=64)
    wider.save_json(tmp_path / "wider.json")
    with pytest.raises(CheckpointConfigMismatchError, match="checkpoint does not match the config"):
        load_model(str(bare), str(tmp_path / "wider.json"))  # no config inside: caught by the weight shapes

    weights_only = tmp_path / "weights" / "model.safetensors"
    weights_only.parent.mkdir()
    weights_only.write_bytes((tiny_checkpoint / "model.safetensors").read_bytes())
    torch.testing.assert_close(_triplanes(load_model(str(weights_only), "configs/tiny.json"), object_png), expected)

    with pytest.raises(WeightsNotFoundError, match="could not be loaded from the Hugging Face"):
        load_model("nobody/no-such-mira-checkpoint")
    with pytest.raises(WeightsNotFoundError, match="checkpoint not found"):
        load_model(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(InferenceError, match="junk.pt"):
        load_model(str(tmp_path / "junk.pt"))


def test_a_mistyped_local_path_or_a_config_file_is_named_as_such(tmp_path, tiny_checkpoint, monkeypatch):
    """A local-looking path that does not exist is never sent to the hub; a config file is no checkpoint."""
    (tmp_path / "checkpoints" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"no such file or folder \(did you mean: checkpoints/tiny\?\)") as error:
        load_model("checkpoints/tiyn")
    assert "Hugging Face" not in str(error.value)
    with pytest.raises(WeightsNotFoundError, match="not a checkpoint file.*did you mean the folder"):
        load_model(str(tiny_checkpoint / "config.json"))


def test_settings_are_checked_before_the_model_loads(tiny_checkpoint):
    for bad in ({"render_size": 25}, {"foreground_ratio": 0.0}, {"mesh_resolution": 2}, {"fps": 0}):
        with pytest.raises(InferenceError):
            InferencePipeline(InferenceSettings(checkpoint_path=str(tiny_checkpoint), inputs=["x.png"], **bad))


def test_script_exit_code_and_message(tmp_path, tiny_checkpoint):
    """The real root script: a missing input gives one message and exit code 1."""
    completed = subprocess.run(
        [sys.executable, "test.py", "--checkpoint_path", str(tiny_checkpoint), "--input", str(tmp_path / "nope.png"),
         "--output_path", str(tmp_path / "out"), "--export_mesh"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert "nope.png: input file not found" in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()


def test_compiled_reconstruction_gives_the_model_triplanes(tiny_checkpoint, object_png, monkeypatch):
    """``--compile``: the pipeline reconstructs through mira.inference.compiled (torch.compile; here its
    eager backend, which checks the wiring in seconds), float32 triplanes equal to the model's; with bf16
    weights the encoder and decoder are cast and the renderer is not."""
    from mira.inference import compiled

    original = compiled.compile_reconstruction
    monkeypatch.setattr("mira.inference.pipeline.compile_reconstruction",
                        lambda model, dtype: original(model, dtype, backend="eager"))
    settings = InferenceSettings(checkpoint_path=str(tiny_checkpoint), inputs=[str(object_png)], output_path="unused",
                                 device="cpu", compile=True, progress=False)
    pipeline = InferencePipeline(settings)
    pipeline.load()
    prepared = pipeline.prepare_image(load_image(str(object_png)), "chair")
    triplanes = pipeline.reconstruct(prepared)
    expected = _triplanes(load_model(str(tiny_checkpoint)), object_png)
    assert triplanes.dtype == torch.float32
    torch.testing.assert_close(triplanes, expected)

    model = load_model(str(tiny_checkpoint))
    reconstruct = original(model, torch.bfloat16, backend="eager")
    assert next(model.decoder.parameters()).dtype == torch.bfloat16
    assert next(model.renderer.parameters()).dtype == torch.float32
    in_bf16 = reconstruct(prepared.image[None], prepared.c2w[None], prepared.intrinsics[None])
    assert in_bf16.dtype == torch.float32
    assert float((in_bf16 - expected).norm() / expected.norm()) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (CUDA graphs)")
@pytest.mark.parametrize("compile_mode", [None, "default", "test.py"])
def test_graph_reconstruction_replays_the_model_on_cuda(tiny_checkpoint, object_png, compile_mode):
    """mira.inference.compiled.graph_reconstruction: the eager forward, or inductor's kernels (compile_mode
    "default"; "test.py": compile_reconstruction, which takes that path on CUDA), captured once per shape and
    replayed gives the model's triplanes for each new image (the graph reads its input buffers, not the captured
    image)."""
    from mira.inference.compiled import compile_reconstruction, graph_reconstruction

    model = load_model(str(tiny_checkpoint)).cuda()
    if compile_mode == "test.py":
        reconstruct = compile_reconstruction(load_model(str(tiny_checkpoint)).cuda(), None)
    else:
        reconstruct = graph_reconstruction(load_model(str(tiny_checkpoint)).cuda(), None, compile_mode)
    c2w, intrinsics = _source_camera(model)
    for seed in (0, 1):
        images = torch.rand(1, 3, model.config.model.source_size, model.config.model.source_size,
                            generator=torch.Generator().manual_seed(seed)).cuda()
        with torch.inference_mode():
            expected = model.forward_triplanes(images, c2w, intrinsics).float()
        torch.testing.assert_close(reconstruct(images, c2w, intrinsics), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="CUDA"):
        reconstruct(images.cpu(), c2w.cpu(), intrinsics.cpu())


def _source_camera(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The canonical source camera of ``model``'s config on CUDA: c2w (1, 4, 4), intrinsics (1, 4)."""
    from mira.cameras import canonical_source_c2w

    data = model.config.data
    focal = data.source_model_focal or data.focal_length
    c2w = canonical_source_c2w(torch.tensor([data.source_distance_per_focal * focal]), data.source_camera_azimuth_deg)
    return c2w.cuda(), torch.tensor([[focal, focal, 0.5, 0.5]]).cuda()
