"""test.py's export flags on the shipped mira-demo model (CPU, small sizes): --texture, --texture_size,
--target_faces, and the files and result.json they give."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from helpers_inference import REPO_ROOT
from mira.export.gltf import read_glb
from mira.inference.cli import build_parser, main

EXAMPLE = REPO_ROOT / "docs" / "examples" / "procedural_000000000_blender.png"
FAST = ["--input", str(EXAMPLE), "--export_mesh", "--mesh_resolution", "32", "--no_progress", "--device", "cpu"]


def test_textured_glb_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    code = main([*FAST, "--output_path", str(out), "--mesh_format", "glb", "--texture", "--texture_size", "128"])
    assert code == 0, capsys.readouterr().err
    folder = out / EXAMPLE.stem
    assert sorted(p.name for p in folder.iterdir()) == ["input.png", "mesh.glb", "result.json"]
    result = json.loads((folder / "result.json").read_text())
    assert result["mesh"]["files"] == {"glb": ["mesh.glb"]}
    assert result["mesh"]["texture"]["size"] == 128 and result["mesh"]["texture"]["color_space"] == "sRGB"
    assert set(result["mesh"]["texture"]["seconds"]) == {"unwrap", "rasterize", "query", "dilate"}
    assert "+Y up" in result["mesh"]["frame"]["glb"]
    content = read_glb(folder / "mesh.glb")
    attributes = content.tree["meshes"][0]["primitives"][0]["attributes"]
    assert "TEXCOORD_0" in attributes and "COLOR_0" not in attributes
    texture = np.asarray(Image.open(io.BytesIO(content.image())).convert("RGB"))
    assert texture.shape == (128, 128, 3) and texture.std() > 1  # the model's colours, not a constant
    (mesh,) = trimesh.load(folder / "mesh.glb", process=False).geometry.values()
    assert np.ptp(mesh.vertices[:, 1]) > 0.2  # a real object, +Y up


def test_textured_obj_with_target_faces(tmp_path, capsys):
    out = tmp_path / "out"
    code = main([*FAST, "--output_path", str(out), "--mesh_format", "obj", "--texture", "--texture_size", "64",
                 "--target_faces", "400"])
    assert code == 0, capsys.readouterr().err
    folder = out / EXAMPLE.stem
    assert {"mesh.obj", "mesh.mtl", "mesh.png"} <= {p.name for p in folder.iterdir()}
    result = json.loads((folder / "result.json").read_text())
    assert result["mesh"]["files"] == {"obj": ["mesh.obj", "mesh.mtl", "mesh.png"]}
    assert result["mesh"]["faces"] <= 440
    loaded = trimesh.load(folder / "mesh.obj", process=False)
    assert len(loaded.faces) == result["mesh"]["faces"] and loaded.visual.uv is not None


def test_export_flags_are_checked_before_loading_the_model(capsys):
    assert build_parser().parse_args(["--input", "x", "--target_faces", "10"]).mesh_target_faces == 10
    assert main(["--input", str(EXAMPLE), "--texture", "--texture_size", "16"]) == 1
    assert "--texture_size must be in [64, 8192]" in capsys.readouterr().err


def test_remesh_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("pynanoinstantmeshes", reason="--remesh needs pynanoinstantmeshes (requirements.txt)")
    out = tmp_path / "out"
    code = main([*FAST, "--output_path", str(out), "--remesh", "triangle", "--target_faces", "600"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / EXAMPLE.stem / "result.json").read_text())
    assert result["settings"]["remesh"] == "triangle" and 300 <= result["mesh"]["faces"] <= 1200
    mesh = trimesh.load(out / EXAMPLE.stem / "mesh.ply", process=False)
    assert len(mesh.faces) == result["mesh"]["faces"]
    with pytest.raises(SystemExit):  # argparse refuses it (exit code 2)
        build_parser().parse_args(["--input", "x", "--remesh", "hexagons"])
