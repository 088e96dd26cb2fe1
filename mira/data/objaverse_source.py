"""Objaverse downloads through the ``objaverse`` package (needs internet; not run by the tests).

* Objaverse 1.0: ``objaverse.load_uids`` / ``objaverse.load_objects`` (glb files from Hugging Face).
* Objaverse-XL: ``objaverse.xl.get_annotations`` / ``objaverse.xl.download_objects``.

Both return ``{object id: local file}``; the object id is the Objaverse 1.0 uid or, for XL,
the file's sha256 (unique and stable).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

# File types our Blender script imports (Objaverse-XL "fileType" column).
XL_FILE_TYPES = ("glb", "gltf", "obj", "fbx", "ply", "stl", "usdz", "usd", "abc", "blend", "dae")
XL_SOURCES = ("sketchfab", "smithsonian", "thingiverse", "github")


def download_objaverse(uids: list[str] | None = None, count: int | None = None, download_dir: str | Path | None = None,
                       processes: int = 4, seed: int = 0) -> dict[str, Path]:
    """Objaverse 1.0 objects: the given ``uids``, or ``count`` uids drawn with ``seed``."""
    import objaverse

    if download_dir is not None:  # the package keeps its cache under a module-level path
        objaverse.BASE_PATH = str(Path(download_dir).expanduser())
        objaverse._VERSIONED_PATH = os.path.join(objaverse.BASE_PATH, "hf-objaverse-v1")
    if uids is None:
        if not count:
            raise ValueError("pass Objaverse uids or a count of objects to draw")
        everything = sorted(objaverse.load_uids())
        uids = random.Random(seed).sample(everything, min(count, len(everything)))
    paths = objaverse.load_objects(uids=list(uids), download_processes=processes)
    return {uid: Path(path) for uid, path in paths.items()}


def download_objaverse_xl(count: int, download_dir: str | Path = "~/.objaverse", processes: int = 4, seed: int = 0,
                          sources: tuple[str, ...] = ("sketchfab", "smithsonian", "thingiverse")) -> dict[str, Path]:
    """``count`` Objaverse-XL objects of importable file types from ``sources``, drawn with ``seed``."""
    import objaverse.xl as oxl

    unknown = set(sources) - set(XL_SOURCES)
    if unknown:
        raise ValueError(f"unknown Objaverse-XL sources {sorted(unknown)}; choose from {XL_SOURCES}")
    download_dir = str(Path(download_dir).expanduser())
    annotations = oxl.get_annotations(download_dir=download_dir)
    annotations = annotations[annotations["source"].isin(sources) & annotations["fileType"].isin(XL_FILE_TYPES)]
    chosen = annotations.sample(n=min(count, len(annotations)), random_state=seed)
    ids = dict(zip(chosen["fileIdentifier"], chosen["sha256"]))
    # GitHub objects live inside cloned repositories: keep their files, or they are deleted.
    paths = oxl.download_objects(objects=chosen, download_dir=download_dir, processes=processes,
                                 save_repo_format="files")
    return {ids[identifier]: Path(path) for identifier, path in paths.items() if identifier in ids}
