"""OpenLRM v1.1 checkpoints -> MIRA: the config and the weights, mapped explicitly and strictly.

An OpenLRM checkpoint (``zxhezexin/openlrm-{obj,mix}-{small,base,large}-1.1`` on the hub) is a
folder with ``config.json`` (the ``ModelLRM`` keyword arguments) and ``model.safetensors`` (its
state dict). :func:`openlrm_to_mira_config` turns the config into a :class:`~mira.config.MiraConfig`
that uses the options OpenLRM needs (docs/PRETRAINED.md lists them); :func:`convert_openlrm_state`
maps every tensor to MIRA's names. The conversion is strict: every upstream tensor is used exactly
once and every MIRA weight comes from one; a tensor left over or missing, or a shape that the
config does not predict, raises :class:`OpenLRMConversionError` naming it.

The mapping (OpenLRM name -> MIRA name; ``i`` a block index)::

    encoder.model.cls_token / pos_embed / register_tokens  -> encoder.backbone.embeddings.{cls_token,
                                                               position_embeddings, register_tokens}
    encoder.model.patch_embed.proj.*                        -> encoder.backbone.embeddings.patch_embeddings.projection.*
    encoder.model.blocks.i.norm1 / norm2 / mlp.fc1 / mlp.fc2 -> encoder.backbone.encoder.layer.i.<same>
    encoder.model.blocks.i.attn.qkv.{weight,bias}          -> ...layer.i.attention.{q,k,v}_proj (rows split in 3)
    encoder.model.blocks.i.attn.proj.*                      -> ...layer.i.attention.o_proj.*
    encoder.model.blocks.i.ls1.gamma / ls2.gamma            -> ...layer.i.layer_scale1.lambda1 / layer_scale2.lambda1
    encoder.model.norm.*                                    -> encoder.backbone.layernorm.*
    camera_embedder.mlp.{0,2}.*                             -> camera_embedder.mlp.{0,2}.*
    pos_embed (1, 3R^2, D)                                  -> decoder.tokens (3R^2, D)
    transformer.layers.i.norm{1,2,3}.{norm.*, mlp.1.*}      -> decoder.blocks.i.norm_{cross,self,mlp}.modulation.1.*
                                                               (LayerNorm affine folded in, see fold_modulated_norm)
    transformer.layers.i.cross_attn.{q,k,v}_proj_weight     -> decoder.blocks.i.cross_attention.to_q / to_kv (k; v)
      (or in_proj_weight when the encoder width equals D)
    transformer.layers.i.self_attn.in_proj_weight           -> decoder.blocks.i.self_attention.to_q / to_kv
    transformer.layers.i.{cross,self}_attn.out_proj.weight  -> decoder.blocks.i.{cross,self}_attention.to_out.weight
    transformer.layers.i.mlp.{0,3}.*                        -> decoder.blocks.i.mlp.{0,2}.*
    transformer.norm.*                                      -> decoder.final_norm.*
    upsampler.*                                             -> decoder.upsample.*
    synthesizer.decoder.net.{0,2,4,6}.*                     -> renderer.field.mlp.{0,2,4,6}.*

The DINOv2 attention names follow the installed ``transformers`` (``q_proj`` in 5.2x,
``attention.attention.query`` before): :func:`mira.models.encoder.match_dinov2_key_names`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
from torch import Tensor

from mira.config import MiraConfig
from mira.pretrained.strict import StrictTensors

# The licence of the published OpenLRM weights (upstream LICENSE_WEIGHT).
OPENLRM_WEIGHTS_LICENSE = "CC BY-NC 4.0"
OPENLRM_LICENSE_NOTICE = (
    "OpenLRM weights (3DTopia/OpenLRM, Zexin He et al.) are licensed CC BY-NC 4.0: non-commercial use only, "
    "with attribution (https://creativecommons.org/licenses/by-nc/4.0/)."
)
# The ModelLRM keyword arguments a config.json must hold.
OPENLRM_CONFIG_KEYS = (
    "camera_embed_dim", "rendering_samples_per_ray", "transformer_dim", "transformer_layers", "transformer_heads",
    "triplane_low_res", "triplane_high_res", "triplane_dim", "encoder_type", "encoder_model_name", "encoder_feat_dim",
)
OPENLRM_OPTIONAL_KEYS = ("encoder_freeze",)
# Keys only a ModelLRM config has (format detection, mira.checkpoints.checkpoint_format).
OPENLRM_MARKER_KEYS = ("transformer_dim", "triplane_low_res", "encoder_model_name")
# Meta's DINOv2 hub backbones with registers (vision_transformer.vit_*): width, depth, heads.
DINOV2_REGISTER_BACKBONES = {
    "dinov2_vits14_reg": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "dinov2_vitb14_reg": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "dinov2_vitl14_reg": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
}
DINOV2_PATCH_SIZE = 14
DINOV2_IMAGE_SIZE = 518  # Meta's position grid: 37 x 37 patches
DINOV2_NUM_REGISTERS = 4
DINOV2_LAYER_NORM_EPS = 1e-6
# OpenLRM's modulated and final LayerNorms (TransformerDecoder eps).
OPENLRM_NORM_EPS = 1e-6
# configs/infer-{s,b,l}.yaml: source image side per published size (transformer width, layers).
OPENLRM_SOURCE_SIZES = {(512, 12): 224, (768, 12): 336, (1024, 16): 448}
# OpenLRM's inference: the source camera (LRMInferrer._default_source_camera) and its mesh.
OPENLRM_SOURCE_DISTANCE = 2.0
OPENLRM_SOURCE_FOCAL = 0.75
OPENLRM_MESH_THRESHOLD = 3.0
OPENLRM_MESH_RESOLUTION = 384


# The ModelLRM kwargs of the published v1.1 checkpoints (README / model_card.md; obj- and mix- alike).
PUBLISHED_SIZES = {
    "small": dict(transformer_dim=512, transformer_layers=12, transformer_heads=8, triplane_dim=32,
                  encoder_model_name="dinov2_vits14_reg", encoder_feat_dim=384, rendering_samples_per_ray=96),
    "base": dict(transformer_dim=768, transformer_layers=12, transformer_heads=12, triplane_dim=48,
                 encoder_model_name="dinov2_vitb14_reg", encoder_feat_dim=768, rendering_samples_per_ray=96),
    "large": dict(transformer_dim=1024, transformer_layers=16, transformer_heads=16, triplane_dim=80,
                  encoder_model_name="dinov2_vitb14_reg", encoder_feat_dim=768, rendering_samples_per_ray=128),
}
PUBLISHED_COMMON = dict(camera_embed_dim=1024, triplane_low_res=32, triplane_high_res=64, encoder_type="dinov2",
                        encoder_freeze=False)


class OpenLRMConversionError(ValueError):
    """An OpenLRM checkpoint cannot be converted: bad config, a tensor left over, missing or misshapen."""


# ---------------------------------------------------------------------- config
def check_openlrm_config(values: Mapping[str, Any], source: str) -> None:
    """Raise :class:`OpenLRMConversionError` unless ``values`` are ModelLRM kwargs MIRA can express."""
    missing = [key for key in OPENLRM_CONFIG_KEYS if key not in values]
    unknown = sorted(set(values) - set(OPENLRM_CONFIG_KEYS) - set(OPENLRM_OPTIONAL_KEYS))
    if missing or unknown:
        raise OpenLRMConversionError(
            f"{source}: not an OpenLRM ModelLRM config (missing keys: {missing or 'none'}; unknown keys: "
            f"{unknown or 'none'})"
        )
    if str(values["encoder_type"]).lower() != "dinov2":
        raise OpenLRMConversionError(f"{source}: encoder_type '{values['encoder_type']}' is not supported; "
                                     "OpenLRM v1.1 checkpoints use 'dinov2'")
    if not str(values["encoder_model_name"]).endswith("_reg"):
        raise OpenLRMConversionError(f"{source}: encoder_model_name '{values['encoder_model_name']}' is not a DINOv2 "
                                     "backbone with registers (dinov2_vit{s,b,l}14_reg), which v1.1 checkpoints use")
    if values["triplane_high_res"] != 2 * values["triplane_low_res"]:
        raise OpenLRMConversionError(f"{source}: triplane_high_res must be 2 * triplane_low_res (one ConvTranspose2d "
                                     f"of stride 2), got {values['triplane_high_res']} and {values['triplane_low_res']}")
    if values["rendering_samples_per_ray"] % 2 or values["rendering_samples_per_ray"] < 4:
        raise OpenLRMConversionError(f"{source}: rendering_samples_per_ray must be even and >= 4 (half coarse, half "
                                     f"importance), got {values['rendering_samples_per_ray']}")


def encoder_config_from_weights(state: Mapping[str, Tensor], encoder_name: str, source: str,
                                num_heads: int | None = None) -> dict[str, Any]:
    """The ``Dinov2WithRegistersConfig`` dict of an OpenLRM encoder, read from its weights.

    Width, depth, patch size, position grid, registers and MLP ratio come from the tensors; the
    number of heads (not visible in the weights) from Meta's backbone named ``encoder_name``, unless
    ``num_heads`` is given (test-size encoders). A published name whose architecture differs from
    the weights is an error.
    """
    prefix = "encoder.model."
    try:
        cls_token, pos_embed = state[prefix + "cls_token"], state[prefix + "pos_embed"]
        registers, patch = state[prefix + "register_tokens"], state[prefix + "patch_embed.proj.weight"]
        fc1 = state[prefix + "blocks.0.mlp.fc1.weight"]
    except KeyError as error:
        raise OpenLRMConversionError(f"{source}: missing encoder tensor {error.args[0]} (is this an OpenLRM v1.1 "
                                     "checkpoint with a DINOv2-with-registers encoder?)") from error
    width = int(cls_token.shape[-1])
    depth = len({int(m.group(1)) for key in state if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", key))})
    grid = math.isqrt(int(pos_embed.shape[1]) - 1)
    if grid * grid != pos_embed.shape[1] - 1:
        raise OpenLRMConversionError(f"{source}: {prefix}pos_embed {tuple(pos_embed.shape)} is not 1 + a square grid")
    patch_size = int(patch.shape[-1])
    published = DINOV2_REGISTER_BACKBONES.get(encoder_name)
    if num_heads is None:
        if published is None:
            raise OpenLRMConversionError(f"{source}: unknown encoder_model_name '{encoder_name}'; known: "
                                         f"{sorted(DINOV2_REGISTER_BACKBONES)}")
        found = dict(hidden_size=width, num_hidden_layers=depth)
        expected = {key: published[key] for key in found}
        if found != expected:
            raise OpenLRMConversionError(
                f"{source}: the config does not match the weights: encoder_model_name '{encoder_name}' is {expected}, "
                f"the encoder weights are {found}")
        num_heads = published["num_attention_heads"]
    if width % num_heads:
        raise OpenLRMConversionError(f"{source}: {num_heads} encoder heads do not divide the width {width}")
    return {
        "hidden_size": width, "num_hidden_layers": depth, "num_attention_heads": num_heads,
        "mlp_ratio": int(fc1.shape[0]) // width, "hidden_act": "gelu", "layer_norm_eps": DINOV2_LAYER_NORM_EPS,
        "image_size": grid * patch_size, "patch_size": patch_size, "num_channels": int(patch.shape[1]),
        "qkv_bias": True, "layerscale_value": 1.0, "use_swiglu_ffn": False,
        "num_register_tokens": int(registers.shape[1]), "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0,
    }


def openlrm_to_mira_config(values: Mapping[str, Any], state: Mapping[str, Tensor], source: str = "<config>",
                           source_size: int | None = None, encoder_num_heads: int | None = None) -> MiraConfig:
    """A :class:`MiraConfig` that makes MIRA compute what ``ModelLRM(**values)`` computes.

    Args:
        values: the OpenLRM ``config.json`` (ModelLRM kwargs).
        state: the OpenLRM state dict (the encoder's shape is read from it).
        source: names the checkpoint in errors.
        source_size: the input side; default: OpenLRM's inference size for a published model size
            (:data:`OPENLRM_SOURCE_SIZES`), required for other sizes.
        encoder_num_heads: DINOv2 heads for an encoder that is no published backbone (tests).
    """
    check_openlrm_config(values, source)
    width, layers = int(values["transformer_dim"]), int(values["transformer_layers"])
    if source_size is None:
        if (width, layers) not in OPENLRM_SOURCE_SIZES:
            raise OpenLRMConversionError(
                f"{source}: transformer_dim {width} x {layers} layers is no published OpenLRM size "
                f"{sorted(OPENLRM_SOURCE_SIZES)}; give the source image size it was trained with: `python -m mira.convert SRC OUT --source_size N` "
                "(then use OUT)")
        source_size = OPENLRM_SOURCE_SIZES[(width, layers)]
    encoder = encoder_config_from_weights(state, str(values["encoder_model_name"]), source, encoder_num_heads)
    if encoder["hidden_size"] != values["encoder_feat_dim"]:
        raise OpenLRMConversionError(f"{source}: the config does not match the weights: encoder_feat_dim "
                                     f"{values['encoder_feat_dim']} vs encoder width {encoder['hidden_size']}")
    samples = int(values["rendering_samples_per_ray"])
    model = {
        "encoder_model_id": f"openlrm:{values['encoder_model_name']}", "encoder_architecture": "dinov2_with_registers",
        "encoder_config": encoder, "encoder_imagenet_normalization": False,
        "encoder_trainable_blocks": 0 if values.get("encoder_freeze", False) else -1,
        "source_size": int(source_size), "camera_vector_layout": "c2w3x4_opengl", "camera_matrix_dim": 16,
        "camera_embed_dim": int(values["camera_embed_dim"]), "decoder_hidden_dim": width, "num_layers": layers,
        "num_heads": int(values["transformer_heads"]), "mlp_ratio": 4.0, "decoder_mlp_activation": "gelu",
        "attention_bias": False, "context_projection": False, "triplane_token_sincos": False,
        "final_norm_eps": OPENLRM_NORM_EPS, "triplane_feat_res": int(values["triplane_low_res"]),
        "triplane_res": int(values["triplane_high_res"]), "triplane_dim": int(values["triplane_dim"]),
        "context_position_embedding": False, "weights_license": OPENLRM_WEIGHTS_LICENSE,
    }
    renderer = {
        "rendering_samples_per_ray": samples // 2, "importance_samples_per_ray": samples // 2,
        "box_min": [-1.0, -1.0, -1.0], "box_max": [1.0, 1.0, 1.0], "background_color": [1.0, 1.0, 1.0],
        "triplane_aggregation": "concat", "plane_axes": "xy_xz_zy", "mlp_hidden_dim": 64, "mlp_num_layers": 4,
        "field_activation": "relu", "ray_marching": "eg3d", "density_bias": -1.0, "color_sigmoid_widening": 0.001,
        "mesh_density_threshold": OPENLRM_MESH_THRESHOLD, "mesh_grid_resolution": OPENLRM_MESH_RESOLUTION,
    }
    data = {
        "source_camera_azimuth_deg": -90.0, "source_model_focal": OPENLRM_SOURCE_FOCAL,
        "source_distance_per_focal": OPENLRM_SOURCE_DISTANCE / OPENLRM_SOURCE_FOCAL,
    }
    return MiraConfig.from_dict({"model": model, "renderer": renderer, "data": data}, source=f"{source} (converted)")


def published_openlrm_config(size: str) -> MiraConfig:
    """The MIRA config of a published OpenLRM v1.1 size ("small", "base", "large"), without weights
    (benchmarks; what converting ``zxhezexin/openlrm-{obj,mix}-<size>-1.1`` gives)."""
    if size not in PUBLISHED_SIZES:
        raise ValueError(f"OpenLRM size must be one of {sorted(PUBLISHED_SIZES)}, got '{size}'")
    values = {**PUBLISHED_COMMON, **PUBLISHED_SIZES[size]}
    backbone = DINOV2_REGISTER_BACKBONES[values["encoder_model_name"]]
    width, grid = backbone["hidden_size"], DINOV2_IMAGE_SIZE // DINOV2_PATCH_SIZE
    shapes = {"encoder.model.cls_token": (1, 1, width), "encoder.model.pos_embed": (1, 1 + grid * grid, width),
              "encoder.model.register_tokens": (1, DINOV2_NUM_REGISTERS, width),
              "encoder.model.patch_embed.proj.weight": (width, 3, DINOV2_PATCH_SIZE, DINOV2_PATCH_SIZE)}
    shapes.update({f"encoder.model.blocks.{i}.mlp.fc1.weight": (4 * width, width)
                   for i in range(backbone["num_hidden_layers"])})
    state = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    return openlrm_to_mira_config(values, state, source=f"openlrm-{size}-1.1")


# ---------------------------------------------------------------------- weights
def fold_modulated_norm(norm_weight: Tensor, norm_bias: Tensor, linear_weight: Tensor,
                        linear_bias: Tensor) -> tuple[Tensor, Tensor]:
    """OpenLRM's ModLN as MIRA's :class:`~mira.models.modulate.ModulatedLayerNorm` weights.

    OpenLRM: ``(n * g + b) * (1 + scale) + shift`` with ``n`` the affine-free LayerNorm, ``g, b``
    its affine, ``(shift, scale) = W c + w`` (rows: shift first). MIRA: ``n * (1 + s) + h`` with
    ``(s, h) = W' c + w'`` (rows: scale first). Equal for every ``c`` when::

        W'_s = g W_scale          w'_s = g w_scale + g - 1
        W'_h = W_shift + b W_scale  w'_h = w_shift + b w_scale + b

    Computed in float64, returned in the input dtype.

    Args:
        norm_weight, norm_bias: (D,) the LayerNorm affine g, b.
        linear_weight: (2D, E); linear_bias: (2D,) the modulation projection (shift rows, then scale).
    Returns:
        weight (2D, E), bias (2D,) for MIRA's ``modulation.1`` (scale rows, then shift).
    """
    dtype = linear_weight.dtype
    g, b = norm_weight.double(), norm_bias.double()
    w_shift, w_scale = linear_weight.double().chunk(2, dim=0)
    b_shift, b_scale = linear_bias.double().chunk(2, dim=0)
    weight = torch.cat([g[:, None] * w_scale, w_shift + b[:, None] * w_scale], dim=0)
    bias = torch.cat([g * b_scale + g - 1.0, b_shift + b * b_scale + b], dim=0)
    return weight.to(dtype), bias.to(dtype)


def _encoder_tensors(take: StrictTensors, depth: int, width: int) -> dict[str, Tensor]:
    """Meta DINOv2 (registers) tensors under transformers' Dinov2WithRegistersModel names (5.2x spelling)."""
    up, out = "encoder.model.", "encoder.backbone."
    mapped = {
        out + "embeddings.cls_token": take(up + "cls_token"),
        out + "embeddings.position_embeddings": take(up + "pos_embed"),
        out + "embeddings.register_tokens": take(up + "register_tokens"),
        out + "embeddings.patch_embeddings.projection.weight": take(up + "patch_embed.proj.weight"),
        out + "embeddings.patch_embeddings.projection.bias": take(up + "patch_embed.proj.bias"),
        out + "layernorm.weight": take(up + "norm.weight"),
        out + "layernorm.bias": take(up + "norm.bias"),
    }
    for i in range(depth):
        block, layer = f"{up}blocks.{i}.", f"{out}encoder.layer.{i}."
        qkv_weight, qkv_bias = take(block + "attn.qkv.weight"), take(block + "attn.qkv.bias")
        if qkv_weight.shape[0] != 3 * width:
            raise OpenLRMConversionError(f"{take.source}: {block}attn.qkv.weight {tuple(qkv_weight.shape)} is not "
                                         f"(3 * {width}, {width})")
        for name, weight, bias in zip("qkv", qkv_weight.chunk(3, dim=0), qkv_bias.chunk(3, dim=0)):
            mapped[f"{layer}attention.{name}_proj.weight"] = weight
            mapped[f"{layer}attention.{name}_proj.bias"] = bias
        for ours, theirs in (("attention.o_proj", "attn.proj"), ("norm1", "norm1"), ("norm2", "norm2"),
                             ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            mapped[f"{layer}{ours}.weight"] = take(f"{block}{theirs}.weight")
            mapped[f"{layer}{ours}.bias"] = take(f"{block}{theirs}.bias")
        mapped[layer + "layer_scale1.lambda1"] = take(block + "ls1.gamma")
        mapped[layer + "layer_scale2.lambda1"] = take(block + "ls2.gamma")
    return mapped


def _attention_tensors(take: StrictTensors, upstream: str, ours: str, width: int) -> dict[str, Tensor]:
    """nn.MultiheadAttention (no biases) -> MultiHeadAttention's to_q, to_kv (k rows, then v), to_out."""
    if take.has(upstream + "in_proj_weight"):
        packed = take(upstream + "in_proj_weight")  # (3D, D): q, k, v rows
        query, key_value = packed[:width], packed[width:]
    else:
        query = take(upstream + "q_proj_weight")
        key_value = torch.cat([take(upstream + "k_proj_weight"), take(upstream + "v_proj_weight")], dim=0)
    return {ours + "to_q.weight": query, ours + "to_kv.weight": key_value,
            ours + "to_out.weight": take(upstream + "out_proj.weight")}


def convert_openlrm_state(state: Mapping[str, Tensor], config: MiraConfig, source: str = "<state>") -> dict[str, Tensor]:
    """Map an OpenLRM state dict to MIRA's names (see the module docstring); strict.

    Args:
        state: OpenLRM ``ModelLRM.state_dict()`` (checkpoint names).
        config: from :func:`openlrm_to_mira_config`.
        source: names the checkpoint in errors.
    Returns:
        MIRA state dict (DINOv2 attention in transformers 5.2x names; the loader renames them for
        older transformers).
    Raises:
        OpenLRMConversionError: a tensor left over or missing (named).
    """
    take = StrictTensors(state, source, "OpenLRM", "an OpenLRM v1.1 checkpoint", OpenLRMConversionError)
    m = config.model
    mapped = _encoder_tensors(take, int(m.encoder_config["num_hidden_layers"]), int(m.encoder_config["hidden_size"]))
    for index in (0, 2):
        for kind in ("weight", "bias"):
            mapped[f"camera_embedder.mlp.{index}.{kind}"] = take(f"camera_embedder.mlp.{index}.{kind}")
    pos_embed = take("pos_embed")
    mapped["decoder.tokens"] = pos_embed.reshape(pos_embed.shape[-2], pos_embed.shape[-1])
    for i in range(m.num_layers):
        up, ours = f"transformer.layers.{i}.", f"decoder.blocks.{i}."
        for theirs, norm in (("norm1", "norm_cross"), ("norm2", "norm_self"), ("norm3", "norm_mlp")):
            weight, bias = fold_modulated_norm(take(f"{up}{theirs}.norm.weight"), take(f"{up}{theirs}.norm.bias"),
                                               take(f"{up}{theirs}.mlp.1.weight"), take(f"{up}{theirs}.mlp.1.bias"))
            mapped[f"{ours}{norm}.modulation.1.weight"], mapped[f"{ours}{norm}.modulation.1.bias"] = weight, bias
        mapped.update(_attention_tensors(take, up + "cross_attn.", ours + "cross_attention.", m.decoder_hidden_dim))
        mapped.update(_attention_tensors(take, up + "self_attn.", ours + "self_attention.", m.decoder_hidden_dim))
        for theirs, index in (("mlp.0", 0), ("mlp.3", 2)):
            mapped[f"{ours}mlp.{index}.weight"] = take(f"{up}{theirs}.weight")
            mapped[f"{ours}mlp.{index}.bias"] = take(f"{up}{theirs}.bias")
    for kind in ("weight", "bias"):
        mapped[f"decoder.final_norm.{kind}"] = take(f"transformer.norm.{kind}")
        mapped[f"decoder.upsample.{kind}"] = take(f"upsampler.{kind}")
    for index in range(0, 2 * config.renderer.mlp_num_layers, 2):
        for kind in ("weight", "bias"):
            mapped[f"renderer.field.mlp.{index}.{kind}"] = take(f"synthesizer.decoder.net.{index}.{kind}")
    take.check_all_used()
    return {name: tensor.contiguous() for name, tensor in mapped.items()}


def is_openlrm_state(keys: Any) -> bool:
    """True when state-dict keys look like OpenLRM's ModelLRM (its top-level module names)."""
    keys = set(keys)
    return "pos_embed" in keys and any(k.startswith("synthesizer.decoder.net.") for k in keys) and any(
        k.startswith("transformer.layers.") for k in keys)
