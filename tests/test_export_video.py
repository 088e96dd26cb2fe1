"""Turntable video: orbit frames of a known sphere, mp4/gif files with the requested frames and size."""

from __future__ import annotations

import math

import imageio.v2 as imageio_v2
import imageio.v3 as imageio_v3
import numpy as np
import pytest
import torch

from helpers_inference import sphere_renderer
from mira.export.video import render_orbit_frames, write_video

FOCAL = 1.09375  # normalised fx = fy of the tiny config's source camera
INTRINSICS = torch.tensor([FOCAL, FOCAL, 0.5, 0.5])


def _object_mask(frame: np.ndarray) -> np.ndarray:
    """Pixels clearly not the white background: (H, W) bool."""
    return np.abs(frame.astype(float) - 255).max(axis=-1) > 60


def _disc_area(radius: float, distance: float, size: int) -> float:
    """Pixel area of a sphere's image seen from ``distance``: a disc of radius f * tan(asin(r / d))."""
    return math.pi * (FOCAL * math.tan(math.asin(radius / distance)) * size) ** 2


def test_orbit_frames_show_the_sphere_where_the_cameras_say():
    """A sphere off-centre towards +X: large when the camera at azimuth 0 (on +X) is near it,
    small from azimuth 180; from azimuth 90 (camera on +Y, image right = -X) it is on the left."""
    center_x, radius, distance, size = 0.45, 0.4, 2.5, 32
    renderer, triplanes, _ = sphere_renderer((center_x, 0.0, 0.0), radius, 10.0, triplane_res=32)
    frames = render_orbit_frames(renderer, triplanes, 4, size, 0.0, distance, INTRINSICS, views_per_chunk=3)
    assert frames.shape == (4, size, size, 3) and frames.dtype == np.uint8
    masks = [_object_mask(frame) for frame in frames]
    near, far = _disc_area(radius, distance - center_x, size), _disc_area(radius, distance + center_x, size)
    assert masks[0].sum() == pytest.approx(near, rel=0.15)
    assert masks[2].sum() == pytest.approx(far, rel=0.2)
    columns = np.nonzero(masks[1])[1] + 0.5
    assert columns.mean() < size / 2 - 2  # +X is on the image's left from +Y
    rows, cols = np.nonzero(masks[0])
    assert abs(rows.mean() + 0.5 - size / 2) < 0.5 and abs(cols.mean() + 0.5 - size / 2) < 0.5
    np.testing.assert_allclose(frames[0][masks[0]].mean(0), [204, 76.5, 25.5], atol=20)


@pytest.mark.parametrize("video_format", ["mp4", "gif"])
def test_write_video_frame_count_and_size(tmp_path, video_format):
    num_frames, height, width = 7, 24, 40
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    frames = np.stack([np.broadcast_to(((ramp + 20 * n) % 256)[None, :, None], (height, width, 3)) for n in range(num_frames)])
    frames = frames.astype(np.uint8)
    path = write_video(frames, tmp_path / f"video.{video_format}", fps=10)
    if video_format == "mp4":
        reader = imageio_v2.get_reader(path, format="FFMPEG")
        read = np.stack([frame for frame in reader.iter_data()])
        assert reader.get_meta_data()["fps"] == pytest.approx(10)
        reader.close()
    else:
        read = imageio_v3.imread(path, index=None)[..., :3]
        assert imageio_v3.immeta(path)["duration"] == pytest.approx(100)
    assert read.shape == (num_frames, height, width, 3)
    assert np.abs(read.astype(float) - frames).mean() < 8
    assert [p.name for p in tmp_path.iterdir()] == [f"video.{video_format}"]


def test_write_video_rejects_bad_input_and_leaves_nothing(tmp_path, monkeypatch):
    odd = np.zeros((3, 15, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="even"):
        write_video(odd, tmp_path / "video.mp4", fps=10)
    with pytest.raises(ValueError, match="mp4"):
        write_video(np.zeros((3, 16, 16, 3), np.uint8), tmp_path / "video.avi", fps=10)
    with pytest.raises(ValueError, match="uint8"):
        write_video(np.zeros((3, 16, 16, 3), np.float32), tmp_path / "video.gif", fps=10)

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(imageio_v3, "imwrite", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_video(np.zeros((3, 16, 16, 3), np.uint8), tmp_path / "video.gif", fps=10)
    assert list(tmp_path.iterdir()) == []
