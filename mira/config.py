"""Typed configuration for MIRA, loaded from JSON files in ``configs/``.

A configuration is a tree of small dataclasses, one per stage (model, renderer,
data, training, inference). Field names are unique across sections, so a JSON file
may be written either *flat* (``{"num_layers": 12, "learning_rate": 4e-4}``, the
format existing MIRA users already have) or *nested* (``{"model": {"num_layers": 12}}``).

Every key is checked: an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


DATA_SOURCES = ("renders", "procedural")
# camera_vector_layout -> camera_matrix_dim (mira.cameras.camera_vector).
CAMERA_VECTOR_LAYOUTS = {"c2w4x4_opencv": 20, "c2w3x4_opengl": 16}
ENCODER_ARCHITECTURES = ("dinov2", "dinov2_with_registers", "vit")
# How a ViT's learned position grid is resized to the input's patch grid (encoder_position_interpolation).
POSITION_INTERPOLATIONS = ("target_size", "scale_factor")
DECODER_MLP_ACTIVATIONS = ("gelu_tanh", "gelu", "geglu")
ATTENTION_BACKEND_NAMES = ("auto", "cudnn", "flash", "efficient", "math")  # mira.models.attention.ATTENTION_BACKENDS
DECODER_BLOCK_ORDERS = ("cross_self_mlp", "self_cross_mlp")
PLANE_AXES_CHOICES = ("xy_xz_yz", "xy_xz_zy")
FIELD_ACTIVATIONS = ("silu", "relu")
DENSITY_ACTIVATIONS = ("softplus", "exp")
PROJECT_PLANES_MODES = ("auto", "on", "off")
RAY_MARCHING_SCHEMES = ("mira", "eg3d", "normalized_midpoint")


@dataclass
class ModelConfig:
    """Image encoder, camera embedding and triplane transformer decoder."""

    # Encoder: a Hugging Face hub id or a local directory holding a Dinov2Model.
    encoder_model_id: str = "facebook/dinov2-base"
    # "dinov2" (transformers' Dinov2Model) or "dinov2_with_registers" (Dinov2WithRegistersModel: its
    # register tokens are dropped from the output, which stays CLS + patch tokens; OpenLRM's encoder),
    # or "vit" (transformers' ViTModel without its pooler, e.g. DINO v1 ViT-B/16: TripoSR's encoder).
    encoder_architecture: str = "dinov2"
    # "vit" only: how the learned position grid is resized to the input's patch grid (bicubic):
    # "target_size" = to exactly (H/p, W/p) (transformers >= 4.44); "scale_factor" = by the factor
    # (H/p + 0.1) / grid (transformers 4.35, which TripoSR pins and its weights were trained with).
    encoder_position_interpolation: str = "target_size"
    # Normalise the [0, 1] input with ImageNet's mean and std before the encoder (DINOv2's own
    # training); false feeds [0, 1] RGB as is (OpenLRM).
    encoder_imagenet_normalization: bool = True
    # If set, the encoder is built from this Dinov2Config dict with random weights
    # (tests, from-scratch training) instead of loading ``encoder_model_id``.
    # ``save_pretrained`` fills it in, so a saved MIRA never needs the hub again.
    encoder_config: dict | None = None
    # 0: frozen encoder; -1: fine-tune all of it; N > 0: fine-tune the last N blocks.
    encoder_trainable_blocks: int = 0
    # Side of the square source image fed to the encoder (pixels).
    source_size: int = 224
    # Source-camera vector (mira.cameras.camera_vector): "c2w4x4_opencv" = flattened 4x4 OpenCV
    # c2w (16) + normalised fx, fy, cx, cy (4); "c2w3x4_opengl" = the top 3x4 of the c2w in OpenGL
    # camera axes (12) + the same 4 intrinsics (OpenLRM).
    camera_vector_layout: str = "c2w4x4_opencv"
    # Length of that vector: 20 for c2w4x4_opencv, 16 for c2w3x4_opengl.
    camera_matrix_dim: int = 20
    camera_embed_dim: int = 1024
    # The decoder is conditioned on the source camera (embedding + adaLN modulation of every block
    # norm); false: no camera input at all (TripoSR): no camera embedder and no modulation weights,
    # each block norm is an affine LayerNorm of eps block_norm_eps.
    camera_conditioning: bool = True
    # Epsilon of the decoder blocks' LayerNorms (modulated or affine).
    block_norm_eps: float = 1e-6
    decoder_hidden_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    # Activation of the decoder blocks' MLPs: "gelu_tanh" (tanh approximation) or "gelu" (exact erf).
    # "geglu": the MLP's first Linear gives 2x the hidden width, split into (h, g), out = h * gelu(g).
    decoder_mlp_activation: str = "gelu_tanh"
    # Order of the sublayers in each decoder block: "cross_self_mlp" (cross-attention first) or
    # "self_cross_mlp" (self-attention first; TripoSR).
    decoder_block_order: str = "cross_self_mlp"
    # Biases in the decoder's attention projections (q, k, v, out); OpenLRM has none.
    attention_bias: bool = True
    # Bias of the attention output projection; None: as attention_bias (TripoSR: q/k/v without, out with).
    attention_output_bias: bool | None = None
    # Image tokens -> Linear(encoder width, D) -> LayerNorm before cross-attention; false: the
    # cross-attention's key/value projections read the encoder tokens directly (OpenLRM).
    context_projection: bool = True
    # Add the fixed 2D sine-cosine code of (row, column) to the learned triplane tokens; false: the
    # learned tokens alone (OpenLRM's pos_embed).
    triplane_token_sincos: bool = True
    # Epsilon of the decoder's final LayerNorm (the modulated norms use 1e-6).
    final_norm_eps: float = 1e-5
    # A final LayerNorm after the blocks; false: none (TripoSR).
    decoder_final_norm: bool = True
    # Around the block stack: tokens -> GroupNorm(decoder_norm_groups, eps 1e-6) -> Linear in, blocks,
    # Linear out, + the tokens (TripoSR's Transformer1D); false: the blocks alone.
    decoder_residual_projection: bool = False
    decoder_norm_groups: int = 32
    # Triplane tokens per plane side (R): the decoder attends over 3 * R * R tokens.
    triplane_feat_res: int = 32
    # Side of the output triplane, after upsampling: must be 2 * triplane_feat_res.
    triplane_res: int = 64
    # Kernel of the ConvTranspose2d (stride 2) from tokens to triplane cells: 2 (OpenLRM, TripoSR: each token
    # fills its own 2 x 2 cells, which can leave a lattice) or 4 (padding 1: neighbouring tokens overlap).
    triplane_upsample_kernel: int = 2
    # Channels per plane (C).
    triplane_dim: int = 40
    gradient_checkpointing: bool = False
    # With gradient_checkpointing: recompute only every n-th decoder block (blocks 0, n, 2n, ...): 1 = all
    # (least memory); larger n trades memory back for speed (each block not recomputed saves a 1/3 forward).
    gradient_checkpointing_every: int = 1
    # Add a fixed 2D sine-cosine code of each image patch's position to the decoder's image tokens
    # (the triplane tokens carry the same kind of code): see mira/models/transformer.py.
    context_position_embedding: bool = False
    # Bias each cross-attention head towards the image patches a triplane token's line projects onto
    # through the source camera (-slope * distance^2, slopes learned per head): mira/models/projective_bias.py.
    projective_attention_bias: bool = False
    # Pixel-aligned features: each triplane cell reads the source image (a conv stem + the encoder's patch
    # features) at the projections of points along its line, into offsets of the decoder's tokens and output
    # triplane (mira/models/image_lifting.py); channels of that feature map and points per line.
    image_lifting: bool = False
    image_lifting_channels: int = 16
    image_lifting_depth_samples: int = 16
    # The SDPA kernel the decoder's attention tries first: "auto" (PyTorch's choice), "cudnn", "flash",
    # "efficient" or "math" (mira/models/attention.py); a speed setting, the weights do not depend on it.
    attention_backend: str = "auto"
    # Licence of the weights when it is not MIRA's (e.g. "CC BY-NC 4.0" for converted OpenLRM
    # weights): printed once when such a checkpoint is loaded.
    weights_license: str = ""


@dataclass
class RendererConfig:
    """NeRF triplane renderer: ray sampling, triplane field MLP and compositing."""

    # Stratified (coarse) samples per ray.
    rendering_samples_per_ray: int = 96
    # Importance (fine) samples per ray drawn from the coarse weights; 0 disables.
    importance_samples_per_ray: int = 64
    # Axis-aligned object box in world units; the triplane spans exactly this box.
    box_min: list[float] = field(default_factory=lambda: [-1.0, -1.0, -1.0])
    box_max: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # RGB in [0, 1] composited behind the object (also used for training targets).
    background_color: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # How the three plane features are combined: "concat", "sum" or "mean".
    triplane_aggregation: str = "concat"
    # Which world axes each plane's grid (x, y) reads: "xy_xz_yz" (planes XY, XZ, YZ) or
    # "xy_xz_zy" (the third plane transposed: grid x = z, grid y = y; OpenLRM / EG3D).
    plane_axes: str = "xy_xz_yz"
    mlp_hidden_dim: int = 64
    mlp_num_layers: int = 4
    # Hidden activation of the field MLP: "silu" or "relu" (OpenLRM).
    field_activation: str = "silu"
    # Density from the MLP's density output x: "softplus" = softplus(x + density_bias); "exp" =
    # exp(x + density_bias) (TripoSR: exp(x - 1)).
    density_activation: str = "softplus"
    # How samples are placed and composited (mira/rendering/ray_sampler.py): "mira" = one sample per
    # equal bin of the box interval, each sample standing for the interval between its neighbours'
    # midpoints; "eg3d" = EG3D's importance renderer as OpenLRM uses it: coarse samples at
    # linspace(near, far) ends included, density activated on the mean of neighbouring raw samples,
    # colour averaged, compositing over the intervals between consecutive samples, fine samples drawn
    # from max/avg-pool smoothed coarse weights, samples outside the box empty; "normalized_midpoint" =
    # TripoSR's: the box shrunk by 0.1 %, one sample at the midpoint of each of S equal bins of the box
    # interval, every sample composited with the step 1/S (the interval normalised to length 1, not world
    # units), rays whose box interval is <= 0.01 empty, no importance sampling (importance_samples_per_ray 0).
    ray_marching: str = "mira"
    # Rays rendered per chunk; bounds memory at any resolution.
    ray_chunk_size: int = 16384
    # On CUDA, read the triplanes with the channels-last Triton kernels (mira/rendering/triplane_kernels.py;
    # same values as grid_sample, about 5x faster with its backward); false: torch's grid_sample everywhere.
    fused_sampling: bool = True
    # While training, keep only each field query's inputs and recompute its features and MLP activations in
    # the backward pass (torch.utils.checkpoint): per ray sample about 1.2 kB less memory, one more forward
    # of the field.
    field_checkpointing: bool = False
    # Apply the field MLP's first layer to the planes before the lookup ("on"): bilinear interpolation and
    # a linear layer commute, so each plane is multiplied by its block of the first layer's weight
    # (B x 3 x R^2 rows, not B x P sample rows) and the lookup reads and adds the three projected planes
    # (mlp_hidden_dim channels each) instead of writing the 3 C concatenated features of every sample.
    # Same function (up to rounding); "off": the lookup as written above; "auto": on when mlp_hidden_dim is
    # at most the planes' channels (the lookup then reads no more than before).
    project_planes: str = "auto"
    # With projected planes on CUDA: the lookup and the rest of the field MLP in one Triton kernel, forward and
    # backward (mira/rendering/field_kernels.py; same function, nothing per sample kept for the backward, so
    # field_checkpointing is not needed and is skipped for it; while training, the step's rays then render in
    # one chunk). Hidden width 16-128 (a power of two); other fields, and the CPU, run op by op.
    fused_field: bool = True
    # Density = softplus(mlp_output + density_bias) (or exp, density_activation); negative starts the
    # field mostly empty (EG3D: -1).
    density_bias: float = -1.0
    # Colour = sigmoid(x) * (1 + 2w) - w (EG3D's widened sigmoid); 0 gives a plain sigmoid.
    color_sigmoid_widening: float = 0.001
    # Density level of the surface for meshes (marching cubes), in the field's density units: a
    # property of a trained field, so checkpoints carry it (test.py / mira.evaluate --density_threshold override).
    mesh_density_threshold: float = 10.0
    # Grid points per axis of test.py's meshes on a GPU when --mesh_resolution is not given (0: test.py's
    # default, 256); converted OpenLRM checkpoints carry OpenLRM's 384. The CPU default (128) stays.
    mesh_grid_resolution: int = 0


@dataclass
class DataConfig:
    """Training data and the supervision views."""

    data_dir: str = "data/renders"
    # Side of the square supervision crops / renders (pixels).
    render_size: int = 128
    # Number of supervision views per sample.
    supervision_k: int = 4
    # The camera assumed for an image that carries none (a photo at inference): focal length
    # focal_length * (larger image side) pixels and principal point (cx/W, cy/H).
    focal_length: float = 1.09375  # 35 mm lens / 32 mm sensor: fov 49.1 deg, as our renders and zero123's
    principal_point: list[float] = field(default_factory=lambda: [0.5, 0.5])
    # The source-view contract (mira/data/source_view.py, docs/CAMERAS.md): every source view is
    # framed so the object's box fills this fraction of the input side...
    source_foreground_ratio: float = 0.85
    # ...and its camera put at the canonical pose at distance source_distance_per_focal * (normalised
    # focal of the framed view): objects land at about the same size in the canonical world.
    source_distance_per_focal: float = 1.6
    # Azimuth (degrees, from +X towards +Y) of the canonical source camera; OpenLRM's camera looks
    # along +Y from -Y: -90.
    source_camera_azimuth_deg: float = 0.0
    # > 0: the model is told this normalised focal (and principal point 0.5, 0.5) for every source
    # view and the camera distance is source_distance_per_focal times it, whatever the framed view's
    # real focal (OpenLRM's inference: 0.75 at distance 2.0); 0: the framed view's own intrinsics.
    source_model_focal: float = 0.0
    # RGB in [0, 1] behind the object in the source image fed to the model; None: the renderer's
    # background_color (TripoSR: grey 0.5 inputs, white renders).
    source_background_color: list[float] | None = None
    # Bounding-sphere radius of the training/evaluation objects in their own world (our renders and
    # the procedural objects are normalised to 0.9): keeps the canonical object inside the box.
    object_radius: float = 0.9
    # Training: composite every sample (source and targets, and the renderer) on a random colour, so
    # white or dark parts of objects are not confused with the background; false: background_color.
    random_background: bool = True
    # Random resized crops of the supervision views: scale range of the crop side.
    random_crop_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    num_workers: int = 4
    # The source view is also the first supervision view (OpenLRM); false: K other views.
    source_in_targets: bool = True
    # zero123 / Objaverse views_release folders: their world ([-0.5, 0.5]^3 objects, cameras at
    # radius 1.5) is scaled by this into ours (largest object side 1.6).
    zero123_world_scale: float = 1.6
    # Where training samples come from: "renders" (data_dir, written by load_input_data.py) or
    # "procedural" (mira.data.procedural: SDF composites rendered on the fly on the training device).
    data_source: str = "renders"
    # Procedural data: 0 = a new object for every sample (an endless stream, procedural_epoch_size
    # objects per nominal epoch); N > 0 = a fixed set of N objects (overfitting tests).
    procedural_objects: int = 0
    procedural_epoch_size: int = 20000
    # Fraction of procedural samples lit by random lights (the rest: the Blender script's default light).
    procedural_random_lighting: float = 0.5
    # Each object always shows the same source view (overfitting tests); false: a random view per sample.
    fixed_source_view: bool = False
    # Data rendered on the training GPU (procedural): batches made this many steps ahead in a
    # background thread on a side CUDA stream (mira/training/prefetch.py); 0 = in line.
    device_prefetch: int = 1
    # Procedural training data rendered in this many worker processes instead (each on the training GPU,
    # its own interpreter; batches come back through pinned memory); 0 = in the training process.
    procedural_workers: int = 0
    # Procedural training with renders from disk mixed in: each training sample is, with this probability, an
    # object of the "train" split of procedural_mix_dir (a load_input_data.py dataset, e.g. Blender renders)
    # instead of a procedural one (mira/data/procedural/mix.py); 0 = procedural only. Validation stays procedural.
    procedural_mix_fraction: float = 0.0
    procedural_mix_dir: str = ""


@dataclass
class TrainConfig:
    """Optimisation, checkpoints and logging."""

    learning_rate: float = 4e-4
    weight_decay: float = 0.05
    batch_size: int = 8
    num_epochs: int = 100
    save_every_epoch: int = 1
    max_steps: int = 0  # 0: no bound beyond num_epochs
    lpips_net: str = "vgg"
    lpips_weight: float = 2.0
    # Weight of the MSE between rendered opacity and the object mask (with random backgrounds this
    # is what tells the object from the background).
    mask_loss_weight: float = 1.0
    model_save_path: str = "checkpoints"
    # How a run starts: "auto" resumes from the latest checkpoint in model_save_path
    # if there is one; "none" starts fresh; a path to a checkpoint-*.pt file resumes
    # from it; any other value (train_ddp.py --init_from) is a checkpoint mira.checkpoints reads
    # (MIRA or OpenLRM folder, hub id) whose weights, architecture and source-view contract
    # initialise the model (fresh optimiser, step 0).
    model_preloading_strategy: str = "auto"
    seed: int = 42
    # Optimiser (AdamW) and schedule: linear warm-up, then cosine decay to
    # min_lr_ratio * learning_rate at the last step.
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.1
    # learning_rate multiplier for a fine-tuned encoder's parameters.
    encoder_lr_scale: float = 1.0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    grad_accum_steps: int = 1  # micro-batches of batch_size per optimiser step
    mixed_precision: str = "bf16"  # "bf16" | "fp16" (with GradScaler) | "no"; CUDA only
    compile: bool = False  # torch.compile the decoder blocks (MIRA.compile_blocks)
    device: str = "auto"  # "auto" (CUDA if available), "cuda" or "cpu"
    find_unused_parameters: bool = False  # DDP option, for models with unused branches
    # Supervision: a random patch_size^2 patch of each render_size view (0: the whole view).
    patch_size: int = 64
    lpips_pretrained_backbone: bool = True  # false: random LPIPS backbone (tests only)
    # Checkpoints (model_save_path/checkpoint-<step>.pt), validation and logging.
    checkpoint_every_steps: int = 1000  # 0: only at epoch ends and at the end
    keep_last_checkpoints: int = 3
    stop_at_step: int = 0  # > 0: checkpoint and stop here, schedule unchanged (time slices)
    time_limit_minutes: float = 0.0  # > 0: checkpoint and stop after this long, schedule unchanged
    val_every_steps: int = 1000  # 0 disables validation
    val_max_objects: int = 16
    log_every_steps: int = 10
    wandb: bool = False
    wandb_project: str = "mira"
    max_nonfinite_steps: int = 20  # stop after this many non-finite losses in a row
    # > 0: train on this many analytic sphere scenes instead of data_dir (no dataset needed).
    synthetic_objects: int = 0


@dataclass
class MiraConfig:
    """The whole configuration: one section per stage."""

    model: ModelConfig = field(default_factory=ModelConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "<dict>") -> "MiraConfig":
        """Build a config from a flat or nested mapping; ``source`` names it in errors."""
        config = cls()
        config.update(values, source=source)
        return config

    @classmethod
    def from_json(cls, path: str | Path) -> "MiraConfig":
        """Load a JSON config file (flat or nested keys)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: the top level must be a JSON object")
        return cls.from_dict(values, source=str(path))

    def update(self, values: Mapping[str, Any], source: str = "<dict>") -> "MiraConfig":
        """Set keys from a flat or nested mapping, checking names and types in place."""
        sections = {f.name for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key.startswith("_"):  # "_comment" style keys are allowed and ignored
                continue
            if key in sections and isinstance(value, Mapping):
                section = getattr(self, key)
                section_fields = {f.name for f in dataclasses.fields(section)}
                for sub_key, sub_value in value.items():
                    if sub_key not in section_fields:
                        raise ConfigError(
                            f"{source}: unknown key '{key}.{sub_key}'; "
                            f"valid keys of '{key}': {sorted(section_fields)}"
                        )
                    self._set(section, sub_key, sub_value, source)
                continue
            section = self._section_of(key)
            if section is None:
                raise ConfigError(
                    f"{source}: unknown key '{key}'; valid keys: {sorted(self.flat_keys())}"
                )
            self._set(section, key, value, source)
        self.validate(source)
        return self

    def override(self, source: str = "<override>", **values: Any) -> "MiraConfig":
        """Set flat keys (e.g. from the command line) and re-validate."""
        return self.update(values, source=source)

    def source_background(self) -> list[float]:
        """RGB in [0, 1] behind the object in source images: ``data.source_background_color``, or the
        renderer's ``background_color`` when that is None."""
        if self.data.source_background_color is not None:
            return list(self.data.source_background_color)
        return list(self.renderer.background_color)

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain-Python dict of every section."""
        return dataclasses.asdict(self)

    def to_flat_dict(self) -> dict[str, Any]:
        """Flat ``{key: value}`` dict over all sections."""
        return {k: v for section in self.to_dict().values() for k, v in section.items()}

    def save_json(self, path: str | Path) -> None:
        """Write the nested config as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def flat_keys(self) -> list[str]:
        """Every key a flat config may use."""
        return [f.name for s in self._sections() for f in dataclasses.fields(s)]

    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "<config>") -> None:
        """Check values that must agree with each other; raise :class:`ConfigError`."""
        m, r, d = self.model, self.renderer, self.data

        def fail(key: str, message: str) -> None:
            raise ConfigError(f"{source}: '{key}' {message}")

        if m.camera_vector_layout not in CAMERA_VECTOR_LAYOUTS:
            fail("camera_vector_layout", f"must be one of {sorted(CAMERA_VECTOR_LAYOUTS)}, got '{m.camera_vector_layout}'")
        if m.camera_matrix_dim != CAMERA_VECTOR_LAYOUTS[m.camera_vector_layout]:
            fail("camera_matrix_dim", f"must be {CAMERA_VECTOR_LAYOUTS[m.camera_vector_layout]} for camera_vector_layout "
                 f"'{m.camera_vector_layout}', got {m.camera_matrix_dim}")
        if m.encoder_architecture not in ENCODER_ARCHITECTURES:
            fail("encoder_architecture", f"must be one of {ENCODER_ARCHITECTURES}, got '{m.encoder_architecture}'")
        if m.encoder_position_interpolation not in POSITION_INTERPOLATIONS:
            fail("encoder_position_interpolation", f"must be one of {POSITION_INTERPOLATIONS}, got "
                 f"'{m.encoder_position_interpolation}'")
        if m.encoder_position_interpolation != "target_size" and m.encoder_architecture != "vit":
            fail("encoder_position_interpolation", "'scale_factor' is for encoder_architecture 'vit' only")
        if m.decoder_block_order not in DECODER_BLOCK_ORDERS:
            fail("decoder_block_order", f"must be one of {DECODER_BLOCK_ORDERS}, got '{m.decoder_block_order}'")
        if m.block_norm_eps <= 0:
            fail("block_norm_eps", f"must be positive, got {m.block_norm_eps}")
        if m.decoder_residual_projection and (m.decoder_norm_groups < 1 or m.decoder_hidden_dim % m.decoder_norm_groups):
            fail("decoder_norm_groups", f"must divide decoder_hidden_dim={m.decoder_hidden_dim}, got {m.decoder_norm_groups}")
        if m.decoder_mlp_activation not in DECODER_MLP_ACTIVATIONS:
            fail("decoder_mlp_activation", f"must be one of {DECODER_MLP_ACTIVATIONS}, got '{m.decoder_mlp_activation}'")
        if m.attention_backend not in ATTENTION_BACKEND_NAMES:
            fail("attention_backend", f"must be one of {ATTENTION_BACKEND_NAMES}, got '{m.attention_backend}'")
        if m.final_norm_eps <= 0:
            fail("final_norm_eps", f"must be positive, got {m.final_norm_eps}")
        if r.plane_axes not in PLANE_AXES_CHOICES:
            fail("plane_axes", f"must be one of {PLANE_AXES_CHOICES}, got '{r.plane_axes}'")
        if r.field_activation not in FIELD_ACTIVATIONS:
            fail("field_activation", f"must be one of {FIELD_ACTIVATIONS}, got '{r.field_activation}'")
        if r.density_activation not in DENSITY_ACTIVATIONS:
            fail("density_activation", f"must be one of {DENSITY_ACTIVATIONS}, got '{r.density_activation}'")
        if r.project_planes not in PROJECT_PLANES_MODES:
            fail("project_planes", f"must be one of {PROJECT_PLANES_MODES}, got '{r.project_planes}'")
        if r.ray_marching == "normalized_midpoint" and r.importance_samples_per_ray != 0:
            fail("importance_samples_per_ray", "must be 0 for ray_marching 'normalized_midpoint' (no importance sampling)")
        if d.source_background_color is not None and len(d.source_background_color) != 3:
            fail("source_background_color", "must have 3 values (or be null: the renderer's background_color)")
        if r.mesh_grid_resolution != 0 and r.mesh_grid_resolution < 8:
            fail("mesh_grid_resolution", f"must be 0 (test.py's default) or at least 8, got {r.mesh_grid_resolution}")
        if r.ray_marching not in RAY_MARCHING_SCHEMES:
            fail("ray_marching", f"must be one of {RAY_MARCHING_SCHEMES}, got '{r.ray_marching}'")
        if m.triplane_res != 2 * m.triplane_feat_res:
            fail("triplane_res", f"must be 2 * triplane_feat_res = {2 * m.triplane_feat_res}, got {m.triplane_res}")
        if m.image_lifting and (m.image_lifting_channels < 1 or m.image_lifting_depth_samples < 1):
            fail("image_lifting_channels", "image_lifting_channels and image_lifting_depth_samples must be >= 1, got "
                 f"{m.image_lifting_channels} and {m.image_lifting_depth_samples}")
        if m.triplane_upsample_kernel not in (2, 4):
            fail("triplane_upsample_kernel", f"must be 2 or 4, got {m.triplane_upsample_kernel}")
        if m.decoder_hidden_dim % m.num_heads != 0:
            fail("num_heads", f"must divide decoder_hidden_dim={m.decoder_hidden_dim}, got {m.num_heads}")
        for key in ("source_size", "camera_embed_dim", "decoder_hidden_dim", "num_layers",
                    "num_heads", "triplane_feat_res", "triplane_dim"):
            if getattr(m, key) <= 0:
                fail(key, "must be positive")
        if r.rendering_samples_per_ray < 2:
            fail("rendering_samples_per_ray", "must be at least 2")
        if r.importance_samples_per_ray < 0:
            fail("importance_samples_per_ray", "must be >= 0")
        for key in ("box_min", "box_max", "background_color"):
            if len(getattr(r, key)) != 3:
                fail(key, "must have 3 values")
        if any(lo >= hi for lo, hi in zip(r.box_min, r.box_max)):
            fail("box_min", f"must be below box_max on every axis ({r.box_min} vs {r.box_max})")
        if r.triplane_aggregation not in ("concat", "sum", "mean"):
            fail("triplane_aggregation", f"must be concat, sum or mean, got '{r.triplane_aggregation}'")
        if len(d.principal_point) != 2:
            fail("principal_point", "must have 2 values (cx/W, cy/H)")
        if d.focal_length <= 0:
            fail("focal_length", "must be positive (normalised: focal / larger image side)")
        if not 0.0 < d.source_foreground_ratio <= 1.0:
            fail("source_foreground_ratio", f"must be in (0, 1], got {d.source_foreground_ratio}")
        if d.source_model_focal < 0:
            fail("source_model_focal", f"must be >= 0 (0: the framed view's own focal), got {d.source_model_focal}")
        if d.source_distance_per_focal <= 0:
            fail("source_distance_per_focal", f"must be positive, got {d.source_distance_per_focal}")
        if d.object_radius <= 0:
            fail("object_radius", f"must be positive, got {d.object_radius}")
        if d.supervision_k < 1:
            fail("supervision_k", "must be at least 1")
        if d.data_source not in DATA_SOURCES:
            fail("data_source", f"must be one of {DATA_SOURCES}, got '{d.data_source}'")
        if d.procedural_objects < 0 or d.procedural_epoch_size < 1:
            fail("procedural_objects", "must be >= 0 and procedural_epoch_size >= 1")
        if not 0.0 <= d.procedural_random_lighting <= 1.0:
            fail("procedural_random_lighting", f"must be in [0, 1], got {d.procedural_random_lighting}")
        if d.procedural_workers < 0:
            fail("procedural_workers", f"must be >= 0 (0 = render in the training process), got {d.procedural_workers}")
        if d.device_prefetch < 0:
            fail("device_prefetch", f"must be >= 0 (0 = off), got {d.device_prefetch}")
        if not 0.0 <= d.procedural_mix_fraction < 1.0:
            fail("procedural_mix_fraction", f"must be in [0, 1) (0 = procedural only), got {d.procedural_mix_fraction}")
        if d.procedural_mix_fraction > 0.0 and d.data_source != "procedural":
            fail("procedural_mix_fraction", "mixes renders into procedural data: set data_source 'procedural' "
                 "(to train on renders alone, data_source 'renders' with data_dir)")
        if d.procedural_mix_fraction > 0.0 and not d.procedural_mix_dir:
            fail("procedural_mix_dir", "is empty: name the dataset (load_input_data.py --output_path DIR) whose "
                 "renders procedural_mix_fraction mixes in")

    # ------------------------------------------------------------------ helpers
    def _sections(self) -> list[Any]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def _section_of(self, key: str) -> Any | None:
        for section in self._sections():
            if key in {f.name for f in dataclasses.fields(section)}:
                return section
        return None

    @staticmethod
    def _set(section: Any, key: str, value: Any, source: str) -> None:
        hint = typing.get_type_hints(type(section))[key]
        setattr(section, key, _coerce(value, hint, key, source))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check ``value`` against a type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                pass
        raise ConfigError(f"{source}: '{key}' must be {hint}, got {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_coerce(v, item_type, key, source) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be an object, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{source}: '{key}' has unsupported type {hint}")


def load_config(path: str | Path, **overrides: Any) -> MiraConfig:
    """Load ``path`` and apply flat ``overrides``; the usual entry point."""
    config = MiraConfig.from_json(path)
    if overrides:
        config.override(source="command line", **overrides)
    return config
