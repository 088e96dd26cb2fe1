"""MIRA's learned parts: DINOv2 encoder, camera embedding, adaLN triplane decoder, and the model.

Data flow: images -> :class:`DinoV2Encoder` (tokens) ; source camera -> :class:`CameraEmbedder`;
tokens + camera -> :class:`TriplaneDecoder` (triplanes) -> ``mira.rendering.TriplaneRenderer``.
:class:`MIRA` ties them together and saves/loads checkpoints.
"""

from mira.models.attention import MultiHeadAttention
from mira.models.camera_embedder import CameraEmbedder
from mira.models.encoder import DinoV2Encoder, EncoderWeightsNotFoundError
from mira.models.mira import MIRA, CheckpointMismatchError, CheckpointNotFoundError
from mira.models.modulate import ModulatedLayerNorm
from mira.models.transformer import TriplaneDecoder, TriplaneDecoderBlock

__all__ = [
    "MIRA",
    "CameraEmbedder",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "DinoV2Encoder",
    "EncoderWeightsNotFoundError",
    "ModulatedLayerNorm",
    "MultiHeadAttention",
    "TriplaneDecoder",
    "TriplaneDecoderBlock",
]
