"""The MIRA model: image + source camera -> triplanes -> rendered views.

``MIRA(cfg)`` holds the four parts named after the architecture:

* ``encoder`` (:class:`~mira.models.encoder.DinoV2Encoder`): images -> DINOv2 tokens;
* ``camera_embedder`` (:class:`~mira.models.camera_embedder.CameraEmbedder`): source camera -> embedding;
* ``decoder`` (:class:`~mira.models.transformer.TriplaneDecoder`): tokens + camera -> triplanes;
* ``renderer`` (:class:`mira.rendering.TriplaneRenderer`): triplanes + render cameras -> images.

Checkpoints (``save_pretrained`` / ``from_pretrained``; every other kind, OpenLRM's included, loads
through :mod:`mira.checkpoints`) are a directory with
``model.safetensors`` (every weight, the encoder's included) and ``config.json`` (the
whole nested :class:`~mira.config.MiraConfig`, with ``encoder_config`` filled in), so
loading one never needs the DINOv2 hub id again.

Why not ``huggingface_hub.PyTorchModelHubMixin``: its config round trip rebuilds a
dataclass with ``Config(**json)``, which leaves MiraConfig's nested sections as plain
dicts and skips our key/type validation; its safetensors load is non-strict by default
and its writes are not atomic. The ~80 lines below keep the same on-disk layout
(``model.safetensors`` + ``config.json``, loadable from the hub via ``snapshot_download``)
with validation, strict key checks and atomic writes.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from mira.atomic import default_directory_mode, default_file_mode
from mira.checkpoints import CHECKPOINT_FILES, CONFIG_NAME, WEIGHTS_NAME, checkpoint_format, download_checkpoint
from mira.config import MiraConfig
from mira.errors import WeightsNotFoundError
from mira.models.camera_embedder import CameraEmbedder
from mira.models.encoder import DinoV2Encoder, match_dinov2_key_names, match_vit_key_names
from mira.models.image_lifting import ImageLifting
from mira.models.projective_bias import ProjectiveAttentionBias
from mira.models.transformer import TriplaneDecoder
from mira.rendering import TriplaneRenderer
from mira.rendering.triplane import PLANE_AXES_BY_NAME

NO_WEIGHT_DECAY_NAMES = ("tokens",)  # learned triplane tokens: embeddings, no decay


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint directory or hub id could not be found / downloaded."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not match the architecture its config describes."""


class MIRA(nn.Module):
    """Single-image to triplane reconstruction model.

    Args:
        config: the whole :class:`MiraConfig`. It is deep-copied into ``self.config``;
            when the encoder is loaded from ``encoder_model_id``, the copy's
            ``model.encoder_config`` is filled with the loaded DINOv2 architecture.
    """

    def __init__(self, config: MiraConfig) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        model_cfg = self.config.model
        self.encoder = DinoV2Encoder(model_cfg)
        # No camera input (camera_conditioning false, TripoSR): no embedder, no weights.
        self.camera_embedder = (CameraEmbedder(model_cfg.camera_matrix_dim, model_cfg.camera_embed_dim,
                                               model_cfg.camera_vector_layout)
                                if model_cfg.camera_conditioning else None)
        projection = None
        if model_cfg.projective_attention_bias:
            renderer_cfg = self.config.renderer
            projection = ProjectiveAttentionBias(model_cfg.triplane_feat_res, PLANE_AXES_BY_NAME[renderer_cfg.plane_axes],
                                                 renderer_cfg.box_min, renderer_cfg.box_max, self.encoder.patch_size)
        self.decoder = TriplaneDecoder(model_cfg, encoder_dim=self.encoder.hidden_size, projection=projection)
        self.lifting = None
        if model_cfg.image_lifting:
            renderer_cfg = self.config.renderer
            self.lifting = ImageLifting(model_cfg.triplane_feat_res, model_cfg.decoder_hidden_dim, model_cfg.triplane_dim,
                                        self.encoder.hidden_size, self.encoder.patch_size,
                                        PLANE_AXES_BY_NAME[renderer_cfg.plane_axes], renderer_cfg.box_min,
                                        renderer_cfg.box_max, channels=model_cfg.image_lifting_channels,
                                        depth_samples=model_cfg.image_lifting_depth_samples)
        self.renderer = TriplaneRenderer(self.config.renderer, triplane_dim=model_cfg.triplane_dim)

    # ------------------------------------------------------------------ forward
    def forward_triplanes(self, images: Tensor, source_c2w: Tensor, source_intrinsics: Tensor) -> Tensor:
        """Reconstruct triplanes from source images.

        Args:
            images: (B, 3, S, S) RGB in [0, 1] (any S >= one patch; usually ``source_size``).
            source_c2w: (B, 4, 4) OpenCV camera-to-world of the source view.
            source_intrinsics: (B, 4) normalised fx, fy, cx, cy of the source view.
            (Both are checked but unused when ``camera_conditioning`` is false.)
        Returns:
            (B, 3, C, 2R, 2R) triplanes (planes XY, XZ, YZ).
        """
        batch = images.shape[0]
        if source_c2w.shape != (batch, 4, 4) or source_intrinsics.shape != (batch, 4):
            raise ValueError(
                f"source_c2w must be (B, 4, 4) and source_intrinsics (B, 4) with B = {batch}, got "
                f"{tuple(source_c2w.shape)} and {tuple(source_intrinsics.shape)}"
            )
        image_tokens = self.encoder(images)
        camera_embedding = None
        if self.camera_embedder is not None:
            camera_embedding = self.camera_embedder.embed_camera(source_c2w.to(images.dtype),
                                                                 source_intrinsics.to(images.dtype))
        token_offsets = cell_offsets = None
        if self.lifting is not None:
            token_offsets, cell_offsets = self.lifting(images, image_tokens, source_c2w, source_intrinsics)
        triplanes = self.decoder(image_tokens, camera_embedding, source_c2w, source_intrinsics, tuple(images.shape[-2:]),
                                 token_offsets=token_offsets)
        return triplanes if cell_offsets is None else triplanes + cell_offsets.to(triplanes.dtype)

    def forward(
        self,
        images: Tensor,
        source_c2w: Tensor,
        source_intrinsics: Tensor,
        render_c2w: Tensor,
        render_intrinsics: Tensor,
        render_size: int,
        uv: Tensor | None = None,
        background: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Reconstruct and render.

        Args:
            images, source_c2w, source_intrinsics: as :meth:`forward_triplanes`.
            render_c2w: (B, V, 4, 4) OpenCV camera-to-world of the views to render.
            render_intrinsics: (B, V, 4) normalised intrinsics of those views.
            render_size: side H = W of the rendered images (pixels).
            uv: optional (B, V, N, 2) (or (N, 2)) pixel coordinates in a ``render_size`` image
                to render only those pixels (training patches); None renders whole images.
            background: (B, 3) colour behind each object; None: the config's ``background_color``.
        Returns:
            {"triplanes": (B, 3, C, 2R, 2R), "rgb", "depth", "opacity"}; with ``uv=None``
            rgb is (B, V, 3, H, W) and depth / opacity (B, V, 1, H, W); with ``uv`` they are
            (B, V, N, 3) and (B, V, N, 1).
        """
        triplanes = self.forward_triplanes(images, source_c2w, source_intrinsics)
        if uv is None:
            rendered = self.renderer.render_images(triplanes, render_c2w, render_intrinsics, render_size, render_size,
                                                   background)
        else:
            rendered = self.renderer.render_pixels(triplanes, render_c2w, render_intrinsics, uv, render_size, render_size,
                                                   background)
        return {"triplanes": triplanes, **rendered}

    def compile_blocks(self) -> None:
        """``torch.compile`` each decoder block in place (regional compilation: one graph per block shape,
        reused by all blocks; the renderer's Triton kernels and checkpointing stay outside compiled code)."""
        for block in self.decoder.blocks:
            block.compile()

    # ------------------------------------------------------------------ optimisation
    def trainable_parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups of the trainable weights.

        Matrices and conv kernels get ``weight_decay``; biases, norm parameters, the learned
        triplane tokens and other vectors get none. Frozen parameters are left out.
        """
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            skip = parameter.dim() < 2 or name.split(".")[-1] in NO_WEIGHT_DECAY_NAMES
            (no_decay if skip else decay).append(parameter)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, save_directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` to ``save_directory`` atomically.

        ``dtype`` (e.g. ``torch.float16``) stores floating-point weights in that type (half the
        file for a shipped model); :meth:`from_pretrained` casts them back to the model's type.

        Both files are first written to a temporary directory next to the target, then moved
        into place with ``os.replace`` (a crash never leaves a half-written file). Other files
        already in ``save_directory`` are kept.

        Returns:
            The directory path.
        """
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            self._write_checkpoint_files(staging, dtype)
            for name in CHECKPOINT_FILES:  # safetensors writes 0o600 files, mkdtemp a 0o700 directory
                os.chmod(staging / name, default_file_mode())
            if not target.exists():
                os.chmod(staging, default_directory_mode())
                os.replace(staging, target)
                return target
            if not target.is_dir():
                raise NotADirectoryError(f"save_pretrained: {target} exists and is not a directory")
            for name in CHECKPOINT_FILES:
                os.replace(staging / name, target / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _write_checkpoint_files(self, directory: Path, dtype: torch.dtype | None = None) -> None:
        """Weights (safetensors, floating point ones as ``dtype`` if given) and the nested config (JSON)."""
        state = {}
        for name, tensor in self.state_dict().items():
            tensor = tensor.detach()
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[name] = tensor.contiguous().cpu()
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "library": "mira"})
        config = {"_comment": "MIRA checkpoint config (mira.models.MIRA.save_pretrained)", **self.config.to_dict()}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls,
        dir_or_hub_id: str | Path,
        map_location: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> "MIRA":
        """Load a checkpoint written by :meth:`save_pretrained` (or an OpenLRM or TripoSR checkpoint folder, converted
        by :mod:`mira.checkpoints`), from a directory or the hub.

        Args:
            dir_or_hub_id: a local directory, or a Hugging Face hub repo id (downloaded with
                ``huggingface_hub.snapshot_download``, or read from its cache).
            map_location: device for the model's tensors.
            revision, cache_dir: passed to ``snapshot_download`` for hub ids.
        Returns:
            The model, in eval mode (call ``.train()`` to fine-tune).
        Raises:
            CheckpointNotFoundError: no such directory / hub repo, or a file is missing.
            mira.config.ConfigError: ``config.json`` is invalid (names the key and file).
            CheckpointMismatchError: the weights do not match the config.
        """
        directory = resolve_checkpoint_dir(dir_or_hub_id, revision=revision, cache_dir=cache_dir)
        if checkpoint_format(directory) in ("openlrm", "triposr"):  # converted on the fly (mira.pretrained)
            from mira.checkpoints import load_model

            return load_model(str(directory), device=map_location)
        config = MiraConfig.from_json(directory / CONFIG_NAME)
        model = cls(config)
        state = load_file(str(directory / WEIGHTS_NAME), device=str(map_location))
        model.load_checkpoint_state(state, source=str(directory / WEIGHTS_NAME))
        return model.to(map_location).eval()

    def load_checkpoint_state(self, state: dict[str, Tensor], source: str = "<state dict>") -> None:
        """Load weights, requiring exactly this model's keys and shapes.

        Raises:
            CheckpointMismatchError: listing missing keys, unexpected keys and shape mismatches.
        """
        expected = self.state_dict()
        state = match_vit_key_names(match_dinov2_key_names(state, set(expected)), set(expected))
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = [
            f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
            for key in sorted(set(expected) & set(state))
            if state[key].shape != expected[key].shape
        ]
        if missing or unexpected or mismatched:
            raise CheckpointMismatchError(
                f"{source}: checkpoint does not match the config (was it saved with a different "
                f"config.json?)\n  missing keys ({len(missing)}): {_preview(missing)}\n"
                f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}\n"
                f"  shape mismatches ({len(mismatched)}): {_preview(mismatched)}"
            )
        self.load_state_dict(state, strict=True)


def _preview(items: list[str], limit: int = 10) -> str:
    """The first ``limit`` items of a list, and how many more there are."""
    shown = ", ".join(items[:limit]) or "none"
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def resolve_checkpoint_dir(
    dir_or_hub_id: str | Path, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local checkpoint directory, downloading a hub repo if ``dir_or_hub_id`` is not a directory.

    Raises:
        CheckpointNotFoundError: the directory lacks a checkpoint file, or the hub repo can't be
            found in the cache or downloaded; the message says what to do.
    """
    local = Path(dir_or_hub_id).expanduser()
    if local.is_dir():
        directory = local
    elif local.exists():
        raise CheckpointNotFoundError(f"{local} is a file; from_pretrained needs the directory written by save_pretrained")
    else:
        directory = _download_checkpoint(str(dir_or_hub_id), revision, cache_dir)
    if checkpoint_format(directory) == "triposr":  # config.yaml + model.ckpt
        return directory
    for name in CHECKPOINT_FILES:
        if not (directory / name).is_file():
            raise CheckpointNotFoundError(
                f"{directory / name} not found: a MIRA checkpoint directory holds {' and '.join(CHECKPOINT_FILES)} "
                "(written by MIRA.save_pretrained)"
            )
    return directory


def _download_checkpoint(hub_id: str, revision: str | None, cache_dir: str | Path | None) -> Path:
    """``snapshot_download`` of a checkpoint repo (config + weights only): :func:`mira.checkpoints.download_checkpoint`."""
    try:
        return download_checkpoint(hub_id, revision=revision, cache_dir=cache_dir)
    except WeightsNotFoundError as error:
        raise CheckpointNotFoundError(str(error)) from error
