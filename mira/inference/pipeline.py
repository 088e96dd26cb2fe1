"""Inference: images or prompts -> triplanes -> coloured mesh and turntable video, per input.

:class:`InferencePipeline` loads the model once (and rembg / the text-to-image pipeline only
when an input needs them), then for every input writes, into ``<output_path>/<name>/``:

* ``input.png``: the preprocessed model input (and ``generated.png`` in text mode);
* ``mesh.<ply|obj|glb>`` with ``--export_mesh``; ``video.<mp4|gif>`` with ``--export_video``;
  ``triplanes.safetensors`` with ``--save_triplanes``;
* ``result.json``: the settings, what was written, and the seconds spent in each stage.

Every file is written atomically. A bad input is reported with one clear message; in a batch
the other inputs still run, and the run fails (exit code 1) at the end.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import re
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from PIL import Image
from safetensors.torch import save_file
from tqdm.auto import tqdm

import mira
from mira.atomic import atomic_output, save_image_atomic, write_json_atomic
from mira.devices import resolve_device
from mira.export.mesh import (
    FORMAT_FRAMES,
    REMESH_MODES,
    MeshExtractionError,
    extract_mesh,
    is_watertight,
    mesh_companion_files,
    save_mesh,
)
from mira.export.texture import DEFAULT_TEXTURE_SIZE, TextureBakeError, texture_mesh
from mira.export.video import render_orbit_frames, write_video
from mira.inference.checkpoint import load_model
from mira.progress import bar_disabled
from mira.inference.compiled import compile_reconstruction
from mira.rendering.baked_field import DEFAULT_BAKE_RESOLUTION, BakedField, renderer_with_baked_field
from mira.rendering.occupancy import OccupancyGrid
from mira.inference.errors import InferenceError, InputError
from mira.data.source_view import SourceFraming
from mira.inference.preprocess import (
    DEFAULT_REMBG_MODEL,
    BackgroundRemover,
    PreprocessedImage,
    image_to_float_rgba,
    list_image_files,
    load_image,
    preprocess_arrays,
)
from mira.inference.text_to_image import (
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_TEXT_IMAGE_SIZE,
    DEFAULT_TEXT_MODEL,
    DEFAULT_TEXT_STEPS,
    TextToImage,
    build_prompt,
)

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class InferenceSettings:
    """Every option of an inference run (the command-line flags of ``test.py``)."""

    checkpoint_path: str
    inputs: list[str]
    output_path: str = "outputs"
    config_path: str | None = None
    mode: str = "image"  # "image" (files / folders) or "text" (prompts)
    export_mesh: bool = False
    export_video: bool = False
    save_triplanes: bool = False
    mesh_resolution: int | None = None  # None: 256 on a GPU, 128 on the CPU (CPU_DEFAULTS)
    mesh_format: str = "ply"
    density_threshold: float | None = None  # None: the checkpoint's renderer.mesh_density_threshold
    largest_component: bool = False
    mesh_target_faces: int | None = None
    remesh: str = "none"  # "triangle" / "quad": Instant Meshes remeshing (mira.export.mesh.remesh)
    texture: bool = False  # UV-unwrap and bake a base-colour texture (mira.export.texture)
    texture_size: int = DEFAULT_TEXTURE_SIZE
    extra_mesh_formats: tuple[str, ...] = ()  # more files of the same mesh (the web app: glb, obj, ply)
    video_format: str = "mp4"
    num_frames: int | None = None  # None: 120 on a GPU, 60 on the CPU
    render_size: int | None = None  # None: 256 on a GPU, 128 on the CPU
    elevation: float = 0.0  # 0: the first frame is the input view
    distance: float | None = None  # None: the input view's canonical camera distance
    fps: float = 30.0
    skip_empty_space: bool = True  # video: evaluate the field only in occupied cells (mira.rendering.occupancy)
    # video: render from the field baked on an N^3 grid (mira.rendering.baked_field); 0: the exact field;
    # None: 96 on the CPU, 256 on a GPU
    video_bake_resolution: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False  # torch.compile + CUDA graphs for image -> triplane (mira.inference.compiled)
    seed: int = 42
    no_rembg: bool = False
    foreground_ratio: float | None = None  # None: the model's data.source_foreground_ratio
    rembg_model: str = DEFAULT_REMBG_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    text_steps: int = DEFAULT_TEXT_STEPS
    text_guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    text_image_size: int = DEFAULT_TEXT_IMAGE_SIZE
    progress: bool = True

    def validate(self) -> None:
        """Check values that would only fail late (after loading the model); raise :class:`InferenceError`."""
        checks = [
            (self.mode in ("image", "text"), f"--mode must be image or text, got {self.mode!r}"),
            (len(self.inputs) > 0, "no --input given"),
            (self.mesh_resolution is None or self.mesh_resolution >= 8,
             f"--mesh_resolution must be at least 8, got {self.mesh_resolution}"),
            (self.mesh_format in ("ply", "obj", "glb"), f"--mesh_format must be ply, obj or glb, got {self.mesh_format!r}"),
            (self.video_format in ("mp4", "gif"), f"--video_format must be mp4 or gif, got {self.video_format!r}"),
            (self.num_frames is None or self.num_frames >= 1, f"--num_frames must be at least 1, got {self.num_frames}"),
            (self.render_size is None or self.render_size >= 8, f"--render_size must be at least 8, got {self.render_size}"),
            (self.video_format != "mp4" or self.render_size is None or self.render_size % 2 == 0,
             f"--render_size must be even for mp4 video (yuv420p), got {self.render_size}"),
            (self.fps > 0, f"--fps must be positive, got {self.fps}"),
            (self.video_bake_resolution is None or self.video_bake_resolution == 0 or self.video_bake_resolution >= 8,
             f"--video_bake_resolution must be 0 (the exact field) or at least 8, got {self.video_bake_resolution}"),
            (self.density_threshold is None or self.density_threshold > 0,
             f"--density_threshold must be positive, got {self.density_threshold}"),
            (self.foreground_ratio is None or 0 < self.foreground_ratio <= 1,
             f"--foreground_ratio must be in (0, 1], got {self.foreground_ratio}"),
            (self.distance is None or self.distance > 0, f"--distance must be positive, got {self.distance}"),
            (self.precision in PRECISIONS, f"--precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"),
            (self.mesh_target_faces is None or self.mesh_target_faces >= 4,
             f"--mesh_target_faces must be at least 4, got {self.mesh_target_faces}"),
            (self.remesh in REMESH_MODES, f"--remesh must be one of {REMESH_MODES}, got {self.remesh!r}"),
            (64 <= self.texture_size <= 8192, f"--texture_size must be in [64, 8192], got {self.texture_size}"),
            (all(f in ("ply", "obj", "glb") for f in self.extra_mesh_formats),
             f"extra mesh formats must be ply, obj or glb, got {self.extra_mesh_formats}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InferenceError(message)
        if self.mesh_target_faces is not None and importlib.util.find_spec("fast_simplification") is None:
            raise InferenceError("--mesh_target_faces needs the fast_simplification package: pip install fast_simplification")
        if self.remesh != "none" and importlib.util.find_spec("pynanoinstantmeshes") is None:
            raise InferenceError("--remesh needs the pynanoinstantmeshes package: pip install pynanoinstantmeshes")
        if self.texture and importlib.util.find_spec("xatlas") is None:
            raise InferenceError("--texture needs the xatlas package: pip install xatlas")


# Output sizes when not given: a GPU renders the full ones in a second; a CPU the small ones in seconds.
GPU_DEFAULTS = {"mesh_resolution": 256, "num_frames": 120, "render_size": 256, "video_bake_resolution": 256}
CPU_DEFAULTS = {"mesh_resolution": 128, "num_frames": 60, "render_size": 128, "video_bake_resolution": DEFAULT_BAKE_RESOLUTION}


# A GPU video from a baked field (each sample costs a trilinear lookup, not the MLP): rays per renderer
# chunk, and rays per render call (16 frames of 256^2; skipping then renders only the rays that meet the
# occupied cells, in chunks). Fewer, larger launches: the per-frame work is small (docs/BENCHMARKS.md).
BAKED_VIDEO_RAYS_PER_CHUNK_CUDA = 262_144
BAKED_VIDEO_RAYS_PER_CALL_CUDA = 1_048_576


def fill_device_defaults(settings: InferenceSettings, device: torch.device) -> InferenceSettings:
    """``settings`` with the output sizes the user left unset taken from :data:`GPU_DEFAULTS` or, on the
    CPU, :data:`CPU_DEFAULTS` (said once in the log, with the flags that ask for more)."""
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    unset = {key: value for key, value in defaults.items() if getattr(settings, key) is None}
    if unset and device.type != "cuda":
        log.info("on the CPU: %s (pass --%s for more)", ", ".join(f"{k} {v}" for k, v in unset.items()),
                 " / --".join(unset))
    return dataclasses.replace(settings, **unset)


def checkpoint_mesh_resolution(given: bool, config: mira.MiraConfig, device: torch.device) -> int | None:
    """The checkpoint's mesh grid (``renderer.mesh_grid_resolution``, OpenLRM's 384) when it replaces the
    default: on a GPU, when ``--mesh_resolution`` was not given and the checkpoint sets one; else None."""
    grid = config.renderer.mesh_grid_resolution
    return grid if grid > 0 and not given and device.type == "cuda" else None


@dataclass
class WorkItem:
    """One input: an image path or a prompt, and the name of its output folder."""

    source: str
    name: str
    error: str | None = None  # set when the input is already known to be bad


@dataclass
class RunSummary:
    """What a run did: output folders of the inputs that worked, messages of those that failed."""

    succeeded: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class StageTimer:
    """Seconds per named stage (CUDA synchronised, so GPU work is counted where it happens)."""

    def __init__(self, device: torch.device, on_stage: Callable[[str], None] | None = None) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage  # told the name of each stage as it starts (the web app's progress)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)



def slugify(text: str, max_length: int = 60) -> str:
    """A file-system-safe folder name from a file stem or prompt."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._")
    return slug[:max_length] or "item"


def collect_work_items(settings: InferenceSettings) -> list[WorkItem]:
    """Expand folders into their images, check cheap problems early, give unique output names."""
    items: list[WorkItem] = []
    for source in settings.inputs:
        if settings.mode == "text":
            try:
                build_prompt(source)
                items.append(WorkItem(source, slugify(source)))
            except InputError as error:
                items.append(WorkItem(source, "", error=str(error)))
            continue
        path = Path(source)
        if path.is_dir():
            files = list_image_files(path)
            if not files:
                items.append(WorkItem(source, "", error=f"{path}: the folder holds no image files"))
            items.extend(WorkItem(str(file), slugify(file.stem)) for file in files)
        elif not path.exists():
            items.append(WorkItem(source, "", error=f"{path}: input file not found; check the path passed to --input"))
        else:
            items.append(WorkItem(source, slugify(path.stem)))
    used: dict[str, int] = {}
    for item in items:
        if item.error is None:
            count = used.get(item.name, 0)
            used[item.name] = count + 1
            if count:
                item.name = f"{item.name}_{count}"
    return items


class InferencePipeline:
    """Loads the model once and turns inputs into meshes, videos and ``result.json`` files.

    Args:
        settings: the run's options (validated here).
    Raises:
        InferenceError (and subclasses), mira.config.ConfigError: bad settings or checkpoint.
    """

    def __init__(self, settings: InferenceSettings) -> None:
        settings.validate()
        self.device = resolve_device(settings.device)
        self.settings = fill_device_defaults(settings, self.device)
        self._mesh_resolution_given = settings.mesh_resolution is not None
        self.load_seconds = 0.0
        self.model = None
        self._compiled_reconstruct = None
        self._remover: BackgroundRemover | None = None
        self._text_to_image: TextToImage | None = None

    # ------------------------------------------------------------------ lazy parts
    def load(self) -> None:
        """Load the MIRA model (once)."""
        if self.model is None:
            timer = StageTimer(self.device)
            with timer.stage("load_model"):
                self.model = load_model(self.settings.checkpoint_path, self.settings.config_path, self.device)
            self.load_seconds = timer.seconds["load_model"]
            if self.settings.compile:
                on_cuda = self.device.type == "cuda"
                self._compiled_reconstruct = compile_reconstruction(
                    self.model, PRECISIONS[self.settings.precision] if on_cuda else None)
            grid = checkpoint_mesh_resolution(self._mesh_resolution_given, self.model.config, self.device)
            if grid is not None:
                self.settings = dataclasses.replace(self.settings, mesh_resolution=grid)
            log.info("loaded %s on %s in %.1f s", self.settings.checkpoint_path, self.device, self.load_seconds)

    @property
    def config(self) -> mira.MiraConfig:
        return self.model.config

    def remover(self) -> BackgroundRemover:
        """The rembg session (created on first use)."""
        if self._remover is None:
            self._remover = BackgroundRemover(self.settings.rembg_model)
        return self._remover

    def text_to_image(self) -> TextToImage:
        """The diffusers pipeline (created on first use)."""
        if self._text_to_image is None:
            self._text_to_image = TextToImage(self.settings.text_model, self.device)
        return self._text_to_image

    # ------------------------------------------------------------------ running
    def run(self) -> RunSummary:
        """Process every input; bad inputs are logged and skipped.

        Raises:
            WeightsNotFoundError: text mode, and the text-to-image model cannot be loaded (before the 3D model).
        """
        items = collect_work_items(self.settings)
        summary = RunSummary()
        for item in items:
            if item.error is not None:
                summary.failed.append((item.source, item.error))
        valid = [item for item in items if item.error is None]
        if not valid:
            return summary
        if self.settings.mode == "text":
            self.text_to_image()  # before the 3D model: a missing text model (offline?) is one error, at once
        self.load()
        for item in tqdm(valid, desc="inputs", unit="input", disable=bar_disabled(self.settings.progress and len(valid) > 1)):
            try:
                summary.succeeded.append(self.process(item))
            except (InferenceError, MeshExtractionError, TextureBakeError) as error:  # reported by the caller, once
                summary.failed.append((item.source, str(error)))
        return summary

    def process(self, item: WorkItem, on_stage: Callable[[str], None] | None = None) -> Path:
        """One input -> its output folder (see the module docstring); ``on_stage(name)`` as each stage starts."""
        settings = self.settings
        timer = StageTimer(self.device, on_stage)
        generated = None
        if settings.mode == "text":
            with timer.stage("text_to_image"):
                generated = self.text_to_image().generate(
                    item.source, settings.seed, settings.text_steps, settings.text_guidance_scale, settings.text_image_size
                )
        with timer.stage("preprocess"):
            prepared = self.prepare_image(generated if generated is not None else load_image(item.source), item.source)
        output_dir = Path(settings.output_path) / item.name
        outputs: dict[str, str] = {}
        if generated is not None:
            save_image_atomic(generated, output_dir / "generated.png")
            outputs["generated_image"] = "generated.png"
        save_image_atomic(prepared.to_pil(), output_dir / "input.png")
        outputs["input_image"] = "input.png"

        torch.manual_seed(settings.seed)
        with timer.stage("reconstruct"):
            triplanes = self.reconstruct(prepared)
        report: dict[str, Any] = {}
        if settings.save_triplanes:
            with atomic_output(output_dir / "triplanes.safetensors") as temp:
                save_file({"triplanes": triplanes.float().cpu().contiguous()}, str(temp))
            outputs["triplanes"] = "triplanes.safetensors"
        if settings.export_mesh:
            with timer.stage("mesh"):
                report["mesh"] = self.export_mesh(triplanes, output_dir)
            outputs["mesh"] = report["mesh"]["file"]
        if settings.export_video:
            with timer.stage("video"):
                report["video"] = self.export_video(triplanes, prepared, output_dir)
            outputs["video"] = report["video"]["file"]
        self.write_result(item, prepared, outputs, report, timer, output_dir)
        return output_dir

    def prepare_image(self, image: Image.Image, name: str) -> PreprocessedImage:
        """The model input for one image, as :meth:`process` makes it: RGBA, the background removed when the
        image has no alpha (unless ``--no_rembg``), the source-view contract's framing and background."""
        cfg = self.config
        rgb, alpha = image_to_float_rgba(image)
        needs_rembg = alpha is None and not self.settings.no_rembg
        return preprocess_arrays(rgb, alpha, SourceFraming.from_config(cfg, self.settings.foreground_ratio),
                                 cfg.source_background(), self.remover if needs_rembg else None, name=name)

    def _autocast(self):
        dtype = PRECISIONS[self.settings.precision]
        if dtype is None or self.device.type != "cuda":
            return nullcontext()
        return torch.autocast("cuda", dtype=dtype)

    @torch.inference_mode()
    def reconstruct(self, prepared: PreprocessedImage) -> torch.Tensor:
        """The model's triplanes (1, 3, C, R, R) for one preprocessed image (its canonical camera)."""
        if self._compiled_reconstruct is not None:
            return self._compiled_reconstruct(prepared.image[None].to(self.device), prepared.c2w[None].to(self.device),
                                              prepared.intrinsics[None].to(self.device))
        with self._autocast():
            triplanes = self.model.forward_triplanes(
                prepared.image[None].to(self.device), prepared.c2w[None].to(self.device),
                prepared.intrinsics[None].to(self.device)
            )
        return triplanes

    @torch.inference_mode()
    def export_mesh(self, triplanes: torch.Tensor, output_dir: Path) -> dict[str, Any]:
        """Extract and write the mesh; its summary for ``result.json``."""
        s = self.settings
        with self._autocast():
            mesh = extract_mesh(
                self.model.renderer, triplanes, resolution=s.mesh_resolution, density_threshold=s.density_threshold,
                largest_component=s.largest_component, target_faces=s.mesh_target_faces, remesh_mode=s.remesh,
                progress=s.progress,
            )
            report: dict[str, Any] = {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
                                      "watertight": is_watertight(mesh.faces, self.device)}  # before seams are cut for UVs
            if s.texture:
                mesh, baked = texture_mesh(mesh, self.model.renderer, triplanes, s.texture_size)
                report["texture"] = {"size": s.texture_size, "color_space": "sRGB",
                                     "covered_fraction": round(float(baked.covered.mean()), 4), "seconds": baked.seconds}
        file_name = f"mesh.{s.mesh_format}"
        files = {}
        for file_format in dict.fromkeys([s.mesh_format, *s.extra_mesh_formats]):
            path = save_mesh(mesh, output_dir / f"mesh.{file_format}")
            files[file_format] = [p.name for p in (path, *mesh_companion_files(path, mesh))]
        return {
            "file": file_name,
            "files": files,
            "frame": {file_format: FORMAT_FRAMES[file_format] for file_format in files},
            **report,
        }

    @torch.inference_mode()
    def render_video_frames(self, triplanes: torch.Tensor, prepared: PreprocessedImage) -> tuple[Any, dict[str, Any]]:
        """The turntable's frames (the input's focal, centred; at its distance unless ``--distance``), as
        :func:`~mira.export.video.render_orbit_frames` returns them, and their summary for ``result.json``."""
        s = self.settings
        focal = float(prepared.intrinsics[:2].mean())
        intrinsics = torch.tensor([focal, focal, 0.5, 0.5])
        distance = s.distance if s.distance is not None else float(prepared.c2w[:3, 3].norm())
        with self._autocast():
            occupancy = OccupancyGrid.from_field(self.model.renderer, triplanes) if s.skip_empty_space else None
            renderer = self.model.renderer
            chunking = {}  # render_orbit_frames' own views per call, unless:
            if s.video_bake_resolution:
                baked = BakedField.from_renderer(renderer, triplanes, s.video_bake_resolution, occupancy)
                renderer = renderer_with_baked_field(renderer, baked)
                if self.device.type == "cuda":  # lookups instead of the MLP: far more rays fit at once
                    renderer.ray_chunk_size = BAKED_VIDEO_RAYS_PER_CHUNK_CUDA
                    chunking["views_per_chunk"] = max(1, BAKED_VIDEO_RAYS_PER_CALL_CUDA // s.render_size**2)
            frames = render_orbit_frames(
                renderer, triplanes, s.num_frames, s.render_size, s.elevation, distance, intrinsics,
                start_azimuth_deg=self.config.data.source_camera_azimuth_deg,  # the input view first
                progress=s.progress, occupancy=occupancy, **chunking,
            )
        return frames, {"frames": s.num_frames, "width": s.render_size, "height": s.render_size,
                        "fps": s.fps, "elevation_deg": s.elevation, "distance": distance,
                        "occupied_fraction": None if occupancy is None else round(occupancy.occupied_fraction, 4),
                        "baked_field_resolution": s.video_bake_resolution or None}

    def export_video(self, triplanes: torch.Tensor, prepared: PreprocessedImage, output_dir: Path) -> dict[str, Any]:
        """Render (:meth:`render_video_frames`) and write the turntable video; its summary for ``result.json``."""
        timer = StageTimer(self.device)
        with timer.stage("render"):
            frames, summary = self.render_video_frames(triplanes, prepared)
        file_name = f"video.{self.settings.video_format}"
        with timer.stage("write"):
            write_video(frames, output_dir / file_name, self.settings.fps)
        return {"file": file_name, **summary, "render_seconds": timer.seconds["render"],
                "write_seconds": timer.seconds["write"]}

    def write_result(
        self,
        item: WorkItem,
        prepared: PreprocessedImage,
        outputs: dict[str, str],
        report: dict[str, Any],
        timer: StageTimer,
        output_dir: Path,
    ) -> None:
        """``result.json``: settings, preprocessing facts, outputs and seconds per stage."""
        timings = dict(timer.seconds)
        timings["total"] = round(sum(timer.seconds.values()), 4)
        timings["load_model_once"] = round(self.load_seconds, 4)
        result = {
            "mira_version": mira.__version__,
            "mode": self.settings.mode,
            "input": item.source,
            "name": item.name,
            "device": str(self.device),
            "settings": {k: v for k, v in dataclasses.asdict(self.settings).items() if k != "inputs"},
            "preprocessing": {
                "mask_source": prepared.mask_source,
                "foreground_box_ltrb": list(prepared.foreground_box),
                "crop_box_ltrb": list(prepared.crop_box),
                "original_size_wh": list(prepared.original_size),
                "source_size": self.config.model.source_size,
                "background_color": list(self.config.renderer.background_color),
                "source_c2w": prepared.c2w.tolist(),
                "source_intrinsics": prepared.intrinsics.tolist(),
            },
            "outputs": outputs,
            **report,
            "timings_s": timings,
        }
        if self.settings.mode == "text":
            result["prompt"] = build_prompt(item.source)
        write_json_atomic(result, output_dir / "result.json")
