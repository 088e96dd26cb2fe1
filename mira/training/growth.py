"""Growing a checkpoint's decoder when a run starts from it (``--init_from``).

A model initialised from a checkpoint takes the checkpoint's architecture (:func:`mira.training.factories.
build_model`). Two decoder options can be added to a trained model without starting again, and a run's config
that asks for them gets them:

* ``triplane_upsample_kernel`` 2 -> 4: the kernel-2 transposed convolution is embedded in the centre 2 x 2
  of the kernel-4 one (padding 1), which gives exactly the same triplanes; training then uses the overlap.
  (Output cell ``2i + a`` reads kernel tap ``a`` of token ``i`` at kernel 2 and tap ``a + 1`` at kernel 4.)
* ``projective_attention_bias`` false -> true: the attention slopes start at their initial values
  (:func:`mira.models.projective_bias.initial_slopes`); the bias changes the outputs from the first step.
* ``image_lifting`` false -> true: the lifting module takes its initial weights, whose two output layers are
  zero (:mod:`mira.models.image_lifting`), so the grown model gives exactly the checkpoint's triplanes.

The reverse (dropping the bias, a smaller kernel) would discard trained weights, so it is not done: the
checkpoint's option is kept and the run says so.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from mira.config import ModelConfig

LOGGER = logging.getLogger("mira.training")

# key: (the checkpoint's value, the value a run may grow it to)
GROWABLE_MODEL_KEYS = {"projective_attention_bias": (False, True), "triplane_upsample_kernel": (2, 4),
                       "image_lifting": (False, True)}
UPSAMPLE_WEIGHT = "decoder.upsample.weight"
# Options that add weights, and what their weights' names contain: grown, those start at the model's initial values.
NEW_WEIGHTS_OF = {"projective_attention_bias": ".locality.", "image_lifting": "lifting."}


def requested_growth(checkpoint: ModelConfig, run: ModelConfig) -> dict[str, object]:
    """{key: the run's value} for each growable key the run asks to grow; logs the requests it cannot follow."""
    grown = {}
    for key, (small, large) in GROWABLE_MODEL_KEYS.items():
        have, want = getattr(checkpoint, key), getattr(run, key)
        if have == want:
            continue
        if have == small and want == large:
            grown[key] = want
        else:
            LOGGER.info("--init_from: the checkpoint has %s = %r; the config's %r would discard trained weights, "
                        "so the checkpoint's is kept", key, have, want)
    return grown


def grow_state(state: dict[str, Tensor], model: nn.Module, grown: dict[str, object]) -> dict[str, Tensor]:
    """The checkpoint's weights ``state`` in the shapes of ``model`` (built with the ``grown`` options).

    Returns a new dict; ``state`` is not changed. Keys ``model`` has and ``state`` lacks because of the bias
    (the attention slopes) or the lifting module take ``model``'s initial values.
    """
    state = dict(state)
    fresh = model.state_dict()
    if grown.get("triplane_upsample_kernel") == 4:
        small = state[UPSAMPLE_WEIGHT]  # (D, C, 2, 2)
        large = torch.zeros_like(fresh[UPSAMPLE_WEIGHT], dtype=small.dtype)  # (D, C, 4, 4)
        large[..., 1:3, 1:3] = small
        state[UPSAMPLE_WEIGHT] = large
    for option, marker in NEW_WEIGHTS_OF.items():
        if grown.get(option):
            state.update({key: value.clone() for key, value in fresh.items() if marker in key and key not in state})
    if grown:
        LOGGER.info("--init_from: grew the checkpoint's decoder: %s", ", ".join(f"{k} = {v!r}" for k, v in grown.items()))
    return state
