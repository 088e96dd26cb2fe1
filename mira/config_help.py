"""One-line meanings of the config keys (:mod:`mira.config`), for ``train_ddp.py --help``.

The comments next to the dataclass fields in ``mira/config.py`` are the full story; these are their
one-line summaries. ``tests/test_cli_vocabulary.py`` checks that every config key has one, so a new
key needs a line here too. Imports nothing heavy (``--help`` must print fast).
"""

from __future__ import annotations

MODEL_KEYS: dict[str, str] = {
    "encoder_model_id": "DINOv2 encoder: a Hugging Face hub id or a local Dinov2Model folder",
    "encoder_architecture": "dinov2, dinov2_with_registers (registers dropped; OpenLRM) or vit (ViTModel; TripoSR)",
    "encoder_position_interpolation": "vit: position grid resized to the patch grid (target_size) or by (n + 0.1) / grid (scale_factor; TripoSR)",
    "encoder_imagenet_normalization": "normalise the input with ImageNet mean/std before the encoder (false: OpenLRM)",
    "encoder_config": "a Dinov2Config dict: build the encoder with random weights instead of loading encoder_model_id",
    "encoder_trainable_blocks": "0: frozen encoder; -1: fine-tune all of it; N > 0: fine-tune its last N blocks",
    "source_size": "side of the square source image fed to the encoder, pixels",
    "camera_vector_layout": "source-camera vector: c2w4x4_opencv (16 + 4 intrinsics) or c2w3x4_opengl (OpenLRM)",
    "camera_matrix_dim": "length of that camera vector: 20 for c2w4x4_opencv, 16 for c2w3x4_opengl",
    "camera_embed_dim": "width of the camera embedding that modulates the decoder (adaLN)",
    "camera_conditioning": "condition the decoder on the source camera (false: no camera input, TripoSR)",
    "block_norm_eps": "epsilon of the decoder blocks' LayerNorms",
    "decoder_hidden_dim": "width D of the triplane transformer decoder",
    "num_layers": "transformer decoder blocks",
    "num_heads": "attention heads per decoder block (must divide decoder_hidden_dim)",
    "mlp_ratio": "decoder MLP width / decoder_hidden_dim",
    "decoder_mlp_activation": "activation of the decoder MLPs: gelu_tanh (tanh approximation), gelu (exact) or geglu (TripoSR)",
    "decoder_block_order": "sublayer order per decoder block: cross_self_mlp or self_cross_mlp (TripoSR)",
    "attention_bias": "biases in the decoder's attention projections (OpenLRM: none)",
    "attention_output_bias": "bias of the attention output projection (null: as attention_bias; TripoSR: true)",
    "context_projection": "project image tokens (Linear + LayerNorm) before cross-attention (OpenLRM: false)",
    "triplane_token_sincos": "add a fixed 2D sine-cosine code to the learned triplane tokens (OpenLRM: false)",
    "final_norm_eps": "epsilon of the decoder's final LayerNorm",
    "decoder_final_norm": "a final LayerNorm after the decoder blocks (TripoSR: false)",
    "decoder_residual_projection": "GroupNorm + Linear in, Linear out and a residual around the blocks (TripoSR)",
    "decoder_norm_groups": "groups of that GroupNorm",
    "triplane_feat_res": "triplane tokens per plane side R (the decoder attends over 3 R^2 tokens)",
    "triplane_res": "side of the output triplane after upsampling; must be 2 * triplane_feat_res",
    "triplane_dim": "channels C per plane",
    "gradient_checkpointing": "recompute decoder activations in the backward pass (less memory, slower)",
    "gradient_checkpointing_every": "with gradient_checkpointing, recompute only every n-th decoder block (1: all)",
    "context_position_embedding": "add a fixed 2D sine-cosine position code to the decoder's image tokens",
    "triplane_upsample_kernel": "kernel of the token-to-triplane transposed convolution: 2 (own 2x2 cells) or 4 (overlapping)",
    "projective_attention_bias": "bias cross-attention towards the image patches each triplane token projects onto",
    "attention_backend": "SDPA kernel the decoder tries first: auto, cudnn, flash, efficient, math (speed only)",
    "weights_license": "licence of the weights when it is not MIRA's (printed when loaded)",
}

RENDERER_KEYS: dict[str, str] = {
    "rendering_samples_per_ray": "stratified (coarse) samples per ray",
    "importance_samples_per_ray": "importance (fine) samples per ray from the coarse weights; 0 disables",
    "box_min": "lower corner of the object box, world units (the triplane spans the box)",
    "box_max": "upper corner of the object box, world units",
    "background_color": "RGB in [0, 1] composited behind the object (and behind training targets)",
    "triplane_aggregation": "how the three plane features combine: concat, sum or mean",
    "plane_axes": "world axes each plane reads: xy_xz_yz, or xy_xz_zy (OpenLRM / EG3D)",
    "mlp_hidden_dim": "width of the field MLP (triplane features -> density, colour)",
    "mlp_num_layers": "layers of the field MLP",
    "field_activation": "hidden activation of the field MLP: silu or relu (OpenLRM)",
    "density_activation": "density from the MLP output: softplus or exp (TripoSR), of output + density_bias",
    "ray_marching": "sample placement and compositing: mira (equal bins), eg3d (OpenLRM) or normalized_midpoint (TripoSR)",
    "ray_chunk_size": "rays rendered per chunk (bounds memory at any resolution)",
    "fused_sampling": "on CUDA, read triplanes with the channels-last Triton kernels (same values, faster)",
    "field_checkpointing": "training: recompute the field's features and MLP in the backward (much less memory)",
    "project_planes": "apply the field MLP's first layer to the planes before the lookup: auto, on or off (same values)",
    "fused_field": "on CUDA with projected planes: lookup + field MLP in one Triton kernel, forward and backward",
    "density_bias": "density = softplus(mlp + density_bias); negative starts the field mostly empty",
    "color_sigmoid_widening": "colour = sigmoid(x) * (1 + 2w) - w; 0 gives a plain sigmoid",
    "mesh_density_threshold": "density level of the mesh surface (marching cubes); a property of a trained field",
    "mesh_grid_resolution": "test.py's marching-cubes grid on a GPU when not given (0: test.py's 256)",
}

DATA_KEYS: dict[str, str] = {
    "data_dir": "dataset folder written by load_input_data.py (index.json + object folders)",
    "render_size": "side of the square supervision views, pixels",
    "supervision_k": "supervision views per training sample",
    "focal_length": "focal length / larger image side assumed for an image without a camera (a photo)",
    "principal_point": "principal point (cx/W, cy/H) assumed for an image without a camera",
    "source_foreground_ratio": "source-view contract: object box / input side after framing",
    "source_distance_per_focal": "source-view contract: canonical camera distance per unit of normalised focal",
    "source_camera_azimuth_deg": "azimuth of the canonical source camera, degrees from +X towards +Y (OpenLRM: -90)",
    "source_model_focal": "> 0: the normalised focal the model is told for every source view; 0: the view's own",
    "source_background_color": "RGB behind the object in the source image (null: background_color; TripoSR: grey 0.5)",
    "object_radius": "bounding-sphere radius of the objects in their own world (renders: 0.9)",
    "random_background": "composite training samples on a random colour (false: background_color)",
    "random_crop_scale": "scale range [min, max] of random resized crops of the supervision views",
    "num_workers": "DataLoader worker processes",
    "source_in_targets": "the source view is also the first supervision view (OpenLRM)",
    "zero123_world_scale": "scale of zero123 views_release worlds into MIRA's (largest side 1.6)",
    "data_source": "where samples come from: renders (data_dir) or procedural (rendered on the fly)",
    "procedural_objects": "procedural data: 0 = a new object every sample; N > 0 = a fixed set of N objects",
    "procedural_epoch_size": "procedural data: objects per nominal epoch of the endless stream",
    "procedural_random_lighting": "procedural data: fraction of samples lit by random lights",
    "fixed_source_view": "each object always shows the same source view (overfitting tests)",
    "device_prefetch": "procedural data on the GPU: batches made this many steps ahead; 0 = in line",
}

TRAIN_KEYS: dict[str, str] = {
    "learning_rate": "peak AdamW learning rate (after warm-up)",
    "weight_decay": "AdamW weight decay",
    "batch_size": "samples per process per micro-batch",
    "num_epochs": "epochs to train (max_steps may stop earlier)",
    "save_every_epoch": "also checkpoint every N epochs; 0: only by checkpoint_every_steps and at the end",
    "max_steps": "stop after this many optimiser steps; 0: no bound beyond num_epochs",
    "lpips_net": "LPIPS backbone: vgg, alex or squeeze",
    "lpips_weight": "weight of LPIPS in the loss (0: MSE and mask only)",
    "mask_loss_weight": "weight of the MSE between rendered opacity and the object mask",
    "model_save_path": "run folder: checkpoints, logs/ and the final save_pretrained export final/",
    "model_preloading_strategy": "auto (resume the latest checkpoint), none, a checkpoint-*.pt, or weights to start from",
    "seed": "random seed (model init, sampling, data order)",
    "adam_beta1": "AdamW beta1",
    "adam_beta2": "AdamW beta2",
    "warmup_steps": "linear learning-rate warm-up steps before the cosine decay",
    "min_lr_ratio": "the cosine decay ends at min_lr_ratio * learning_rate",
    "encoder_lr_scale": "learning-rate multiplier of a fine-tuned encoder's parameters",
    "grad_clip": "max global gradient norm; 0 disables clipping",
    "grad_accum_steps": "micro-batches of batch_size per optimiser step",
    "mixed_precision": "bf16, fp16 (with GradScaler) or no; CUDA only",
    "compile": "torch.compile the decoder blocks (regional; fuses norms, modulation, GELU)",
    "device": "auto (CUDA if available), cuda or cpu",
    "find_unused_parameters": "DDP option, for models with unused branches",
    "patch_size": "supervise a random patch_size^2 patch of each view (0: the whole view)",
    "lpips_pretrained_backbone": "false: random-weight LPIPS backbone (tests only; its figures mean nothing)",
    "checkpoint_every_steps": "checkpoint every N steps; 0: only at epoch ends (save_every_epoch) and at the end",
    "keep_last_checkpoints": "checkpoint-<step>.pt files kept (older ones are deleted)",
    "stop_at_step": "> 0: checkpoint and stop at this step, schedule unchanged (time slices)",
    "time_limit_minutes": "> 0: checkpoint and stop after this long, schedule unchanged",
    "val_every_steps": "validate every N steps (and at the end); 0 disables validation",
    "val_max_objects": "held-out objects scored per validation",
    "log_every_steps": "log training scalars every N steps",
    "wandb": "also log to Weights & Biases",
    "wandb_project": "Weights & Biases project name",
    "max_nonfinite_steps": "stop after this many non-finite losses in a row",
    "synthetic_objects": "> 0: train on this many analytic sphere scenes instead of data_dir (no dataset needed)",
}

SECTIONS: dict[str, dict[str, str]] = {
    "model": MODEL_KEYS,
    "renderer": RENDERER_KEYS,
    "data": DATA_KEYS,
    "train": TRAIN_KEYS,
}
KEY_HELP: dict[str, str] = {key: text for section in SECTIONS.values() for key, text in section.items()}


def key_help(key: str) -> str:
    """The one-line meaning of config key ``key`` (``"see mira/config.py"`` for a key without one)."""
    return KEY_HELP.get(key, "see mira/config.py")
