"""Inference: images or prompts -> triplanes -> mesh and video (``test.py`` is its command line).

Modules: :mod:`~mira.inference.preprocess` (image loading, background removal, the source-view contract),
:mod:`~mira.inference.text_to_image` (diffusers prompt -> image), :mod:`~mira.inference.checkpoint`
(any checkpoint kind -> model), :mod:`~mira.inference.pipeline` (the per-input run),
:mod:`~mira.inference.cli` (flags).
"""

from mira.inference.checkpoint import load_model
from mira.inference.errors import CheckpointConfigMismatchError, InferenceError, InputError, WeightsNotFoundError
from mira.inference.pipeline import InferencePipeline, InferenceSettings
from mira.inference.preprocess import BackgroundRemover, load_image, preprocess_image

__all__ = [
    "BackgroundRemover",
    "CheckpointConfigMismatchError",
    "InferenceError",
    "InferencePipeline",
    "InferenceSettings",
    "InputError",
    "WeightsNotFoundError",
    "load_image",
    "load_model",
    "preprocess_image",
]
