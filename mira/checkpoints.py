"""The one checkpoint I/O module: every kind of checkpoint users have -> weights + config -> model.

A checkpoint may be (the format is detected from the files):

* a MIRA ``save_pretrained`` directory (``model.safetensors`` + ``config.json``, the nested
  :class:`~mira.config.MiraConfig`);
* a training checkpoint file (``checkpoint-<step>.pt``, written by ``mira.training``), read with
  ``torch.load(weights_only=True)``; or a training output directory (``model_save_path``):
  its ``final/`` export if training finished, else its latest ``checkpoint-<step>.pt``;
* a bare ``.safetensors`` weight file (its config from a ``config.json`` beside it or ``--config_path``);
* an OpenLRM v1.1 checkpoint folder (``config.json`` = ModelLRM kwargs + ``model.safetensors``),
  converted on the fly by :mod:`mira.pretrained.openlrm` (strict; ``python -m mira.convert`` writes
  the MIRA folder once);
* a TripoSR checkpoint folder (``config.yaml`` + ``model.ckpt``, the latter read with
  ``torch.load(weights_only=True)``), converted on the fly by :mod:`mira.pretrained.triposr`;
* a Hugging Face hub id of any kind of folder (``huggingface_hub.snapshot_download``, cached;
  with no network the cache is used, else one error says what to download).

``--config_path`` is optional when the checkpoint carries its config. When both are given,
their architectures (every key that changes the weights or the field they encode) must agree,
else :class:`CheckpointConfigMismatchError`; the other keys (samples per ray, chunk sizes ...)
are taken from ``--config_path``. Weights under a licence other than MIRA's (converted OpenLRM:
CC BY-NC 4.0; TripoSR: MIT) print a notice once per process when loaded.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file
from torch import Tensor

from mira.config import ConfigError, MiraConfig
from mira.errors import CheckpointConfigMismatchError, InferenceError, WeightsNotFoundError

log = logging.getLogger(__name__)

# A save_pretrained folder (MIRA's and OpenLRM's alike): these two files.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME)
# A TripoSR folder (mira.pretrained.triposr.TRIPOSR_FILES).
TRIPOSR_FILES = ("config.yaml", "model.ckpt")
# The model shipped with MIRA (docs/TRAINING.md): test.py's default --checkpoint_path.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "mira-demo"
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
TRAINING_ONLY_MODEL_KEYS = ("encoder_model_id", "encoder_config", "encoder_trainable_blocks", "gradient_checkpointing",
                            "weights_license")
# Renderer keys that define the field the weights encode (the rest are sampling settings).
FIELD_RENDERER_KEYS = (
    "box_min", "box_max", "background_color", "triplane_aggregation", "mlp_hidden_dim", "mlp_num_layers",
    "density_bias", "density_activation", "color_sigmoid_widening", "mesh_density_threshold", "mesh_grid_resolution", "plane_axes", "field_activation", "ray_marching",
)
# Data keys that belong to the weights: the source-view contract the model was trained with.
CONTRACT_DATA_KEYS = ("source_camera_azimuth_deg", "source_model_focal", "source_distance_per_focal",
                      "source_background_color")
# Dinov2Config keys that define the encoder network.
ENCODER_ARCHITECTURE_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "hidden_act", "layer_norm_eps",
    "image_size", "patch_size", "num_channels", "qkv_bias", "layerscale_value", "use_swiglu_ffn", "apply_layernorm",
    "num_register_tokens",
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class CheckpointContents:
    """What a checkpoint holds: its weights, its config (if any) and where they came from."""

    state: dict[str, Tensor]
    config: MiraConfig | None
    kind: str  # "save_pretrained", "training", "safetensors", "openlrm", "triposr" or "hub"
    source: str


# ---------------------------------------------------------------------- reading
def read_checkpoint(checkpoint_path: str, openlrm_options: Mapping[str, Any] | None = None) -> CheckpointContents:
    """Weights and (when present) config of any checkpoint kind (see the module docstring).

    ``openlrm_options`` (``source_size``, ``encoder_num_heads``) go to
    :func:`mira.pretrained.openlrm.openlrm_to_mira_config` for OpenLRM folders of unpublished sizes.

    Raises:
        WeightsNotFoundError: nothing usable at ``checkpoint_path``.
        InferenceError: the file is not a MIRA checkpoint.
    """
    path = Path(checkpoint_path).expanduser()
    if path.is_dir():
        if checkpoint_format(path) == "triposr":
            return _read_triposr(path)
        if (path / WEIGHTS_NAME).is_file() and checkpoint_format(path) == "openlrm":
            return _read_openlrm(path, openlrm_options)
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
            f"{path}: no known checkpoint in this directory (expected {WEIGHTS_NAME} + {CONFIG_NAME} of a MIRA "
            f"save_pretrained folder or an OpenLRM checkpoint, config.yaml + model.ckpt of a TripoSR checkpoint, a '{FINAL_EXPORT_DIR}/' export or training checkpoints "
            f"checkpoint-<step>.pt; found: {_listing(path)})"
        )
    if path.is_file():
        if path.suffix == ".safetensors":
            return _read_safetensors(path, kind="safetensors")
        if path.suffix not in TORCH_CHECKPOINT_SUFFIXES:
            raise WeightsNotFoundError(
                f"{path}: not a checkpoint file. --checkpoint_path takes a checkpoint folder (holding {WEIGHTS_NAME} "
                f"and {CONFIG_NAME}), a training run folder, a checkpoint-<step>.pt, a .safetensors file or a hub id"
                + (f"; did you mean the folder {path.parent}?" if (path.parent / WEIGHTS_NAME).is_file() else "")
            )
        return _read_torch_checkpoint(path)
    if _looks_local(checkpoint_path):
        raise WeightsNotFoundError(
            f"{checkpoint_path}: checkpoint not found: no such file or folder{_near_misses(path)}; check --checkpoint_path")
    if _HUB_ID.match(checkpoint_path) and path.suffix not in (*TORCH_CHECKPOINT_SUFFIXES, ".safetensors"):
        return _read_hub_checkpoint(checkpoint_path, openlrm_options)
    raise WeightsNotFoundError(
        f"{checkpoint_path}: checkpoint not found (not a file, a directory or a hub id 'owner/name'); "
        "check --checkpoint_path"
    )


def _load_safetensors(weights: Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file; a truncated or corrupt file is one clear error."""
    try:
        return load_file(str(weights))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise InferenceError(f"{weights}: not a readable safetensors file (truncated or corrupt? {error}); "
                             "download or convert it again") from error


def _read_safetensors(weights: Path, kind: str) -> CheckpointContents:
    """A safetensors file and the ``config.json`` beside it (if any)."""
    state = _load_safetensors(weights)
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


def _looks_local(checkpoint_path: str) -> bool:
    """Whether a path that does not exist was meant as a local one: it starts like a path (``/``, ``.``,
    ``~``), or its first component is a folder here (``checkpoints/tiyn`` with ``checkpoints/`` present)."""
    parts = Path(checkpoint_path).parts
    return checkpoint_path.startswith(("/", ".", "~")) or (len(parts) > 1 and Path(parts[0]).is_dir())


def _near_misses(path: Path) -> str:
    """``" (did you mean: a, b?)"`` for entries of ``path``'s folder with a similar name, else ``""``."""
    import difflib

    if not path.parent.is_dir():
        return f" (its folder {path.parent} does not exist either)"
    names = difflib.get_close_matches(path.name, [child.name for child in path.parent.iterdir()], n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(str(path.parent / name) for name in names)}?)" if names else ""


def _read_hub_checkpoint(hub_id: str, openlrm_options: Mapping[str, Any] | None = None) -> CheckpointContents:
    """Download (or read from the cache) a MIRA or OpenLRM checkpoint folder on the Hugging Face hub."""
    directory = download_checkpoint(hub_id)
    if checkpoint_format(directory) == "triposr":
        contents = _read_triposr(directory)
    elif checkpoint_format(directory) == "openlrm":
        contents = _read_openlrm(directory, openlrm_options)
    else:
        contents = _read_safetensors(directory / WEIGHTS_NAME, kind="hub")
    contents.source = hub_id
    return contents


def download_checkpoint(hub_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """The local folder of hub repo ``hub_id`` (config + weights only), from the cache when offline.

    Raises:
        WeightsNotFoundError: not cached and not downloadable (offline, no such repo, a file missing);
            the message says how to get it.
    """
    from huggingface_hub import constants, snapshot_download

    from mira.hub import hub_offline_reason

    offline = hub_offline_reason()  # offline: the cache only, at once (no download retries)
    try:
        directory = Path(snapshot_download(hub_id, revision=revision, cache_dir=cache_dir,
                                           allow_patterns=[*CHECKPOINT_FILES, *TRIPOSR_FILES],
                                           local_files_only=offline is not None))
    except Exception as error:  # offline, not cached, no such repo, invalid id: one clear message
        why = f" ({offline})" if offline else ""
        raise WeightsNotFoundError(
            f"checkpoint '{hub_id}' is not a local path and could not be loaded from the Hugging Face hub{why} or its "
            f"cache ({cache_dir or constants.HF_HUB_CACHE}).\nFix: on a machine with internet run "
            f"`hf download {hub_id}` (older huggingface_hub: `huggingface-cli download {hub_id}`), or pass the "
            f"checkpoint's local folder.\nOriginal error: {type(error).__name__}: {error}"
        ) from error
    if all((directory / name).is_file() for name in TRIPOSR_FILES):
        return directory
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise WeightsNotFoundError(f"hub checkpoint '{hub_id}' ({directory}) lacks {', '.join(missing)}: it is no "
                                   "MIRA, OpenLRM or TripoSR checkpoint (or its download is incomplete)")
    return directory


def checkpoint_format(directory: Path) -> str:
    """``triposr`` for a folder with ``config.yaml`` + ``model.ckpt``; else ``openlrm`` or ``mira`` for a folder
    with ``config.json`` + ``model.safetensors``, from the config's keys.

    Raises:
        InferenceError: ``config.json`` is not a JSON object (names the file).
    """
    from mira.pretrained.openlrm import OPENLRM_MARKER_KEYS

    if all((directory / name).is_file() for name in TRIPOSR_FILES):
        return "triposr"
    config_file = directory / CONFIG_NAME
    if not config_file.is_file():
        return "mira"  # weights without config: resolved with --config_path
    try:
        values = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InferenceError(f"{config_file}: not valid JSON ({error})") from error
    if not isinstance(values, dict):
        raise InferenceError(f"{config_file}: the top level must be a JSON object")
    # ModelLRM's own key names (MIRA has none of them): a config with any is OpenLRM's; the converter then
    # names whatever else is missing.
    return "openlrm" if any(key in values for key in OPENLRM_MARKER_KEYS) else "mira"


def _read_openlrm(directory: Path, options: Mapping[str, Any] | None) -> CheckpointContents:
    """An OpenLRM checkpoint folder, converted to MIRA's config and weight names (strict)."""
    from mira.pretrained.openlrm import OpenLRMConversionError, convert_openlrm_state, openlrm_to_mira_config

    weights = directory / WEIGHTS_NAME
    state = _load_safetensors(weights)
    values = json.loads((directory / CONFIG_NAME).read_text())
    try:
        config = openlrm_to_mira_config(values, state, source=str(directory), **dict(options or {}))
        converted = convert_openlrm_state(state, config, source=str(weights))
    except OpenLRMConversionError as error:
        raise CheckpointConfigMismatchError(str(error)) from error
    return CheckpointContents(state=converted, config=config, kind="openlrm", source=str(directory))


def _read_triposr(directory: Path) -> CheckpointContents:
    """A TripoSR checkpoint folder, converted to MIRA's config and weight names (strict)."""
    from mira.pretrained.triposr import TripoSRConversionError, read_triposr_folder

    try:
        config, converted = read_triposr_folder(directory)
    except TripoSRConversionError as error:
        raise CheckpointConfigMismatchError(str(error)) from error
    return CheckpointContents(state=converted, config=config, kind="triposr", source=str(directory))


def _listing(path: Path, limit: int = 8) -> str:
    """The first names in a directory, for error messages."""
    names = sorted(child.name for child in path.iterdir())
    return (", ".join(names[:limit]) + (" ..." if len(names) > limit else "")) if names else "nothing"


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
    if checkpoint.encoder_architecture != requested.encoder_architecture:
        return []  # already listed as an encoder_architecture difference
    ours = _encoder_architecture(checkpoint.encoder_config, checkpoint.encoder_architecture)
    theirs = _encoder_architecture(requested.encoder_config, requested.encoder_architecture)
    return [
        f"encoder_config.{key}: checkpoint {ours[key]!r} vs config {theirs[key]!r}"
        for key in ENCODER_ARCHITECTURE_KEYS
        if ours.get(key) != theirs.get(key)
    ]


def _encoder_architecture(values: Mapping[str, Any], architecture: str = "dinov2") -> dict[str, Any]:
    """The encoder's transformers config dict with defaults filled in, so partial dicts compare fairly."""
    from mira.models.encoder import ENCODER_CLASSES

    return ENCODER_CLASSES[architecture][0].from_dict(dict(values)).to_dict()


def merge_configs(checkpoint: MiraConfig, requested: MiraConfig) -> MiraConfig:
    """``requested`` with the checkpoint's model section, field-defining renderer keys and source-view
    contract (:data:`CONTRACT_DATA_KEYS`)."""
    merged = copy.deepcopy(requested)
    merged.model = copy.deepcopy(checkpoint.model)
    for key in FIELD_RENDERER_KEYS:
        setattr(merged.renderer, key, copy.deepcopy(getattr(checkpoint.renderer, key)))
    for key in CONTRACT_DATA_KEYS:
        setattr(merged.data, key, copy.deepcopy(getattr(checkpoint.data, key)))
    return merged


def _fill_encoder_config(config: MiraConfig, source: str) -> None:
    """Set ``encoder_config`` from the encoder's hub ``config.json`` (no weights) when it is missing.

    The checkpoint holds every encoder weight, so only the architecture is needed.
    """
    if config.model.encoder_config is not None:
        return
    from mira.models.encoder import ENCODER_CLASSES, dinov2_config_dict

    config_class = ENCODER_CLASSES[config.model.encoder_architecture][0]
    try:
        config.model.encoder_config = dinov2_config_dict(config_class.from_pretrained(config.model.encoder_model_id))
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


def load_model(checkpoint_path: str, config_path: str | None = None, device: str | torch.device = "cpu",
               openlrm_options: Mapping[str, Any] | None = None):
    """A :class:`mira.models.MIRA` in eval mode on ``device``, from any checkpoint kind.

    Args:
        checkpoint_path: any kind in the module docstring.
        config_path: optional config file (see the module docstring).
        device: where the model runs.
        openlrm_options: see :func:`read_checkpoint`.
    Raises:
        WeightsNotFoundError, InferenceError, CheckpointConfigMismatchError: see above;
        mira.config.ConfigError: an invalid config file.
    """
    from mira.models import MIRA
    from mira.models.mira import CheckpointMismatchError

    if config_path is not None and not Path(config_path).is_file():
        raise ConfigError(f"config file not found: {config_path} (check --config_path)")
    contents = read_checkpoint(checkpoint_path, openlrm_options)
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
    announce_license(config, contents.source)
    return model.eval()


_ANNOUNCED_LICENSES: set[str] = set()


def announce_license(config: MiraConfig, source: str) -> None:
    """Print (stderr) the licence notice of weights that are not MIRA's, once per process and licence."""
    license_name = config.model.weights_license
    if not license_name or license_name in _ANNOUNCED_LICENSES:
        return
    _ANNOUNCED_LICENSES.add(license_name)
    from mira.pretrained.openlrm import OPENLRM_LICENSE_NOTICE, OPENLRM_WEIGHTS_LICENSE
    from mira.pretrained.triposr import TRIPOSR_LICENSE_NOTICE, TRIPOSR_WEIGHTS_LICENSE

    notices = {OPENLRM_WEIGHTS_LICENSE: OPENLRM_LICENSE_NOTICE, TRIPOSR_WEIGHTS_LICENSE: TRIPOSR_LICENSE_NOTICE}
    notice = notices.get(license_name, f"weights licensed {license_name}")
    print(f"licence notice ({source}): {notice}", file=sys.stderr)
