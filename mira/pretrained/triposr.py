"""TripoSR checkpoints -> MIRA: the config and the weights, mapped explicitly and strictly.

A TripoSR checkpoint (``stabilityai/TripoSR`` on the hub) is a folder with ``config.yaml`` (the ``TSR``
system config: image tokenizer, triplane tokenizer, backbone, post-processor, decoder and renderer
sections, with ``${a.b}`` references) and ``model.ckpt`` (its state dict, a ``torch.save`` pickle, read
here with ``torch.load(weights_only=True)``). The image encoder's architecture is not in the folder:
TripoSR reads the ``config.json`` of ``facebook/dino-vitb16``, which is transformers' ``ViTConfig()``
defaults (:data:`DINO_VITB16`); a ``dino_vit_config.json`` beside ``config.yaml`` takes precedence
(test-size models). :func:`triposr_to_mira_config` expresses the model with MIRA's named options
(docs/PRETRAINED.md lists them); :func:`convert_triposr_state` maps every tensor. Strict: every
upstream tensor is used exactly once (the ViT pooler, which TripoSR computes but never uses, is the one
documented exception: :data:`UNUSED_TENSORS`), a tensor left over or missing raises
:class:`TripoSRConversionError` naming it.

The mapping (TripoSR name -> MIRA name; ``i`` a block index)::

    image_tokenizer.model.<ViT name>              -> encoder.backbone.<ViT name> (transformers' ViTModel;
                                                     4.35 names, renamed to the installed spelling on load)
    image_tokenizer.model.pooler.dense.*          -> dropped (unused by TripoSR's forward pass)
    tokenizer.embeddings (3, C, R, R)             -> decoder.tokens (3 R^2, C)  (plane, row, column order)
    backbone.norm.* / proj_in.* / proj_out.*      -> decoder.token_norm.* / proj_in.* / proj_out.*
    backbone.transformer_blocks.i.norm1/attn1     -> decoder.blocks.i.norm_self / self_attention
    backbone.transformer_blocks.i.norm2/attn2     -> decoder.blocks.i.norm_cross / cross_attention
      attn{1,2}.to_q.weight                       -> to_q.weight
      attn{1,2}.to_k.weight ; to_v.weight         -> to_kv.weight (k rows, then v rows)
      attn{1,2}.to_out.0.*                        -> to_out.*
    backbone.transformer_blocks.i.norm3           -> decoder.blocks.i.norm_mlp
    backbone.transformer_blocks.i.ff.net.{0.proj,2}.* -> decoder.blocks.i.mlp.{0,2}.*
    post_processor.upsample.*                     -> decoder.upsample.*
    decoder.layers.{0,2,...}.*                    -> renderer.field.mlp.{0,2,...}.*
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from mira.config import MiraConfig
from mira.pretrained.strict import StrictTensors

TRIPOSR_CONFIG_NAME = "config.yaml"
TRIPOSR_WEIGHTS_NAME = "model.ckpt"
TRIPOSR_FILES = (TRIPOSR_CONFIG_NAME, TRIPOSR_WEIGHTS_NAME)
VIT_CONFIG_NAME = "dino_vit_config.json"  # optional, beside config.yaml: the encoder's ViTConfig
TRIPOSR_WEIGHTS_LICENSE = "MIT"
TRIPOSR_LICENSE_NOTICE = ("TripoSR weights (stabilityai/TripoSR, Tochilkin et al., Stability AI and Tripo AI) are "
                          "licensed MIT: keep the copyright and permission notice with copies or derived weights.")
# facebook/dino-vitb16's config.json: transformers' ViTConfig() defaults (its conversion script made it so).
DINO_VITB16_ID = "facebook/dino-vitb16"
DINO_VITB16 = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
               "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
               "initializer_range": 0.02, "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16,
               "num_channels": 3, "qkv_bias": True}
# The TSR component classes MIRA can express.
EXPECTED_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}
# Transformer1D options and the only values MIRA expresses (their code defaults).
BACKBONE_FIXED = {"dropout": 0.0, "attention_bias": False, "activation_fn": "geglu", "only_cross_attention": False,
                  "double_self_attention": False, "upcast_attention": False, "norm_type": "layer_norm",
                  "norm_elementwise_affine": True, "out_channels": None}
BACKBONE_FREE = ("in_channels", "num_attention_heads", "attention_head_dim", "num_layers", "cross_attention_dim",
                 "norm_num_groups", "gradient_checkpointing")
TRIPOSR_BLOCK_NORM_EPS = 1e-5  # nn.LayerNorm's default, which TripoSR's blocks use
UNUSED_TENSORS = ("image_tokenizer.model.pooler.dense.weight", "image_tokenizer.model.pooler.dense.bias")
# TripoSR's inference (run.py / TSR): input and render conventions, mesh extraction.
TRIPOSR_INPUT_BACKGROUND = 0.5
TRIPOSR_FOREGROUND_RATIO = 0.85
TRIPOSR_CAMERA_DISTANCE = 1.9
TRIPOSR_FOVY_DEG = 40.0
TRIPOSR_MESH_THRESHOLD = 25.0
TRIPOSR_MESH_RESOLUTION = 256
_REFERENCE = re.compile(r"\$\{([\w.]+)\}")


class TripoSRConversionError(ValueError):
    """A TripoSR checkpoint cannot be converted: bad config, unreadable weights, a tensor left over or missing."""


# ---------------------------------------------------------------------- reading
def read_triposr_config(path: Path) -> dict[str, Any]:
    """``config.yaml`` as a dict, with OmegaConf-style ``${a.b}`` references (whole values) resolved."""
    import yaml

    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise TripoSRConversionError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(values, dict):
        raise TripoSRConversionError(f"{path}: the top level must be a mapping")

    def lookup(dotted: str) -> Any:
        node: Any = values
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise TripoSRConversionError(f"{path}: unresolved reference ${{{dotted}}}")
            node = node[part]
        return node

    def resolve(node: Any, depth: int = 0) -> Any:
        if depth > 10:
            raise TripoSRConversionError(f"{path}: references nested too deeply (a cycle?)")
        if isinstance(node, dict):
            return {key: resolve(value, depth) for key, value in node.items()}
        if isinstance(node, str) and (match := _REFERENCE.fullmatch(node.strip())):
            return resolve(lookup(match.group(1)), depth + 1)
        return node

    return resolve(values)


def load_triposr_weights(path: Path) -> dict[str, Tensor]:
    """The state dict in ``model.ckpt``, loaded with ``torch.load(weights_only=True)`` (no arbitrary code).

    Raises:
        TripoSRConversionError: the file is refused (it holds objects other than tensors and containers,
            or is no PyTorch file) or holds no state dict; the message says what to do.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError (refused object), zip / EOF errors (truncated file)
        raise TripoSRConversionError(
            f"{path}: torch.load(weights_only=True) refused this file ({type(error).__name__}: {error}). MIRA loads "
            "checkpoints only with weights_only=True, which cannot run code hidden in a pickle: a genuine TripoSR "
            "model.ckpt is a plain state dict and loads this way; a truncated download or a file holding other "
            "objects does not. Download it again (`hf download stabilityai/TripoSR`), or, only if you trust its "
            "source, re-save its tensors with torch.save(dict_of_tensors, 'model.ckpt')."
        ) from error
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping) or not payload or not all(isinstance(v, Tensor) for v in payload.values()):
        raise TripoSRConversionError(f"{path}: expected a state dict (names -> tensors), got {type(payload).__name__}")
    return dict(payload)


def vit_config_for(values: Mapping[str, Any], state: Mapping[str, Tensor], directory: Path | None,
                   source: str) -> dict[str, Any]:
    """The encoder's ViTConfig dict: ``dino_vit_config.json`` beside the config if present, else the known
    ``facebook/dino-vitb16`` architecture; checked against the weights (width, depth, MLP, patch, grid)."""
    name = str(values.get("image_tokenizer", {}).get("pretrained_model_name_or_path", DINO_VITB16_ID))
    local = directory / VIT_CONFIG_NAME if directory is not None else None
    if local is not None and local.is_file():
        loaded = json.loads(local.read_text())
        config = {key: value for key, value in loaded.items() if key not in ("model_type", "architectures")}
    elif name == DINO_VITB16_ID:
        config = dict(DINO_VITB16)
    else:
        raise TripoSRConversionError(f"{source}: image encoder '{name}' is not {DINO_VITB16_ID}; put its ViT config.json "
                                     f"beside config.yaml as {VIT_CONFIG_NAME}")
    prefix = "image_tokenizer.model."
    try:
        position = state[prefix + "embeddings.position_embeddings"]
        patch = state[prefix + "embeddings.patch_embeddings.projection.weight"]
        fc1 = state[prefix + "encoder.layer.0.intermediate.dense.weight"]
    except KeyError as error:
        raise TripoSRConversionError(f"{source}: missing encoder tensor {error.args[0]} (not a TripoSR model.ckpt?)") from error
    depth = len({m.group(1) for key in state if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", key))})
    grid = math.isqrt(int(position.shape[1]) - 1)
    found = {"hidden_size": int(position.shape[-1]), "num_hidden_layers": depth, "intermediate_size": int(fc1.shape[0]),
             "patch_size": int(patch.shape[-1]), "image_size": grid * int(patch.shape[-1])}
    expected = {key: config.get(key) for key in found}
    if found != expected:
        raise TripoSRConversionError(f"{source}: the encoder weights {found} do not match its config {expected}")
    return config


# ---------------------------------------------------------------------- config
def _check_config(values: Mapping[str, Any], source: str) -> None:
    """Raise :class:`TripoSRConversionError` unless ``values`` is a TSR config MIRA can express."""
    for key, expected in EXPECTED_CLASSES.items():
        if values.get(key) != expected:
            raise TripoSRConversionError(f"{source}: {key} is {values.get(key)!r}; MIRA expresses {expected!r}")
    backbone = values.get("backbone", {})
    unknown = sorted(set(backbone) - set(BACKBONE_FIXED) - set(BACKBONE_FREE))
    fixed = [f"{key}={backbone[key]!r} (expected {want!r})" for key, want in BACKBONE_FIXED.items()
             if key in backbone and backbone[key] != want]
    if unknown or fixed:
        raise TripoSRConversionError(f"{source}: backbone options MIRA does not express: {unknown + fixed}")
    width = int(backbone["num_attention_heads"]) * int(backbone["attention_head_dim"])
    if width != int(backbone["in_channels"]) or width != int(values["tokenizer"]["num_channels"]):
        raise TripoSRConversionError(f"{source}: the backbone's heads x head_dim ({width}) must equal its in_channels and "
                                     f"the tokenizer's num_channels ({backbone['in_channels']}, "
                                     f"{values['tokenizer']['num_channels']})")
    renderer = values.get("renderer", {})
    if renderer.get("density_activation", "trunc_exp") not in ("exp", "softplus"):
        raise TripoSRConversionError(f"{source}: renderer.density_activation {renderer.get('density_activation')!r} "
                                     "is not exp or softplus")
    if renderer.get("color_activation", "sigmoid") != "sigmoid" or renderer.get("randomized", False):
        raise TripoSRConversionError(f"{source}: only color_activation sigmoid and randomized false are expressed")
    if renderer.get("feature_reduction", "concat") not in ("concat", "mean"):
        raise TripoSRConversionError(f"{source}: renderer.feature_reduction must be concat or mean")


def triposr_to_mira_config(values: Mapping[str, Any], vit_config: Mapping[str, Any],
                           source: str = "<config>") -> MiraConfig:
    """A :class:`MiraConfig` that makes MIRA compute what TripoSR's ``TSR(values)`` computes.

    Args:
        values: the resolved ``config.yaml`` (:func:`read_triposr_config`).
        vit_config: the encoder's ViTConfig dict (:func:`vit_config_for`).
        source: names the checkpoint in errors.
    """
    _check_config(values, source)
    backbone, decoder, renderer = values["backbone"], values["decoder"], values["renderer"]
    radius = float(renderer["radius"])
    focal = 0.5 / math.tan(math.radians(TRIPOSR_FOVY_DEG) / 2)
    model = {
        "encoder_model_id": str(values["image_tokenizer"].get("pretrained_model_name_or_path", DINO_VITB16_ID)),
        "encoder_architecture": "vit", "encoder_position_interpolation": "scale_factor",
        "encoder_config": dict(vit_config), "encoder_imagenet_normalization": True, "encoder_trainable_blocks": -1,
        "source_size": int(values["cond_image_size"]), "camera_conditioning": False,
        "block_norm_eps": TRIPOSR_BLOCK_NORM_EPS, "decoder_hidden_dim": int(backbone["in_channels"]),
        "num_layers": int(backbone["num_layers"]), "num_heads": int(backbone["num_attention_heads"]), "mlp_ratio": 4.0,
        "decoder_mlp_activation": "geglu", "decoder_block_order": "self_cross_mlp", "attention_bias": False,
        "attention_output_bias": True, "context_projection": False, "triplane_token_sincos": False,
        "decoder_final_norm": False, "decoder_residual_projection": True,
        "decoder_norm_groups": int(backbone.get("norm_num_groups", 32)),
        "triplane_feat_res": int(values["tokenizer"]["plane_size"]), "triplane_res": 2 * int(values["tokenizer"]["plane_size"]),
        "triplane_dim": int(values["post_processor"]["out_channels"]), "context_position_embedding": False,
        "weights_license": TRIPOSR_WEIGHTS_LICENSE,
    }
    render = {
        "rendering_samples_per_ray": int(renderer.get("num_samples_per_ray", 128)), "importance_samples_per_ray": 0,
        "box_min": [-radius] * 3, "box_max": [radius] * 3, "background_color": [1.0, 1.0, 1.0],
        "triplane_aggregation": renderer.get("feature_reduction", "concat"), "plane_axes": "xy_xz_yz",
        "mlp_hidden_dim": int(decoder["n_neurons"]), "mlp_num_layers": int(decoder["n_hidden_layers"]) + 1,
        "field_activation": str(decoder.get("activation", "relu")), "density_activation": renderer["density_activation"],
        "density_bias": float(renderer.get("density_bias", -1.0)), "color_sigmoid_widening": 0.0,
        "ray_marching": "normalized_midpoint", "mesh_density_threshold": TRIPOSR_MESH_THRESHOLD,
        "mesh_grid_resolution": TRIPOSR_MESH_RESOLUTION,
    }
    data = {
        "source_foreground_ratio": TRIPOSR_FOREGROUND_RATIO, "source_camera_azimuth_deg": 0.0,
        "source_model_focal": focal, "source_distance_per_focal": TRIPOSR_CAMERA_DISTANCE / focal,
        "source_background_color": [TRIPOSR_INPUT_BACKGROUND] * 3,
    }
    return MiraConfig.from_dict({"model": model, "renderer": render, "data": data}, source=f"{source} (converted)")


def published_triposr_yaml() -> dict[str, Any]:
    """``stabilityai/TripoSR``'s config.yaml values as documented in docs/PRETRAINED.md (a fresh dict)."""
    return {
        **EXPECTED_CLASSES, "cond_image_size": 512,
        "image_tokenizer": {"pretrained_model_name_or_path": DINO_VITB16_ID},
        "tokenizer": {"plane_size": 32, "num_channels": 1024},
        "backbone": {"in_channels": 1024, "num_attention_heads": 16, "attention_head_dim": 64, "num_layers": 16,
                     "cross_attention_dim": 768},
        "post_processor": {"in_channels": 1024, "out_channels": 40},
        "decoder": {"in_channels": 120, "n_neurons": 64, "n_hidden_layers": 9, "activation": "silu"},
        "renderer": {"radius": 0.87, "feature_reduction": "concat", "density_activation": "exp", "density_bias": -1.0,
                     "num_samples_per_ray": 128},
    }


def published_triposr_config() -> MiraConfig:
    """The MIRA config of ``stabilityai/TripoSR`` without weights (benchmarks; what converting it gives)."""
    return triposr_to_mira_config(published_triposr_yaml(), DINO_VITB16, source="stabilityai/TripoSR")


# ---------------------------------------------------------------------- weights
def _attention(take: StrictTensors, upstream: str, ours: str) -> dict[str, Tensor]:
    """diffusers-style Attention (to_q, to_k, to_v without bias; to_out.0 with) -> MultiHeadAttention."""
    return {ours + "to_q.weight": take(upstream + "to_q.weight"),
            ours + "to_kv.weight": torch.cat([take(upstream + "to_k.weight"), take(upstream + "to_v.weight")], dim=0),
            ours + "to_out.weight": take(upstream + "to_out.0.weight"),
            ours + "to_out.bias": take(upstream + "to_out.0.bias")}


def convert_triposr_state(state: Mapping[str, Tensor], config: MiraConfig, source: str = "<state>") -> dict[str, Tensor]:
    """Map a TripoSR state dict to MIRA's names (see the module docstring); strict.

    Args:
        state: TripoSR ``TSR.state_dict()`` (checkpoint names, ViT keys as transformers 4.35 names them).
        config: from :func:`triposr_to_mira_config`.
        source: names the checkpoint in errors.
    Returns:
        MIRA state dict (ViT keys in 4.35 spelling: the loader renames them for the installed transformers).
    Raises:
        TripoSRConversionError: a tensor left over or missing (named).
    """
    take = StrictTensors(state, source, "TripoSR", "a TripoSR checkpoint", TripoSRConversionError)
    mapped: dict[str, Tensor] = {}
    for name in UNUSED_TENSORS:
        if name in state:
            take(name)
    vit = "image_tokenizer.model."
    for name in sorted(state):
        if name.startswith(vit) and name not in UNUSED_TENSORS:
            mapped["encoder.backbone." + name[len(vit):]] = take(name)
    planes = take("tokenizer.embeddings")  # (3, C, R, R)
    mapped["decoder.tokens"] = planes.permute(0, 2, 3, 1).reshape(-1, planes.shape[1])
    for theirs, ours in (("norm", "token_norm"), ("proj_in", "proj_in"), ("proj_out", "proj_out")):
        for kind in ("weight", "bias"):
            mapped[f"decoder.{ours}.{kind}"] = take(f"backbone.{theirs}.{kind}")
    for i in range(config.model.num_layers):
        up, ours = f"backbone.transformer_blocks.{i}.", f"decoder.blocks.{i}."
        for theirs, norm in (("norm1", "norm_self"), ("norm2", "norm_cross"), ("norm3", "norm_mlp")):
            for kind in ("weight", "bias"):
                mapped[f"{ours}{norm}.{kind}"] = take(f"{up}{theirs}.{kind}")
        mapped.update(_attention(take, up + "attn1.", ours + "self_attention."))
        mapped.update(_attention(take, up + "attn2.", ours + "cross_attention."))
        for theirs, index in (("ff.net.0.proj", 0), ("ff.net.2", 2)):
            for kind in ("weight", "bias"):
                mapped[f"{ours}mlp.{index}.{kind}"] = take(f"{up}{theirs}.{kind}")
    for kind in ("weight", "bias"):
        mapped[f"decoder.upsample.{kind}"] = take(f"post_processor.upsample.{kind}")
    for index in range(0, 2 * config.renderer.mlp_num_layers, 2):
        for kind in ("weight", "bias"):
            mapped[f"renderer.field.mlp.{index}.{kind}"] = take(f"decoder.layers.{index}.{kind}")
    take.check_all_used()
    return {name: tensor.contiguous() for name, tensor in mapped.items()}


def read_triposr_folder(directory: Path) -> tuple[MiraConfig, dict[str, Tensor]]:
    """A TripoSR folder (``config.yaml`` + ``model.ckpt``) -> (MIRA config, MIRA state dict); strict."""
    from mira.config import ConfigError

    source = str(directory)
    values = read_triposr_config(directory / TRIPOSR_CONFIG_NAME)
    state = load_triposr_weights(directory / TRIPOSR_WEIGHTS_NAME)
    try:
        config = triposr_to_mira_config(values, vit_config_for(values, state, directory, source), source)
    except (ConfigError, KeyError, TypeError) as error:  # a value MIRA cannot express, a missing section or key
        raise TripoSRConversionError(f"{source}/{TRIPOSR_CONFIG_NAME}: not a TripoSR config MIRA can express "
                                     f"({type(error).__name__}: {error})") from error
    return config, convert_triposr_state(state, config, source=str(directory / TRIPOSR_WEIGHTS_NAME))
