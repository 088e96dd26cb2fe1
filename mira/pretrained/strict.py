"""Strict conversion of upstream checkpoints: every upstream tensor used exactly once, none invented."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor


class StrictTensors:
    """Hands out upstream tensors by name, remembering which were used.

    Args:
        state: the upstream state dict.
        source: where it came from (named in errors).
        family: the upstream project, e.g. ``"OpenLRM"`` (named in the leftovers error).
        checkpoint: what a matching checkpoint is, e.g. ``"an OpenLRM v1.1 checkpoint"``.
        error: the exception type raised (the converter's own).
    """

    def __init__(self, state: Mapping[str, Tensor], source: str, family: str, checkpoint: str,
                 error: type[Exception]) -> None:
        self.state, self.source, self.family, self.checkpoint, self.error = state, source, family, checkpoint, error
        self.used: set[str] = set()

    def __call__(self, name: str) -> Tensor:
        if name not in self.state:
            raise self.error(f"{self.source}: missing tensor '{name}' (not {self.checkpoint} of this config, "
                             "or a truncated one)")
        if name in self.used:
            raise self.error(f"{self.source}: tensor '{name}' used twice (converter bug)")
        self.used.add(name)
        return self.state[name]

    def has(self, name: str) -> bool:
        return name in self.state

    def check_all_used(self) -> None:
        """Raise ``error`` naming the upstream tensors the conversion did not use, if any."""
        leftovers = sorted(set(self.state) - self.used)
        if leftovers:
            raise self.error(
                f"{self.source}: {len(leftovers)} {self.family} tensor(s) not used by the conversion (the config does "
                f"not match the weights?): {', '.join(leftovers[:10])}" + (" ..." if len(leftovers) > 10 else ""))
