"""The typed configuration: shipped configs load, bad keys/types fail naming key and file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mira.config import ConfigError, MiraConfig, load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = ("config.json", "mira-base.json", "tiny.json")

# The flat keys existing MIRA users have in their configs (issue 2).
LEGACY_FLAT_KEYS = (
    "camera_matrix_dim camera_embed_dim decoder_hidden_dim num_layers num_heads weight_decay learning_rate "
    "batch_size triplane_feat_res triplane_res triplane_dim rendering_samples_per_ray render_size source_size "
    "lpips_net num_epochs save_every_epoch focal_length principal_point supervision_k model_preloading_strategy "
    "model_save_path data_dir"
).split()


def write_json(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIG_DIR / name)
    assert config.model.triplane_res == 2 * config.model.triplane_feat_res
    assert config.model.camera_matrix_dim == 20


def test_config_json_uses_every_legacy_flat_key() -> None:
    values = json.loads((CONFIG_DIR / "config.json").read_text())
    assert set(LEGACY_FLAT_KEYS) <= set(values)
    assert load_config(CONFIG_DIR / "config.json").model.encoder_model_id == "facebook/dinov2-base"


def test_mira_base_is_lrm_base_scale() -> None:
    model = load_config(CONFIG_DIR / "mira-base.json").model
    assert model.encoder_model_id == "facebook/dinov2-base"
    assert model.num_layers >= 12 and 768 <= model.decoder_hidden_dim <= 1024
    assert (model.triplane_feat_res, model.triplane_res) == (32, 64)


def test_tiny_uses_a_random_weight_encoder() -> None:
    config = load_config(CONFIG_DIR / "tiny.json")
    assert config.model.encoder_config is not None and config.model.encoder_config["hidden_size"] > 0


def test_unknown_flat_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "bad.json", {"num_layers": 2, "num_layerz": 3})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "num_layerz" in str(error.value) and str(path) in str(error.value)


def test_unknown_nested_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "bad_nested.json", {"model": {"hidden": 3}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "model.hidden" in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize(
    "key, value",
    [("num_layers", "12"), ("num_layers", 2.5), ("num_layers", True), ("learning_rate", "fast"),
     ("principal_point", 0.5), ("gradient_checkpointing", 1), ("encoder_config", [1, 2])],
)
def test_wrong_type_names_key_and_file(tmp_path: Path, key: str, value: object) -> None:
    path = write_json(tmp_path / "wrong_type.json", {key: value})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value) and str(path) in str(error.value)


def test_inconsistent_values_are_rejected(tmp_path: Path) -> None:
    path = write_json(tmp_path / "inconsistent.json", {"triplane_feat_res": 16, "triplane_res": 64})
    with pytest.raises(ConfigError, match="triplane_res"):
        load_config(path)


def test_invalid_json_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        load_config(broken)
    with pytest.raises(ConfigError, match="missing.json"):
        load_config(tmp_path / "missing.json")


def test_flat_and_nested_json_are_equivalent(tmp_path: Path) -> None:
    flat = {"num_layers": 3, "learning_rate": 1e-3, "box_min": [-2, -2, -2], "render_size": 48}
    nested = {"model": {"num_layers": 3}, "train": {"learning_rate": 1e-3},
              "renderer": {"box_min": [-2, -2, -2]}, "data": {"render_size": 48}}
    a = load_config(write_json(tmp_path / "flat.json", flat))
    b = load_config(write_json(tmp_path / "nested.json", nested))
    assert a == b
    assert a.renderer.box_min == [-2.0, -2.0, -2.0] and isinstance(a.renderer.box_min[0], float)


def test_override_sets_values_and_checks_them() -> None:
    config = load_config(CONFIG_DIR / "tiny.json", num_layers=5, learning_rate=0.5)
    assert config.model.num_layers == 5 and config.train.learning_rate == 0.5
    with pytest.raises(ConfigError, match="no_such_key"):
        load_config(CONFIG_DIR / "tiny.json", no_such_key=1)
    with pytest.raises(ConfigError, match="num_heads"):
        load_config(CONFIG_DIR / "tiny.json", num_heads=5)  # must divide decoder_hidden_dim = 32


def test_save_json_round_trip(tmp_path: Path) -> None:
    config = load_config(CONFIG_DIR / "tiny.json", num_layers=4)
    config.save_json(tmp_path / "saved.json")
    assert MiraConfig.from_json(tmp_path / "saved.json") == config


def test_project_planes_mode_is_checked(tmp_path: Path) -> None:
    path = write_json(tmp_path / "projection.json", {"project_planes": "sometimes"})
    with pytest.raises(ConfigError, match="project_planes"):
        load_config(path)
