"""A 360-degree turntable video of a triplane: orbit cameras, chunked rendering, mp4 or gif.

The orbit starts at azimuth 0, the azimuth of the canonical source camera
(:func:`mira.cameras.canonical_source_c2w`), so the first frame shows the object from the input
image's side (at elevation 0, exactly the input view); it turns towards +Y (counter-clockwise
seen from above, +Z up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mira.atomic import atomic_output
from mira.cameras import orbit_cameras
from mira.progress import bar_disabled
from mira.rendering.chunking import chunk_slices

VIDEO_FORMATS = ("mp4", "gif")
# libx264 quality on imageio's 0..10 scale (10 = best); 8 keeps thin edges crisp at small sizes.
MP4_QUALITY = 8
# libx264's "veryfast" preset: 2.7x faster than its default ("medium") on 120 frames of 256^2 (0.26 s against
# 0.70 s on 2 cores) for a file of the same size and quality (34.1 against 34.2 dB on a test orbit).
MP4_PRESET = "veryfast"


@torch.no_grad()
def render_orbit_frames(
    renderer: Any,
    triplanes: Tensor,
    num_frames: int,
    size: int,
    elevation_deg: float,
    distance: float,
    intrinsics: Tensor,
    start_azimuth_deg: float = 0.0,
    views_per_chunk: int = 4,
    progress: bool = False,
    occupancy: Any = None,
) -> np.ndarray:
    """Render ``num_frames`` views evenly spaced on a circle around the origin.

    Args:
        renderer: a :class:`mira.rendering.TriplaneRenderer` (``render_images``).
        triplanes: (1, 3, C, R, R).
        num_frames: number of views over 360 degrees.
        size: square frame side in pixels.
        elevation_deg, distance: the orbit (degrees above the XY plane, world units).
        intrinsics: (4,) normalised ``(fx/W, fy/H, cx/W, cy/H)``.
        views_per_chunk: views per ``render_images`` call (the renderer also chunks rays).
        occupancy: a :class:`mira.rendering.occupancy.OccupancyGrid` of ``triplanes`` for
            empty-space skipping, or None to evaluate the field at every sample.
    Returns:
        (num_frames, size, size, 3) uint8 frames.
    """
    if num_frames < 1 or size < 1:
        raise ValueError(f"num_frames and size must be positive, got {num_frames} and {size}")
    if triplanes.dim() != 5 or triplanes.shape[0] != 1:
        raise ValueError(f"render_orbit_frames takes one triplane (1, 3, C, R, R), got {tuple(triplanes.shape)}")
    device = triplanes.device
    c2w = orbit_cameras(num_frames, elevation_deg, distance, start_azimuth_deg, device=device)
    intrinsics = intrinsics.to(device=device, dtype=torch.float32).reshape(1, 1, 4)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    with tqdm(total=num_frames, desc="video", unit="frame", disable=bar_disabled(progress), leave=False) as bar:
        for part in chunk_slices(num_frames, views_per_chunk):
            views = c2w[part][None]  # (1, V, 4, 4)
            rgb = renderer.render_images(triplanes, views, intrinsics.expand(1, views.shape[1], 4), size, size,
                                         occupancy=occupancy)["rgb"]
            frames[part] = to_uint8_frames(rgb[0])
            bar.update(views.shape[1])  # frames, not batches of them
    return frames


def to_uint8_frames(rgb: Tensor) -> np.ndarray:
    """(V, 3, H, W) float in [0, 1] -> (V, H, W, 3) uint8."""
    return (rgb.float().clamp(0.0, 1.0) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def video_format_of(path: str | Path) -> str:
    """``mp4`` or ``gif`` from the file suffix; anything else is a ``ValueError``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"{path}: video format must be one of {VIDEO_FORMATS} (by file suffix), got '.{suffix}'")
    return suffix


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """Write (N, H, W, 3) uint8 frames atomically as H.264 ``.mp4`` (imageio-ffmpeg) or ``.gif``.

    mp4 uses yuv420p (plays everywhere), which needs an even width and height; frames are
    never resized.
    """
    import imageio.v2 as imageio_v2
    import imageio.v3 as imageio_v3

    path = Path(path)
    video_format = video_format_of(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = frames.shape[1:3]
    with atomic_output(path) as temp_path:
        if video_format == "mp4":
            if height % 2 or width % 2:
                raise ValueError(f"{path}: mp4 (yuv420p) needs an even frame size, got {width}x{height}")
            try:
                writer = imageio_v2.get_writer(
                    str(temp_path), format="FFMPEG", fps=fps, codec="libx264", quality=MP4_QUALITY,
                    pixelformat="yuv420p", macro_block_size=1, ffmpeg_params=["-preset", MP4_PRESET],
                )
            except ImportError as error:
                raise ImportError(f"{path}: writing .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                                  f"or write a .gif instead ({error})") from error
            with writer:
                for frame in frames:
                    writer.append_data(frame)
        else:
            # GIF stores frame durations in milliseconds (1/100 s steps).
            imageio_v3.imwrite(temp_path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path
