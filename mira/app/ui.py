"""The Gradio page: widgets in, :class:`~mira.app.runner.AppRunner` does the work, files out.

Element ids (``elem_id``) the browser test relies on: ``image_upload``, ``prompt``, ``generate``,
``status``, ``processed_input``, ``viewer``, ``video``, ``download_glb``, ``download_obj``,
``download_ply``.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from mira.app.runner import USER_ERRORS, AppRequest, AppRunner
from mira.inference.errors import InferenceError

log = logging.getLogger(__name__)

TITLE = "MIRA: one image (or a prompt) to a 3D model"
INTRO = (
    "Upload a picture of one object (a PNG with transparency, or any photo: the background is removed) "
    "or type a prompt, then **Generate**. The model reconstructs a triplane, extracts a mesh, and renders "
    "a 360° video. Meshes: GLB (+Y up, for web viewers, game engines, Blender), OBJ (+Y up; a zip with "
    "MTL and PNG when textured), PLY (MIRA's +Z-up world)."
)
# glTF's front (+Z) seen from slightly above: Babylon's (alpha, beta) in degrees; radius chosen by the viewer.
VIEWER_CAMERA = (90.0, 80.0, None)


def import_gradio() -> Any:
    """The gradio module, or an error that says how to install it."""
    # No usage reports to Gradio's servers: the app talks only to its own users.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        return importlib.import_module("gradio")
    except ImportError as error:
        raise InferenceError("the web app needs gradio: pip install gradio") from error


def model_viewer(gr: Any, **kwargs: Any) -> Any:
    """The app's 3D viewer: a ``gr.Model3D`` whose first view is glTF's front (the input view, image
    right on the right, +Y up), from slightly above, on white."""
    return gr.Model3D(camera_position=VIEWER_CAMERA, height=420, clear_color=(1.0, 1.0, 1.0, 1.0), **kwargs)


def build_app(runner: AppRunner, default_foreground_ratio: float = 0.85, default_mesh_resolution: int = 128) -> Any:
    """The Gradio Blocks of the app, bound to ``runner``."""
    gr = import_gradio()

    def generate(upload: str | None, prompt: str, remove_background: bool, foreground_ratio: float,
                 mesh_resolution: float, texture: bool, progress: Any = gr.Progress()) -> tuple:
        """One click: (status, processed input, viewer, video, glb, obj, ply)."""
        nothing = (None,) * 6
        request = AppRequest(
            image_path=upload, image_name=Path(upload).name if upload else None, prompt=prompt or "",
            remove_background=remove_background, foreground_ratio=foreground_ratio,
            mesh_resolution=int(mesh_resolution), texture=texture,
        )
        progress(0.0, desc="starting")
        try:
            result = runner.run(request, on_stage=lambda fraction, text: progress(fraction, desc=text))
        except USER_ERRORS as error:
            return (f"**Error:** {error}", *nothing)
        except Exception as error:  # a bug, not the user's input: the traceback goes to the server log only
            log.exception("request failed")
            return (f"**Error:** the reconstruction failed unexpectedly ({type(error).__name__}); "
                    "the server log has the details.", *nothing)
        progress(1.0, desc="done")
        files = (str(result.input_image), str(result.glb), str(result.video), str(result.glb), str(result.obj),
                 str(result.ply))
        return (f"**Done:** {result.summary}", *files)

    with gr.Blocks(title="MIRA") as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (PNG, JPEG, WebP)", file_types=["image"], type="filepath",
                                 elem_id="image_upload")
                prompt = gr.Textbox(label="…or a text prompt (used when no image is uploaded)", elem_id="prompt",
                                    placeholder="a red vintage armchair")
                remove_background = gr.Checkbox(value=True, label="Remove the background (images without transparency)",
                                                elem_id="remove_background")
                foreground_ratio = gr.Slider(0.5, 1.0, value=default_foreground_ratio, step=0.01,
                                             label="Foreground ratio (object size / image size)", elem_id="foreground_ratio")
                mesh_resolution = gr.Slider(32, 384, value=default_mesh_resolution, step=16,
                                            label="Mesh resolution (grid points per axis)", elem_id="mesh_resolution")
                texture = gr.Checkbox(value=False, label="UV texture (else vertex colours)", elem_id="texture")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown("", elem_id="status")
                processed = gr.Image(label="Processed input", type="filepath", interactive=False,
                                     elem_id="processed_input")
            with gr.Column(scale=2):
                viewer = model_viewer(gr, label="3D model (GLB)", elem_id="viewer")
                video = gr.Video(label="Orbit video", autoplay=True, loop=True, interactive=False, height=320, elem_id="video")
                with gr.Row():
                    download_glb = gr.DownloadButton("Download GLB", elem_id="download_glb")
                    download_obj = gr.DownloadButton("Download OBJ", elem_id="download_obj")
                    download_ply = gr.DownloadButton("Download PLY", elem_id="download_ply")
        button.click(
            generate,
            inputs=[upload, prompt, remove_background, foreground_ratio, mesh_resolution, texture],
            outputs=[status, processed, viewer, video, download_glb, download_obj, download_ply],
        )
    return app
