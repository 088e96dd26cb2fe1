"""train_ddp.py end to end in subprocesses (CPU, gloo): torchrun with 2 processes, exact resume,
a 2-node c10d rendezvous on localhost, and SIGTERM -> checkpoint -> clean exit."""

from __future__ import annotations

import os
import sys
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from helpers_training import (REPO_ROOT, disk_config, finish, free_port, run, start, torchrun_command,
                              train_losses, write_config, write_disk_dataset)
from mira.models import MIRA
from mira.training import checkpoint as ckpt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A small dataset on disk in our render format, read by mira.data.MultiViewDataset."""
    return write_disk_dataset(tmp_path_factory.mktemp("renders"))


def test_torchrun_two_processes_and_exact_resume(tmp_path, data_dir):
    """6 steps straight == 3 steps, stop (checkpoint), resume, 3 more: same losses and weights.

    2 ranks x 2 accumulated micro-batches of 1 object: 2 steps per epoch of 8 objects, so the
    run crosses epochs and resumes in the middle of one."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun = ["--standalone", "--nproc_per_node=2"]
    config_a = write_config(tmp_path / "a.json", disk_config(straight, data_dir, max_steps=6, grad_accum_steps=2))
    config_b = write_config(tmp_path / "b.json", disk_config(split, data_dir, max_steps=6, grad_accum_steps=2))

    log = run(torchrun_command(torchrun) + ["--config_path", str(config_a)], tmp_path / "a.log")
    assert "2 process(es)" in log
    assert [p.name for p in ckpt.list_checkpoints(straight)] == ["checkpoint-00000003.pt", "checkpoint-00000006.pt"]
    assert (straight / "final" / "model.safetensors").is_file()
    assert any((straight / "logs" / "tensorboard").iterdir())
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(straight))  # weights_only=True
    assert state["step"] == 6 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # per-rank streams
    val_lines = (straight / "logs" / "metrics.jsonl").read_text().count('"split": "val"')
    assert val_lines == 2  # steps 3 and 6

    run(torchrun_command(torchrun) + ["--config_path", str(config_b), "--stop_at_step", "3"], tmp_path / "b1.log")
    assert [p.name for p in ckpt.list_checkpoints(split)] == ["checkpoint-00000003.pt"]
    assert not (split / "final").exists()
    log = run(torchrun_command(torchrun) + ["--config_path", str(config_b)], tmp_path / "b2.log")
    assert "resumed from" in log and "step 3" in log

    expected, resumed = train_losses(straight), train_losses(split)
    assert sorted(expected) == sorted(resumed) == list(range(1, 7))
    for step in expected:
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5), f"step {step}"
    weights_a = load_file(straight / "final" / "model.safetensors")
    weights_b = load_file(split / "final" / "model.safetensors")
    for name, tensor in weights_a.items():
        torch.testing.assert_close(weights_b[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_two_node_rendezvous_on_localhost(tmp_path, data_dir):
    """Two torchrun launches (--nnodes=2, node_rank 0 and 1) meet at a c10d endpoint on localhost."""
    save_dir = tmp_path / "run"
    config = write_config(tmp_path / "c.json", disk_config(save_dir, data_dir, max_steps=2, val_every_steps=0))
    endpoint = f"127.0.0.1:{free_port()}"
    launches = []
    for node_rank in (0, 1):
        args = ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={node_rank}", "--rdzv_id=mira-test",
                "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}"]
        log_path = tmp_path / f"node{node_rank}.log"
        launches.append((start(torchrun_command(args) + ["--config_path", str(config)], log_path), log_path))
    logs = [finish(process, log_path) for process, log_path in launches]
    assert any("2 process(es)" in log for log in logs)
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(save_dir))
    assert state["step"] == 2 and state["world_size"] == 2
    assert (save_dir / "final" / "config.json").is_file()


def test_sigterm_leaves_a_loadable_checkpoint(tmp_path, data_dir):
    save_dir = tmp_path / "run"
    config = disk_config(save_dir, data_dir, max_steps=100_000, val_every_steps=0, checkpoint_every_steps=0)
    config_path = write_config(tmp_path / "c.json", config)
    log_path = tmp_path / "train.log"
    process = start([sys.executable, str(REPO_ROOT / "train_ddp.py"), "--config_path", str(config_path)], log_path)
    metrics = save_dir / "logs" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        assert process.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "training did not start within 120 s"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    log = finish(process, log_path, timeout=120)
    assert "received SIGTERM" in log and "stopped early" in log
    latest = ckpt.latest_checkpoint(save_dir)
    state = ckpt.load_checkpoint(latest)  # torch.load(weights_only=True)
    assert 2 <= state["step"] < 100_000 and latest.name == f"checkpoint-{state['step']:08d}.pt"
    model = MIRA(config)
    model.load_state_dict(state["model"])  # strict: every weight is there
    assert not (save_dir / "final").exists()  # an interrupted run is not exported as final
