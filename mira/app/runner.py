"""What the web app does per click, without any UI: one :class:`~mira.inference.pipeline.InferencePipeline`
(the model loaded once), one request -> one output folder with the processed input, GLB / OBJ / PLY
and the orbit video.

The app's widgets map onto :class:`AppRequest`; :meth:`AppRunner.run` turns the request into the
same :class:`~mira.inference.pipeline.InferenceSettings` that ``test.py`` builds from its flags
and calls the same ``process``. Requests run one at a time (the Gradio queue's default, and a lock
here), because they share the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mira.export.mesh import MeshExtractionError
from mira.export.texture import TextureBakeError
from mira.inference.errors import InferenceError, InputError
from mira.inference.pipeline import InferencePipeline, InferenceSettings, WorkItem, fill_device_defaults, slugify

log = logging.getLogger(__name__)

# Fraction of the progress bar reached when each pipeline stage starts.
STAGE_PROGRESS = {
    "text_to_image": (0.02, "generating the image from the prompt"),
    "preprocess": (0.10, "removing the background and framing the object"),
    "reconstruct": (0.20, "reconstructing the triplane"),
    "mesh": (0.35, "extracting the mesh (and baking the texture)"),
    "video": (0.70, "rendering the orbit video"),
}
# Errors the app shows as a message in the page (the user can act on them); anything else is a bug.
USER_ERRORS = (InferenceError, MeshExtractionError, TextureBakeError)


@dataclass
class AppRequest:
    """One click of "Generate".

    Attributes:
        image_path: the uploaded image file, or None in text mode.
        image_name: the uploaded file's own name (messages name it, not the server's temporary copy).
        prompt: a text prompt, used when no image is given.
        remove_background: run rembg on images without an alpha channel.
        foreground_ratio: object size / input size after framing, in (0, 1].
        mesh_resolution: marching-cubes grid points per axis.
        texture: bake a UV texture (else vertex colours).
    """

    image_path: str | None = None
    image_name: str | None = None
    prompt: str = ""
    remove_background: bool = True
    foreground_ratio: float = 0.85
    mesh_resolution: int = 128
    texture: bool = False


@dataclass
class AppResult:
    """The files one request wrote (absolute paths) and a one-line summary."""

    folder: Path
    input_image: Path
    glb: Path
    obj: Path
    ply: Path
    video: Path
    summary: str


class AppRunner:
    """Loads the model once; runs requests one at a time.

    Args:
        settings: the base inference settings (checkpoint, device, video size ...); per request the
            app's fields replace theirs.
        output_dir: each request writes ``output_dir/<n>_<name>/``; default a fresh temporary folder
            (Gradio serves files from the system temporary directory).
    """

    def __init__(self, settings: InferenceSettings, output_dir: str | Path | None = None) -> None:
        self.base_settings = dataclasses.replace(
            settings, export_mesh=True, export_video=True, mesh_format="glb", extra_mesh_formats=("obj", "ply"),
            video_format="mp4", progress=False,
        )
        self.pipeline = InferencePipeline(self.base_settings)
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="mira-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._count = 0

    def load(self) -> None:
        """Load the model now (the app does it before it starts serving)."""
        self.pipeline.load()

    def settings_for(self, request: AppRequest) -> InferenceSettings:
        """The inference settings of one request (checked; :class:`InferenceError` when out of range)."""
        text_mode = request.image_path is None
        settings = dataclasses.replace(
            self.base_settings,
            mode="text" if text_mode else "image",
            inputs=[request.prompt if text_mode else request.image_path],
            no_rembg=not request.remove_background,
            foreground_ratio=float(request.foreground_ratio),
            mesh_resolution=int(request.mesh_resolution),
            texture=bool(request.texture),
        )
        settings.validate()
        return fill_device_defaults(settings, self.pipeline.device)

    def run(self, request: AppRequest, on_stage: Callable[[float, str], None] | None = None) -> AppResult:
        """Reconstruct one image or prompt; files go to a new folder under ``output_dir``.

        Args:
            request: the widgets' values.
            on_stage: called with (fraction done, description) as each stage starts.
        Raises:
            InputError: no input, or an unusable image / prompt (the message names the file).
            InferenceError, MeshExtractionError, TextureBakeError: other problems the user can act on.
        """
        if request.image_path is None and not request.prompt.strip():
            raise InputError("Upload an image or type a prompt first.")
        with self._lock:
            self.pipeline.settings = self.settings_for(request)
            self.pipeline.load()
            self._count += 1
            name = Path(request.image_name).stem if request.image_name else (request.prompt or "input")
            item = WorkItem(source=self.pipeline.settings.inputs[0], name=f"{self._count:04d}_{slugify(name)}")
            self.pipeline.settings = dataclasses.replace(self.pipeline.settings, output_path=str(self.output_dir))

            def stage_started(stage: str) -> None:
                if on_stage is not None and stage in STAGE_PROGRESS:
                    on_stage(*STAGE_PROGRESS[stage])

            try:
                folder = self.pipeline.process(item, on_stage=stage_started)
            except USER_ERRORS as error:
                message = str(error)
                if request.image_path and request.image_name:  # the server's temporary path means nothing to the user
                    message = message.replace(str(request.image_path), request.image_name)
                raise type(error)(message) from error
        return self._result(folder.resolve(), request)

    def _result(self, folder: Path, request: AppRequest) -> AppResult:
        obj = folder / "mesh.obj"
        companions = [folder / "mesh.mtl", folder / "mesh.png"]
        if all(path.exists() for path in companions):  # a textured OBJ is three files: one download
            bundle = folder / "mesh_obj.zip"
            with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in (obj, *companions):
                    archive.write(path, arcname=path.name)
            obj = bundle
        result = json.loads((folder / "result.json").read_text())
        timings = result["timings_s"]
        summary = (f"{result['mesh']['faces']:,} faces, {'textured' if request.texture else 'vertex colours'}; "
                   f"{timings['total']:.1f} s on {result['device']}")
        return AppResult(folder=folder, input_image=folder / "input.png", glb=folder / "mesh.glb", obj=obj,
                         ply=folder / "mesh.ply", video=folder / "video.mp4", summary=summary)
