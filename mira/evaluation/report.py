"""Writing evaluation results: JSON without NaN, Markdown tables, comparison images.

All files are written atomically (:mod:`mira.atomic`): a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mira.atomic import atomic_output, write_text_atomic

# Columns of the Markdown tables: (metric key, header, format, better).
TABLE_COLUMNS = (
    ("psnr", "PSNR (dB) ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.4f}"),
    ("lpips", "LPIPS ↓", "{:.4f}"),
    ("mask_iou", "Mask IoU ↑", "{:.4f}"),
    ("chamfer", "Chamfer ↓", "{:.4f}"),
    ("fscore@0.1", "F@0.1 ↑", "{:.4f}"),
    ("fscore@0.05", "F@0.05 ↑", "{:.4f}"),
)


def json_safe(value: Any) -> Any:
    """Replace NaN / inf floats by None (strict JSON), recursively; tensors and numpy become Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        return json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented strict JSON (NaN -> null) atomically."""
    path = Path(path)
    write_text_atomic(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n", path)
    return path


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    write_text_atomic(text, path)
    return Path(path)


def format_value(value: Any, fmt: str) -> str:
    """A table cell: formatted number, or "–" for missing / NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def markdown_table(rows: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS,
                   name_header: str = "Object") -> str:
    """A Markdown table, one row per ``(name, metrics)``; columns ``(key, header, format)``, the names under
    ``name_header``."""
    header = f"| {name_header} | " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|---|" + "|".join("---:" for _ in columns) + "|"
    lines = [header, rule]
    for name, metrics in rows:
        cells = [format_value(metrics.get(key), fmt) for key, _, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_grid(prediction: Tensor, target: Tensor) -> np.ndarray:
    """Targets over predictions: (V, 3, H, W) each -> (2H, V*W, 3) uint8 image."""
    top = torch.cat(list(target.float().clamp(0, 1).cpu()), dim=-1)
    bottom = torch.cat(list(prediction.float().clamp(0, 1).cpu()), dim=-1)
    grid = torch.cat([top, bottom], dim=-2)
    return (grid.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 image as PNG atomically."""
    import imageio.v3 as iio

    path = Path(path)
    with atomic_output(path) as temp_path:
        iio.imwrite(temp_path, image, extension=".png")
    return path
