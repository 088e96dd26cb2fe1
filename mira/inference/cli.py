"""Command line of ``test.py``: parse the flags, run :class:`~mira.inference.pipeline.InferencePipeline`.

Exit codes: 0 when every input worked, 1 when any input or the setup failed (each problem is
printed as one ``error:`` line), 2 for invalid flags (argparse).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from mira.cli_options import new_parser
from mira.config import ConfigError
from mira.devices import DeviceUnavailableError
from mira.export.mesh import MeshExtractionError
from mira.inference.checkpoint import DEFAULT_CHECKPOINT
from mira.export.texture import TextureBakeError
from mira.inference.errors import InferenceError
from mira.inference.pipeline import InferencePipeline, InferenceSettings
from mira.inference.preprocess import DEFAULT_REMBG_MODEL
from mira.inference.text_to_image import (
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_TEXT_IMAGE_SIZE,
    DEFAULT_TEXT_MODEL,
    DEFAULT_TEXT_STEPS,
)

log = logging.getLogger("mira.inference")

EXAMPLE = """examples:
  python test.py --mode image --input docs/examples/procedural_000000000_blender.png --output_path outputs/quickstart --export_video --export_mesh
  python test.py --input docs/examples/procedural_000000001_blender.png --output_path outputs/quick --export_video --num_frames 30 --render_size 96  # a quick video on a CPU
  python test.py --checkpoint_path mira/weights/mira-demo --input docs/examples/ --output_path outputs/examples --export_mesh --mesh_format glb --texture
  python test.py --checkpoint_path checkpoints/tiny-spheres --input docs/examples/procedural_000000001_blender.png --output_path outputs/tiny --export_mesh --density_threshold 0.5  # after train_ddp.py --help's first example
  python test.py --checkpoint_path zxhezexin/openlrm-mix-base-1.1 --input docs/examples/procedural_000000002_blender.png --export_mesh  # downloads once
  python test.py --mode text --input "a red wooden chair" --export_video  # needs the text model: hf download stabilityai/sdxl-turbo
(without --checkpoint_path: the shipped mira-demo model, mira/weights/mira-demo; see docs/TRAINING.md)
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``test.py`` argument parser (flag names match ``InferenceSettings`` fields)."""
    d = InferenceSettings
    p = new_parser("test.py", "MIRA inference: images or text prompts -> coloured mesh and 360-degree video.", EXAMPLE)
    io = p.add_argument_group("model and inputs")
    io.add_argument("--checkpoint_path", default=str(DEFAULT_CHECKPOINT),
                    help="save_pretrained directory, training checkpoint (.pt) or folder of them, .safetensors, or hub id "
                         "(default: the shipped mira-demo model)")
    io.add_argument("--config_path", default=None,
                    help="JSON config; optional when the checkpoint carries its config (must then match its "
                         "architecture; default: the checkpoint's)")
    io.add_argument("--mode", choices=("image", "text"), default=d.mode, help="inputs are image files/folders or prompts")
    io.add_argument("--input", dest="inputs", nargs="+", required=True, metavar="X",
                    help="image files and/or folders of images (image mode), or prompts (text mode)")
    io.add_argument("--output_path", default=d.output_path, help="results go to OUTPUT_PATH/<input name>/")
    io.add_argument("--device", default=d.device, help="auto (CUDA if available), cuda, cuda:1, cpu")
    io.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=d.precision,
                    help="autocast dtype of the model on CUDA (CPU always runs fp32)")
    io.add_argument("--compile", action="store_true",
                    help="torch.compile image -> triplane (CUDA graphs on a GPU; with --precision bf16/fp16 the encoder "
                         "and decoder weights in that dtype): about a minute more for the first image, then a faster "
                         "reconstruction (mira-base on an H100: 7.5 ms against 20.5 ms; worth it for folders)")
    io.add_argument("--seed", type=int, default=d.seed, help="random seed (text-to-image noise)")

    pre = p.add_argument_group("image preprocessing")
    pre.add_argument("--no_rembg", action="store_true",
                     help="no background removal: images without alpha are used whole (padded to a square)")
    pre.add_argument("--rembg_model", default=DEFAULT_REMBG_MODEL,
                     help="rembg model name (u2net, isnet-general-use, birefnet-general ...) or a U2-Net style .onnx file")
    pre.add_argument("--foreground_ratio", type=float, default=None,
                     help="object size / input size after framing, in (0, 1] (default: the model's "
                          "data.source_foreground_ratio, the framing it was trained with)")

    text = p.add_argument_group("text mode")
    text.add_argument("--text_model", default=DEFAULT_TEXT_MODEL,
                      help="diffusers text-to-image hub id or local pipeline directory (default: %(default)s, 1-4 steps)")
    text.add_argument("--text_steps", type=int, default=DEFAULT_TEXT_STEPS, help="denoising steps")
    text.add_argument("--text_guidance_scale", type=float, default=DEFAULT_GUIDANCE_SCALE,
                      help="classifier-free guidance (0 for Turbo models; ~5-7.5 for regular ones)")
    text.add_argument("--text_image_size", type=int, default=DEFAULT_TEXT_IMAGE_SIZE, help="generated image side, pixels")

    mesh = p.add_argument_group("mesh")
    mesh.add_argument("--export_mesh", action="store_true", help="write mesh.<format>")
    mesh.add_argument("--mesh_resolution", type=int, default=None,
                      help="marching-cubes grid points per axis (default: 256 on a GPU, 128 on the CPU)")
    mesh.add_argument("--mesh_format", choices=("ply", "obj", "glb"), default=d.mesh_format,
                      help="ply keeps MIRA's +Z-up world; obj and glb are +Y up, the input view facing +Z (docs/EXPORT.md)")
    mesh.add_argument("--density_threshold", type=float, default=None,
                      help="iso-level of the surface (default: the checkpoint's mesh_density_threshold)")
    mesh.add_argument("--largest_component", action="store_true", help="keep only the largest connected part")
    mesh.add_argument("--mesh_target_faces", "--target_faces", dest="mesh_target_faces", type=int, default=None,
                      help="quadric simplification to about this many faces (fast_simplification; default: none)")
    mesh.add_argument("--remesh", choices=("none", "triangle", "quad"), default=d.remesh,
                      help="Instant Meshes remeshing: even triangles, or quads (written as triangle pairs); "
                           "to --mesh_target_faces / 2 vertices if given")
    mesh.add_argument("--texture", action="store_true",
                      help="UV-unwrap (xatlas) and bake the colour into a texture: glb with a PBR base-colour "
                           "texture, obj + mtl + png (else vertex colours)")
    mesh.add_argument("--texture_size", type=int, default=d.texture_size, help="texture side, pixels")

    video = p.add_argument_group("video")
    video.add_argument("--export_video", action="store_true", help="write video.<format>, a 360-degree orbit")
    video.add_argument("--video_format", choices=("mp4", "gif"), default=d.video_format, help="video file format")
    video.add_argument("--num_frames", type=int, default=None, help="frames of the orbit (default: 120 on a GPU, 60 on the CPU)")
    video.add_argument("--render_size", type=int, default=None,
                       help="frame side, pixels, even for mp4 (default: 256 on a GPU, 128 on the CPU)")
    video.add_argument("--no_empty_space_skipping", dest="skip_empty_space", action="store_false",
                       help="evaluate the field at every sample (exhaustive; slower, differs by < 1 %% opacity per sample)")
    video.add_argument("--video_bake_resolution", type=int, default=None, metavar="N",
                       help="render the video from the field baked on an N^3 grid, 0: the exact field "
                            "(default: 96 on the CPU, about 7x faster at 55 dB PSNR to the exact frames; 0 on a GPU)")
    video.add_argument("--elevation", type=float, default=d.elevation, help="orbit elevation, degrees above the XY plane")
    video.add_argument("--distance", type=float, default=None,
                       help="orbit radius, world units (default: the input view's canonical camera distance)")
    video.add_argument("--fps", type=float, default=d.fps, help="video frames per second")
    p.add_argument("--no_progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--save_triplanes", action="store_true", help="also write triplanes.safetensors (1, 3, C, R, R)")
    return p


def parse_settings(argv: Sequence[str] | None = None) -> InferenceSettings:
    """Command-line flags -> :class:`InferenceSettings`."""
    return InferenceSettings(**vars(build_parser().parse_args(argv)))


def describe_outputs(directory: Path) -> str:
    """``"input.png (16 KB), mesh.ply (1.0 MB), ..."``: the files written for one input, with their sizes."""
    def size(path: Path) -> str:
        count = path.stat().st_size
        return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{max(1, round(count / 1e3))} KB"

    return ", ".join(f"{path.name} ({size(path)})" for path in sorted(directory.iterdir()) if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Run inference; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = parse_settings(argv)
    try:
        pipeline = InferencePipeline(settings)
        summary = pipeline.run()
    except (InferenceError, ConfigError, DeviceUnavailableError, MeshExtractionError, TextureBakeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for source, message in summary.failed:
        print(f"error: {message}" if source in message else f"error: {source}: {message}", file=sys.stderr)
    for directory in summary.succeeded:
        print(f"wrote {directory}: {describe_outputs(Path(directory))}")
    if summary.failed:
        print(f"{len(summary.failed)} of {len(summary.failed) + len(summary.succeeded)} inputs failed", file=sys.stderr)
        return 1
    return 0
