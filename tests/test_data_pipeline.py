"""load_input_data.py: synthetic objects, parallel resumable rendering, failures, index, config update."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mira.config import load_config
from mira.data import MultiViewDataset
from mira.data.cli import update_config_data_dir
from mira.data.index import DONE_MARKER
from mira.data.render_jobs import RenderJob, RenderSettings, render_all, render_one
from mira.data.synthetic import make_synthetic_object, write_synthetic_objects
from helpers_data import REPO_ROOT, orbit_views, write_software_object

TINY_RENDER = ["--num_renders", "2", "--resolution", "32", "--samples", "2", "--no_progress"]


def load_input_data(blender_command: list[str], *args: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, str(REPO_ROOT / "load_input_data.py"), *map(str, args), "--blender", blender_command[0]]
    if popen:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def file_times(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ----------------------------------------------------------------------------- synthetic objects
def test_synthetic_objects_are_deterministic_coloured_and_textured(tmp_path):
    first, again = make_synthetic_object((0, 1)), make_synthetic_object((0, 1))
    assert np.array_equal(first.to_geometry().vertices, again.to_geometry().vertices)
    paths = write_synthetic_objects(8, tmp_path, seed=0)
    assert [p.name for p in paths] == [f"synthetic_{i:05d}.glb" for i in range(8)]
    textured = plain = 0
    extents = set()
    for path in paths:
        scene = trimesh.load(path)
        assert 2 <= len(scene.geometry) <= 5
        assert np.isfinite(scene.bounds).all()
        extents.add(tuple(np.round(scene.extents, 4)))
        for mesh in scene.geometry.values():
            material = mesh.visual.material
            if getattr(material, "baseColorTexture", None) is not None:
                textured += 1
                assert mesh.visual.uv is not None and len(mesh.visual.uv) == len(mesh.vertices)
            else:
                plain += 1
                assert material.baseColorFactor is not None
    assert textured > 0 and plain > 0 and len(extents) == 8


# ----------------------------------------------------------------------------- the command line
@pytest.mark.blender
def test_renders_a_synthetic_dataset_and_updates_the_config(blender_command, tmp_path):
    config = tmp_path / "config.json"
    shutil.copy(REPO_ROOT / "configs" / "tiny.json", config)
    out = tmp_path / "renders"
    result = load_input_data(blender_command, "--synthetic", 3, "--output_dir", out, *TINY_RENDER,
                             "--workers", 2, "--val_fraction", 0.34, "--update_config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    index = json.loads((out / "index.json").read_text())
    assert len(index["train"]) + len(index["val"]) == 3 and index["val"] and not index["failed"]
    for object_id in index["train"] + index["val"]:
        folder = out / object_id
        assert (folder / DONE_MARKER).is_file() and (folder / "001.png").is_file()
        assert (folder / "mesh.ply").is_file() == (object_id in index["val"])  # ground truth for validation
    assert load_config(config).data.data_dir == str(out)
    dataset = MultiViewDataset(load_config(config), split="val")
    assert dataset[0]["target_images"].shape[1:] == (3, 32, 32)


@pytest.mark.blender
def test_resume_after_an_interrupted_run(blender_command, tmp_path):
    out = tmp_path / "renders"
    process = load_input_data(blender_command, "--synthetic", 3, "--output_dir", out, *TINY_RENDER, "--workers", 1,
                              start_new_session=True)
    deadline = time.time() + 300
    while not list(out.glob(f"*/{DONE_MARKER}")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # like a crash or a lost node: no clean-up
    process.wait()
    finished = [p.parent for p in out.glob(f"*/{DONE_MARKER}")]
    assert 1 <= len(finished) < 3
    before = {folder.name: file_times(folder) for folder in finished}
    unfinished = next(f"synthetic_{i:05d}" for i in range(3) if not (out / f"synthetic_{i:05d}" / DONE_MARKER).exists())
    (out / unfinished).mkdir(exist_ok=True)
    (out / unfinished / "stale.png").write_bytes(b"half-written")  # a half-finished object

    result = load_input_data(blender_command, "--synthetic", 3, "--output_dir", out, *TINY_RENDER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"already complete {len(finished)}" in result.stdout
    for name, times in before.items():
        assert file_times(out / name) == times, f"{name} was rendered twice"
    assert not (out / unfinished / "stale.png").exists() and (out / unfinished / DONE_MARKER).is_file()
    index = json.loads((out / "index.json").read_text())
    assert len(index["train"]) + len(index["val"]) == 3


@pytest.mark.blender
def test_a_failing_object_is_logged_and_the_others_finish(blender_command, tmp_path):
    objects = tmp_path / "objects"
    write_synthetic_objects(1, objects, seed=4)
    (objects / "broken.glb").write_bytes(b"this is not a glb")
    out = tmp_path / "renders"
    result = load_input_data(blender_command, "--objects", objects, "--output_dir", out, *TINY_RENDER,
                             "--workers", 2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed broken: could not import" in result.stdout
    index = json.loads((out / "index.json").read_text())
    assert index["train"] + index["val"] == ["synthetic_00000"]
    assert "could not import" in index["failed"]["broken"]
    failure = json.loads((out / "failures.jsonl").read_text().splitlines()[0])
    assert failure["object_id"] == "broken" and failure["source_path"].endswith("broken.glb")
    assert not (out / "broken").exists() and (out / "_logs" / "broken.log").is_file()


@pytest.mark.blender
def test_per_object_timeout(blender_command, tmp_path):
    path = write_synthetic_objects(1, tmp_path / "objects")[0]
    settings = RenderSettings(num_renders=1, resolution=16, samples=1, timeout=0.2)
    result = render_one(RenderJob("slow", path), settings, tmp_path / "out", Path(blender_command[0]))
    assert result.status == "failed" and result.reason.startswith("timeout")
    assert not (tmp_path / "out" / "slow").exists()


def test_gpu_slots_and_failure_reasons_reach_each_process(tmp_path):
    """Worker slot i renders with CUDA_VISIBLE_DEVICES = gpus[i % len(gpus)] (a stand-in script reports it)."""
    script = tmp_path / "report_gpu.py"
    script.write_text("import os, sys\n"
                      "sys.stderr.write('MIRA_RENDER_ERROR: gpu=' + os.environ.get('CUDA_VISIBLE_DEVICES', '-') + '\\n')\n"
                      "sys.exit(1)\n")
    jobs = [RenderJob(f"object_{i}", tmp_path / "x.glb") for i in range(6)]
    summary = render_all(jobs, RenderSettings(), tmp_path / "out", Path(sys.executable), workers=2,
                         gpus=["3", "5"], script=script, progress=False)
    reasons = {r.reason for r in summary.results}
    assert summary.count("failed") == 6 and reasons <= {"gpu=3", "gpu=5"}


def test_index_only_and_config_update(tmp_path):
    root = tmp_path / "views_release"
    mesh = trimesh.creation.box(extents=(0.8, 0.5, 0.3))
    for name in ("obj_a", "obj_b", "obj_c"):
        write_software_object(root / name, mesh, orbit_views(3), 24)
        (root / name / "transforms.json").unlink()  # zero123 layout: NNN.png + NNN.npy only
        (root / name / "metadata.json").unlink()
    (root / "_logs").mkdir()
    result = subprocess.run([sys.executable, str(REPO_ROOT / "load_input_data.py"), "--index_only", "--output_dir",
                             str(root), "--val_fraction", "0.3"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    index = json.loads((root / "index.json").read_text())
    assert sorted(index["train"] + index["val"]) == ["obj_a", "obj_b", "obj_c"] and index["val"]

    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"data": {"render_size": 32}, "train": {"seed": 1}}))
    update_config_data_dir(nested, str(root))
    config = load_config(nested)
    assert config.data.data_dir == str(root) and config.data.render_size == 32
    dataset = MultiViewDataset(config, split="train")
    views = dataset.view_index(dataset[0]["object_id"])
    assert views.c2w[:, :3, 3].norm(dim=-1).tolist() == pytest.approx([2.5 * 1.6] * 3, rel=1e-4)  # zero123 world scale


def test_normalisation_reaches_the_render_script(tmp_path):
    """load_input_data.py --normalisation box is passed to dataset_rendering.py; the default is the sphere."""
    from mira.data.cli import build_parser, make_settings

    job = RenderJob("object_0", tmp_path / "x.glb")
    for flags, expected in (([], "sphere"), (["--normalisation", "box"], "box")):
        args = build_parser().parse_args(["--synthetic", "1", "--output_dir", str(tmp_path), *flags])
        script_args = make_settings(args)[0].script_args(job, tmp_path)
        assert script_args[script_args.index("--normalisation") + 1] == expected
