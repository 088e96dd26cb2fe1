"""OpenLRM v1.1 checkpoints in MIRA: equal to OpenLRM's own outputs, converted strictly, loaded from
any place, fine-tuned and evaluated. The fixture (tests/fixtures/openlrm-tiny, written by
tests/fixtures/make_openlrm_fixture.sh) holds a tiny OpenLRM configuration with random weights and
what OpenLRM's code computed with them; no reference code runs here."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers_inference import fake_hub_cache, write_rgba_image
from helpers_training import tiny_config
from mira.checkpoints import load_model
from mira.errors import CheckpointConfigMismatchError, InferenceError, WeightsNotFoundError
from mira.pretrained.openlrm import OpenLRMConversionError, convert_openlrm_state, fold_modulated_norm
from mira.pretrained.verify import ReferenceRun, verify

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "openlrm-tiny"
CHECKPOINT = FIXTURE / "checkpoint"
OPTIONS = {"source_size": 56, "encoder_num_heads": 2}  # the tiny run's input size and DINOv2 heads (meta.json)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The fixture converted once with ``python -m mira.convert``."""
    from mira.convert import main

    target = tmp_path_factory.mktemp("converted") / "openlrm-tiny"
    assert main([str(CHECKPOINT), str(target), "--source_size", "56", "--encoder_num_heads", "2"]) == 0
    return target


def copy_checkpoint(tmp_path: Path) -> Path:
    target = tmp_path / "openlrm"
    shutil.copytree(CHECKPOINT, target)
    return target


def test_fixture_is_small_and_complete():
    for path in FIXTURE.rglob("*"):
        if path.is_file():
            assert path.stat().st_size <= 1_000_000, path
    assert json.loads((FIXTURE / "meta.json").read_text())["tiny_encoder"]["num_heads"] == OPTIONS["encoder_num_heads"]


def test_converted_tiny_checkpoint_reproduces_openlrm():
    """Encoder tokens, camera embedding, triplanes, field at grid points, rendered pixels, rays and the
    mesh equal OpenLRM's to 1e-4 of their scale (measured: <= 7e-7)."""
    report = verify(ReferenceRun.load(FIXTURE))
    failures = [c for c in report["comparisons"] if not c["passed"]]
    assert not failures, failures
    names = {c["name"] for c in report["comparisons"]}
    assert {"encoder_tokens", "decoder_tokens", "triplanes", "density_grid", "grid_rgb", "render_rgb", "render_opacity"} <= names
    assert max(c["max_abs_error"] for c in report["comparisons"]) < 1e-5
    mesh = report["mesh"]
    assert mesh["passed"] and mesh["missing_faces"] == 0 and mesh["extra_faces_off_the_box"] == 0
    assert mesh["reference_faces"] > 1000
    # The only parameters not carried over are the LayerNorm affines folded into the modulations.
    meta = json.loads((FIXTURE / "meta.json").read_text())
    folded = 3 * 2 * meta["config"]["transformer_layers"] * meta["config"]["transformer_dim"]
    assert report["num_parameters"] == meta["num_parameters"] - folded


def test_folding_the_layernorm_affine_into_the_modulation_is_exact():
    torch.manual_seed(0)
    dim, cond = 8, 5
    x, c = torch.randn(3, 7, dim, dtype=torch.float64), torch.randn(3, cond, dtype=torch.float64)
    g, b = torch.randn(dim, dtype=torch.float64), torch.randn(dim, dtype=torch.float64)
    weight, bias = torch.randn(2 * dim, cond, dtype=torch.float64), torch.randn(2 * dim, dtype=torch.float64)
    normed = torch.nn.functional.layer_norm(x, (dim,), eps=1e-6)
    shift, scale = (c @ weight.T + bias).chunk(2, dim=-1)  # OpenLRM: shift rows first
    theirs = (normed * g + b) * (1 + scale[:, None]) + shift[:, None]
    folded_weight, folded_bias = fold_modulated_norm(g, b, weight, bias)
    our_scale, our_shift = (c @ folded_weight.T + folded_bias).chunk(2, dim=-1)  # MIRA: scale rows first
    ours = normed * (1 + our_scale[:, None]) + our_shift[:, None]
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)


def test_convert_writes_a_self_contained_mira_folder(converted):
    from mira.models import MIRA

    config = json.loads((converted / "config.json").read_text())
    assert config["model"]["weights_license"] == "CC BY-NC 4.0"
    assert config["model"]["encoder_architecture"] == "dinov2_with_registers"
    assert config["renderer"]["ray_marching"] == "eg3d" and config["renderer"]["plane_axes"] == "xy_xz_zy"
    run = ReferenceRun.load(FIXTURE)
    model = MIRA.from_pretrained(converted)
    with torch.no_grad():
        tokens = model.encoder(run.tensor("image"))
    torch.testing.assert_close(tokens, run.tensor("encoder_tokens"), atol=1e-5, rtol=0)
    # from_pretrained also takes an OpenLRM folder of a published size (converted on the fly); a test-size
    # one needs its source size, and says how to give it.
    with pytest.raises(CheckpointConfigMismatchError, match="mira.convert SRC OUT --source_size"):
        MIRA.from_pretrained(CHECKPOINT)


def test_licence_notice_is_printed_once(tmp_path, capsys, monkeypatch):
    import mira.checkpoints

    monkeypatch.setattr(mira.checkpoints, "_ANNOUNCED_LICENSES", set())
    load_model(str(CHECKPOINT), openlrm_options=OPTIONS)
    load_model(str(CHECKPOINT), openlrm_options=OPTIONS)
    assert capsys.readouterr().err.count("CC BY-NC 4.0") == 1


def test_conversion_is_strict_about_leftover_missing_and_mismatched_tensors(tmp_path):
    from mira.convert import main
    from mira.pretrained.openlrm import openlrm_to_mira_config

    state = load_file(str(CHECKPOINT / "model.safetensors"))
    values = json.loads((CHECKPOINT / "config.json").read_text())
    config = openlrm_to_mira_config(values, state, **OPTIONS)
    with pytest.raises(OpenLRMConversionError, match="extra.weight"):
        convert_openlrm_state({**state, "extra.weight": torch.zeros(1)}, config)
    without = dict(state)
    del without["transformer.layers.1.norm2.norm.bias"]
    with pytest.raises(OpenLRMConversionError, match="transformer.layers.1.norm2.norm.bias"):
        convert_openlrm_state(without, config)

    # The same failures through the command line: one message, exit status 1, nothing written.
    source = copy_checkpoint(tmp_path)
    save_file({**state, "extra.weight": torch.zeros(1)}, str(source / "model.safetensors"))
    out = tmp_path / "out"
    assert main([str(source), str(out), "--source_size", "56", "--encoder_num_heads", "2"]) == 1
    assert not out.exists()
    source = copy_checkpoint(tmp_path / "b")
    (source / "config.json").write_text(json.dumps({**values, "encoder_feat_dim": 64}))
    assert main([str(source), str(out), "--source_size", "56", "--encoder_num_heads", "2"]) == 1
    assert not out.exists()
    source = copy_checkpoint(tmp_path / "c")
    (source / "config.json").write_text(json.dumps({**values, "transformer_layers": 3}))
    with pytest.raises(CheckpointConfigMismatchError, match="transformer.layers.2"):
        load_model(str(source), openlrm_options=OPTIONS)


def test_bad_checkpoints_give_one_clear_error_and_write_nothing(tmp_path, capsys):
    from mira.convert import main

    out = tmp_path / "out"
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(WeightsNotFoundError, match="no known checkpoint"):
        load_model(str(unknown))
    truncated = copy_checkpoint(tmp_path)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(InferenceError, match="truncated"):
        load_model(str(truncated), openlrm_options=OPTIONS)
    # A test-size model needs its source size (no published size to take it from).
    with pytest.raises(CheckpointConfigMismatchError, match="--source_size"):
        load_model(str(CHECKPOINT))
    for source in (unknown, truncated):
        assert main([str(source), str(out)]) == 1
        assert not out.exists()
    errors = capsys.readouterr().err
    assert "no known checkpoint" in errors and "truncated" in errors and "Traceback" not in errors


def test_hub_ids_load_from_the_cache_offline_and_fail_clearly_without_it(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_cache(tmp_path / "hub", "someone/openlrm-tiny", CHECKPOINT)
    model = load_model("someone/openlrm-tiny", openlrm_options=OPTIONS)
    reference = load_model(str(CHECKPOINT), openlrm_options=OPTIONS)
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=name)
    with pytest.raises(WeightsNotFoundError, match="hf download someone/not-cached"):
        load_model("someone/not-cached")

    from mira.convert import main

    assert main(["someone/not-cached", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_fixed_focal_source_view_contract():
    """OpenLRM's contract: the model is told focal 0.75 at distance 2.0 on -Y; a view with a camera is
    cropped so that its framed focal is 0.75 (the told camera is the true one)."""
    from mira.cameras import look_at, opencv_to_opengl
    from mira.config import MiraConfig
    from mira.data.source_view import SourceFraming, prepare_source_view

    config = MiraConfig.from_dict({"source_size": 32, "source_camera_azimuth_deg": -90.0, "source_model_focal": 0.75,
                                   "source_distance_per_focal": 2.0 / 0.75})
    framing = SourceFraming.from_config(config)
    rgba = torch.zeros(1, 4, 64, 64)
    rgba[:, :, 20:44, 24:40] = 1.0
    photo = prepare_source_view(rgba, framing, [1.0, 1.0, 1.0])
    torch.testing.assert_close(photo.intrinsics, torch.tensor([[0.75, 0.75, 0.5, 0.5]]))
    expected_gl = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -2], [0, 1, 0, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(opencv_to_opengl(photo.c2w[0]), expected_gl, atol=1e-6, rtol=0)
    c2w = look_at(torch.tensor([[3.0, 1.0, 0.5]]))
    view = prepare_source_view(rgba, framing, [1.0, 1.0, 1.0], torch.tensor([[1.2, 1.2, 0.5, 0.5]]), c2w)
    torch.testing.assert_close(view.intrinsics[:, :2], torch.tensor([[0.75, 0.75]]))
    moved = view.world_to_canonical[0] @ c2w[0]  # the source camera lands on the canonical pose
    torch.testing.assert_close(moved[:3, 3], torch.tensor([0.0, -2.0, 0.0]), atol=1e-5, rtol=0)
    assert math.isclose(float(view.c2w[0, :3, 3].norm()), 2.0, rel_tol=1e-6)


def test_test_py_reconstructs_with_a_converted_checkpoint(converted, tmp_path):
    from mira.inference.cli import main

    image = write_rgba_image(tmp_path / "object.png")
    out = tmp_path / "out"
    code = main(["--checkpoint_path", str(converted), "--input", str(image), "--output_path", str(out),
                 "--export_video", "--export_mesh", "--density_threshold", "0.3", "--num_frames", "3",
                 "--render_size", "16", "--mesh_resolution", "16", "--no_progress"])
    assert code == 0
    result = json.loads((out / "object" / "result.json").read_text())
    assert result["preprocessing"]["source_intrinsics"] == [0.75, 0.75, 0.5, 0.5]
    assert np.allclose(result["preprocessing"]["source_c2w"][1][3], -2.0)  # OpenLRM's camera on -Y
    assert (out / "object" / "video.mp4").is_file() and (out / "object" / "mesh.ply").is_file()


def test_fine_tuning_a_converted_checkpoint_lowers_the_loss(converted, tmp_path):
    """--init_from: the checkpoint's architecture, field and source-view contract, the data built under
    that contract (56 px sources, focal 0.75 at distance 2), and a few CPU steps lower the loss."""
    from mira.training.cli import parse_args
    from mira.training.trainer import Trainer

    overrides = tiny_config(tmp_path).to_flat_dict()
    overrides.update(synthetic_objects=1, max_steps=12, render_size=16, patch_size=0, supervision_k=2, lpips_weight=0.0,
                     mask_loss_weight=0.0, learning_rate=1e-3, warmup_steps=1, val_every_steps=0,
                     checkpoint_every_steps=0, log_every_steps=1, fixed_source_view=True)
    config_path = tmp_path / "finetune.json"
    config_path.write_text(json.dumps(overrides))
    config, _ = parse_args(["--config_path", str(config_path), "--init_from", str(converted)])
    trainer = Trainer(config)
    assert trainer.config.renderer.ray_marching == "eg3d" and trainer.config.model.source_size == 56
    assert trainer.config.data.source_model_focal == 0.75  # the checkpoint's source-view contract
    sample = trainer.train_dataset[0]
    assert sample["source_image"].shape[-1] == 56
    torch.testing.assert_close(sample["source_intrinsics"][:2], torch.tensor([0.75, 0.75]))
    result = trainer.fit()
    losses = np.array(result.losses)
    assert np.isfinite(losses).all() and losses[-3:].mean() < 0.8 * losses[:3].mean(), losses
    print(f"fine-tuning loss (mean of 3 steps) {losses[:3].mean():.4f} -> {losses[-3:].mean():.4f}")


def test_evaluate_runs_on_a_converted_checkpoint(converted, tmp_path):
    from helpers_evaluation import write_sphere_dataset
    from mira.evaluate import main

    data = write_sphere_dataset(tmp_path / "data", num_val=1, num_views=3, size=24)
    summary = main(["--checkpoint", str(converted), "--data", str(data), "--out", str(tmp_path / "eval"),
                    "--device", "cpu", "--lpips_backbone", "random", "--lpips_net", "alex", "--mesh_resolution", "16",
                    "--geometry_samples", "500", "--density_threshold", "0.3", "--quiet"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary is not None and metrics


def test_the_checkpoints_mesh_grid_is_test_pys_gpu_default(converted):
    """OpenLRM's 384^3 mesh grid comes with the checkpoint: the GPU default unless --mesh_resolution is given;
    the CPU keeps its 128."""
    from mira.inference import pipeline as module

    config = load_model(str(converted)).config
    assert config.renderer.mesh_grid_resolution == 384
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert module.checkpoint_mesh_resolution(False, config, gpu) == 384
    assert module.checkpoint_mesh_resolution(True, config, gpu) is None  # the flag wins
    assert module.checkpoint_mesh_resolution(False, config, cpu) is None
    runner = module.InferencePipeline(module.InferenceSettings(checkpoint_path=str(converted), inputs=["unused.png"],
                                                               device="cpu"))
    runner.load()
    assert runner.settings.mesh_resolution == module.CPU_DEFAULTS["mesh_resolution"]


def test_published_configs_become_the_documented_mira_configs():
    """openlrm-*-small-1.1's config.json and weight shapes (meta tensors: no memory) -> the MIRA config of
    docs/PRETRAINED.md; a published encoder name whose weights have another shape is refused."""
    from mira.pretrained.openlrm import openlrm_to_mira_config

    values = dict(camera_embed_dim=1024, rendering_samples_per_ray=96, transformer_dim=512, transformer_layers=12,
                  transformer_heads=8, triplane_low_res=32, triplane_high_res=64, triplane_dim=32, encoder_type="dinov2",
                  encoder_model_name="dinov2_vits14_reg", encoder_feat_dim=384, encoder_freeze=False)
    width = 384
    state = {"encoder.model.cls_token": (1, 1, width), "encoder.model.pos_embed": (1, 1 + 37 * 37, width),
             "encoder.model.register_tokens": (1, 4, width), "encoder.model.patch_embed.proj.weight": (width, 3, 14, 14)}
    state.update({f"encoder.model.blocks.{i}.mlp.fc1.weight": (4 * width, width) for i in range(12)})
    state = {key: torch.empty(shape, device="meta") for key, shape in state.items()}
    config = openlrm_to_mira_config(values, state, source="openlrm-mix-small-1.1")
    model, renderer = config.model, config.renderer
    assert (model.source_size, model.decoder_hidden_dim, model.num_layers, model.num_heads, model.triplane_dim) == (
        224, 512, 12, 8, 32)
    assert model.encoder_config["num_attention_heads"] == 6 and model.encoder_config["image_size"] == 518
    assert (renderer.rendering_samples_per_ray, renderer.importance_samples_per_ray) == (48, 48)
    assert renderer.mesh_density_threshold == 3.0 and renderer.mesh_grid_resolution == 384
    assert config.data.source_model_focal == 0.75 and config.data.source_distance_per_focal * 0.75 == pytest.approx(2.0)
    with pytest.raises(OpenLRMConversionError, match="does not match the weights"):
        openlrm_to_mira_config({**values, "encoder_model_name": "dinov2_vitb14_reg"}, state)


@pytest.mark.parametrize("size, parameters", [("small", 111_354_084), ("base", 260_146_676), ("large", 452_039_700)])
def test_published_sizes_have_the_documented_parameter_counts(size, parameters):
    """OpenLRM's model-card sizes minus the folded LayerNorm affines (docs/PRETRAINED.md), built weightless."""
    from mira.models import MIRA
    from mira.pretrained.openlrm import published_openlrm_config

    with torch.device("meta"):
        model = MIRA(published_openlrm_config(size))
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_an_incomplete_openlrm_config_names_its_missing_keys(tmp_path):
    source = copy_checkpoint(tmp_path)
    values = json.loads((source / "config.json").read_text())
    del values["camera_embed_dim"]
    (source / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointConfigMismatchError, match="missing keys: \\['camera_embed_dim'\\]"):
        load_model(str(source), openlrm_options=OPTIONS)
