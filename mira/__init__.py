"""MIRA: single-image (and text) to 3D reconstruction with a Large-Reconstruction-Model.

Data flow (see docs/ARCHITECTURE.md): image -> :mod:`mira.models.encoder` (DINOv2 tokens)
-> :mod:`mira.models.transformer` (triplane decoder, camera by adaLN)
-> :mod:`mira.rendering` (NeRF triplane renderer) -> :mod:`mira.export` (mesh, video).
"""

from mira.config import MiraConfig, load_config

__version__ = "0.1.0"

__all__ = ["MiraConfig", "load_config", "__version__"]
