"""TripoSR (stabilityai/TripoSR) in MIRA: equal to TripoSR's own outputs, converted strictly from its
published layout (config.yaml + model.ckpt), loaded from any place, fine-tuned. The fixture
(tests/fixtures/triposr-tiny, written by tests/fixtures/make_triposr_fixture.sh) holds a tiny TripoSR
configuration with random weights and what TripoSR's code computed with them; no reference code runs here."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers_inference import fake_hub_cache, write_rgba_image
from helpers_training import tiny_config
from mira.checkpoints import checkpoint_format, load_model
from mira.config import MiraConfig
from mira.errors import CheckpointConfigMismatchError, WeightsNotFoundError
from mira.pretrained.triposr import (TripoSRConversionError, convert_triposr_state, load_triposr_weights,
                                     read_triposr_config, triposr_to_mira_config, vit_config_for)
from mira.pretrained.verify import ReferenceRun, verify

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "triposr-tiny"
CHECKPOINT = FIXTURE / "checkpoint"
POOLER = ("image_tokenizer.model.pooler.dense.weight", "image_tokenizer.model.pooler.dense.bias")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The fixture converted once with ``python -m mira.convert``."""
    from mira.convert import main

    target = tmp_path_factory.mktemp("converted") / "triposr-tiny"
    assert main([str(CHECKPOINT), str(target)]) == 0
    return target


def copy_checkpoint(tmp_path: Path) -> Path:
    target = tmp_path / "triposr"
    shutil.copytree(CHECKPOINT, target)
    return target


def test_fixture_is_small_and_complete():
    total = sum(path.stat().st_size for path in FIXTURE.rglob("*") if path.is_file())
    assert total <= 1_000_000
    assert {p.name for p in CHECKPOINT.iterdir()} == {"config.yaml", "model.ckpt", "dino_vit_config.json"}
    assert checkpoint_format(CHECKPOINT) == "triposr"
    assert json.loads((FIXTURE / "meta.json").read_text())["vit_interp"] == "legacy"  # transformers 4.35's


def test_tiny_checkpoint_reproduces_triposr():
    """Encoder tokens, backbone output, triplanes, field at grid points, rendered pixels, rays and the mesh
    equal TripoSR's to 1e-4 of their scale (measured: densities bit-identical, everything <= 1.5e-7)."""
    report = verify(ReferenceRun.load(FIXTURE))
    failures = [c for c in report["comparisons"] if not c["passed"]]
    assert not failures, failures
    names = {c["name"] for c in report["comparisons"]}
    assert {"encoder_tokens", "decoder_tokens", "triplanes", "density_grid", "grid_rgb", "render_rgb",
            "ray_directions"} <= names
    assert max(c["max_abs_error"] for c in report["comparisons"]) < 1e-5
    mesh = report["mesh"]
    assert mesh["passed"] and mesh["missing_faces"] == 0 and mesh["reference_faces"] > 1000
    # The only parameters not carried over: the ViT pooler, which TripoSR never uses.
    pooler = sum(t.numel() for name, t in load_triposr_weights(CHECKPOINT / "model.ckpt").items() if name in POOLER)
    assert report["num_parameters"] == report["reference_num_parameters"] - pooler


def test_a_model_without_camera_input_has_no_camera_weights():
    model = load_model(str(CHECKPOINT))
    assert model.camera_embedder is None
    names = list(model.state_dict())
    assert not [n for n in names if "camera" in n or "modulation" in n]
    assert not [n for n in names if "pooler" in n]
    with torch.no_grad():  # the source camera does not matter
        image = torch.rand(1, 3, 64, 64)
        a = model.forward_triplanes(image, torch.eye(4)[None], torch.tensor([[1.0, 1.0, 0.5, 0.5]]))
        b = model.forward_triplanes(image, 2 * torch.eye(4)[None], torch.tensor([[2.0, 2.0, 0.4, 0.5]]))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_the_legacy_position_interpolation_is_needed():
    """With the installed transformers' interpolation (target_size) the encoder tokens move by more than the
    tolerance: the scale_factor option is what makes MIRA equal to TripoSR's weights."""
    run = ReferenceRun.load(FIXTURE)
    model = load_model(str(CHECKPOINT))
    config = model.config
    assert config.model.encoder_position_interpolation == "scale_factor"
    config.model.encoder_position_interpolation = "target_size"
    from mira.models import MIRA

    other = MIRA(config)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        error = (other.encoder(run.tensor("image")) - run.tensor("encoder_tokens")).abs().max().item()
    assert error > 1e-3


def test_convert_writes_a_self_contained_mira_folder(converted):
    from mira.models import MIRA

    config = json.loads((converted / "config.json").read_text())
    model_section, renderer, data = config["model"], config["renderer"], config["data"]
    assert model_section["weights_license"] == "MIT" and model_section["encoder_architecture"] == "vit"
    assert (model_section["camera_conditioning"], model_section["decoder_block_order"],
            model_section["decoder_mlp_activation"], model_section["decoder_residual_projection"],
            model_section["decoder_final_norm"]) == (False, "self_cross_mlp", "geglu", True, False)
    assert (renderer["ray_marching"], renderer["density_activation"], renderer["importance_samples_per_ray"],
            renderer["box_max"]) == ("normalized_midpoint", "exp", 0, [0.87] * 3)
    assert data["source_background_color"] == [0.5] * 3
    run = ReferenceRun.load(FIXTURE)
    model = MIRA.from_pretrained(converted)
    with torch.no_grad():
        tokens = model.encoder(run.tensor("image"))
    torch.testing.assert_close(tokens, run.tensor("encoder_tokens"), atol=1e-5, rtol=0)
    direct = MIRA.from_pretrained(CHECKPOINT)  # a TripoSR folder, converted on the fly
    for (name, ours), theirs in zip(model.state_dict().items(), direct.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=name)


def test_published_config_has_triposrs_inference_defaults_and_size():
    """stabilityai/TripoSR as MIRA options: 512 px on grey 0.5, foreground 0.85, radius 0.87, 128 samples,
    mesh level 25 on a 256^3 grid; 419,275,628 parameters upstream minus the unused ViT pooler."""
    from mira.models import MIRA
    from mira.pretrained.triposr import published_triposr_config

    config = published_triposr_config()
    assert config.model.source_size == 512 and config.data.source_foreground_ratio == 0.85
    assert config.source_background() == [0.5, 0.5, 0.5] and config.renderer.background_color == [1.0, 1.0, 1.0]
    assert config.renderer.box_min == [-0.87] * 3 and config.renderer.rendering_samples_per_ray == 128
    assert config.renderer.mesh_density_threshold == 25.0 and config.renderer.mesh_grid_resolution == 256
    assert (config.model.triplane_dim, config.renderer.mlp_num_layers, config.renderer.field_activation) == (40, 10, "silu")
    with torch.device("meta"):
        model = MIRA(config)
    assert sum(p.numel() for p in model.parameters()) == 419_275_628 - (768 * 768 + 768)


def test_mira_defaults_are_unchanged():
    model, renderer, data = MiraConfig().model, MiraConfig().renderer, MiraConfig().data
    assert (model.encoder_architecture, model.camera_conditioning, model.decoder_block_order,
            model.decoder_mlp_activation, model.decoder_final_norm, model.decoder_residual_projection,
            model.attention_output_bias, model.block_norm_eps) == (
        "dinov2", True, "cross_self_mlp", "gelu_tanh", True, False, None, 1e-6)
    assert (renderer.ray_marching, renderer.density_activation, data.source_background_color) == ("mira", "softplus", None)


def test_licence_notice_is_printed_once(capsys, monkeypatch):
    import mira.checkpoints

    monkeypatch.setattr(mira.checkpoints, "_ANNOUNCED_LICENSES", set())
    load_model(str(CHECKPOINT))
    load_model(str(CHECKPOINT))
    assert capsys.readouterr().err.count("licensed MIT") == 1


def test_conversion_is_strict_about_leftover_and_missing_tensors(tmp_path):
    from mira.convert import main

    values = read_triposr_config(CHECKPOINT / "config.yaml")
    assert values["backbone"]["in_channels"] == 32  # ${tokenizer.num_channels} resolved
    state = load_triposr_weights(CHECKPOINT / "model.ckpt")
    config = triposr_to_mira_config(values, vit_config_for(values, state, CHECKPOINT, "fixture"))
    with pytest.raises(TripoSRConversionError, match="extra.weight"):
        convert_triposr_state({**state, "extra.weight": torch.zeros(1)}, config)
    without = dict(state)
    del without["backbone.transformer_blocks.1.attn2.to_v.weight"]
    with pytest.raises(TripoSRConversionError, match="attn2.to_v.weight"):
        convert_triposr_state(without, config)
    source = copy_checkpoint(tmp_path)
    torch.save({**state, "extra.weight": torch.zeros(1)}, source / "model.ckpt")
    out = tmp_path / "out"
    assert main([str(source), str(out)]) == 1 and not out.exists()
    (source / "config.yaml").write_text((CHECKPOINT / "config.yaml").read_text().replace("num_layers: 2", "num_layers: 3"))
    torch.save(state, source / "model.ckpt")
    with pytest.raises(CheckpointConfigMismatchError, match="transformer_blocks.2"):
        load_model(str(source))


def test_a_pickle_that_weights_only_refuses_is_one_clear_error(tmp_path, capsys):
    from mira.convert import main

    source = copy_checkpoint(tmp_path)
    state = load_triposr_weights(CHECKPOINT / "model.ckpt")
    torch.save({**state, "hparams": argparse.Namespace(lr=1)}, source / "model.ckpt")  # not a plain state dict
    with pytest.raises(CheckpointConfigMismatchError, match=r"weights_only=True"):
        load_model(str(source))
    truncated = copy_checkpoint(tmp_path / "b")
    data = (truncated / "model.ckpt").read_bytes()
    (truncated / "model.ckpt").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    for bad in (source, truncated):
        assert main([str(bad), str(out)]) == 1 and not out.exists()
    errors = capsys.readouterr().err
    assert errors.count("torch.load(weights_only=True) refused") == 2 and "Traceback" not in errors


def test_hub_ids_load_from_the_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_cache(tmp_path / "hub", "someone/triposr-tiny", CHECKPOINT)
    model = load_model("someone/triposr-tiny")
    reference = load_model(str(CHECKPOINT))
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=name)
    with pytest.raises(WeightsNotFoundError, match="hf download stabilityai/TripoSR"):
        load_model("stabilityai/TripoSR")


def test_test_py_reconstructs_with_a_triposr_checkpoint(tmp_path):
    """test.py on the TripoSR folder: its own defaults (input size, grey input background, mesh level)."""
    from mira.inference.cli import main

    image = write_rgba_image(tmp_path / "object.png")
    out = tmp_path / "out"
    code = main(["--checkpoint_path", str(CHECKPOINT), "--input", str(image), "--output_path", str(out),
                 "--export_mesh", "--density_threshold", "0.5", "--mesh_resolution", "16", "--no_progress"])
    assert code == 0
    assert (out / "object" / "mesh.ply").is_file()
    from PIL import Image

    fed = np.asarray(Image.open(out / "object" / "input.png"))
    assert fed.shape == (64, 64, 3) and tuple(fed[0, 0]) == (128, 128, 128)  # TripoSR's grey 0.5 input background
    result = json.loads((out / "object" / "result.json").read_text())
    np.testing.assert_allclose(result["preprocessing"]["source_intrinsics"][:2], [1.3737387] * 2, rtol=1e-6)  # fovy 40


def test_fine_tuning_a_converted_checkpoint_lowers_the_loss(converted, tmp_path):
    """--init_from a converted TripoSR checkpoint: its architecture and field, and a few CPU steps lower the loss."""
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
    assert trainer.config.renderer.ray_marching == "normalized_midpoint" and trainer.config.model.source_size == 64
    assert trainer.model.camera_embedder is None
    assert trainer.train_dataset[0]["source_image"].shape[-1] == 64
    result = trainer.fit()
    losses = np.array(result.losses)
    assert np.isfinite(losses).all() and losses[-3:].mean() < 0.8 * losses[:3].mean(), losses
    print(f"fine-tuning loss (mean of 3 steps) {losses[:3].mean():.4f} -> {losses[-3:].mean():.4f}")


def test_evaluate_runs_on_a_triposr_checkpoint(tmp_path):
    from helpers_evaluation import write_sphere_dataset
    from mira.evaluate import main

    data = write_sphere_dataset(tmp_path / "data", num_val=1, num_views=3, size=24)
    summary = main(["--checkpoint", str(CHECKPOINT), "--data", str(data), "--out", str(tmp_path / "eval"),
                    "--device", "cpu", "--lpips_backbone", "random", "--lpips_net", "alex", "--mesh_resolution", "16",
                    "--geometry_samples", "500", "--density_threshold", "0.3", "--quiet"])
    assert summary is not None and json.loads((tmp_path / "eval" / "metrics.json").read_text())


def test_normalized_midpoint_marching_and_its_options():
    """Step 1/S whatever the ray's world length; empty rays render the background; no importance samples;
    exp density; the options are validated."""
    from mira.config import ConfigError
    from mira.rendering import TriplaneRenderer

    config = MiraConfig.from_dict({"ray_marching": "normalized_midpoint", "importance_samples_per_ray": 0,
                                   "rendering_samples_per_ray": 8, "density_activation": "exp",
                                   "color_sigmoid_widening": 0.0, "box_min": [-0.5] * 3, "box_max": [0.5] * 3})
    renderer = TriplaneRenderer(config.renderer, triplane_dim=4)
    torch.nn.init.zeros_(renderer.field.output_layer.weight)
    torch.nn.init.zeros_(renderer.field.output_layer.bias)  # density exp(0 - 1) everywhere, colour 0.5
    triplanes = torch.randn(1, 3, 4, 8, 8)
    origins = torch.tensor([[[-2.0, 0.0, 0.0], [-2.0, 0.3, 0.3], [-2.0, 2.0, 0.0]]])
    directions = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    with torch.no_grad():
        out = renderer(triplanes, origins, directions)
    expected = 1 - np.exp(-np.exp(-1.0))  # sum of the 8 steps of 1/8: optical depth exp(-1), any length
    np.testing.assert_allclose(out["opacity"][0, :2, 0].numpy(), expected, rtol=1e-5)
    assert out["opacity"][0, 2, 0] == 0 and torch.equal(out["rgb"][0, 2], torch.ones(3))  # misses the box
    near, far = 2 - 0.4995, 2 + 0.4995  # the box shrunk by 0.1 %
    t = near + (np.arange(8) + 0.5) / 8 * (far - near)  # bin midpoints
    alpha = 1 - np.exp(-np.exp(-1.0) / 8)
    weights = alpha * (1 - alpha) ** np.arange(8)
    np.testing.assert_allclose(out["depth"][0, 0, 0].item(), (weights * t).sum() / weights.sum(), rtol=1e-5)
    with pytest.raises(ConfigError, match="importance_samples_per_ray"):
        MiraConfig.from_dict({"ray_marching": "normalized_midpoint"})
    for key, value in (("density_activation", "relu"), ("decoder_block_order", "mlp_first"),
                       ("encoder_position_interpolation", "scale_factor")):
        with pytest.raises(ConfigError, match=key):
            MiraConfig.from_dict({key: value})


def test_configs_it_cannot_express_and_incomplete_folders_are_one_clear_error(tmp_path):
    source = copy_checkpoint(tmp_path)
    text = (CHECKPOINT / "config.yaml").read_text()
    for old, new, message in (("activation: silu", "activation: tanh", "field_activation"),
                              ("density_activation: exp", "density_activation: trunc_exp", "density_activation"),
                              ("num_attention_heads: 2", "num_attention_heads: 2\n  attention_bias: true",
                               "attention_bias"),
                              ("plane_size: 4", "plane_size: 5", "tokenizer.embeddings|decoder.tokens|shape")):
        (source / "config.yaml").write_text(text.replace(old, new))
        with pytest.raises(CheckpointConfigMismatchError, match=message):
            load_model(str(source))
    (source / "config.yaml").write_text(text.replace("${tokenizer.num_channels}", "${tokenizer.channels}"))
    with pytest.raises(CheckpointConfigMismatchError, match="unresolved reference"):
        load_model(str(source))
    (source / "config.yaml").write_text(text.replace("decoder_cls", "no_decoder_cls"))
    with pytest.raises(CheckpointConfigMismatchError, match="decoder_cls"):
        load_model(str(source))
    (source / "model.ckpt").unlink()  # config.yaml alone is no checkpoint
    with pytest.raises(WeightsNotFoundError, match="config.yaml \\+ model.ckpt"):
        load_model(str(source))


def test_validation_sources_are_on_triposrs_grey_and_targets_on_white():
    """Without random backgrounds (validation), source images follow the checkpoint's contract (grey 0.5) and
    the targets the renderer's background (white), as TripoSR's inference does; MIRA's own configs keep one colour."""
    from mira.training.synthetic_scenes import SyntheticSceneDataset

    config = load_model(str(CHECKPOINT)).config
    config.update({"render_size": 16, "supervision_k": 1})
    sample = SyntheticSceneDataset(config, split="val", num_objects=1)[0]
    torch.testing.assert_close(sample["source_image"][:, 0, 0], torch.full((3,), 0.5))
    torch.testing.assert_close(sample["target_images"][0, :, 0, 0], torch.ones(3))
    own = MiraConfig.from_dict({"render_size": 16, "supervision_k": 1, "source_size": 28})
    assert own.source_background() == own.renderer.background_color


def test_contiguous_attention_of_a_vit_encoder_changes_nothing_but_the_layout():
    """test.py --compile feeds a ViT encoder's attention contiguous tensors (inductor otherwise ran it as fp32
    math); the triplanes stay the same, and DINOv2 encoders are left alone."""
    from mira.inference.compiled import compiles_vit_attention_contiguous, feed_attention_contiguous
    from mira.models import MIRA

    model = load_model(str(CHECKPOINT))
    assert compiles_vit_attention_contiguous(model)
    assert not compiles_vit_attention_contiguous(MIRA(tiny_config(Path("unused"))))
    image = torch.rand(1, 3, 64, 64)
    camera = (torch.eye(4)[None], torch.tensor([[1.0, 1.0, 0.5, 0.5]]))
    with torch.no_grad():
        before = model.forward_triplanes(image, *camera)
        feed_attention_contiguous(model.encoder.backbone)
        after = model.forward_triplanes(image, *camera)
    assert model.encoder.backbone.config._attn_implementation == "mira_contiguous_sdpa"
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)
