"""What the kernels' CUDA tests share: training's render case on the GPU."""

from __future__ import annotations


def render_training_case_on_cuda(config, triplane_dim: int = 80):
    """Training's case on the GPU, the same for every setting compared: a renderer of ``config`` (weights seeded),
    two bf16 triplanes (B 2, C ``triplane_dim``, 64^2) rendered along 4096 rays each under bf16 autocast, and
    the backward of the squared colours. Returns (rgb fp32, the triplanes' gradient fp32, the renderer)."""
    import torch

    from mira.rendering import TriplaneRenderer

    torch.manual_seed(2)
    renderer = TriplaneRenderer(config, triplane_dim=triplane_dim).cuda().train()
    generator = torch.Generator().manual_seed(3)
    planes = (torch.randn(2, 3, triplane_dim, 64, 64, generator=generator) * 0.5).cuda().bfloat16().requires_grad_(True)
    origins = torch.tensor([0.2, -0.1, 3.0]).expand(2, 4096, 3).contiguous().cuda()
    directions = torch.nn.functional.normalize(torch.randn(2, 4096, 3, generator=generator) * 0.25
                                               + torch.tensor([0.0, 0.0, -1.0]), dim=-1).cuda()
    torch.manual_seed(5)  # the same stratified jitter and importance samples
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rgb = renderer(planes, origins, directions)["rgb"]
    rgb.square().sum().backward()
    return rgb.float(), planes.grad.float(), renderer
