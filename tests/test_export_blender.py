"""Our GLB / OBJ / PLY files imported by Blender's own importers (default options): the object stands
upright (MIRA's +Z up is Blender's +Z up), the input view's side (MIRA +X) faces Blender's Front view
(-Y) for GLB and OBJ, PLY keeps MIRA's world, and a textured GLB's texture arrives as an sRGB image.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import numpy as np
import pytest
import torch

from mira.export.mesh import extract_mesh, save_mesh
from mira.export.texture import texture_mesh
from helpers_inference import AnalyticField, position_color

pytestmark = pytest.mark.blender

BLENDER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import bpy

    out_path, *files = sys.argv[sys.argv.index("--") + 1:]
    results = {}
    for path in files:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        if path.endswith(".glb"):
            bpy.ops.import_scene.gltf(filepath=path)
        elif path.endswith(".obj"):
            bpy.ops.wm.obj_import(filepath=path)
        else:
            bpy.ops.wm.ply_import(filepath=path)
        bpy.context.view_layer.update()
        points, images = [], []
        for obj in bpy.data.objects:
            if obj.type != "MESH":
                continue
            points += [list(obj.matrix_world @ v.co) for v in obj.data.vertices]
            for slot in obj.material_slots:
                if slot.material and slot.material.use_nodes:
                    for node in slot.material.node_tree.nodes:
                        if node.type == "TEX_IMAGE" and node.image:
                            images.append({"size": list(node.image.size),
                                           "colorspace": node.image.colorspace_settings.name})
        results[path] = {"points": points, "images": images}
    with open(out_path, "w") as handle:
        json.dump(results, handle)
    """
)
# MIRA (x, y, z) -> glTF / OBJ (y, z, x) -> Blender's importers (+Y up to +Z up): (y, -x, z).
MIRA_TO_BLENDER_VIA_Y_UP = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_files_stand_upright_and_face_front_in_blender(blender_command, tmp_path):
    # A tall, off-centre ellipsoid (z extent 1.2, x 0.5, y 0.8): any axis mix-up changes the box.
    center = torch.tensor([0.25, -0.15, 0.1])
    scale = torch.tensor([0.25, 0.4, 0.6])
    field = AnalyticField(lambda p: (100 * (1.0 - ((p - center.to(p)) / scale.to(p)).norm(dim=-1))).clamp_min(0),
                          position_color)
    mesh = extract_mesh(field, torch.zeros(1, 3, 1, 2, 2), resolution=28, density_threshold=5.0)
    textured, _ = texture_mesh(mesh, field, torch.zeros(1, 3, 1, 2, 2), 64)
    files = {
        "vertex.glb": save_mesh(mesh, tmp_path / "vertex.glb"),
        "textured.glb": save_mesh(textured, tmp_path / "textured.glb"),
        "vertex.obj": save_mesh(mesh, tmp_path / "vertex.obj"),
        "textured.obj": save_mesh(textured, tmp_path / "textured" / "textured.obj"),
        "vertex.ply": save_mesh(mesh, tmp_path / "vertex.ply"),
    }
    script = tmp_path / "import.py"
    script.write_text(BLENDER_SCRIPT)
    out = tmp_path / "imported.json"
    result = subprocess.run([*blender_command, str(script), "--", str(out), *map(str, files.values())],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = json.loads(out.read_text())
    for name, path in files.items():
        points = np.asarray(imported[str(path)]["points"])
        transform = np.eye(3) if name.endswith(".ply") else MIRA_TO_BLENDER_VIA_Y_UP
        expected = np.asarray(mesh.vertices) @ transform.T
        expected_bounds = np.stack([expected.min(axis=0), expected.max(axis=0)])
        np.testing.assert_allclose([points.min(axis=0), points.max(axis=0)], expected_bounds, atol=1e-4, err_msg=name)
        extent = np.ptp(points, axis=0)
        assert extent.argmax() == 2, (name, extent)  # upright: the tall axis is Blender's Z
        if not name.endswith(".ply"):  # the input view's side (MIRA +X, centre x = 0.25) is Blender's front (-Y)
            assert points.mean(axis=0)[1] == pytest.approx(-0.25, abs=0.02), name
    for name in ("textured.glb", "textured.obj"):
        images = imported[str(files[name])]["images"]
        assert images and images[0]["size"] == [64, 64] and images[0]["colorspace"] == "sRGB", (name, images)
