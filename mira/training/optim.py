"""AdamW with decoupled weight decay on weight matrices only, and a warm-up + cosine schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mira.config import TrainConfig

# Modules whose parameters never get weight decay.
_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                     nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def uses_weight_decay(module: nn.Module, param_name: str, param: nn.Parameter) -> bool:
    """Decay only the ``weight`` matrices of linear/conv-like layers.

    Biases, norm scales, layer-scale vectors, embedding tables and free-standing
    parameters (learned triplane tokens, position embeddings, CLS/mask tokens) are not
    decayed.

    Args:
        module: the module that owns the parameter directly.
        param_name: the parameter's name inside that module (e.g. ``"weight"``).
    """
    if isinstance(module, _NO_DECAY_MODULES):
        return False
    return param_name.endswith("weight") and param.ndim >= 2


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters split into AdamW groups: {decay, no decay} x {encoder, rest}.

    Parameters whose qualified name starts with ``encoder.`` (a fine-tuned encoder) get
    ``learning_rate * encoder_lr_scale``. Empty groups are dropped.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            qualified = f"{module_name}.{name}" if module_name else name
            key = (qualified.startswith("encoder."), uses_weight_decay(module, name, param))
            groups.setdefault(key, []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    result = []
    for (is_encoder, decay), params in sorted(groups.items()):
        result.append({
            "params": params,
            "weight_decay": config.weight_decay if decay else 0.0,
            "lr": config.learning_rate * (config.encoder_lr_scale if is_encoder else 1.0),
            "name": f"{'encoder' if is_encoder else 'model'}_{'decay' if decay else 'no_decay'}",
        })
    return result


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` with betas ``(adam_beta1, adam_beta2)``.

    The fused CUDA implementation is used when every parameter is on a GPU.
    """
    groups = parameter_groups(model, config)
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                             weight_decay=config.weight_decay, fused=on_cuda or None)


@dataclass
class WarmupCosineSchedule:
    """Learning-rate multiplier: linear warm-up from ``1/warmup_steps`` to 1, then cosine to ``min_ratio``.

    A callable object (not a closure) so ``LambdaLR.state_dict`` stores its plain fields.
    ``step`` counts optimiser steps already taken (0 for the first step).
    """

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine :class:`~torch.optim.lr_scheduler.LambdaLR` over ``total_steps`` optimiser steps."""
    schedule = WarmupCosineSchedule(config.warmup_steps, total_steps, config.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
