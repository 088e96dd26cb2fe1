"""The MIRA training loop: DDP, mixed precision, accumulation, checkpoints, validation, logging.

One :class:`Trainer` runs in every process (one per GPU under ``torchrun``, or a single
process). A *step* is one optimiser step = ``grad_accum_steps`` micro-batches of
``batch_size`` objects per rank. Rank 0 logs and writes checkpoints; all ranks read them.
What the loop is built from (config checks, model, datasets) is in :mod:`mira.training.factories`,
its checkpoints in :mod:`mira.training.checkpoint`, its SIGTERM/SIGINT handling in
:mod:`mira.training.signals`.

Resuming continues the interrupted run exactly: the checkpoint stores the model, optimiser,
scheduler, GradScaler, step/epoch/position in the epoch and every rank's RNG states, the
sampler skips the micro-batches the interrupted run had consumed, and the data-loader's
generator is re-seeded per epoch so it never draws from the global RNG streams.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from mira.atomic import write_json_atomic
from mira.config import ConfigError, MiraConfig
from mira.evaluation.metrics import MissingWeightsError
from mira.progress import format_eta, on_terminal
from mira.training import checkpoint as ckpt
from mira.training.distributed import DistributedContext, all_reduce_sum, setup_distributed
from mira.training.factories import (build_datasets, build_model, check_train_config, config_of_built_model,
                                     renders_on_device)
from mira.training.logger import ExperimentLogger
from mira.training.losses import ReconstructionLoss, build_lpips_for_training
from mira.training.optim import build_optimizer, build_scheduler
from mira.training.patches import sample_patches, to_patch_images
from mira.training.prefetch import prefetched
from mira.training.sampler import EpochIndexedDataset, ResumableDistributedSampler
from mira.training.signals import StopRequest, ignore_sigint
from mira.training.validation import run_validation

LOGGER = logging.getLogger("mira.training")


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradients) were not finite for ``max_nonfinite_steps`` steps in a row."""


@dataclass
class TrainState:
    """Progress counters, saved in every checkpoint.

    ``batches_in_epoch`` counts micro-batches this rank has consumed in ``epoch``.
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    nonfinite_in_a_row: int = 0
    nonfinite_total: int = 0


@dataclass
class StepResult:
    """What one optimiser step produced, averaged over ranks and micro-batches."""

    loss: float
    mse: float
    lpips: float
    mask: float
    grad_norm: float
    finite: bool
    stop_requested: bool
    samples: int
    rays: int
    out_of_time: bool = False


@dataclass
class FitResult:
    """Summary of :meth:`Trainer.fit`."""

    step: int
    stopped_early: bool
    last_checkpoint: Path | None
    losses: list[float] = field(default_factory=list)


class Trainer:
    """Trains a MIRA model on one rank of a (possibly single-process) job.

    Args:
        config: the whole configuration; ``config.train`` drives this class.
        context: this process's place in the job; default from torchrun's environment.
        model: a model to train instead of ``build_model(config)`` (tests, notebooks).
        train_dataset / val_dataset: datasets instead of :func:`build_datasets`.
    """

    def __init__(self, config: MiraConfig, context: DistributedContext | None = None,
                 model: nn.Module | None = None, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None) -> None:
        check_train_config(config)
        self.config = config
        self.train_cfg = config.train
        self.context = context or setup_distributed(config.train.device)
        self.device = self.context.device
        self.save_dir = Path(config.train.model_save_path)
        self.state = TrainState()
        self._stop = StopRequest()  # set by SIGTERM/SIGINT during fit
        self._started = time.monotonic()

        resume_from = ckpt.find_resume_checkpoint(self.train_cfg.model_preloading_strategy, self.save_dir)
        ckpt.seed_everything(self.train_cfg.seed)  # identical initial weights on every rank
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.model.train()
        self.config = config_of_built_model(config, self.model)  # what checkpoints and config.json record
        self.optimizer = build_optimizer(self.model, self.train_cfg)
        self.amp_dtype = self._resolve_amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        if train_dataset is None:  # data under the built model's contract (source size, source camera)
            train_dataset, built_val = build_datasets(self.config, self.device)
            val_dataset = built_val if val_dataset is None else val_dataset
        self.train_dataset = train_dataset
        # With data workers, items that depend on the epoch are read through epoch-tagged indices, so the
        # workers persist across epochs (EpochIndexedDataset) instead of being re-spawned for set_epoch.
        persistent = self._data_workers(train_dataset) > 0
        tag_epoch = persistent and hasattr(train_dataset, "set_epoch")
        self.train_sampler = ResumableDistributedSampler(
            train_dataset, num_replicas=self.context.world_size, rank=self.context.rank,
            shuffle=True, seed=self.train_cfg.seed, drop_last=True, tag_epoch=tag_epoch)
        self.loader_generator = torch.Generator()
        loader_dataset = EpochIndexedDataset(train_dataset) if tag_epoch else train_dataset
        self.train_loader = self._make_loader(loader_dataset, self.train_sampler, drop_last=True, persistent=persistent)
        self.steps_per_epoch = self.train_sampler.num_samples // (self.train_cfg.batch_size * self.train_cfg.grad_accum_steps)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(train_dataset)} objects, fewer than one step needs "
                f"(batch_size {self.train_cfg.batch_size} x grad_accum_steps {self.train_cfg.grad_accum_steps} "
                f"x {self.context.world_size} processes); lower batch_size or add data"
            )
        self.total_steps = self._compute_total_steps()
        self.scheduler = build_scheduler(self.optimizer, self.train_cfg, self.total_steps)
        self.val_loader = self._make_val_loader(val_dataset)

        self.lpips = self._build_lpips()
        self.loss_fn = ReconstructionLoss(self.train_cfg.lpips_weight, self.train_cfg.mask_loss_weight,
                                          self.lpips if self.train_cfg.lpips_weight > 0 else None)

        ckpt.seed_everything(self.train_cfg.seed + 1_000_003 * (self.context.rank + 1))  # per-rank streams
        if resume_from is not None:
            self._resume(resume_from)
        self.train_model = self._wrap_model()
        self.logger = ExperimentLogger(self.save_dir / "logs", enabled=self.context.is_main,
                                       use_wandb=self.train_cfg.wandb, wandb_project=self.train_cfg.wandb_project,
                                       run_config=self.config.to_flat_dict())
        if self.context.is_main:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.config.to_dict(), self.save_dir / "config.json")
            LOGGER.info("training %.2fM parameters (%.2fM trainable) for %d steps (%d per epoch), %d process(es) on %s",
                        sum(p.numel() for p in self.model.parameters()) / 1e6,
                        sum(p.numel() for p in self.model.parameters() if p.requires_grad) / 1e6,
                        self.total_steps, self.steps_per_epoch, self.context.world_size, self.device)

    # ------------------------------------------------------------------ construction helpers
    def _build_lpips(self) -> nn.Module | None:
        """LPIPS for the loss (``lpips_weight > 0``: its weights must be there) and for validation.

        Validation alone uses LPIPS only with the real (pretrained) backbone: a random one gives a
        number that means nothing. If its file is missing, validation goes on without LPIPS.
        """
        t = self.train_cfg
        if t.lpips_weight > 0:
            return build_lpips_for_training(t, self.device)
        if self.val_loader is None or not t.lpips_pretrained_backbone:
            return None
        try:
            return build_lpips_for_training(t, self.device)
        except (MissingWeightsError, ImportError) as error:  # no backbone file here / no lpips package
            LOGGER.warning("validation without LPIPS: %s", error)
            return None

    def _resolve_amp_dtype(self) -> torch.dtype | None:
        mode = self.train_cfg.mixed_precision
        if mode == "no":
            return None
        if self.device.type != "cuda":
            LOGGER.info("mixed_precision '%s' applies to CUDA only; training in float32 on %s", mode, self.device)
            return None
        return torch.bfloat16 if mode == "bf16" else torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context of forward passes (a no-op in float32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _data_workers(self, dataset: Dataset) -> int:
        """Data worker processes for ``dataset``: for a dataset that renders on the training device (procedural
        objects) ``data.procedural_workers`` (0: in this process), else ``data.num_workers``."""
        if renders_on_device(dataset):
            return self.config.data.procedural_workers
        return self.config.data.num_workers

    def _make_loader(self, dataset: Dataset, sampler: DistributedSampler, drop_last: bool,
                     batch_size: int | None = None, persistent: bool = False) -> DataLoader:
        """A loader of ``dataset``; ``persistent`` keeps its workers across epochs (the training loader's
        epoch-dependent items then come through :class:`EpochIndexedDataset`)."""
        base = dataset.dataset if isinstance(dataset, EpochIndexedDataset) else dataset
        on_device = renders_on_device(base)
        workers = self._data_workers(base) if persistent or not on_device else 0
        # Workers that render on the GPU need a fresh interpreter each (CUDA does not survive a fork).
        context = "spawn" if on_device and workers > 0 else None
        return DataLoader(dataset, batch_size=batch_size or self.train_cfg.batch_size, sampler=sampler,
                          num_workers=workers, pin_memory=self.device.type == "cuda" and (workers > 0 or not on_device),
                          drop_last=drop_last, multiprocessing_context=context,
                          generator=self.loader_generator, persistent_workers=persistent and workers > 0,
                          prefetch_factor=(2 if on_device else 4) if workers > 0 else None,
                          worker_init_fn=ignore_sigint if workers > 0 else None)

    def _make_val_loader(self, dataset: Dataset | None) -> DataLoader | None:
        if dataset is None or self.train_cfg.val_every_steps == 0:
            return None
        if len(dataset) > self.train_cfg.val_max_objects > 0:
            dataset = Subset(dataset, range(self.train_cfg.val_max_objects))
        sampler = DistributedSampler(dataset, num_replicas=self.context.world_size, rank=self.context.rank,
                                     shuffle=False, drop_last=False)
        return self._make_loader(dataset, sampler, drop_last=False, batch_size=1)

    def _compute_total_steps(self) -> int:
        by_epochs = self.train_cfg.num_epochs * self.steps_per_epoch
        if self.train_cfg.max_steps > 0:
            return min(self.train_cfg.max_steps, by_epochs) if by_epochs > 0 else self.train_cfg.max_steps
        return by_epochs

    def _wrap_model(self) -> nn.Module:
        model: nn.Module = self.model
        if self.context.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids,
                                            find_unused_parameters=self.train_cfg.find_unused_parameters)
        if self.train_cfg.compile:
            self.model.compile_blocks()
        return model

    # ------------------------------------------------------------------ checkpoints (mira/training/checkpoint.py)
    def _resume(self, path: Path) -> None:
        """Restore the whole training state from ``path`` (:func:`ckpt.restore_training_state`)."""
        ckpt.restore_training_state(self, path)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>.pt`` (rank 0, atomically) and prune old ones. Collective: call on every rank."""
        return ckpt.save_training_checkpoint(self)

    def export_final(self) -> Path:
        """``save_pretrained`` the trained weights to ``<model_save_path>/final`` (rank 0) for test.py."""
        return ckpt.export_final_model(self)

    # ------------------------------------------------------------------ one step
    def compute_loss(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], int]:
        """Render a random patch of every supervision view and compare it with the target.

        Args:
            batch: dataset items stacked over B (see :class:`mira.data.MultiViewDataset`).
        Returns:
            the loss terms of :class:`ReconstructionLoss` and the number of rays rendered.
        """
        device = self.device
        targets = batch["target_images"].to(device, non_blocking=True)  # (B, V, 3, H, W)
        batch_size, views, _, height, width = targets.shape
        render_size = self.config.data.render_size
        if height != render_size or width != render_size:
            raise ValueError(f"target views are {height}x{width}, render_size is {render_size}")
        patches = sample_patches(batch_size, views, render_size, self.train_cfg.patch_size, device)
        # non-blocking: from the loader's pinned memory a blocking copy would synchronise the stream
        moved = {key: batch[key].to(device, non_blocking=True) for key in
                 ("source_image", "source_c2w", "source_intrinsics", "target_c2w", "target_intrinsics", "background",
                  "target_masks") if key in batch}
        with self.autocast():
            output = self.train_model(
                moved["source_image"], moved["source_c2w"], moved["source_intrinsics"], moved["target_c2w"],
                moved["target_intrinsics"], render_size, uv=patches.pixel_uv(), background=moved.get("background"))
        rgb = to_patch_images(output["rgb"], patches.size).flatten(0, 1)
        opacity = to_patch_images(output["opacity"], patches.size).flatten(0, 1)
        target_rgb = patches.gather(targets).flatten(0, 1)
        target_mask = None
        if self.train_cfg.mask_loss_weight > 0:
            target_mask = patches.gather(moved["target_masks"]).flatten(0, 1)
        terms = self.loss_fn(rgb, target_rgb, opacity, target_mask)
        return terms, rgb.shape[0] * patches.size**2

    def train_step(self, micro_batches: list[dict[str, Any]]) -> StepResult:
        """Forward/backward over ``grad_accum_steps`` micro-batches, then one optimiser step.

        Gradients are all-reduced only on the last micro-batch (``no_sync`` before). A
        non-finite loss or gradient norm (on any rank) skips the update on every rank.
        """
        accum = len(micro_batches)
        sums = torch.zeros(7, dtype=torch.float64, device=self.device)  # loss, mse, lpips, mask, rays, stop, time
        for index, batch in enumerate(micro_batches):
            last = index == accum - 1
            sync = contextlib.nullcontext() if last or not self.context.distributed else self.train_model.no_sync()
            with sync:
                terms, rays = self.compute_loss(batch)
                self.scaler.scale(terms["loss"] / accum).backward()
            sums[:4] += torch.stack([terms[k].detach().double() for k in ("loss", "mse", "lpips", "mask")]) / accum
            sums[4] += rays
        sums[5] = float(self._stop.requested)
        sums[6] = float(self._out_of_time())
        all_reduce_sum(sums, self.context)
        self.scaler.unscale_(self.optimizer)
        max_norm = self.train_cfg.grad_clip if self.train_cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self._trainable_parameters(), max_norm)  # on the device: no sync
        # the step's one host-device synchronisation: the summed terms, the votes and the gradient norm together
        *terms, rays, stop_votes, time_votes, grad_norm = torch.cat([sums, norm.double().reshape(1)]).tolist()
        world = self.context.world_size
        loss, mse, lpips, mask = (value / world for value in terms)
        # fp16: inf gradients are expected while the GradScaler calibrates; it skips those itself.
        finite = math.isfinite(loss) and (self.scaler.is_enabled() or math.isfinite(grad_norm))
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped first update still advances the schedule
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.scheduler.step()
        samples = accum * self.train_cfg.batch_size * world
        return StepResult(loss=loss, mse=mse, lpips=lpips, mask=mask, grad_norm=grad_norm, finite=finite,
                          stop_requested=stop_votes > 0, samples=samples, rays=int(rays), out_of_time=time_votes > 0)

    def _out_of_time(self) -> bool:
        """Whether ``time_limit_minutes`` has passed since this process started training."""
        limit = self.train_cfg.time_limit_minutes
        return limit > 0 and time.monotonic() - self._started > 60.0 * limit

    def _trainable_parameters(self) -> list[nn.Parameter]:
        if not hasattr(self, "_trainable"):
            self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        return self._trainable

    # ------------------------------------------------------------------ the loop
    def _epoch_micro_batches(self) -> Iterator[dict[str, Any]]:
        """This rank's remaining micro-batches of the current epoch (skipping consumed ones)."""
        epoch = self.state.epoch
        self.train_sampler.set_epoch(epoch)
        if hasattr(self.train_dataset, "set_epoch"):
            self.train_dataset.set_epoch(epoch)
        self.train_sampler.set_start_index(self.state.batches_in_epoch * self.train_cfg.batch_size)
        self.loader_generator.manual_seed(self.train_cfg.seed * 7_919 + epoch)
        remaining = self.steps_per_epoch * self.train_cfg.grad_accum_steps - self.state.batches_in_epoch
        for index, batch in enumerate(self._batches_of(self.train_loader, self.train_dataset)):
            if index >= remaining:
                break
            yield batch

    def _batches_of(self, loader: DataLoader, dataset: Dataset) -> Iterable[dict[str, Any]]:
        """``loader``, made ``data.device_prefetch`` batches ahead when its dataset renders on this GPU."""
        depth = self.config.data.device_prefetch
        in_process = loader.num_workers == 0
        if renders_on_device(dataset) and in_process and depth > 0 and self.device.type == "cuda":
            return prefetched(loader, self.device, depth)
        return loader

    def fit(self) -> FitResult:
        """Train until ``total_steps`` (or ``stop_at_step``, a signal, or a non-finite streak)."""
        result = FitResult(step=self.state.step, stopped_early=False, last_checkpoint=None)
        self._first_step, self._fit_started = self.state.step, time.monotonic()
        progress = self._progress_bar()
        accum = self.train_cfg.grad_accum_steps
        last_saved_step = self.state.step if self.state.step > 0 else -1
        window_start, window_samples, window_rays = time.perf_counter(), 0, 0
        try:
            with self._stop.handlers():
                while self.state.step < self.total_steps and not result.stopped_early:
                    pending: list[dict[str, Any]] = []
                    for batch in self._epoch_micro_batches():
                        pending.append(batch)
                        self.state.batches_in_epoch += 1
                        if len(pending) < accum:
                            continue
                        step_result = self.train_step(pending)
                        pending = []
                        self.state.step += 1
                        window_samples += step_result.samples
                        window_rays += step_result.rays
                        self._track_nonfinite(step_result)
                        result.losses.append(step_result.loss)
                        if progress is not None:
                            progress.update(1)
                            progress.set_postfix(loss=f"{step_result.loss:.4f}")
                        if self.state.step % self.train_cfg.log_every_steps == 0:
                            elapsed = time.perf_counter() - window_start
                            self._log_step(step_result, window_samples / elapsed, window_rays / elapsed)
                            window_start, window_samples, window_rays = time.perf_counter(), 0, 0
                        if self._due(self.train_cfg.val_every_steps):
                            self.validate()
                        stop = self._should_stop(step_result)
                        if stop or self._due(self.train_cfg.checkpoint_every_steps):
                            result.last_checkpoint = self.save_checkpoint()
                            last_saved_step = self.state.step
                        if stop:
                            result.stopped_early = True
                            break
                        if self.state.step >= self.total_steps:
                            break
                    else:
                        self._end_epoch()
                        if self._epoch_checkpoint_due() and last_saved_step != self.state.step:
                            result.last_checkpoint = self.save_checkpoint()
                            last_saved_step = self.state.step
                if not result.stopped_early:
                    if last_saved_step != self.state.step:
                        result.last_checkpoint = self.save_checkpoint()
                    if self.val_loader is not None and not self._due(self.train_cfg.val_every_steps):
                        self.validate()
                    self.export_final()
        finally:
            if progress is not None:
                progress.close()
            self.logger.close()
        result.step = self.state.step
        return result

    def _end_epoch(self) -> None:
        self.state.epoch += 1
        self.state.batches_in_epoch = 0

    def _epoch_checkpoint_due(self) -> bool:
        every = self.train_cfg.save_every_epoch
        return every > 0 and self.state.epoch % every == 0

    def _due(self, every: int) -> bool:
        return every > 0 and self.state.step % every == 0

    def _should_stop(self, step_result: StepResult) -> bool:
        if step_result.stop_requested:
            LOGGER.warning("stop requested by a signal: saving a checkpoint at step %d and exiting", self.state.step)
            return True
        if self.train_cfg.stop_at_step > 0 and self.state.step >= self.train_cfg.stop_at_step:
            LOGGER.info("reached stop_at_step=%d: saving a checkpoint and exiting", self.train_cfg.stop_at_step)
            return True
        if step_result.out_of_time:
            LOGGER.info("reached time_limit_minutes=%g at step %d: saving a checkpoint and exiting",
                        self.train_cfg.time_limit_minutes, self.state.step)
            return True
        return False

    def _track_nonfinite(self, step_result: StepResult) -> None:
        if step_result.finite:
            self.state.nonfinite_in_a_row = 0
            return
        self.state.nonfinite_in_a_row += 1
        self.state.nonfinite_total += 1
        if self.context.is_main:
            LOGGER.warning("step %d: non-finite loss %s / grad norm %s: update skipped (%d in a row, %d in total)",
                           self.state.step, step_result.loss, step_result.grad_norm,
                           self.state.nonfinite_in_a_row, self.state.nonfinite_total)
            self.logger.log_scalars(self.state.step, {"nonfinite_steps": float(self.state.nonfinite_total)})
        if self.state.nonfinite_in_a_row >= self.train_cfg.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"the loss or gradients were non-finite for {self.state.nonfinite_in_a_row} steps in a row "
                f"(up to step {self.state.step}); training stopped. Lower learning_rate, check the data "
                f"(corrupt images?), use mixed_precision bf16 or no instead of fp16, or raise max_nonfinite_steps. "
                f"The last good checkpoint is in {self.save_dir}"
            )

    def _log_step(self, step_result: StepResult, samples_per_s: float, rays_per_s: float) -> None:
        values = {"loss": step_result.loss, "mse": step_result.mse, "lpips": step_result.lpips,
                  "mask": step_result.mask, "grad_norm": step_result.grad_norm,
                  "lr": self.optimizer.param_groups[0]["lr"], "samples_per_s": samples_per_s,
                  "rays_per_s": rays_per_s, "epoch": float(self.state.epoch)}
        skipped = getattr(self.train_dataset, "num_skipped", None)
        if skipped is not None:  # unreadable images the dataset replaced (it logs each file)
            values["skipped_images"] = float(skipped)
        if self.device.type == "cuda":
            values["max_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.logger.log_scalars(self.state.step, values)
        if self.context.is_main and not on_terminal():
            LOGGER.info("step %d/%d: loss %.4f, %.1f samples/s, %s left", self.state.step, self.total_steps,
                        step_result.loss, samples_per_s, format_eta(self._seconds_left()))

    def _seconds_left(self) -> float:
        """Time to ``total_steps`` at this process's average rate so far (or to ``time_limit_minutes``)."""
        now = time.monotonic()
        done = max(1, self.state.step - self._first_step)
        left = (now - self._fit_started) / done * max(0, self.total_steps - self.state.step)
        limit = self.train_cfg.time_limit_minutes
        return min(left, max(0.0, 60.0 * limit - (now - self._started))) if limit > 0 else left

    def validate(self) -> dict[str, float]:
        """Score held-out objects (all ranks) and log metrics + a preview image (rank 0)."""
        if self.val_loader is None:
            return {}
        metrics, preview = run_validation(self.model, self.val_loader, self.lpips, self.context, self.autocast,
                                          self.config.data.render_size)
        if self.context.is_main:
            LOGGER.info("step %d validation: %s", self.state.step,
                        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            self.logger.log_scalars(self.state.step, metrics, prefix="val")
            if preview is not None:
                self.logger.log_images(self.state.step, "val/targets_over_renders", preview)
            self.logger.flush()
        return metrics

    def _progress_bar(self):
        """The main process's tqdm bar on a terminal; None elsewhere (off a terminal, each logging
        window writes a line with the step, the loss, the rate and the time left instead)."""
        if not self.context.is_main or not on_terminal():
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps, initial=self.state.step, desc="train", unit="step", dynamic_ncols=True)


def train(config: MiraConfig, context: DistributedContext | None = None) -> FitResult:
    """Build a :class:`Trainer` for ``config`` and run it."""
    return Trainer(config, context=context).fit()
