"""Inference speed and memory of the *upstream* OpenLRM v1.1 and TripoSR pipelines, to set beside
``bench_inference.py``'s MIRA figures.

The models are built with random weights (timing does not depend on them) from the unmodified upstream
code vendored in ``shared/reference/`` (its README: OpenLRM @3108b69, TripoSR @d26e331), imported at run
time from ``--reference_dir``; nothing of it is copied into this project. Nothing is downloaded: OpenLRM's
DINOv2 is built with ``pretrained=False`` and TripoSR's ViT config (``facebook/dino-vitb16``, i.e.
transformers' ``ViTConfig()`` defaults) is written to a temporary file that ``hf_hub_download`` is
pointed at, as ``shared/reference/ref_run.py`` does. Architectures: the published checkpoints' configs
as documented in ``docs/PRETRAINED.md`` (``mira.pretrained.openlrm.PUBLISHED_SIZES``, the TripoSR
config of ``published_triposr_config``), i.e. what ``bench_inference.py --openlrm SIZE`` / ``--triposr``
time as converted to MIRA.

    python benchmarks/bench_reference.py --device cuda --model openlrm-base --model triposr
    python benchmarks/bench_reference.py --device cuda --precision bf16 --model all --reference_dir DIR
    python benchmarks/bench_reference.py --quick          # tiny configs on the CPU (smoke test)

Stages (each after warm-up, CUDA-synchronised, peak GPU memory per stage; the rows are named as
``bench_inference.py``'s, whose MIRA stages they correspond to). Everything runs under ``torch.no_grad``
as upstream does; file, class and function names are those of the vendored reference:

* ``image -> triplane`` (batch 1, a random image already preprocessed, on the device):
  - OpenLRM: ``openlrm/models/modeling_lrm.py`` ``ModelLRM.forward_planes(image, source_camera)``
    (DINOv2 encoder ``encoders/dinov2_wrapper.py``, ``CameraEmbedder``, ``TransformerDecoder``,
    ``reshape_upsample``), the model built as ``openlrm/utils/hf_hub.py`` ``wrap_model_hub(ModelLRM)``
    like the inferrer's; image (1, 3, S, S) in [0, 1] at the inference size of its size's
    ``configs/infer-{s,b,l}.yaml`` (S = 224 / 336 / 448); the source camera of
    ``LRMInferrer._default_source_camera`` (``openlrm/runners/infer/lrm.py``, not vendored: built once
    with ``datasets/cam_utils.py`` ``create_intrinsics(f=0.75, c=0.5)`` + ``build_camera_principle``,
    distance 2). ``torch._dynamo.config.disable = True`` as the upstream ``Inferrer`` sets, so the
    ``@torch.compile`` forwards run eagerly. DINOv2 uses xFormers where it is installed (the row says).
  - TripoSR: ``tsr/system.py`` ``TSR.forward([image], device)`` (``ImagePreprocessor`` resize to
    ``cond_image_size`` = 512, an identity here, DINO ViT-B/16 tokenizer, ``Transformer1D`` backbone,
    ``TriplaneUpsampleNetwork``); the image a (512, 512, 3) float tensor in [0, 1] on the device (run.py
    passes a PIL image that is converted and resized on the CPU first: not timed here). The encoder is
    the installed transformers' ``ViTModel`` (TripoSR pins 4.35).
* ``mesh N^3: density grid`` (N = ``--mesh_resolution``, 256 by default):
  - OpenLRM: ``rendering/synthesizer.py`` ``TriplaneSynthesizer.forward_grid(planes, N)`` (what
    ``LRMInferrer.infer_mesh`` calls): ``forward_points`` in chunks of 2^20 points through
    ``ImportanceRenderer.run_model_activated`` (density and colour of every point).
  - TripoSR: ``TSR.extract_mesh``'s density query: ``set_marching_cubes_resolution(N)``, then
    ``TriplaneNeRFRenderer.query_triplane(decoder, scale_tensor(MarchingCubeHelper.grid_vertices.to(device),
    ...), scene_code)["density_act"]`` with run.py's ``set_chunk_size(8192)`` (``tsr/utils.py`` ``chunk_batch``;
    the grid vertices are kept on the CPU and copied each call, as upstream does).
* ``mesh N^3: marching cubes, PyMCubes`` (CPU):
  - OpenLRM: ``infer_mesh``'s ``mcubes.marching_cubes(sigma.cpu().numpy(), level)`` and the vertex scaling
    ``v / (N - 1) * 2 - 1``.
  - TripoSR: ``extract_mesh``'s ``MarchingCubeHelper.forward(-(density - level))`` (``tsr/models/isosurface.py``)
    and ``scale_tensor`` to the box. Upstream imports ``torchmcubes`` (not on PyPI; CUDA-capable); the
    reference's ``_shims/torchmcubes.py`` stands in with PyMCubes on the CPU, so both models use
    ``mcubes.marching_cubes`` on the CPU here, as MIRA's PyMCubes row does.
  A random model has no object, so the iso-level is the 95th percentile of its density grid (as in
  ``bench_inference.py``; upstream's levels, 3.0 for OpenLRM and 25.0 for TripoSR, find no surface on
  random weights); the face count is printed: it sets the marching-cubes and colour cost.
* ``mesh N^3: vertex colours`` (upstream computes them in its mesh export):
  - OpenLRM: ``infer_mesh``'s ``TriplaneSynthesizer.forward_points(planes, vertices)["rgb"]`` to uint8 on
    the host.
  - TripoSR: ``extract_mesh(..., has_vertex_color=True)``'s ``query_triplane(decoder, v_pos, scene_code)["color"]``
    to the host. (Building the ``trimesh.Trimesh`` and writing the file are not timed, as in MIRA's rows.)
* ``video: render F x S^2`` (F = ``--num_frames`` = 120, S = ``--render_size`` = 256 by default), rendering
  only (no mp4 write), frames brought to the host as (F, S, S, 3) uint8 as MIRA's ``render_orbit_frames``
  returns them:
  - OpenLRM: ``LRMInferrer.infer_video``'s loop: cameras of ``_default_render_cameras(F)``
    (``cam_utils.surrounding_views_linspace`` radius 2, height 0.8, ``create_intrinsics(0.75, 0.5)``,
    ``build_camera_standard``), then ``TriplaneSynthesizer.forward(planes, cameras[:, i:i + frame_size],
    ...)`` (``ImportanceRenderer``: half stratified, half importance samples, white background) in
    chunks of ``frame_size`` views (``configs/infer-{s,b,l}.yaml``: 4, 4, 2).
  - TripoSR: ``TSR.render(scene_codes, n_views=F, height=S, width=S, return_type="pt")`` (run.py's
    orbit: ``tsr/utils.py`` ``get_spherical_cameras``, elevation 0, distance 1.9, fovy 40;
    ``TriplaneNeRFRenderer`` at 128 samples per ray, rays in chunks of 8192).
* ``total``: image -> triplane + mesh N^3 total + video render.

Precision: neither upstream inference script uses autocast (OpenLRM's ``Accelerator()`` has no mixed
precision; TripoSR's run.py runs fp32). ``--precision bf16`` on CUDA runs every device stage under
``torch.autocast("cuda", torch.bfloat16)`` as ``bench_inference.py`` does for MIRA; a stage whose
reference code fails under autocast runs in fp32 and its row says so. The triplanes are cast to float32
after the first stage, as ``bench_inference.py`` does. TF32 matmuls are allowed, as there.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import re
import resource
import sys
import tempfile
import types
import warnings
from abc import ABC, abstractmethod
from functools import partial
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_inference import MESH_LEVEL_QUANTILE, Recorder  # noqa: E402
from mira.pretrained.openlrm import (  # noqa: E402
    OPENLRM_SOURCE_DISTANCE,
    OPENLRM_SOURCE_FOCAL,
    OPENLRM_SOURCE_SIZES,
    PUBLISHED_COMMON,
    PUBLISHED_SIZES,
)
from mira.pretrained.triposr import DINO_VITB16, published_triposr_yaml  # noqa: E402

DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
MODELS = ("openlrm-small", "openlrm-base", "openlrm-large", "triposr")

# Importable module -> pip package, per reference (their READMEs' "Needs").
REQUIRED_PACKAGES = {
    "openlrm": {"torch": "torch", "accelerate": "accelerate", "huggingface_hub": "huggingface_hub",
                "mcubes": "PyMCubes"},
    "triposr": {"torch": "torch", "transformers": "transformers", "omegaconf": "omegaconf", "einops": "einops",
                "huggingface_hub": "huggingface_hub", "trimesh": "trimesh", "imageio": "imageio", "PIL": "Pillow",
                "mcubes": "PyMCubes"},
}

# OpenLRM configs/infer-{s,b,l}.yaml: views rendered per synthesizer call in infer_video.
OPENLRM_FRAME_SIZE = {"small": 4, "base": 4, "large": 2}
OPENLRM_POINT_CHUNK = 2**20  # TriplaneSynthesizer.forward_points' default chunk_size
# --quick: a tiny ModelLRM (and a tiny DINOv2 of the vendored DinoVisionTransformer class), seconds on a CPU.
OPENLRM_QUICK = {
    "model": dict(camera_embed_dim=32, rendering_samples_per_ray=16, transformer_dim=32, transformer_layers=2,
                  transformer_heads=2, triplane_low_res=4, triplane_high_res=8, triplane_dim=8, encoder_type="dinov2",
                  encoder_model_name="dinov2_vits14_reg", encoder_feat_dim=48, encoder_freeze=False),
    "encoder": dict(img_size=98, patch_size=14, embed_dim=48, depth=2, num_heads=2, mlp_ratio=4,
                    num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0, init_values=1.0,
                    ffn_layer="mlp", block_chunks=0),
    "source_size": 56,
    "frame_size": 4,
}

# stabilityai/TripoSR config.yaml as documented in docs/PRETRAINED.md.
TRIPOSR_CONFIG = published_triposr_yaml()
TRIPOSR_CHUNK_SIZE = 8192  # run.py --chunk-size default (renderer.set_chunk_size)
# --quick: a tiny TSR with a tiny ViT (64 px input, 4 x 4 patches).
TRIPOSR_QUICK = {
    **TRIPOSR_CONFIG, "cond_image_size": 64,
    "tokenizer": {"plane_size": 4, "num_channels": 32},
    "backbone": {"in_channels": 32, "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2,
                 "cross_attention_dim": 48},
    "post_processor": {"in_channels": 32, "out_channels": 8},
    "decoder": {"in_channels": 24, "n_neurons": 32, "n_hidden_layers": 3, "activation": "silu"},
    "renderer": {**TRIPOSR_CONFIG["renderer"], "num_samples_per_ray": 16},
}
VIT_QUICK = {**DINO_VITB16, "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 96, "image_size": 32}


class ReferenceUnavailableError(RuntimeError):
    """The reference code cannot be run here: folder or package missing."""


# ---------------------------------------------------------------------- reference code
def missing_packages(family: str) -> list[str]:
    """pip names of the packages the ``family`` ("openlrm" or "triposr") reference needs and lacks here."""
    return [package for module, package in REQUIRED_PACKAGES[family].items()
            if importlib.util.find_spec(module) is None]


def check_reference(reference_dir: Path, family: str) -> None:
    """Raise :class:`ReferenceUnavailableError` naming what is missing to run ``family`` from ``reference_dir``."""
    marker = {"openlrm": Path("openlrm") / "openlrm" / "models" / "modeling_lrm.py",
              "triposr": Path("triposr") / "tsr" / "system.py"}[family]
    if not (reference_dir / marker).is_file():
        raise ReferenceUnavailableError(f"{reference_dir / marker} not found: --reference_dir must be the "
                                        "shared/reference folder (with openlrm/ and triposr/)")
    missing = missing_packages(family)
    if missing:
        raise ReferenceUnavailableError(f"the {family} reference code needs packages missing here: "
                                        f"{', '.join(missing)} (pip install {' '.join(missing)}; they are not MIRA "
                                        "requirements)")


def reference_commit(reference_dir: Path, family: str) -> str | None:
    """The upstream commit the vendored ``family`` code is at (from its README), or None."""
    match = re.search(r"commit `([0-9a-f]{40})`", (reference_dir / family / "README.md").read_text())
    return match.group(1) if match else None


def prepend_path(*folders: Path) -> None:
    """Put ``folders`` first on ``sys.path``, in order (once)."""
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def import_openlrm(reference_dir: Path) -> types.SimpleNamespace:
    """OpenLRM's modules, imported from ``reference_dir/openlrm`` as its inferrer runs them (dynamo off)."""
    check_reference(reference_dir, "openlrm")
    torch._dynamo.config.disable = True  # openlrm/runners/infer/base_inferrer.py Inferrer.__init__
    prepend_path(reference_dir / "openlrm")
    from accelerate import PartialState

    PartialState()  # the inferrer's Accelerator() does this; openlrm logs through accelerate.logging
    warnings.filterwarnings("ignore", message="Using torch.cross without specifying the dim")  # cam_utils
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="xFormers is")
        from openlrm.datasets import cam_utils
        from openlrm.models import ModelLRM
        from openlrm.models.encoders import dinov2_wrapper
        from openlrm.models.encoders.dinov2.layers import MemEffAttention
        from openlrm.models.encoders.dinov2.layers import attention as dinov2_attention
        from openlrm.models.encoders.dinov2.models import vision_transformer
        from openlrm.utils.hf_hub import wrap_model_hub
    return types.SimpleNamespace(cam_utils=cam_utils, ModelLRM=ModelLRM, dinov2_wrapper=dinov2_wrapper,
                                 MemEffAttention=MemEffAttention, vision_transformer=vision_transformer,
                                 wrap_model_hub=wrap_model_hub, xformers=dinov2_attention.XFORMERS_AVAILABLE)


def import_triposr(reference_dir: Path, vit_config_path: Path) -> types.SimpleNamespace:
    """TripoSR's modules from ``reference_dir/triposr`` (with its ``_shims``: PyMCubes for ``torchmcubes``,
    a stub ``rembg``); its ViT config is read from ``vit_config_path`` instead of the hub."""
    check_reference(reference_dir, "triposr")
    prepend_path(reference_dir / "triposr", reference_dir / "triposr" / "_shims")
    import tsr.models.tokenizers.image as tsr_image

    tsr_image.hf_hub_download = lambda repo_id, filename, **kwargs: str(vit_config_path)
    from tsr.system import TSR
    from tsr.utils import scale_tensor

    return types.SimpleNamespace(TSR=TSR, scale_tensor=scale_tensor)


# ---------------------------------------------------------------------- pipelines
def frames_to_host(rgb: torch.Tensor) -> np.ndarray:
    """(F, S, S, 3) colours in [0, 1] on any device -> (F, S, S, 3) uint8 on the host."""
    return (rgb.float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)


class ReferencePipeline(ABC):
    """One reference model and the upstream calls each timed stage makes (see the module docstring)."""

    label: str  # what was timed, e.g. "openlrm-base"
    config: str  # its configuration in words
    reference: str  # "openlrm" or "triposr"
    model: torch.nn.Module
    input_note: str

    @property
    def parameters_m(self) -> float:
        return sum(p.numel() for p in self.model.parameters()) / 1e6

    @abstractmethod
    def reconstruct(self) -> torch.Tensor:
        """The preprocessed input image (batch 1) -> triplanes (1, 3, C, H, W)."""

    @abstractmethod
    def density_grid(self, planes: torch.Tensor, resolution: int) -> torch.Tensor:
        """Upstream's density on a resolution^3 grid: (N, N, N) on the device, [i, j, k] = (x_i, y_j, z_k)."""

    @abstractmethod
    def marching_cubes(self, grid: torch.Tensor, level: float) -> tuple[Any, Any]:
        """(N, N, N) density -> upstream's (vertices (V, 3) in world units, faces (T, 3))."""

    @abstractmethod
    def vertex_colours(self, planes: torch.Tensor, vertices: Any) -> np.ndarray:
        """(V, 3) vertices -> (V, 3) colours on the host."""

    @abstractmethod
    def render_video(self, planes: torch.Tensor, num_frames: int, size: int) -> np.ndarray:
        """Upstream's orbit video -> (F, S, S, 3) uint8 frames on the host."""

    @abstractmethod
    def stage_notes(self) -> dict[str, str]:
        """The upstream call of the "grid", "colours" and "video" stages, for the table."""


class OpenLRMPipeline(ReferencePipeline):
    """OpenLRM v1.1's ``ModelLRM`` and ``LRMInferrer``'s calls (random weights)."""

    reference = "openlrm"

    def __init__(self, reference_dir: Path, size: str, device: torch.device, quick: bool) -> None:
        lrm = import_openlrm(reference_dir)
        self.lrm, self.device = lrm, device
        if quick:
            config = dict(OPENLRM_QUICK["model"])
            self.source_size, self.frame_size = OPENLRM_QUICK["source_size"], OPENLRM_QUICK["frame_size"]
            encoder = OPENLRM_QUICK["encoder"]
            self.config = (f"quick: tiny ModelLRM in place of openlrm-{size} (transformer "
                           f"{config['transformer_dim']} x {config['transformer_layers']}, DINOv2 "
                           f"{encoder['embed_dim']} x {encoder['depth']}, triplane ({config['triplane_dim']}, "
                           f"{config['triplane_high_res']}^2), {config['rendering_samples_per_ray']} samples/ray)")
        else:
            config = {**PUBLISHED_COMMON, **PUBLISHED_SIZES[size]}
            self.source_size = OPENLRM_SOURCE_SIZES[(config["transformer_dim"], config["transformer_layers"])]
            self.frame_size = OPENLRM_FRAME_SIZE[size]
            self.config = f"openlrm-{{obj,mix}}-{size}-1.1 architecture, random weights"
        self.label = "openlrm (quick)" if quick else f"openlrm-{size}"
        self._patch_encoder_build(encoder if quick else None)
        torch.manual_seed(0)
        self.model = lrm.wrap_model_hub(lrm.ModelLRM)(config).to(device).eval()
        self.image = torch.rand(1, 3, self.source_size, self.source_size, device=device)
        self.source_camera = self._source_camera()
        attention = "xFormers" if lrm.xformers else "plain PyTorch"
        self.input_note = f"{self.source_size}^2 input, DINOv2 attention {attention}"

    def _patch_encoder_build(self, tiny: dict | None) -> None:
        """``Dinov2Wrapper._build_dinov2`` without the weight download (``pretrained=False``), or a tiny
        ``DinoVisionTransformer`` of the vendored class for ``--quick``."""
        wrapper = self.lrm.dinov2_wrapper.Dinov2Wrapper
        original = getattr(wrapper, "_bench_original_build", wrapper._build_dinov2)
        wrapper._bench_original_build = original
        vits = self.lrm.vision_transformer

        def build(model_name: str, modulation_dim: int | None = None, pretrained: bool = True) -> torch.nn.Module:
            if tiny is None:
                return original(model_name, modulation_dim=modulation_dim, pretrained=False)
            block = partial(vits._block_cls(), attn_class=self.lrm.MemEffAttention)
            return vits.DinoVisionTransformer(block_fn=block, **tiny)

        wrapper._build_dinov2 = staticmethod(build)

    def _source_camera(self) -> torch.Tensor:
        """LRMInferrer._default_source_camera: (1, 16) = 3x4 c2w (camera at (0, -d, 0) looking along +Y,
        OpenGL axes) + normalised fx, fy, cx, cy."""
        d = OPENLRM_SOURCE_DISTANCE
        rt = torch.tensor([[[1, 0, 0, 0], [0, 0, -1, -d], [0, 1, 0, 0]]], dtype=torch.float32, device=self.device)
        k = self.lrm.cam_utils.create_intrinsics(f=OPENLRM_SOURCE_FOCAL, c=0.5, device=self.device).unsqueeze(0)
        return self.lrm.cam_utils.build_camera_principle(rt, k)

    def reconstruct(self) -> torch.Tensor:
        return self.model.forward_planes(self.image, self.source_camera)

    def density_grid(self, planes: torch.Tensor, resolution: int) -> torch.Tensor:
        return self.model.synthesizer.forward_grid(planes=planes, grid_size=resolution)["sigma"][0, ..., 0]

    def marching_cubes(self, grid: torch.Tensor, level: float) -> tuple[np.ndarray, np.ndarray]:
        import mcubes

        resolution = grid.shape[0]
        vertices, faces = mcubes.marching_cubes(grid.float().cpu().numpy(), level)
        return vertices / (resolution - 1) * 2 - 1, faces

    def vertex_colours(self, planes: torch.Tensor, vertices: np.ndarray) -> np.ndarray:
        if len(vertices) == 0:  # forward_points cannot concatenate zero chunks
            return np.zeros((0, 3), dtype=np.uint8)
        points = torch.tensor(vertices, dtype=torch.float32, device=self.device).unsqueeze(0)  # (1, V, 3)
        rgb = self.model.synthesizer.forward_points(planes, points)["rgb"][0]  # (V, 3) in [0, 1]
        return (rgb.float().cpu().numpy() * 255).astype(np.uint8)

    def render_cameras(self, num_frames: int) -> torch.Tensor:
        """LRMInferrer._default_render_cameras: (1, F, 25) = 4x4 c2w + 3x3 normalised K per view."""
        cam = self.lrm.cam_utils
        extrinsics = cam.surrounding_views_linspace(n_views=num_frames, device=self.device)  # (F, 3, 4)
        intrinsics = cam.create_intrinsics(f=OPENLRM_SOURCE_FOCAL, c=0.5, device=self.device)
        intrinsics = intrinsics.unsqueeze(0).repeat(num_frames, 1, 1)
        return cam.build_camera_standard(extrinsics, intrinsics).unsqueeze(0)

    def render_video(self, planes: torch.Tensor, num_frames: int, size: int) -> np.ndarray:
        cameras = self.render_cameras(num_frames)
        anchors = torch.zeros(1, num_frames, 2, device=self.device)
        resolutions = torch.full((1, num_frames, 1), float(size), device=self.device)
        backgrounds = torch.ones(1, num_frames, 1, device=self.device)
        chunks = []
        for start in range(0, num_frames, self.frame_size):
            part = slice(start, start + self.frame_size)
            chunks.append(self.model.synthesizer(planes=planes, cameras=cameras[:, part], anchors=anchors[:, part],
                                                 resolutions=resolutions[:, part], bg_colors=backgrounds[:, part],
                                                 region_size=size)["images_rgb"])
        return frames_to_host(torch.cat(chunks, dim=1)[0].permute(0, 2, 3, 1))

    def stage_notes(self) -> dict[str, str]:
        samples = self.model.synthesizer.rendering_kwargs
        return {"grid": f"synthesizer.forward_grid, chunks of {OPENLRM_POINT_CHUNK}",
                "colours": "synthesizer.forward_points",
                "video": f"synthesizer in chunks of {self.frame_size} views, {samples['depth_resolution']}+"
                         f"{samples['depth_resolution_importance']} samples/ray"}


class TripoSRPipeline(ReferencePipeline):
    """TripoSR's ``TSR`` and run.py's calls (random weights)."""

    reference = "triposr"

    def __init__(self, reference_dir: Path, device: torch.device, quick: bool, workdir: Path) -> None:
        from omegaconf import OmegaConf

        vit_config = VIT_QUICK if quick else DINO_VITB16
        vit_config_path = workdir / "dino_vit_config.json"
        vit_config_path.write_text(json.dumps({"model_type": "vit", "architectures": ["ViTModel"], **vit_config}))
        self.tsr = import_triposr(reference_dir, vit_config_path)
        self.device = device
        raw = TRIPOSR_QUICK if quick else TRIPOSR_CONFIG
        self.label = "triposr (quick)" if quick else "triposr"
        self.config = ("quick: tiny TSR in place of stabilityai/TripoSR (backbone 32 x 2, ViT 48 x 2, triplane "
                       "(8, 8^2), 16 samples/ray)" if quick else
                       "stabilityai/TripoSR architecture (config.yaml of docs/PRETRAINED.md), random weights")
        torch.manual_seed(0)
        self.model = self.tsr.TSR(OmegaConf.create(raw)).to(device).eval()
        self.model.renderer.set_chunk_size(TRIPOSR_CHUNK_SIZE)
        size = raw["cond_image_size"]
        self.image = [torch.rand(size, size, 3, device=device)]  # (H, W, 3) in [0, 1], grey background composited
        self.input_note = f"{size}^2 input (HWC float on the device)"

    @property
    def radius(self) -> float:
        return float(self.model.renderer.cfg.radius)

    def reconstruct(self) -> torch.Tensor:
        return self.model(self.image, device=self.device)

    def density_grid(self, planes: torch.Tensor, resolution: int) -> torch.Tensor:
        self.model.set_marching_cubes_resolution(resolution)
        helper = self.model.isosurface_helper
        points = self.tsr.scale_tensor(helper.grid_vertices.to(self.device), helper.points_range,
                                       (-self.radius, self.radius))
        density = self.model.renderer.query_triplane(self.model.decoder, points, planes[0])["density_act"]
        return density.view(resolution, resolution, resolution)

    def marching_cubes(self, grid: torch.Tensor, level: float) -> tuple[torch.Tensor, torch.Tensor]:
        helper = self.model.isosurface_helper
        vertices, faces = helper(-(grid.float().reshape(-1, 1) - level))
        return self.tsr.scale_tensor(vertices, helper.points_range, (-self.radius, self.radius)), faces

    def vertex_colours(self, planes: torch.Tensor, vertices: torch.Tensor) -> np.ndarray:
        colours = self.model.renderer.query_triplane(self.model.decoder, vertices, planes[0])["color"]
        return colours.float().cpu().numpy()

    def render_video(self, planes: torch.Tensor, num_frames: int, size: int) -> np.ndarray:
        views = self.model.render(planes, n_views=num_frames, height=size, width=size, return_type="pt")[0]
        return frames_to_host(torch.stack(views))

    def stage_notes(self) -> dict[str, str]:
        return {"grid": f"renderer.query_triplane, chunks of {TRIPOSR_CHUNK_SIZE}",
                "colours": "renderer.query_triplane",
                "video": f"TSR.render, {self.model.renderer.cfg.num_samples_per_ray} samples/ray, "
                         f"chunks of {TRIPOSR_CHUNK_SIZE} rays"}


def build_pipeline(name: str, args: argparse.Namespace, workdir: Path) -> ReferencePipeline:
    """The reference pipeline of ``name`` (one of :data:`MODELS`) on ``args.device``."""
    device = torch.device(args.device)
    if name == "triposr":
        return TripoSRPipeline(args.reference_dir, device, args.quick, workdir)
    return OpenLRMPipeline(args.reference_dir, name.removeprefix("openlrm-"), device, args.quick)


# ---------------------------------------------------------------------- timing
class Precision:
    """``--precision``: bf16 autocast on CUDA where the reference code runs under it, else fp32."""

    def __init__(self, device: torch.device, precision: str) -> None:
        self.device_type = device.type
        self.autocast = precision == "bf16" and device.type == "cuda"
        self.label = "bf16 autocast" if self.autocast else "fp32"
        if precision == "bf16" and not self.autocast:
            self.label = "fp32 (bf16 autocast is applied on CUDA only)"

    def stage(self, function: Callable[[], Any]) -> tuple[Callable[[], Any], str]:
        """``function`` under ``no_grad`` (and autocast), and a note: runs it once under autocast (a warm-up)
        and falls back to fp32 when the reference code raises there."""

        def fp32() -> Any:
            with torch.no_grad():
                return function()

        if not self.autocast:
            return fp32, ""

        def bf16() -> Any:
            with torch.no_grad(), torch.autocast(self.device_type, dtype=torch.bfloat16):
                return function()

        try:
            bf16()
        except (RuntimeError, TypeError) as error:
            message = str(error).splitlines()[0][:120]
            return fp32, f"ran fp32: fails under bf16 autocast ({type(error).__name__}: {message})"
        return bf16, ""


def joined(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def time_pipeline(pipeline: ReferencePipeline, args: argparse.Namespace) -> dict:
    """Every stage of the module docstring for ``pipeline``; prints and returns the result."""
    device = torch.device(args.device)
    recorder, precision = Recorder(device), Precision(device, args.precision)
    notes, n = pipeline.stage_notes(), args.mesh_resolution
    one_warmup = 1 if args.warmup else 0

    reconstruct, note = precision.stage(pipeline.reconstruct)
    planes = recorder.time("image -> triplane", reconstruct, args.repeats, args.warmup,
                           joined(f"batch 1, {pipeline.input_note}, triplane {tuple(reconstruct().shape[1:])}", note))
    planes = planes.float()
    if args.reconstruct_only:
        print(recorder.table(), flush=True)
        return {"model": pipeline.label, "reference": pipeline.reference,
                "reference_commit": reference_commit(args.reference_dir, pipeline.reference),
                "config": pipeline.config, "precision": precision.label, "parameters_m": pipeline.parameters_m,
                "rows": recorder.rows}

    first = len(recorder.rows)
    query, note = precision.stage(lambda: pipeline.density_grid(planes, n))
    grid = recorder.time(f"mesh {n}^3: density grid", query, 1, one_warmup,
                         joined(f"{n**3 / 1e6:.3g} M points, {notes['grid']}", note))
    level = float(np.quantile(grid.float().cpu().numpy(), MESH_LEVEL_QUANTILE))
    vertices, faces = recorder.time(f"mesh {n}^3: marching cubes, PyMCubes",
                                    lambda: pipeline.marching_cubes(grid, level), 1, 0,
                                    f"CPU, iso-level {level:.4g} (95th percentile)")
    colour, note = precision.stage(lambda: pipeline.vertex_colours(planes, vertices))
    recorder.time(f"mesh {n}^3: vertex colours", colour, 1, 0,
                  joined(f"{len(vertices):,} vertices, {len(faces):,} faces, {notes['colours']}", note))
    mesh_rows = recorder.rows[first:]
    recorder.add(f"**mesh {n}^3 total**", sum(row["seconds"] for row in mesh_rows), peak(mesh_rows),
                 "density grid + marching cubes + vertex colours")
    mesh_total = recorder.rows[-1]
    del grid

    render, note = precision.stage(lambda: pipeline.render_video(planes, args.num_frames, args.render_size))
    recorder.time(f"video: render {args.num_frames} x {args.render_size}^2", render, 1, one_warmup,
                  joined(notes["video"], note))
    video = recorder.rows[-1]
    recorder.add("video: frames/s", args.num_frames / video["seconds"], None, "rendering only")
    timed = [recorder.rows[0], mesh_total, video]
    recorder.add(f"**total** (triplane + mesh {n}^3 + {args.num_frames}-frame video)",
                 sum(row["seconds"] for row in timed), peak(recorder.rows[:-1]), "no model load, no file writes")
    if device.type == "cpu":
        recorder.add("process peak RSS (GiB)", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, None,
                     "whole run so far, CPU memory")
    print(recorder.table(), flush=True)
    return {"model": pipeline.label, "reference": pipeline.reference,
            "reference_commit": reference_commit(args.reference_dir, pipeline.reference),
            "config": pipeline.config, "precision": precision.label, "parameters_m": pipeline.parameters_m,
            "rows": recorder.rows}


def peak(rows: list[dict]) -> float | None:
    """The largest peak GPU memory of ``rows`` (None on the CPU)."""
    values = [row["peak_gpu_gib"] for row in rows if row["peak_gpu_gib"] is not None]
    return max(values) if values else None


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def header(pipeline: ReferencePipeline, args: argparse.Namespace) -> str:
    """The lines above a model's table: what ran, where, from which reference code."""
    device = torch.device(args.device)
    commit = (reference_commit(args.reference_dir, pipeline.reference) or "?")[:7]
    return (f"\n### {pipeline.label}\n\ndevice {device} ({device_name(device)}), reference {pipeline.reference} "
            f"@{commit} from {args.reference_dir}, {pipeline.config}, {pipeline.parameters_m:.1f} M parameters, "
            f"precision {Precision(device, args.precision).label}\n")


def run(args: argparse.Namespace) -> dict:
    """Time every requested reference model in turn; the JSON result."""
    device = torch.device(args.device)
    results = []
    with tempfile.TemporaryDirectory() as temp:
        for name in args.models:
            pipeline = build_pipeline(name, args, Path(temp))
            print(header(pipeline, args), flush=True)
            results.append(time_pipeline(pipeline, args))
            del pipeline
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return {"device": str(device), "device_name": device_name(device), "precision": args.precision,
            "quick": args.quick, "reference_dir": str(args.reference_dir),
            "settings": {"mesh_resolution": args.mesh_resolution, "num_frames": args.num_frames,
                         "render_size": args.render_size, "repeats": args.repeats, "warmup": args.warmup},
            "results": results}


def selected_models(names: list[str] | None, quick: bool) -> list[str]:
    """``--model`` values in order, ``all`` expanded, duplicates dropped; in quick mode the OpenLRM sizes
    share one tiny config, so it is timed once."""
    expanded = [m for name in (names or ["openlrm-base", "triposr"]) for m in (MODELS if name == "all" else [name])]
    if quick:
        expanded = ["openlrm-small" if m.startswith("openlrm") else m for m in expanded]
    return list(dict.fromkeys(expanded))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", dest="models", action="append", choices=(*MODELS, "all"), default=None,
                        help="reference model to time; repeat it for several (default: openlrm-base and triposr)")
    parser.add_argument("--reference_dir", type=Path, default=DEFAULT_REFERENCE_DIR,
                        help="the shared/reference folder (openlrm/, triposr/); default: ../shared/reference beside "
                             "the repository")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast on CUDA")
    parser.add_argument("--mesh_resolution", type=int, default=256)
    parser.add_argument("--num_frames", type=int, default=120)
    parser.add_argument("--render_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="tiny configs on the CPU, mesh 32^3, 2 frames at 32^2 (smoke test)")
    parser.add_argument("--reconstruct_only", action="store_true",
                        help="time image -> triplane only (--repeats times), not the mesh and video stages")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.models = selected_models(args.models, args.quick)
    args.reference_dir = args.reference_dir.resolve()
    if args.quick:
        args.device, args.mesh_resolution, args.num_frames, args.render_size = "cpu", 32, 2, 32
        args.repeats, args.warmup = 1, 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --device cpu or --quick)")
    try:
        for family in dict.fromkeys("triposr" if m == "triposr" else "openlrm" for m in args.models):
            check_reference(args.reference_dir, family)
    except ReferenceUnavailableError as error:
        parser.error(str(error))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
