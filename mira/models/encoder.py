"""Image encoder: a DINOv2 vision transformer (``transformers.Dinov2Model``) turned into tokens.

The encoder takes RGB images in ``[0, 1]`` and returns DINOv2's final-layer token
sequence (CLS token + one token per 14x14 patch, after the final LayerNorm). The
ImageNet normalisation happens inside the module (``encoder_imagenet_normalization``; OpenLRM
feeds [0, 1] RGB as is), so callers never touch a PIL processor, and position embeddings are
interpolated (bicubic, by ``transformers``) for any input size.

``encoder_architecture`` picks the network: ``dinov2`` (``Dinov2Model``),
``dinov2_with_registers`` (``Dinov2WithRegistersModel``, DINOv2 with register tokens, the
encoder of OpenLRM v1.1) or ``vit`` (``ViTModel`` without its pooler, e.g. DINO v1 ViT-B/16, the
encoder of TripoSR; ``encoder_position_interpolation = "scale_factor"`` resizes its position grid as
transformers 4.35 did, :func:`scale_factor_position_embeddings`). The registers are dropped from the output, so the token sequence is
CLS + patches for both; the registers model has no ``mask_token`` (used only by masked
pre-training, and absent from Meta's checkpoints).

Where the weights come from (``ModelConfig``):

* ``encoder_config`` set: a ``Dinov2Config`` dict -> random weights (tests, training
  from scratch, and every MIRA checkpoint, whose encoder weights live in
  ``model.safetensors``).
* otherwise ``encoder_model_id``: a local directory or a Hugging Face hub id loaded with
  ``Dinov2Model.from_pretrained``. Nothing is downloaded silently into a random model:
  when the weights are not available the error says what to download and where.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel, ViTConfig,
                          ViTModel)

from mira.config import ModelConfig

# ImageNet statistics DINOv2 was trained with (RGB, on [0, 1] images).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keys of Dinov2Config.to_dict() that describe where a config came from, not the network.
_PROVENANCE_KEYS = ("_name_or_path", "architectures", "transformers_version", "_commit_hash")


class EncoderWeightsNotFoundError(OSError):
    """The DINOv2 weights named by ``encoder_model_id`` could not be loaded."""


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


# encoder_architecture -> (transformers config class, model class).
ENCODER_CLASSES = {
    "dinov2": (Dinov2Config, Dinov2Model),
    "dinov2_with_registers": (Dinov2WithRegistersConfig, Dinov2WithRegistersModel),
    "vit": (ViTConfig, ViTModel),
}
# Extra constructor arguments per architecture: a ViT is built without its pooler (unused: the
# encoder's output is the token sequence).
_MODEL_KWARGS = {"vit": {"add_pooling_layer": False}}


def load_pretrained_dinov2(model_id: str, architecture: str = "dinov2") -> nn.Module:
    """Load a ``Dinov2Model`` (or ``Dinov2WithRegistersModel``) from a local directory or a hub id,
    with no silent fallback.

    Raises:
        EncoderWeightsNotFoundError: the directory does not hold a Dinov2Model, or the hub id
            is neither cached nor downloadable (offline); the message names the id, the
            Hugging Face cache directory and how to fix it.
    """
    local = Path(model_id).expanduser()
    model_class = ENCODER_CLASSES[architecture][1]
    try:
        model = model_class.from_pretrained(str(local) if local.is_dir() else model_id, dtype=torch.float32,
                                            **_MODEL_KWARGS.get(architecture, {}))
    except (OSError, ValueError) as error:  # OSError: not cached/offline; ValueError: bad repo id
        if local.is_dir():
            raise EncoderWeightsNotFoundError(
                f"encoder_model_id '{model_id}' is a directory but does not hold a Dinov2Model "
                f"(config.json + model.safetensors written by Dinov2Model.save_pretrained): {error}"
            ) from error
        raise EncoderWeightsNotFoundError(
            f"could not load the DINOv2 encoder '{model_id}': it is not a local directory and is not in "
            f"the Hugging Face cache ({_hub_cache_dir()}), and it could not be downloaded (offline?).\n"
            f"Fix: on a machine with internet run `hf download {model_id}` (older huggingface_hub: "
            f"`huggingface-cli download {model_id}`; the cache dir is set by HF_HOME / HF_HUB_CACHE), or "
            f"save the model to a directory and set encoder_model_id to that directory in your config.\n"
            f"Original error: {error}"
        ) from error
    return model


# transformers renamed DINOv2's attention weights (5.2x: ``attention.q_proj`` ...; before:
# ``attention.attention.query`` ...): the same tensors under two spellings, old -> new.
DINOV2_RENAMED_KEYS = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)


def match_dinov2_key_names(state: dict[str, Any], expected_keys: set[str]) -> dict[str, Any]:
    """``state`` with DINOv2 attention weights named as in ``expected_keys`` (the running model's).

    A checkpoint written under one ``transformers`` version loads under the other: every key that
    is not expected but becomes an expected key under :data:`DINOV2_RENAMED_KEYS` (either way) is
    renamed; everything else is left for the caller's strict key check.
    """
    renamed = {}
    for key, value in state.items():
        if key not in expected_keys:
            for old, new in DINOV2_RENAMED_KEYS:
                for source, target in ((old, new), (new, old)):
                    candidate = key.replace(source, target)
                    if candidate != key and candidate in expected_keys:
                        key = candidate
                        break
                else:
                    continue
                break
        renamed[key] = value
    return renamed


def dinov2_config_dict(config: Dinov2Config) -> dict[str, Any]:
    """The JSON-serialisable architecture of a DINOv2 model (what ``encoder_config`` stores)."""
    values = config.to_dict()
    for key in _PROVENANCE_KEYS:
        values.pop(key, None)
    return values


def build_dinov2(model_cfg: ModelConfig) -> nn.Module:
    """Random-weight encoder from ``model_cfg.encoder_config``, else the pretrained one.

    The class is ``model_cfg.encoder_architecture``'s (:data:`ENCODER_CLASSES`). After loading
    pretrained weights, ``model_cfg.encoder_config`` is filled in with the loaded architecture, so
    that a saved MIRA checkpoint is self-contained. A registers model loses its unused ``mask_token``.
    """
    if model_cfg.encoder_architecture not in ENCODER_CLASSES:
        raise ValueError(f"'encoder_architecture' must be one of {sorted(ENCODER_CLASSES)}, "
                         f"got '{model_cfg.encoder_architecture}'")
    config_class, model_class = ENCODER_CLASSES[model_cfg.encoder_architecture]
    if model_cfg.encoder_config is not None:
        try:
            config = config_class.from_dict(dict(model_cfg.encoder_config))
        except (TypeError, ValueError) as error:
            raise ValueError(f"'encoder_config' is not a valid {config_class.__name__}: {error}") from error
        model = model_class(config, **_MODEL_KWARGS.get(model_cfg.encoder_architecture, {}))
    else:
        model = load_pretrained_dinov2(model_cfg.encoder_model_id, model_cfg.encoder_architecture)
        model_cfg.encoder_config = dinov2_config_dict(model.config)
    if model_cfg.encoder_architecture == "dinov2_with_registers":
        del model.embeddings.mask_token  # masked pre-training only; never part of the checkpoint
        model.embeddings.mask_token = None
    if model_cfg.encoder_position_interpolation == "scale_factor":
        model.embeddings.interpolate_pos_encoding = types.MethodType(scale_factor_position_embeddings, model.embeddings)
    if hasattr(model.embeddings, "interpolate_pos_encoding"):
        model.embeddings.interpolate_pos_encoding = FrozenPositionCache(model.embeddings.interpolate_pos_encoding,
                                                                        model.embeddings)
    return model


class FrozenPositionCache:
    """Memoise a ViT's resized position embeddings while the table is frozen.

    Resizing the (1 + n^2, D) table bicubically runs one CUDA thread per output cell, looping over all D
    channels: 7 ms per call for DINOv2-base at 448 px on an H100 (2 % of a ``mira-base`` training step),
    for a result that cannot change while the encoder is frozen (the default). The cache is keyed on the
    input size, dtype and device and on the table's identity and in-place version counter, so a trained or
    reloaded table is never served stale; with a table that requires grad it is bypassed.
    """

    def __init__(self, interpolate: Any, embeddings: nn.Module) -> None:
        self.interpolate = interpolate
        self.embeddings = embeddings
        self.key: tuple | None = None
        self.value: Tensor | None = None

    def __call__(self, tokens: Tensor, height: int, width: int) -> Tensor:
        """(B, 1 + h * w, D) tokens, input ``height`` x ``width`` -> (1, 1 + h * w, D) position embeddings."""
        table = self.embeddings.position_embeddings
        # compiled code (test.py --compile) gets the resize traced into its graph: a tensor cached from a
        # CUDA-graph replay would be overwritten by the next replay
        if (table.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
            return self.interpolate(tokens, height, width)
        key = (height, width, tokens.shape[1], tokens.dtype, tokens.device, table.data_ptr(), table._version,
               torch.is_autocast_enabled(tokens.device.type))
        if key != self.key:
            self.value = self.interpolate(tokens, height, width).detach()
            self.key = key
        return self.value


def scale_factor_position_embeddings(embeddings: nn.Module, tokens: Tensor, height: int, width: int) -> Tensor:
    """A ViT's position embeddings for an ``height`` x ``width`` input, resized by a scale factor.

    The learned (n x n) grid is resized bicubically (``align_corners=False``) by the factors
    ``(h + 0.1) / n`` and ``(w + 0.1) / n`` with ``h, w`` the input's patch counts, as transformers
    4.35 did (``encoder_position_interpolation = "scale_factor"``): the output has h x w cells, but the
    sampling positions differ slightly from resizing to exactly (h, w) (the fraction 0.1 / n changes
    the source coordinates; up to 1e-2 on DINO ViT-B/16's tokens at 512 px).

    Args:
        embeddings: the ViT's embeddings module (``position_embeddings`` (1, 1 + n^2, D), ``patch_size``).
        tokens: (B, 1 + h * w, D) the CLS + patch tokens the result is added to.
        height, width: the input image size, pixels.
    Returns:
        (1, 1 + h * w, D) position embeddings (CLS first).
    """
    table = embeddings.position_embeddings
    grid_cells = table.shape[1] - 1
    if tokens.shape[1] - 1 == grid_cells and height == width:
        return table
    patch = embeddings.patch_size if isinstance(embeddings.patch_size, int) else embeddings.patch_size[0]
    side = math.isqrt(grid_cells)
    rows, cols = height // patch, width // patch
    dim = table.shape[-1]
    grid = table[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, D, n, n)
    resized = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic",
                            align_corners=False)  # (1, D, h, w)
    if resized.shape[-2:] != (rows, cols):
        raise ValueError(f"position grid {side}x{side} resized to {tuple(resized.shape[-2:])}, expected ({rows}, {cols})")
    return torch.cat([table[:, :1], resized.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)], dim=1)


# transformers renamed ViT's modules (5.x: ``layers.N.attention.q_proj``, ``mlp.fc1`` ...; 4.x:
# ``encoder.layer.N.attention.attention.query``, ``intermediate.dense`` ...): old -> new, applied in order.
VIT_RENAMED_PARTS = (
    (".encoder.layer.", ".layers."),
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
    (".intermediate.dense.", ".mlp.fc1."),
    (".output.dense.", ".mlp.fc2."),
)


def match_vit_key_names(state: dict[str, Any], expected_keys: set[str]) -> dict[str, Any]:
    """``state`` with ViT weights named as in ``expected_keys``: a key that is not expected but becomes an
    expected key when every :data:`VIT_RENAMED_PARTS` rename is applied (either way) is renamed."""
    renamed = {}
    for key, value in state.items():
        if key not in expected_keys:
            for pairs in (VIT_RENAMED_PARTS, tuple((new, old) for old, new in VIT_RENAMED_PARTS)):
                candidate = "." + key
                for source, target in pairs:
                    candidate = candidate.replace(source, target)
                if candidate[1:] in expected_keys:
                    key = candidate[1:]
                    break
        renamed[key] = value
    return renamed


class DinoV2Encoder(nn.Module):
    """DINOv2 image encoder: images (B, 3, S, S) in [0, 1] -> tokens (B, 1 + (S/p)^2, D).

    Args:
        model_cfg: ``encoder_model_id`` / ``encoder_config`` choose the weights (see module doc);
            ``encoder_trainable_blocks`` = 0 freezes everything (default), -1 trains everything,
            N > 0 trains the last N transformer blocks and the final LayerNorm;
            ``gradient_checkpointing`` also checkpoints the trainable encoder blocks.
            ``model_cfg.encoder_config`` is filled in when pretrained weights are loaded.
    """

    def __init__(self, model_cfg: ModelConfig) -> None:
        super().__init__()
        self.backbone = build_dinov2(model_cfg)
        self.patch_size = int(self.backbone.config.patch_size)
        self.hidden_size = int(self.backbone.config.hidden_size)
        self.num_blocks = int(self.backbone.config.num_hidden_layers)
        # Register tokens sit between CLS and the patches in the backbone's output; dropped.
        self.num_register_tokens = int(getattr(self.backbone.config, "num_register_tokens", 0) or 0)
        self.imagenet_normalization = model_cfg.encoder_imagenet_normalization
        # transformers' ViT resizes its position grid only when asked (DINOv2 always does).
        self.interpolates_explicitly = model_cfg.encoder_architecture == "vit"
        # Constants, not weights: not saved in checkpoints.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.trainable_blocks = model_cfg.encoder_trainable_blocks
        self._set_trainable(model_cfg.encoder_trainable_blocks)
        if model_cfg.gradient_checkpointing and not self.is_frozen:
            self._enable_checkpointing()

    # ------------------------------------------------------------------ freezing
    def _set_trainable(self, trainable_blocks: int) -> None:
        """Freeze the backbone, then unfreeze the requested part."""
        if trainable_blocks < -1 or trainable_blocks > self.num_blocks:
            raise ValueError(
                f"'encoder_trainable_blocks' must be -1 (all), 0 (frozen) or 1..{self.num_blocks} "
                f"(last N blocks of this encoder), got {trainable_blocks}"
            )
        self.backbone.requires_grad_(trainable_blocks == -1)
        if trainable_blocks > 0:
            for block in self.blocks()[-trainable_blocks:]:
                block.requires_grad_(True)
            self.backbone.layernorm.requires_grad_(True)
        mask_token = getattr(self.backbone.embeddings, "mask_token", None)
        if mask_token is not None:  # only used for masked pre-training; never receives a gradient here
            mask_token.requires_grad_(False)

    def blocks(self) -> nn.ModuleList:
        """The backbone's transformer blocks (``encoder.layer`` or, in newer transformers' ViT, ``layers``)."""
        layers = getattr(self.backbone, "layers", None)
        return layers if isinstance(layers, nn.ModuleList) else self.backbone.encoder.layer

    def _enable_checkpointing(self) -> None:
        """Activation checkpointing of the DINOv2 blocks (non-reentrant), across transformers versions."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.backbone, "activation_checkpointing_enable"):  # transformers >= 5.x
            self.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    @property
    def is_frozen(self) -> bool:
        """True when no encoder weight is trained."""
        return self.trainable_blocks == 0

    def train(self, mode: bool = True) -> "DinoV2Encoder":
        """A frozen encoder always stays in eval mode (no dropout / drop-path)."""
        super().train(mode)
        if self.is_frozen:
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------ forward
    def num_tokens(self, image_size: int) -> int:
        """Sequence length T for square images of side ``image_size``: CLS + patches."""
        return 1 + (image_size // self.patch_size) ** 2

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> ImageNet-normalised (B, 3, H, W) (unchanged when
        ``encoder_imagenet_normalization`` is false)."""
        if not self.imagenet_normalization:
            return images
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, images: Tensor) -> Tensor:
        """Encode images.

        Args:
            images: (B, 3, H, W) RGB in [0, 1]; H and W at least one patch (any size: the
                position embeddings are interpolated).
        Returns:
            (B, T, D) final-LayerNorm tokens, T = 1 + (H // p) * (W // p), D = hidden size.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < self.patch_size:
            raise ValueError(f"images must be at least {self.patch_size} px (one patch), got {tuple(images.shape[-2:])}")
        pixels = self.normalize(images)
        kwargs = {"interpolate_pos_encoding": True} if self.interpolates_explicitly else {}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.is_frozen):
            tokens = self.backbone(pixel_values=pixels, **kwargs).last_hidden_state
        if self.num_register_tokens:  # (B, 1 + registers + patches, D) -> CLS + patches
            tokens = torch.cat([tokens[:, :1], tokens[:, 1 + self.num_register_tokens:]], dim=1)
        return tokens
