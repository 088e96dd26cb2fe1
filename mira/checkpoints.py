"""Load a MIRA model for inference from any checkpoint users have.

``--checkpoint_path`` may be:

* a directory written by :meth:`mira.models.MIRA.save_pretrained` (``model.safetensors`` +
  ``config.json``);
* a training checkpoint file (``checkpoint-<step>.pt``, written by ``mira.training``), read with
  ``torch.load(weights_only=True)``; or a training output directory (``model_save_path``):
  its ``final/`` export if training finished, else its latest ``checkpoint-<step>.pt``;
* a bare ``.safetensors`` weight file (its config from a ``config.json`` beside it or
  ``--config_path``);
* a Hugging Face hub id of a ``save_pretrained`` checkpoint.

``--config_path`` is optional when the checkpoint carries its config. When both are given,
their architectures (every key that changes the weights or the field they encode) must agree,
else :class:`CheckpointConfigMismatchError`; the other keys (samples per ray, chunk sizes ...)
are taken from ``--config_path``.
"""

from __future__ import annotations

import copy
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file
from torch import Tensor

from mira.config import ConfigError, MiraConfig
from mira.inference.errors import CheckpointConfigMismatchError, InferenceError, WeightsNotFoundError

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# The model shipped with MIRA (docs/TRAINING.md): test.py's default --checkpoint_path.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "mira-demo"
# mira.training writes <model_save_path>/checkpoint-<step:08d>.pt and, at the end, a
# save_pretrained export in <model_save_path>/final/ (tests check these names against it).
TRAINING_CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)\.pt$")
FINAL_EXPORT_DIR = "final"
TORCH_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Where a training checkpoint dict may keep the model weights, in order of preference.
STATE_DICT_KEYS = ("model", "model_state_dict", "state_dict")
# Prefixes added by DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Model keys that only matter for training (not the architecture).
TRAINING_ONLY_MODEL_KEYS = ("encoder_model_id", "encoder_config", "encoder_trainable_blocks", "gradient_checkpointing")
# Renderer keys that define the field the weights encode (the rest are sampling settings).
FIELD_RENDERER_KEYS = (
    "box_min", "box_max", "background_color", "triplane_aggregation", "mlp_hidden_dim", "mlp_num_layers",
    "density_bias", "color_sigmoid_widening", "mesh_density_threshold",
)
# Dinov2Config keys that define the encoder network.
ENCODER_ARCHITECTURE_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "hidden_act", "layer_norm_eps",
    "image_size", "patch_size", "num_channels", "qkv_bias", "layerscale_value", "use_swiglu_ffn", "apply_layernorm",
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class CheckpointContents:
    """What a checkpoint holds: its weights, its config (if any) and where they came from."""

    state: dict[str, Tensor]
    config: MiraConfig | None
    kind: str  # "save_pretrained", "training", "safetensors" or "hub"
    source: str


# ---------------------------------------------------------------------- reading
def read_checkpoint(checkpoint_path: str) -> CheckpointContents:
    """Weights and (when present) config of any checkpoint kind (see the module docstring).

    Raises:
        WeightsNotFoundError: nothing usable at ``checkpoint_path``.
        InferenceError: the file is not a MIRA checkpoint.
    """
    path = Path(checkpoint_path).expanduser()
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return _read_safetensors(path / WEIGHTS_NAME, kind="save_pretrained")
        if (path / FINAL_EXPORT_DIR / WEIGHTS_NAME).is_file():
            log.info("using the final export of the training run in %s", path)
            return _read_safetensors(path / FINAL_EXPORT_DIR / WEIGHTS_NAME, kind="save_pretrained")
        training_files = sorted(
            (int(match.group(1)), child)
            for child in path.iterdir()
            if (match := TRAINING_CHECKPOINT_PATTERN.match(child.name))
        )
        if training_files:
            latest = training_files[-1][1]
            log.info("using the latest training checkpoint in %s: %s", path, latest.name)
            return _read_torch_checkpoint(latest)
        raise WeightsNotFoundError(
            f"{path}: no MIRA checkpoint in this directory (expected {WEIGHTS_NAME} + {CONFIG_NAME} from "
            f"save_pretrained, a '{FINAL_EXPORT_DIR}/' export or training checkpoints checkpoint-<step>.pt)"
        )
    if path.is_file():
        if path.suffix == ".safetensors":
            return _read_safetensors(path, kind="safetensors")
        return _read_torch_checkpoint(path)
    if _HUB_ID.match(checkpoint_path) and path.suffix not in (*TORCH_CHECKPOINT_SUFFIXES, ".safetensors"):
        return _read_hub_checkpoint(checkpoint_path)
    raise WeightsNotFoundError(
        f"{checkpoint_path}: checkpoint not found (not a file, a directory or a hub id 'owner/name'); "
        "check --checkpoint_path"
    )


def _read_safetensors(weights: Path, kind: str) -> CheckpointContents:
    """A safetensors file and the ``config.json`` beside it (if any)."""
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise InferenceError(f"{weights}: not a readable safetensors file ({error})") from error
    config_file = weights.parent / CONFIG_NAME
    config = MiraConfig.from_json(config_file) if config_file.is_file() else None
    return CheckpointContents(state=state, config=config, kind=kind, source=str(weights))


def _read_torch_checkpoint(path: Path) -> CheckpointContents:
    """A ``torch.save`` checkpoint, loaded with ``weights_only=True`` (no arbitrary code)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle / zip errors, or a non-weights object refused by weights_only
        raise InferenceError(
            f"{path}: not a readable PyTorch checkpoint with weights_only=True ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(payload, Mapping):
        raise InferenceError(f"{path}: expected a dict checkpoint, got {type(payload).__name__}")
    state = _find_state_dict(payload, path)
    config = None
    if isinstance(payload.get("config"), Mapping):
        config = MiraConfig.from_dict(payload["config"], source=f"{path} (its 'config' entry)")
    elif (path.parent / CONFIG_NAME).is_file():
        config = MiraConfig.from_json(path.parent / CONFIG_NAME)
    return CheckpointContents(state=state, config=config, kind="training", source=str(path))


def _find_state_dict(payload: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """The model state dict inside a checkpoint dict, wrapper prefixes removed."""
    state: Mapping[str, Any] | None = None
    for key in STATE_DICT_KEYS:
        if isinstance(payload.get(key), Mapping):
            state = payload[key]
            break
    if state is None and payload and all(isinstance(value, Tensor) for value in payload.values()):
        state = payload  # a bare state dict
    if state is None:
        raise InferenceError(
            f"{path}: no model weights found (looked for a state dict under {STATE_DICT_KEYS}, or a bare state dict); "
            f"top-level keys: {sorted(payload)[:10]}"
        )
    cleaned = {}
    for name, tensor in state.items():
        for prefix in WRAPPER_PREFIXES:
            while name.startswith(prefix):
                name = name[len(prefix):]
        cleaned[name] = tensor
    return cleaned


def _read_hub_checkpoint(hub_id: str) -> CheckpointContents:
    """Download (or read from the cache) a ``save_pretrained`` checkpoint on the Hugging Face hub."""
    from mira.models.mira import CheckpointNotFoundError, resolve_checkpoint_dir

    try:
        directory = resolve_checkpoint_dir(hub_id)
    except CheckpointNotFoundError as error:
        raise WeightsNotFoundError(str(error)) from error
    contents = _read_safetensors(directory / WEIGHTS_NAME, kind="hub")
    contents.source = hub_id
    return contents


# ---------------------------------------------------------------------- configs
def architecture_differences(checkpoint: MiraConfig, requested: MiraConfig) -> list[str]:
    """Human-readable ``key: checkpoint value vs config value`` for every architecture key that differs."""
    differences = []
    for key, value in vars(checkpoint.model).items():
        if key not in TRAINING_ONLY_MODEL_KEYS and getattr(requested.model, key) != value:
            differences.append(f"{key}: checkpoint {value!r} vs config {getattr(requested.model, key)!r}")
    for key in FIELD_RENDERER_KEYS:
        ours, theirs = getattr(checkpoint.renderer, key), getattr(requested.renderer, key)
        if ours != theirs:
            differences.append(f"{key}: checkpoint {ours!r} vs config {theirs!r}")
    differences.extend(_encoder_differences(checkpoint.model, requested.model))
    return differences


def _encoder_differences(checkpoint: Any, requested: Any) -> list[str]:
    """Differences between the DINOv2 architectures two model sections describe."""
    if requested.encoder_config is None:  # the config names a pretrained encoder by id
        if checkpoint.encoder_model_id != requested.encoder_model_id:
            return [f"encoder_model_id: checkpoint {checkpoint.encoder_model_id!r} vs config {requested.encoder_model_id!r}"]
        return []
    if checkpoint.encoder_config is None:
        return []
    ours, theirs = _dinov2_architecture(checkpoint.encoder_config), _dinov2_architecture(requested.encoder_config)
    return [
        f"encoder_config.{key}: checkpoint {ours[key]!r} vs config {theirs[key]!r}"
        for key in ENCODER_ARCHITECTURE_KEYS
        if ours.get(key) != theirs.get(key)
    ]


def _dinov2_architecture(values: Mapping[str, Any]) -> dict[str, Any]:
    """A Dinov2Config dict with defaults filled in, so partial dicts compare fairly."""
    from transformers import Dinov2Config

    return Dinov2Config.from_dict(dict(values)).to_dict()


def merge_configs(checkpoint: MiraConfig, requested: MiraConfig) -> MiraConfig:
    """``requested`` with the checkpoint's model section and field-defining renderer keys."""
    merged = copy.deepcopy(requested)
    merged.model = copy.deepcopy(checkpoint.model)
    for key in FIELD_RENDERER_KEYS:
        setattr(merged.renderer, key, copy.deepcopy(getattr(checkpoint.renderer, key)))
    return merged


def _fill_encoder_config(config: MiraConfig, source: str) -> None:
    """Set ``encoder_config`` from the encoder's hub ``config.json`` (no weights) when it is missing.

    The checkpoint holds every encoder weight, so only the architecture is needed.
    """
    if config.model.encoder_config is not None:
        return
    from transformers import Dinov2Config

    from mira.models.encoder import dinov2_config_dict

    try:
        config.model.encoder_config = dinov2_config_dict(Dinov2Config.from_pretrained(config.model.encoder_model_id))
    except (OSError, ValueError) as error:
        raise WeightsNotFoundError(
            f"{source}: the config has no encoder_config and the architecture of encoder_model_id "
            f"'{config.model.encoder_model_id}' could not be read (offline?). Fix: use a checkpoint written by "
            "save_pretrained (its config.json is complete), or add encoder_config to --config_path."
        ) from error


# ---------------------------------------------------------------------- model
def resolve_config(contents: CheckpointContents, config_path: str | None) -> MiraConfig:
    """The config to build the model with (see the module docstring).

    Raises:
        CheckpointConfigMismatchError: the checkpoint's config and ``config_path`` disagree.
        InferenceError: neither provides a config.
    """
    requested = MiraConfig.from_json(config_path) if config_path else None
    if contents.config is None and requested is None:
        raise InferenceError(
            f"{contents.source}: the checkpoint carries no config; pass the config it was trained with as --config_path"
        )
    if contents.config is None:
        config = requested
    elif requested is None:
        config = contents.config
    else:
        differences = architecture_differences(contents.config, requested)
        if differences:
            raise CheckpointConfigMismatchError(
                f"checkpoint does not match the config: {contents.source} was trained with a different "
                f"architecture than {config_path}:\n  " + "\n  ".join(differences)
                + "\nFix: pass the config the checkpoint was trained with, or omit --config_path "
                "(the checkpoint carries its own config)."
            )
        config = merge_configs(contents.config, requested)
    _fill_encoder_config(config, contents.source)
    return config


def load_model(checkpoint_path: str, config_path: str | None = None, device: str | torch.device = "cpu"):
    """A :class:`mira.models.MIRA` in eval mode on ``device``, from any checkpoint kind.

    Raises:
        WeightsNotFoundError, InferenceError, CheckpointConfigMismatchError: see above;
        mira.config.ConfigError: an invalid config file.
    """
    from mira.models import MIRA
    from mira.models.mira import CheckpointMismatchError

    if config_path is not None and not Path(config_path).is_file():
        raise ConfigError(f"config file not found: {config_path} (check --config_path)")
    contents = read_checkpoint(checkpoint_path)
    config = resolve_config(contents, config_path)
    device = torch.device(device)
    # Check keys and shapes on a weightless (meta) copy first: a mismatch is reported at once,
    # without the seconds a large random initialisation takes on a CPU.
    with torch.device("meta"):
        skeleton = MIRA(config)
    try:
        with warnings.catch_warnings():  # "copying into a meta parameter is a no-op": intended here
            warnings.simplefilter("ignore", UserWarning)
            skeleton.load_checkpoint_state(contents.state, source=contents.source)
    except CheckpointMismatchError as error:
        against = f" and {config_path}" if config_path else ""
        raise CheckpointConfigMismatchError(f"{error}\n(checkpoint {contents.source}{against})") from error
    with torch.device(device):  # initialise where the model runs (fast on a GPU)
        model = MIRA(config)
    model.load_checkpoint_state(contents.state, source=contents.source)
    return model.eval()
