"""Unit tests of the training pieces: CLI, optimiser groups, schedule, checkpoints, RNG, sampler,
patches, losses, analytic scenes, non-finite handling (CPU, tiny model, seconds)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from helpers_training import TINY_CONFIG, disk_config, tiny_config, write_disk_dataset
from mira.cameras import project_points, transform_cameras, transform_points
from mira.config import ConfigError, load_config
from mira.models import MIRA
from mira.training import NonFiniteLossError, Trainer
from mira.training import checkpoint as ckpt
from mira.training.cli import parse_args
from mira.training.losses import ReconstructionLoss
from mira.training.optim import WarmupCosineSchedule, build_optimizer, build_scheduler, parameter_groups
from mira.training.patches import sample_patches, to_patch_images
from mira.training.sampler import EpochIndexedDataset, ResumableDistributedSampler
from mira.data import MultiViewDataset
from mira.training.synthetic_scenes import SyntheticSceneDataset, make_scene, render_scene


# ---------------------------------------------------------------------- command line
def test_cli_overrides_use_each_keys_type():
    config, namespace = parse_args([
        "--config_path", str(TINY_CONFIG), "--batch_size", "3", "--learning_rate", "2e-4", "--compile", "true",
        "--gradient_checkpointing", "yes", "--box_max", "[1, 1.5, 2]", "--random_crop_scale", "0.8,1.0",
        "--lpips_net", "alex", "--encoder_config", '{"hidden_size": 32, "num_hidden_layers": 1, '
        '"num_attention_heads": 2, "intermediate_size": 64, "patch_size": 14, "image_size": 56}',
    ])
    assert namespace.config_path == str(TINY_CONFIG)
    assert config.train.batch_size == 3 and isinstance(config.train.batch_size, int)
    assert config.train.learning_rate == pytest.approx(2e-4)
    assert config.train.compile is True and config.model.gradient_checkpointing is True
    assert config.renderer.box_max == [1.0, 1.5, 2.0]
    assert config.data.random_crop_scale == [0.8, 1.0]
    assert config.train.lpips_net == "alex"
    assert config.model.encoder_config["num_hidden_layers"] == 1
    assert config.model.num_layers == 2  # untouched keys keep the file's values


def test_cli_rejects_unknown_keys_and_bad_values(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--config_path", str(TINY_CONFIG), "--batch_sise", "2"])
    assert "--batch_sise" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="batch_size"):
        parse_args(["--config_path", str(TINY_CONFIG), "--batch_size", "two"])
    with pytest.raises(ConfigError, match="compile"):
        parse_args(["--config_path", str(TINY_CONFIG), "--compile", "maybe"])
    with pytest.raises(ConfigError, match="not found"):
        parse_args(["--config_path", "no/such/config.json"])


# ---------------------------------------------------------------------- optimiser and schedule
def test_parameter_groups_decay_only_weight_matrices(tmp_path):
    config = tiny_config(tmp_path, encoder_trainable_blocks=1, encoder_lr_scale=0.1, weight_decay=0.05)
    model = MIRA(config)
    groups = {g["name"]: g for g in parameter_groups(model, config.train)}
    by_id = {id(p): name for name, p in model.named_parameters()}
    names = {key: {by_id[id(p)] for p in group["params"]} for key, group in groups.items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set().union(*names.values()) == trainable  # every trainable parameter once, frozen ones never
    assert sum(len(v) for v in names.values()) == len(trainable)
    assert any(not p.requires_grad for n, p in model.named_parameters() if n.startswith("encoder."))
    no_decay = names["model_no_decay"] | names.get("encoder_no_decay", set())
    decay = names["model_decay"] | names.get("encoder_decay", set())
    assert any(n.endswith("tokens") for n in no_decay)  # learned triplane tokens
    assert all(not n.endswith("bias") for n in decay)
    assert all(dict(model.named_parameters())[n].ndim >= 2 for n in decay)
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and module.weight is not None and module.weight.requires_grad:
            assert f"{name}.weight" in no_decay
    assert groups["model_decay"]["weight_decay"] == 0.05 and groups["model_no_decay"]["weight_decay"] == 0.0
    assert groups["encoder_decay"]["lr"] == pytest.approx(0.1 * config.train.learning_rate)
    optimizer = build_optimizer(model, config.train)
    assert optimizer.defaults["betas"] == (0.9, 0.95)


def test_warmup_cosine_schedule_shape_and_state_round_trip(tmp_path):
    schedule = WarmupCosineSchedule(warmup_steps=4, total_steps=20, min_ratio=0.1)
    values = [schedule(s) for s in range(25)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert values[20] == pytest.approx(0.1) and values[24] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    config = tiny_config(tmp_path, warmup_steps=4)
    parameter = nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.AdamW([parameter], lr=config.train.learning_rate)
    scheduler = build_scheduler(optimizer, config.train, total_steps=20)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    ckpt.atomic_torch_save(scheduler.state_dict(), tmp_path / "s.pt")
    restored = build_scheduler(torch.optim.AdamW([parameter], lr=1.0), config.train, total_steps=20)
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.last_epoch == 6 and restored.get_last_lr() == pytest.approx(scheduler.get_last_lr())


# ---------------------------------------------------------------------- checkpoints and RNG
def test_atomic_save_keeps_old_file_on_failure_and_prunes(tmp_path, monkeypatch):
    path = ckpt.checkpoint_path(tmp_path, 5)
    ckpt.atomic_torch_save({"a": torch.ones(3)}, path)

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_torch_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    for step in (1, 12, 3, 100):
        ckpt.atomic_torch_save({"step": step}, ckpt.checkpoint_path(tmp_path, step))
    (tmp_path / "checkpoint-notes.txt").write_text("not a checkpoint")
    assert [int(p.stem.split("-")[1]) for p in ckpt.list_checkpoints(tmp_path)] == [1, 3, 5, 12, 100]
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-00000100.pt"
    ckpt.prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00000012.pt", "checkpoint-00000100.pt"]
    assert ckpt.latest_checkpoint(tmp_path / "missing") is None


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in NumPy's state
    ckpt.atomic_torch_save({"rng": ckpt.capture_rng_state()}, tmp_path / "rng.pt")

    def draw():
        return random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(4).tolist()

    expected = draw()
    draw()
    ckpt.restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert draw() == expected
    with pytest.raises(RuntimeError, match="not a MIRA training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "rng.pt")


def test_resumable_sampler_skips_exactly_the_consumed_indices():
    dataset = list(range(23))
    full = {r: list(ResumableDistributedSampler(dataset, 2, r, seed=7)) for r in range(2)}
    assert len(full[0]) == len(full[1]) == 11 and not set(full[0]) & set(full[1])
    sampler = ResumableDistributedSampler(dataset, 2, 1, seed=7)
    sampler.set_start_index(4)
    assert list(sampler) == full[1][4:] and len(sampler) == 7
    sampler.set_epoch(1)
    assert len(sampler) == 11 and list(sampler) != full[1]
    with pytest.raises(ValueError):
        sampler.set_start_index(12)


# ---------------------------------------------------------------------- patches and losses
class _EpochItems(torch.utils.data.Dataset):
    """Item i of epoch e is (e, i, pid): what a worker loaded, and in which process."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[int, int, int]:
        import os

        return self.epoch, index, os.getpid()


def test_persistent_workers_see_each_epochs_items_through_epoch_tagged_indices():
    """With epoch-tagged indices, two persistent workers load the same (epoch, index) sequence as
    set_epoch in this process, over three epochs and a mid-epoch start, without being re-spawned."""
    dataset = _EpochItems(12)
    plain = ResumableDistributedSampler(dataset, 1, 0, seed=3)
    tagged = ResumableDistributedSampler(dataset, 1, 0, seed=3, tag_epoch=True)
    loader = torch.utils.data.DataLoader(EpochIndexedDataset(dataset), batch_size=4, sampler=tagged, num_workers=2,
                                         persistent_workers=True)
    pids = set()
    for epoch, start in ((0, 0), (1, 4), (2, 0)):
        plain.set_epoch(epoch)
        tagged.set_epoch(epoch)
        plain.set_start_index(start)
        tagged.set_start_index(start)
        dataset.set_epoch(epoch)
        expected = [(epoch, index) for index in plain]
        seen = []
        for epochs, indices, workers in loader:
            seen += list(zip(epochs.tolist(), indices.tolist()))
            pids.update(workers.tolist())
        assert seen == expected
    assert len(pids) == 2  # the same two worker processes served all three epochs


def test_patch_renders_equal_the_same_pixels_of_a_full_render(tmp_path):
    config = tiny_config(tmp_path, render_size=12)
    torch.manual_seed(0)
    model = MIRA(config).eval()
    item = SyntheticSceneDataset(config, num_objects=1)[0]
    inputs = [item[k][None] for k in ("source_image", "source_c2w", "source_intrinsics", "target_c2w", "target_intrinsics")]
    torch.manual_seed(1)
    patches = sample_patches(1, 2, 12, 5)
    with torch.no_grad():
        full = model(*inputs, 12)["rgb"]  # (1, V, 3, 12, 12)
        patch = to_patch_images(model(*inputs, 12, uv=patches.pixel_uv())["rgb"], 5)
    torch.testing.assert_close(patch, patches.gather(full), atol=1e-5, rtol=1e-5)
    top, left = int(patches.top[0, 1]), int(patches.left[0, 1])
    torch.testing.assert_close(patches.gather(full)[0, 1], full[0, 1, :, top:top + 5, left:left + 5])
    whole = sample_patches(2, 3, 12, 0)
    assert whole.size == 12 and int(whole.top.abs().sum() + whole.left.abs().sum()) == 0


def test_reconstruction_loss_terms():
    target = torch.rand(2, 3, 16, 16)
    prediction = (target + 0.1).clamp(0, 1)
    opacity, mask = torch.full((2, 1, 16, 16), 0.5), torch.ones(2, 1, 16, 16)
    plain = ReconstructionLoss(0.0, 0.0)(prediction, target)
    assert plain["loss"] == pytest.approx(float(((prediction - target) ** 2).mean()))
    with_mask = ReconstructionLoss(0.0, 2.0)(prediction, target, opacity, mask)
    assert with_mask["mask"] == pytest.approx(0.25) and with_mask["loss"] == pytest.approx(float(plain["loss"]) + 0.5)
    with pytest.raises(ValueError, match="opacity"):
        ReconstructionLoss(0.0, 1.0)(prediction, target)
    with pytest.raises(ValueError, match="LPIPS"):
        ReconstructionLoss(1.0, 0.0)


# ---------------------------------------------------------------------- analytic scenes
def test_synthetic_scenes_are_consistent_and_deterministic(tmp_path):
    config = tiny_config(tmp_path, render_size=32, supervision_k=3)
    dataset = SyntheticSceneDataset(config, num_objects=3)
    item = dataset[1]
    scene = make_scene(1, config.train.seed)
    centers = transform_points(item["world_to_canonical"][None], scene.centers[None])  # the canonical frame
    uv, depth = project_points(centers.expand(3, -1, -1), item["target_c2w"], item["target_intrinsics"], 32, 32)
    for view in range(3):
        nearest = depth[view].argmin()  # the front sphere's centre projects inside the mask
        u, v = uv[view, nearest].long().tolist()
        assert item["target_masks"][view, 0, v, u] == 1
    background = item["target_masks"][:, 0] == 0
    assert torch.all(item["target_images"].permute(0, 2, 3, 1)[background] == item["background"])  # its colour
    again = dataset[1]
    assert all(torch.equal(item[k], again[k]) for k in ("target_images", "target_c2w", "source_image"))
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["target_c2w"], item["target_c2w"])  # new views, same object
    val = SyntheticSceneDataset(config, "val", num_objects=2)
    assert val[0]["object_id"] != item["object_id"]


def test_written_scenes_read_back_through_mira_data(tmp_path):
    """Our render format written here, read by MultiViewDataset, equals the analytic render."""
    root = write_disk_dataset(tmp_path / "renders")
    config = disk_config(tmp_path / "run", root, render_size=32, supervision_k=3)
    dataset = MultiViewDataset(config, "train")
    assert len(dataset) == 8 and len(MultiViewDataset(config, "val")) == 2
    item = dataset[2]
    scene = make_scene(int(item["object_id"].split("_")[1]), seed=3)
    views = dataset.view_index(item["object_id"])
    targets = [views.names.index(name) for name in item["target_views"]]
    rgb, mask = render_scene(scene, views.c2w[targets], item["target_intrinsics"], 32, item["background"].tolist())
    assert mask.mean() > 0.02
    torch.testing.assert_close(item["target_masks"], mask, atol=1e-6, rtol=0)
    torch.testing.assert_close(item["target_images"], rgb, atol=1 / 255 + 1e-6, rtol=0)
    # and the item's cameras are those cameras moved into the canonical source frame
    torch.testing.assert_close(item["target_c2w"], transform_cameras(item["world_to_canonical"][None],
                                                                     views.c2w[targets][None])[0])


# ---------------------------------------------------------------------- non-finite losses
class NaNTargets(torch.utils.data.Dataset):
    """Analytic scenes whose targets are NaN for the objects in ``bad`` (a corrupt sample)."""

    def __init__(self, base: SyntheticSceneDataset, bad: set[int]) -> None:
        self.base, self.bad = base, bad

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        if index in self.bad:
            item["target_images"] = torch.full_like(item["target_images"], math.nan)
        return item


def _nan_trainer(tmp_path, bad: set[int], **overrides) -> Trainer:
    config = tiny_config(tmp_path, synthetic_objects=4, val_every_steps=0, lpips_weight=0.0, checkpoint_every_steps=0,
                         **overrides)
    dataset = NaNTargets(SyntheticSceneDataset(config, num_objects=4), bad)
    return Trainer(config, train_dataset=dataset)


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    trainer = _nan_trainer(tmp_path, bad={2}, max_steps=8)
    result = trainer.fit()
    assert result.step == 8 and trainer.state.nonfinite_total == 2  # object 2 once per epoch
    assert sum(not math.isfinite(loss) for loss in result.losses) == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_too_many_nonfinite_steps_in_a_row_stop_the_run(tmp_path):
    trainer = _nan_trainer(tmp_path, bad={0, 1, 2, 3}, max_steps=8, max_nonfinite_steps=3)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # no update applied


# ---------------------------------------------------------------------- accumulation, initialisation
def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    """2 micro-batches of 1 object == 1 batch of 2 objects (loss and gradient norm)."""
    from torch.utils.data import default_collate

    results = []
    for name, batch_size, accum in (("large", 2, 1), ("accumulated", 1, 2)):
        config = tiny_config(tmp_path / name, batch_size=batch_size, grad_accum_steps=accum, patch_size=0,
                             lpips_weight=0.0, val_every_steps=0)
        dataset = SyntheticSceneDataset(config, num_objects=2)
        trainer = Trainer(config, train_dataset=dataset)
        trainer.model.eval()  # deterministic ray samples, so both runs render the same points
        items = [dataset[0], dataset[1]]
        micro = [default_collate(items)] if accum == 1 else [default_collate([item]) for item in items]
        results.append(trainer.train_step(micro))
    large, accumulated = results
    assert accumulated.loss == pytest.approx(large.loss, rel=1e-5)
    assert accumulated.grad_norm == pytest.approx(large.grad_norm, rel=1e-4)
    assert accumulated.samples == large.samples == 2


def test_preloading_from_a_save_pretrained_directory(tmp_path):
    first = Trainer(tiny_config(tmp_path / "first", max_steps=2, val_every_steps=0))
    first.fit()
    exported = tmp_path / "first" / "final"
    config = tiny_config(tmp_path / "second", model_preloading_strategy=str(exported), max_steps=3)
    second = Trainer(config)
    assert second.state.step == 0  # fresh optimiser and schedule ...
    reference = MIRA.from_pretrained(exported).state_dict()
    for name, tensor in second.model.state_dict().items():  # ... from the exported weights
        torch.testing.assert_close(tensor, reference[name], msg=name)


def test_checkpoints_carry_the_encoder_architecture_of_a_pretrained_encoder(tmp_path):
    """encoder_model_id + no encoder_config: the .pt checkpoint and config.json record the loaded
    encoder's architecture (MIRA's own config), so test.py rebuilds the model without the encoder."""
    import shutil

    from transformers import Dinov2Config, Dinov2Model

    from mira.inference.checkpoint import load_model

    encoder_dir = tmp_path / "dinov2"
    Dinov2Model(Dinov2Config(**load_config(TINY_CONFIG).model.encoder_config)).save_pretrained(encoder_dir)
    config = tiny_config(tmp_path / "run", encoder_model_id=str(encoder_dir), encoder_config=None, max_steps=1,
                         val_every_steps=0)
    trainer = Trainer(config, train_dataset=SyntheticSceneDataset(config, num_objects=2))
    assert config.model.encoder_config is None  # the caller's config is left alone
    path = trainer.save_checkpoint()
    saved = torch.load(path, map_location="cpu", weights_only=True)["config"]["model"]["encoder_config"]
    run_config = load_config(tmp_path / "run" / "config.json")
    for encoder_config in (saved, run_config.model.encoder_config):
        assert encoder_config is not None and encoder_config["hidden_size"] == 32
    shutil.rmtree(encoder_dir)  # neither the weights nor the encoder's config.json are needed any more
    model = load_model(str(path))
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)


# ---------------------------------------------------------------------- config checks
def test_training_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="mixed_precision"):
        Trainer(tiny_config(tmp_path, mixed_precision="fp8"))
    ckpt.atomic_torch_save({"format": 1}, ckpt.checkpoint_path(tmp_path, 3))
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        Trainer(tiny_config(tmp_path, model_preloading_strategy="none"))
    with pytest.raises(ConfigError, match="smaller than LPIPS 'vgg' accepts"):
        Trainer(tiny_config(tmp_path / "lpips", patch_size=8))
    with pytest.raises(ConfigError, match="fewer than one step"):
        Trainer(tiny_config(tmp_path / "small", synthetic_objects=2, batch_size=4))


def test_training_with_persistent_workers_equals_training_in_process(tmp_path):
    """Three epochs of 4 objects with two persistent data workers give the weights of the same run
    loading in this process (the items of every epoch reach the workers through tagged indices)."""
    weights = []
    for workers in (0, 2):
        config = tiny_config(tmp_path / f"w{workers}", synthetic_objects=4, batch_size=2, max_steps=6,
                             val_every_steps=0, checkpoint_every_steps=0, lpips_weight=0.0, num_workers=workers)
        torch.manual_seed(0)
        trainer = Trainer(config)
        trainer.logger.close()
        assert trainer.steps_per_epoch == 2
        trainer.fit()
        weights.append({name: value.detach().clone() for name, value in trainer.model.state_dict().items()})
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, msg=name)
