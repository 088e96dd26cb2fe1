"""mira.cameras against Blender's own projection (bpy_extras.object_utils.world_to_camera_view).

Blender places a camera with a random pose, lens and a non-square frame and projects random
points; converting its ``matrix_world`` with :func:`mira.cameras.opengl_to_opencv` and its
lens/sensor into normalised intrinsics must give the same pixels and depths.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from mira import cameras

pytestmark = pytest.mark.blender

BLENDER_SCRIPT = textwrap.dedent(
    """
    import json, random, sys
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Euler, Vector

    out_path, width, height, lens, sensor = sys.argv[sys.argv.index("--") + 1:]
    width, height, lens, sensor = int(width), int(height), float(lens), float(sensor)
    random.seed(0)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    results = []
    for trial in range(5):
        data = bpy.data.cameras.new(f"cam{trial}")
        data.lens, data.sensor_width, data.sensor_fit = lens, sensor, "AUTO"
        cam = bpy.data.objects.new(f"cam{trial}", data)
        scene.collection.objects.link(cam)
        cam.location = Vector([random.uniform(-3, 3) for _ in range(3)])
        cam.rotation_euler = Euler([random.uniform(-3.1, 3.1) for _ in range(3)], "XYZ")
        bpy.context.view_layer.update()
        forward = cam.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
        points, projected = [], []
        for _ in range(40):
            offset = Vector([random.uniform(-0.6, 0.6) for _ in range(3)])
            point = cam.location + forward * random.uniform(1.5, 4.0) + offset
            ndc = world_to_camera_view(scene, cam, point)
            points.append(list(point))
            projected.append(list(ndc))
        results.append({"matrix_world": [list(row) for row in cam.matrix_world],
                        "points": points, "projected": projected})
    with open(out_path, "w") as handle:
        json.dump(results, handle)
    """
)


@pytest.mark.parametrize("width,height", [(64, 48), (40, 80)])
def test_projection_matches_blender(blender_command: list[str], tmp_path: Path, width: int, height: int) -> None:
    lens, sensor = 35.0, 32.0
    script = tmp_path / "project.py"
    script.write_text(BLENDER_SCRIPT)
    out = tmp_path / "projection.json"
    subprocess.run([*blender_command, str(script), "--", str(out), str(width), str(height), str(lens), str(sensor)],
                   check=True, capture_output=True, timeout=300)
    # Blender's AUTO sensor fit spans the sensor width along the larger image side.
    focal_pixels = lens / sensor * max(width, height)
    intrinsics = cameras.normalize_intrinsics(focal_pixels, focal_pixels, width / 2, height / 2, width, height)
    for trial in json.loads(out.read_text()):
        c2w = cameras.opengl_to_opencv(torch.tensor(trial["matrix_world"], dtype=torch.float64))
        points = torch.tensor(trial["points"], dtype=torch.float64)
        blender = torch.tensor(trial["projected"], dtype=torch.float64)
        uv, depth = cameras.project_points(points[None], c2w[None], intrinsics[None].double(), width, height)
        # world_to_camera_view: x, y in [0, 1] from the frame's bottom-left corner, z the view depth.
        expected_uv = torch.stack([blender[:, 0] * width, (1.0 - blender[:, 1]) * height], dim=-1)
        torch.testing.assert_close(uv[0], expected_uv, atol=1e-4, rtol=0)
        torch.testing.assert_close(depth[0], blender[:, 2], atol=1e-5, rtol=0)
