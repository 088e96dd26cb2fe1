"""``python -m mira.app``: serve the web app (the model is loaded once, before the server starts).

    python -m mira.app                                  # shipped mira-demo model, http://127.0.0.1:7860
    python -m mira.app --checkpoint_path C --host 0.0.0.0 --port 8080 --share

``--output_dir`` (the old spelling of ``--output_path``) still works.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from mira.cli_options import add_hidden_alias, new_parser
from mira.config import ConfigError
from mira.devices import DeviceUnavailableError
from mira.inference.checkpoint import DEFAULT_CHECKPOINT
from mira.inference.errors import InferenceError
from mira.inference.pipeline import InferenceSettings
from mira.inference.preprocess import DEFAULT_REMBG_MODEL
from mira.inference.text_to_image import DEFAULT_TEXT_MODEL


EPILOG = """examples:
  python -m mira.app  # the shipped mira-demo model at http://127.0.0.1:7860
  python -m mira.app --device cpu --num_frames 30 --render_size 96  # lighter videos, sooner, on a CPU
  python -m mira.app --checkpoint_path mira/weights/mira-demo --host 0.0.0.0 --port 8080 --output_path outputs/app
"""


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m mira.app`` (the names ``test.py`` uses for the same things)."""
    p = new_parser("python -m mira.app", "MIRA web app: image or prompt -> 3D model.", EPILOG)
    p.add_argument("--checkpoint_path", default=str(DEFAULT_CHECKPOINT),
                   help="any checkpoint test.py takes (default: the shipped mira-demo model)")
    p.add_argument("--config_path", default=None, help="JSON config, when the checkpoint carries none (default: the checkpoint's)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cuda, cuda:1, cpu")
    p.add_argument("--num_frames", type=int, default=None, help="video frames (default: 120 on a GPU, 60 on the CPU)")
    p.add_argument("--render_size", type=int, default=None, help="video side, pixels (default: 256 on a GPU, 128 on the CPU)")
    p.add_argument("--texture_size", type=int, default=1024, help="side of baked textures, pixels")
    p.add_argument("--text_model", default=DEFAULT_TEXT_MODEL,
                   help="diffusers text-to-image hub id or local pipeline directory, for prompts")
    p.add_argument("--rembg_model", default=DEFAULT_REMBG_MODEL, help="rembg model name or U2-Net style .onnx file")
    p.add_argument("--output_path", default=None, help="where results are kept (default: a new temporary folder)")
    add_hidden_alias(p, "--output_dir", dest="output_path")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, build the page, serve it until interrupted; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        from mira.app.runner import AppRunner
        from mira.app.ui import build_app, import_gradio

        import_gradio()
        settings = InferenceSettings(
            checkpoint_path=args.checkpoint_path, config_path=args.config_path, inputs=["(web app)"],
            device=args.device, num_frames=args.num_frames, render_size=args.render_size,
            texture_size=args.texture_size, text_model=args.text_model, rembg_model=args.rembg_model,
        )
        runner = AppRunner(settings, args.output_path)
        runner.load()
    except (InferenceError, ConfigError, DeviceUnavailableError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    s = runner.pipeline.settings
    app = build_app(runner, default_foreground_ratio=runner.pipeline.config.data.source_foreground_ratio,
                    default_mesh_resolution=s.mesh_resolution)
    app.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(runner.output_dir)],
        show_error=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
