"""What a training run is built from: the checks of the ``train`` config section that
:meth:`MiraConfig.validate` does not make, the model (fresh, or initialised from a checkpoint named
by ``--init_from``), the config a built model records in checkpoints and ``config.json``, and the
train / validation datasets (analytic scenes, procedural objects rendered on the training device, or
the renders in ``data_dir``). :class:`mira.training.trainer.Trainer` calls these when it is built.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import torch
from torch import nn
from torch.utils.data import Dataset

from mira.checkpoints import CONTRACT_DATA_KEYS
from mira.config import ConfigError, MiraConfig
from mira.evaluation.metrics import LPIPS_MIN_SIZE
from mira.training.growth import GROWABLE_MODEL_KEYS, grow_state, requested_growth

LOGGER = logging.getLogger("mira.training")
MIXED_PRECISION_MODES = ("bf16", "fp16", "no")
# Model keys of the user's config that stay when the weights (and architecture) come from a checkpoint.
FINE_TUNING_MODEL_KEYS = ("encoder_trainable_blocks", "gradient_checkpointing")


def renders_on_device(dataset: Dataset) -> bool:
    """Whether ``dataset`` (or the dataset a ``Subset`` wraps) makes its samples on the training device."""
    return getattr(getattr(dataset, "dataset", dataset), "renders_on_device", False)


def check_train_config(config: MiraConfig) -> None:
    """Check training keys that :meth:`MiraConfig.validate` does not; raise :class:`ConfigError`."""
    t = config.train

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"training config: '{key}' {message}")

    if t.mixed_precision not in MIXED_PRECISION_MODES:
        fail("mixed_precision", f"must be one of {MIXED_PRECISION_MODES}, got '{t.mixed_precision}'")
    for key in ("batch_size", "grad_accum_steps"):
        if getattr(t, key) < 1:
            fail(key, "must be at least 1")
    for key in ("warmup_steps", "max_steps", "checkpoint_every_steps", "val_every_steps", "stop_at_step",
                "synthetic_objects", "patch_size", "num_epochs", "time_limit_minutes"):
        if getattr(t, key) < 0:
            fail(key, "must be >= 0")
    if t.log_every_steps < 1:
        fail("log_every_steps", "must be at least 1")
    if t.max_nonfinite_steps < 1:
        fail("max_nonfinite_steps", "must be at least 1")
    if not 0.0 <= t.min_lr_ratio <= 1.0:
        fail("min_lr_ratio", "must be in [0, 1]")
    if t.num_epochs == 0 and t.max_steps == 0:
        fail("num_epochs", "and max_steps are both 0: nothing bounds the run")
    render_size = config.data.render_size
    patch = render_size if t.patch_size == 0 or t.patch_size >= render_size else t.patch_size
    if t.lpips_weight > 0 and patch < LPIPS_MIN_SIZE.get(t.lpips_net, 0):
        fail("patch_size", f"gives {patch}x{patch} patches, smaller than LPIPS '{t.lpips_net}' accepts "
                           f"({LPIPS_MIN_SIZE[t.lpips_net]}); raise patch_size (or render_size) or set lpips_weight 0")


def build_model(config: MiraConfig) -> nn.Module:
    """A fresh MIRA, or one initialised from the checkpoint named by ``model_preloading_strategy``
    (``--init_from``: any value other than auto / none / a ``.pt`` file): any kind
    :mod:`mira.checkpoints` reads (MIRA folder, OpenLRM folder, hub id). Its architecture, field
    and source-view contract come from the checkpoint, the rest of the config (sampling, training)
    and ``encoder_trainable_blocks`` / ``gradient_checkpointing`` from ``config``; the decoder grows
    the options of :mod:`mira.training.growth` that ``config`` adds."""
    from mira.checkpoints import announce_license, merge_configs, read_checkpoint
    from mira.errors import InferenceError
    from mira.models import MIRA

    strategy = config.train.model_preloading_strategy
    if strategy in ("auto", "none") or strategy.endswith(".pt"):
        return MIRA(config)
    LOGGER.info("initialising the model from %s", strategy)
    try:
        contents = read_checkpoint(strategy)
    except InferenceError as error:
        raise ConfigError(f"model_preloading_strategy (--init_from) '{strategy}': {error}") from error
    if contents.config is None:
        raise ConfigError(f"model_preloading_strategy (--init_from) '{strategy}': the checkpoint carries no config")
    merged = merge_configs(contents.config, config)
    for key in FINE_TUNING_MODEL_KEYS:
        setattr(merged.model, key, getattr(config.model, key))
    ignored = [f.name for f in dataclasses.fields(config.model) if f.name not in FINE_TUNING_MODEL_KEYS
               and f.name not in GROWABLE_MODEL_KEYS and getattr(config.model, f.name) != getattr(merged.model, f.name)]
    if ignored:
        LOGGER.info("--init_from: the model is the checkpoint's; the config's values of %s are not used", ", ".join(ignored))
    grown = requested_growth(merged.model, config.model)
    for key, value in grown.items():
        setattr(merged.model, key, value)
    model = MIRA(merged)
    model.load_checkpoint_state(grow_state(contents.state, model, grown), source=contents.source)
    announce_license(merged, contents.source)
    return model


def config_of_built_model(config: MiraConfig, model: nn.Module) -> MiraConfig:
    """``config`` with the ``model`` and ``renderer`` sections and the source-view contract keys
    (:data:`mira.checkpoints.CONTRACT_DATA_KEYS`) the model was built from (``model.config``; its
    ``encoder_config`` is filled after a pretrained encoder load), so that a checkpoint or the run's
    config.json rebuilds the model without the encoder's hub id. ``config`` itself is not changed."""
    built = getattr(model, "config", None)
    if not isinstance(built, MiraConfig):
        return config
    recorded = copy.deepcopy(config)
    recorded.model = copy.deepcopy(built.model)
    recorded.renderer = copy.deepcopy(built.renderer)
    for key in CONTRACT_DATA_KEYS:  # the source-view contract of the weights (a checkpoint's, when initialised from one)
        setattr(recorded.data, key, copy.deepcopy(getattr(built.data, key)))
    return recorded


def build_datasets(config: MiraConfig, device: torch.device | str = "cpu") -> tuple[Dataset, Dataset | None]:
    """Train and validation datasets: analytic scenes if ``synthetic_objects > 0``, procedural objects
    rendered on ``device`` if ``data_source`` is "procedural" (with ``procedural_mix_fraction`` of the training
    samples from the renders in ``procedural_mix_dir``), else the renders in ``data_dir``."""
    t = config.train
    if config.data.data_source == "procedural":
        from mira.data.procedural.dataset import ProceduralDataset

        train = ProceduralDataset(config, "train", seed=t.seed, device=device)
        if config.data.procedural_mix_fraction > 0.0:  # renders from disk mixed into the stream
            from mira.data import MultiViewDataset
            from mira.data.procedural.mix import RenderMixDataset

            renders = MultiViewDataset(config, split="train", seed=t.seed, root=config.data.procedural_mix_dir)
            train = RenderMixDataset(train, renders, config.data.procedural_mix_fraction, t.seed)
            LOGGER.info("mixing %d render objects of %s into the procedural stream (%.0f %% of the samples)",
                        len(renders), config.data.procedural_mix_dir, 100.0 * config.data.procedural_mix_fraction)
        return train, ProceduralDataset(config, "val", seed=t.seed, device=device)
    if t.synthetic_objects > 0:
        from mira.training.synthetic_scenes import SyntheticSceneDataset

        train = SyntheticSceneDataset(config, "train", seed=t.seed)
        val = SyntheticSceneDataset(config, "val", seed=t.seed, num_objects=max(1, t.val_max_objects))
        return train, val
    from mira.data import MultiViewDataset

    train = MultiViewDataset(config, split="train", seed=t.seed)
    try:
        val = MultiViewDataset(config, split="val", seed=t.seed)
    except (ValueError, FileNotFoundError, KeyError) as error:
        LOGGER.warning("no validation split in %s (%s): validation disabled", config.data.data_dir, error)
        val = None
    if val is not None and len(val) == 0:
        LOGGER.warning("the validation split of %s is empty: validation disabled", config.data.data_dir)
        val = None
    return train, val
