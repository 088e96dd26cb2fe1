"""Finding Blender and building the command line that runs ``blender_scripts/dataset_rendering.py``.

The Blender is, in order: an explicit path, ``$MIRA_BLENDER`` (a ``blender`` executable or a
Python with the ``bpy`` wheel), ``blender`` on PATH, ``.venv-blender/bin/python`` at the repo root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = REPO_ROOT / "blender_scripts" / "dataset_rendering.py"
# The script's last stderr line on failure starts with this (see dataset_rendering.py).
ERROR_PREFIX = "MIRA_RENDER_ERROR: "


class BlenderNotFoundError(FileNotFoundError):
    """No Blender to run; the message says how to provide one."""


def find_blender(explicit: str | Path | None = None) -> Path:
    """Path of a ``blender`` executable or of a Python that has ``bpy``."""
    candidates = [
        ("argument", explicit),
        ("$MIRA_BLENDER", os.environ.get("MIRA_BLENDER")),
        ("PATH", shutil.which("blender")),
        (".venv-blender", REPO_ROOT / ".venv-blender" / "bin" / "python"),
    ]
    for origin, candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        if origin in ("argument", "$MIRA_BLENDER"):
            raise BlenderNotFoundError(f"Blender given by {origin} is not an executable file: {path}")
    raise BlenderNotFoundError(
        "no Blender found: install Blender >= 4.2 and put 'blender' on PATH, or set MIRA_BLENDER to it, "
        "or create the bpy environment: python3.11 -m venv .venv-blender && "
        ".venv-blender/bin/pip install bpy==5.0.1"
    )


def is_python(blender: str | Path) -> bool:
    """A Python interpreter (with the bpy wheel) rather than a Blender executable."""
    return Path(blender).name.startswith("python")


def blender_launcher(blender: str | Path) -> list[str]:
    """argv prefix that runs the script named next (then ``--`` and its arguments) in Blender, headless."""
    if is_python(blender):
        return [str(blender)]
    return [str(blender), "--background", "--factory-startup", "--python-exit-code", "1", "--python"]


def blender_command(blender: str | Path, script: str | Path, script_args: list[str]) -> list[str]:
    """argv running ``script`` with ``script_args`` (after ``--``) in Blender, headless."""
    return [*blender_launcher(blender), str(script), "--", *script_args]
