"""Checkpoint loading for inference: :mod:`mira.checkpoints` (the one checkpoint I/O module for every
kind) under the name the inference code and its users import."""

from mira.checkpoints import (  # noqa: F401  (re-exported)
    CONFIG_NAME,
    DEFAULT_CHECKPOINT,
    FINAL_EXPORT_DIR,
    TRAINING_CHECKPOINT_PATTERN,
    WEIGHTS_NAME,
    CheckpointContents,
    architecture_differences,
    load_model,
    merge_configs,
    read_checkpoint,
    resolve_config,
)
