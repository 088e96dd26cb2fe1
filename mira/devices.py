"""Which torch device a command runs on: one rule for training, inference and evaluation."""

from __future__ import annotations

import torch


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else the CPU; ``"cuda"`` ->
    ``cuda:<local_rank>``; any other torch device string as given. A CUDA device that is missing
    raises :class:`DeviceUnavailableError` with the fix."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise DeviceUnavailableError(f"--device {requested}: not a device ({error}); use auto, cuda or cpu") from error
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
    index = local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"CUDA device {index} was asked for (LOCAL_RANK or --device) but only {torch.cuda.device_count()} "
            "are visible; lower torchrun's --nproc_per_node or pick another device"
        )
    return torch.device("cuda", index)


def to_device_async(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device`` without blocking the host: a CPU tensor bound for a GPU goes through pinned
    memory and an asynchronous copy (a copy from pageable memory synchronises the stream). Same values."""
    if torch.device(device).type == "cuda" and not tensor.is_cuda:
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
