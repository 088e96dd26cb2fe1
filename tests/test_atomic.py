"""Atomic writes: finished files get the usual permissions, failures leave nothing behind."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mira.atomic import atomic_output, write_json_atomic


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_finished_files_get_0666_minus_the_umask_not_mkstemps_0600(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json_atomic({"a": 1}, tmp_path / "result.json")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "result.json").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_output(target) as temp_path:
            temp_path.write_text("half")
            raise RuntimeError("mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(OSError, match="no data"):
        with atomic_output(target):
            pass  # nothing written
    assert target.read_text() == "old"


def test_every_atomic_writer_leaves_the_usual_permissions(tmp_path, repo_root):
    """Checkpoints, done markers, synthetic objects and save_pretrained directories all go through
    mira.atomic (or chmod their staging directory): nothing is left private (0o600 / 0o700)."""
    import torch

    from mira.config import load_config
    from mira.data.index import write_done_marker
    from mira.data.synthetic import write_synthetic_objects
    from mira.models import MIRA
    from mira.training.checkpoint import atomic_torch_save

    previous = os.umask(0o022)
    try:
        atomic_torch_save({"a": torch.ones(2)}, tmp_path / "checkpoint.pt")
        write_done_marker(tmp_path / "object", {"views": 2})
        write_synthetic_objects(1, tmp_path / "objects")
        MIRA(load_config(repo_root / "configs" / "tiny.json")).save_pretrained(tmp_path / "final")
    finally:
        os.umask(previous)
    files = [tmp_path / "checkpoint.pt", tmp_path / "object" / ".done", *(tmp_path / "objects").iterdir(),
             tmp_path / "final" / "config.json", tmp_path / "final" / "model.safetensors"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, (path, oct(path.stat().st_mode))
    assert stat.S_IMODE((tmp_path / "final").stat().st_mode) == 0o755
