"""The errors inference reports as one clear message: defined in :mod:`mira.errors`, re-exported here."""

from mira.errors import (  # noqa: F401  (re-exported)
    CheckpointConfigMismatchError,
    InferenceError,
    InputError,
    WeightsNotFoundError,
)
