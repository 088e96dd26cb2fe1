"""Atomic file writes: a finished file appears at its path, or nothing does.

Every writer in MIRA (exports, reports, dataset indexes, training checkpoints and configs)
writes to a temporary file in the destination directory (same suffix, so libraries that pick
the format from the name still work), flushes it to disk and renames it into place with
:func:`os.replace` only after the write succeeded. A crash or an exception mid-write leaves
no half-written file where a valid output would be. Finished files get the usual permissions
(``0o666`` minus the umask), not the private ``0o600`` of :func:`tempfile.mkstemp`.

This module imports nothing heavy: data, training and export code all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``);
    elsewhere by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permissions of a newly created file: ``0o666`` minus the umask (mkstemp's are a private 0o600)."""
    return 0o666 & ~current_umask()


def default_directory_mode() -> int:
    """Permissions of a newly created directory: ``0o777`` minus the umask (mkdtemp's are 0o700)."""
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it to ``path`` when the block succeeds.

    The temporary file keeps ``path``'s suffix (``.mp4``, ``.glb`` ...). On an exception it is
    deleted and ``path`` is left untouched (an older file there survives). An empty result is
    an error (``OSError``): no writer of ours produces one on success.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        yield temp_path
        if not temp_path.is_file() or temp_path.stat().st_size == 0:
            raise OSError(f"writing {path} produced no data")
        with open(temp_path, "rb") as written:  # on disk before the rename makes it visible
            os.fsync(written.fileno())
        os.chmod(temp_path, default_file_mode())
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as temp_path:
        temp_path.write_bytes(data)


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as temp_path:
        temp_path.write_text(text, encoding="utf-8")


def write_json_atomic(data: Any, path: str | Path, indent: int = 2) -> None:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically."""
    write_text_atomic(json.dumps(data, indent=indent) + "\n", path)


def save_image_atomic(image: Any, path: str | Path) -> None:
    """Save a PIL image atomically; the format comes from ``path``'s suffix."""
    with atomic_output(path) as temp_path:
        image.save(temp_path)
