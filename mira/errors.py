"""Errors that the command lines (test.py, mira.convert, mira.evaluate) report as one clear message
(exit code 1, no traceback). No imports: every module may raise them."""

from __future__ import annotations


class InferenceError(Exception):
    """A problem the user can fix: bad input, missing weights, mismatched checkpoint."""


class InputError(InferenceError):
    """An input image or prompt is unusable (missing, not an image, empty, fully transparent)."""


class WeightsNotFoundError(InferenceError):
    """Model weights (rembg, text-to-image, checkpoint) are not on this machine."""


class CheckpointConfigMismatchError(InferenceError):
    """``--checkpoint_path`` and ``--config_path`` describe different architectures."""
