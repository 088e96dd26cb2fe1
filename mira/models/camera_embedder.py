"""Source-camera embedding: the camera vector -> an MLP -> (B, camera_embed_dim).

The camera vector is :func:`mira.cameras.camera_vector` in ``model.camera_vector_layout``: by
default the flattened 4x4 OpenCV camera-to-world matrix (16 values) followed by the normalised
intrinsics ``(fx/W, fy/H, cx/W, cy/H)``; OpenLRM's layout is the 3x4 c2w in OpenGL axes + the same 4. The embedding conditions every decoder block through
adaLN modulation (:mod:`mira.models.modulate`).
"""

from __future__ import annotations

from torch import Tensor, nn

from mira.cameras import camera_vector


class CameraEmbedder(nn.Module):
    """MLP ``Linear(L, E) -> SiLU -> Linear(E, E)`` over the camera vector of length L.

    Args:
        camera_matrix_dim: L, length of the camera vector (20 or 16, see ``layout``).
        camera_embed_dim: E, the embedding width.
        layout: ``model.camera_vector_layout`` (:func:`mira.cameras.camera_vector`).
    """

    def __init__(self, camera_matrix_dim: int, camera_embed_dim: int, layout: str = "c2w4x4_opencv") -> None:
        super().__init__()
        self.camera_matrix_dim = camera_matrix_dim
        self.layout = layout
        self.mlp = nn.Sequential(
            nn.Linear(camera_matrix_dim, camera_embed_dim),
            nn.SiLU(),
            nn.Linear(camera_embed_dim, camera_embed_dim),
        )

    def forward(self, camera: Tensor) -> Tensor:
        """(B, L) camera vector -> (B, E) embedding."""
        if camera.shape[-1] != self.camera_matrix_dim:
            raise ValueError(f"expected a camera vector of {self.camera_matrix_dim} values, got shape {tuple(camera.shape)}")
        return self.mlp(camera)

    def embed_camera(self, c2w: Tensor, intrinsics: Tensor) -> Tensor:
        """(B, 4, 4) OpenCV c2w + (B, 4) normalised intrinsics -> (B, E)."""
        return self(camera_vector(c2w, intrinsics, self.layout))
