"""Small real objects for the inference and export tests (no network, CPU, seconds).

* :class:`AnalyticField`: a renderer-like object whose density / colour are closed-form
  functions of position (exact ground truth for mesh extraction).
* :func:`sphere_renderer`: a real :class:`mira.rendering.TriplaneRenderer` and a triplane whose
  weights are set so that the density field is a sphere of known centre and radius.
* :func:`save_tiny_model`, :func:`write_rgba_image`, :func:`build_tiny_rembg_onnx`,
  :func:`build_tiny_text_to_image`: a saved tiny MIRA, input images, a tiny U^2-Net-style ONNX
  model for rembg, and a tiny diffusers Stable Diffusion pipeline.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mira.config import MiraConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO_ROOT / "configs" / "tiny.json"


# ---------------------------------------------------------------------- analytic fields
class AnalyticField:
    """Renderer stand-in for mesh tests: ``query`` evaluates closed-form density and colour.

    Args:
        density: world points (P, 3) -> density (P,).
        color: world points (P, 3) -> rgb (P, 3) in [0, 1].
        box_min, box_max: the box the field lives in.
    """

    def __init__(
        self,
        density: Callable[[Tensor], Tensor],
        color: Callable[[Tensor], Tensor],
        box_min: Sequence[float] = (-1.0, -1.0, -1.0),
        box_max: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        self.density_fn, self.color_fn = density, color
        self.box_min = torch.tensor(box_min, dtype=torch.float32)
        self.box_max = torch.tensor(box_max, dtype=torch.float32)
        self.num_queried = 0

    def query(self, triplanes: Tensor, points: Tensor) -> dict[str, Tensor]:
        """points (1, P, 3) -> {"density": (1, P, 1), "rgb": (1, P, 3)}."""
        self.num_queried += points.shape[1]
        flat = points[0].double()
        return {
            "density": self.density_fn(flat).float()[None, :, None],
            "rgb": self.color_fn(flat).float().clamp(0, 1)[None],
        }


def position_color(points: Tensor) -> Tensor:
    """A colour that encodes position: ``(p + 1) / 2`` per axis."""
    return (points + 1.0) / 2.0


# ---------------------------------------------------------------------- sphere triplane
def _repeated_silu(value: float, layers: int) -> float:
    """SiLU applied ``layers`` times to a float."""
    for _ in range(layers):
        value = value / (1.0 + math.exp(-value))
    return value


def sphere_renderer(
    center: Sequence[float],
    radius: float,
    threshold: float,
    triplane_res: int = 64,
    channels: int = 4,
    color: Sequence[float] = (0.8, 0.3, 0.1),
    steepness: float = 1000.0,
    overrides: dict | None = None,
):
    """A real TriplaneRenderer + triplane whose density equals ``threshold`` exactly on a sphere.

    The triplane stores squared offsets from ``center``: plane XY channel 0 holds
    ``(x - cx)^2 + (y - cy)^2`` and plane XZ channel 0 holds ``(z - cz)^2`` (at texel centres;
    bilinear lookup adds at most ``3 h^2 / 4`` for texel size ``h``). The field MLP is set to
    pass ``s = |p - c|^2`` through its SiLU layers (monotone for s >= 0) and map it to
    ``density = softplus(-k (g(s) - g(r^2)) + softplus^-1(threshold) - density_bias)``, so the
    density is above ``threshold`` exactly inside the sphere. Colour is the constant ``color``.

    Returns:
        (renderer in eval mode, triplanes (1, 3, C, R, R), config)
    """
    from mira.rendering import TriplaneRenderer

    cfg = load_config(TINY_CONFIG)
    if overrides:
        cfg.override(**overrides)
    renderer = TriplaneRenderer(cfg.renderer, triplane_dim=channels).eval()
    box_min, box_max = renderer.box_min.double(), renderer.box_max.double()
    # Texel-centre world coordinates along each axis (align_corners=False).
    q = (torch.arange(triplane_res, dtype=torch.float64) * 2 + 1) / triplane_res - 1
    axes = [box_min[a] + (q + 1) / 2 * (box_max[a] - box_min[a]) - center[a] for a in range(3)]
    triplanes = torch.zeros(1, 3, channels, triplane_res, triplane_res, dtype=torch.float64)
    # plane[c, h, w]: grid x (last dim) is the plane's first axis, grid y (H) its second.
    triplanes[0, 0, 0] = axes[1][:, None] ** 2 + axes[0][None, :] ** 2  # XY: h <-> y, w <-> x
    triplanes[0, 1, 0] = axes[2][:, None] ** 2 + 0 * axes[0][None, :]  # XZ: h <-> z, w <-> x
    field = renderer.field
    linears = [m for m in field.mlp if isinstance(m, torch.nn.Linear)]
    hidden_layers = len(linears) - 1
    offset = 1.0  # keeps every SiLU input >= 1, where SiLU is increasing
    with torch.no_grad():
        for layer in linears:
            layer.weight.zero_()
            layer.bias.zero_()
        first = linears[0]
        first.weight[0, 0] = 1.0  # XY channel 0 (concat order XY, XZ, YZ)
        first.weight[0, channels] = 1.0  # XZ channel 0
        first.bias[0] = offset
        for layer in linears[1:-1]:
            layer.weight[0, 0] = 1.0
        g_at_surface = _repeated_silu(radius**2 + offset, hidden_layers)
        target_raw = math.log(math.expm1(threshold)) - cfg.renderer.density_bias
        last = linears[-1]
        last.weight[0, 0] = -steepness
        last.bias[0] = target_raw + steepness * g_at_surface
        widening = cfg.renderer.color_sigmoid_widening
        for index, value in enumerate(color):
            sigmoid = (value + widening) / (1.0 + 2.0 * widening)
            last.bias[1 + index] = math.log(sigmoid / (1.0 - sigmoid))
    return renderer, triplanes.float(), cfg


# ---------------------------------------------------------------------- models and inputs
def tiny_config() -> MiraConfig:
    return load_config(TINY_CONFIG)


def save_tiny_model(directory: Path, seed: int = 0) -> Path:
    """A random-weight tiny MIRA written with ``save_pretrained``."""
    from mira.models import MIRA

    torch.manual_seed(seed)
    return MIRA(tiny_config()).save_pretrained(directory)


def object_image(width: int = 96, height: int = 80, box: tuple[int, int, int, int] = (30, 20, 70, 60)) -> np.ndarray:
    """RGBA uint8 (H, W, 4): a red/green rectangle ``box = (left, top, right, bottom)`` on transparency."""
    image = np.zeros((height, width, 4), dtype=np.uint8)
    left, top, right, bottom = box
    image[top:bottom, left:right] = (200, 40, 40, 255)
    image[top:(top + bottom) // 2, left:right, 1] = 160
    return image


def write_rgba_image(path: Path, **kwargs) -> Path:
    Image.fromarray(object_image(**kwargs), mode="RGBA").save(path)
    return path


# ---------------------------------------------------------------------- rembg
def build_tiny_rembg_onnx(path: Path) -> Path:
    """A U^2-Net-shaped ONNX model for rembg's ``u2net_custom`` session.

    rembg feeds ``(1, 3, 320, 320)`` float32 (ImageNet-normalised) to the first input and reads
    channel 0 of the first output ``(1, 1, 320, 320)``, min-max normalised. This model outputs
    minus the channel sum: dark pixels (the object) -> 1, a white background -> 0.
    """
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("weight", TensorProto.FLOAT, [1, 3, 1, 1], [-1.0, -1.0, -1.0])
    node = helper.make_node("Conv", ["input.1", "weight"], ["mask"], kernel_shape=[1, 1])
    graph = helper.make_graph(
        [node],
        "tiny_u2net",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------- diffusers
def build_tiny_text_to_image(directory: Path) -> Path:
    """A tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, CLIP tokenizer) saved locally."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tokenizer_dir = directory / "_tokenizer_src"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for symbol in [*letters, *(c + "</w>" for c in letters), ",</w>", "3</w>", "d</w>"]:
        vocab.setdefault(symbol, len(vocab))
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt"), model_max_length=32,
        pad_token="!",
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=2, projection_dim=16,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        norm_num_groups=4, sample_size=16,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=EulerDiscreteScheduler(steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory / "pipeline")
    return directory / "pipeline"


def fake_hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """The layout huggingface_hub keeps downloads in: models--owner--name/{refs/main, snapshots/<rev>/}."""
    revision = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(files, repo / "snapshots" / revision)
