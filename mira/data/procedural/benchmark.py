"""Speed of procedural training data: one training step's objects and views, timed on a device.

A step of MIRA training on procedural data samples B objects and renders, per object, V target
views at ``size``^2 and one source view at ``source_size``^2 (default B = 32, V = 5, 64^2 and
224^2, as ``configs/mira-base.json`` trains). :func:`benchmark` times each stage (median of
``repeats`` after one warm-up, synchronising the device) for supersampling 1 and 2;
``python -m mira.data.procedural benchmark`` prints the table.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from mira import cameras
from mira.data.procedural.lighting import random_lighting
from mira.data.procedural.render import render_views
from mira.data.procedural.sampling import sample_objects

TRAINING_STEP = {"batch": 32, "views": 5, "size": 64, "source_size": 224}
CPU_STEP = {"batch": 2, "views": 2, "size": 32, "source_size": 48}
CAMERA_DISTANCE = 2.5
CAMERA_ELEVATION_DEG = 20.0


@dataclass
class BenchmarkRow:
    stage: str
    supersample: int
    milliseconds: float
    rays: int


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, repeats: int, function) -> float:
    function()  # warm-up (and compilation, if any)
    _synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _synchronise(device)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times)


def benchmark(device: torch.device | str, batch: int, views: int, size: int, source_size: int,
              supersamples: tuple[int, ...] = (1, 2), repeats: int = 3, max_steps: int = 64,
              seed: int = 0) -> list[BenchmarkRow]:
    """Milliseconds per training step's worth of procedural data, stage by stage."""
    device = torch.device(device)
    indices = list(range(batch))
    sample_ms = _timed(device, repeats, lambda: sample_objects(indices, seed, device))
    rows = [BenchmarkRow("sample_objects", 0, sample_ms, 0)]
    objects = sample_objects(indices, seed, device)
    lighting = random_lighting(indices, seed, device)
    azimuth = torch.linspace(0.0, 360.0, views + 1)[:views]
    eye = cameras.spherical_to_cartesian(azimuth, torch.full_like(azimuth, CAMERA_ELEVATION_DEG),
                                         torch.full_like(azimuth, CAMERA_DISTANCE))
    targets = cameras.look_at(eye).to(device).expand(batch, views, 4, 4)
    source = targets[:, :1]
    intrinsics = cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG).to(device)
    for s in supersamples:
        def render_targets():
            return render_views(objects, targets, intrinsics.expand(batch, views, 4), size, size, lighting=lighting,
                                supersample=s, max_steps=max_steps)

        def render_source():
            return render_views(objects, source, intrinsics.expand(batch, 1, 4), source_size, source_size,
                                lighting=lighting, supersample=s, max_steps=max_steps)

        with torch.no_grad():
            target_ms = _timed(device, repeats, render_targets)
            source_ms = _timed(device, repeats, render_source)
        rows.append(BenchmarkRow(f"{views} views {size}^2", s, target_ms, batch * views * (size * s) ** 2))
        rows.append(BenchmarkRow(f"source {source_size}^2", s, source_ms, batch * (source_size * s) ** 2))
        rows.append(BenchmarkRow("step total (renders)", s, target_ms + source_ms,
                                 batch * (views * size ** 2 + source_size ** 2) * s * s))
    return rows


def format_table(rows: list[BenchmarkRow], device: torch.device | str, batch: int) -> str:
    """Markdown table of :func:`benchmark` rows."""
    name = torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else "CPU"
    lines = [f"procedural data, batch {batch}, device {name}", "",
             "| stage | supersample | ms per batch | rays | rays per ms |", "|---|---|---|---|---|"]
    for row in rows:
        rate = f"{row.rays / row.milliseconds:,.0f}" if row.rays else "-"
        lines.append(f"| {row.stage} | {row.supersample or '-'} | {row.milliseconds:.1f} | {row.rays:,} | {rate} |")
    return "\n".join(lines)
