"""The dataset index ``<root>/index.json`` and the per-object done markers.

``index.json`` = ``{"train": [object ids], "val": [object ids], "objects": {id: {...status...}}}``;
readers only need ``train`` / ``val``. An object folder is complete when its done marker
``<root>/<id>/.done`` exists: it is written last, after every file of the object.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from mira.atomic import write_json_atomic

INDEX_FILE = "index.json"
DONE_MARKER = ".done"
SPLITS = ("train", "val")


class DatasetIndexError(ValueError):
    """index.json is missing a split or malformed (named with the file)."""


def read_index(root: str | Path) -> dict:
    """``<root>/index.json`` as a dict with ``train`` and ``val`` lists (either may be empty)."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset index not found: {path}; render a dataset with 'python load_input_data.py ... "
            f"--output_dir {root}' or index existing object folders with "
            f"'python load_input_data.py --index_only --output_dir {root}'"
        )
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetIndexError(f"{path} is not valid JSON ({error}); rebuild it with load_input_data.py --index_only") from error
    if not isinstance(index, dict):
        raise DatasetIndexError(f"{path}: the top level must be an object with 'train' and 'val' lists")
    for split in SPLITS:
        ids = index.setdefault(split, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DatasetIndexError(f"{path}: '{split}' must be a list of object ids (strings)")
    return index


def split_fraction(object_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per (object id, seed)."""
    digest = hashlib.sha256(f"{seed}:{object_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(object_ids: Iterable[str], val_fraction: float, seed: int = 0) -> dict[str, str]:
    """``{id: "train" | "val"}``: an object is in val iff its hash falls below ``val_fraction``.

    Stable: an object keeps its split when objects are added. With two or more objects and
    ``val_fraction > 0``, at least one goes to val.
    """
    ids = sorted(set(object_ids))
    splits = {i: ("val" if split_fraction(i, seed) < val_fraction else "train") for i in ids}
    if val_fraction > 0 and len(ids) >= 2 and "val" not in splits.values():
        splits[min(ids, key=lambda i: split_fraction(i, seed))] = "val"
    return splits


def read_done_marker(object_dir: str | Path) -> dict | None:
    """The object's done marker, or None if it is not complete."""
    path = Path(object_dir) / DONE_MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return marker if isinstance(marker, dict) else None


def write_done_marker(object_dir: str | Path, info: dict) -> None:
    write_json_atomic(info, Path(object_dir) / DONE_MARKER, indent=1)


def done_objects(root: str | Path) -> dict[str, dict]:
    """``{object id: done marker}`` for every complete object folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith((".", "_")):
            marker = read_done_marker(child)
            if marker is not None:
                found[child.name] = marker
    return found
