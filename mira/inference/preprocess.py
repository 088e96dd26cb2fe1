"""Turn a user's image into the model's input: the framed object and its camera.

Steps (:func:`preprocess_image`):

1. :func:`load_image`: open the file, apply its EXIF orientation, fail clearly on a missing,
   empty or non-image file.
2. :func:`~mira.data.images.image_to_float_rgba` (shared with the dataset readers): any PIL mode
   (1, L, LA, P, PA, RGB, RGBA, CMYK, I;16, I, F ...) -> float RGB in [0, 1] and an alpha channel,
   or None when the image has no (informative) alpha.
3. The foreground mask: the alpha channel when present, else ``rembg`` (:class:`BackgroundRemover`),
   else (``--no_rembg``) the whole image is the object.
4. The source-view contract shared with training and evaluation
   (:func:`mira.data.source_view.prepare_source_view`): the object framed to ``foreground_ratio``
   of the square input, composited over ``cfg.renderer.background_color``, with the framed
   intrinsics of the camera assumed for the photo and the canonical source pose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from mira.data.images import image_to_float_rgba
from mira.data.source_view import FOREGROUND_ALPHA_THRESHOLD, SourceFraming, prepare_source_view
from mira.inference.errors import InputError, WeightsNotFoundError

_log = logging.getLogger(__name__)

# rembg's classic salient-object model (176 MB), the one TripoSR and OpenLRM users know.
DEFAULT_REMBG_MODEL = "u2net"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class PreprocessedImage:
    """The model input made from one image (:func:`mira.data.source_view.prepare_source_view`).

    Attributes:
        image: (3, S, S) float RGB in [0, 1], the framed object composited on the background colour.
        c2w: (4, 4) the canonical source camera (OpenCV), at the distance the framing gives.
        intrinsics: (4,) normalised intrinsics of the framed image (from the camera assumed for
            the original image: ``data.focal_length`` times its larger side, centred).
        mask_source: where the foreground came from: "alpha", "rembg" or "none" (whole image).
        foreground_box: (left, top, right, bottom) of the object in the original image, pixels.
        crop_box: (left, top, right, bottom) of the square crop that became the input, pixels.
        original_size: (width, height) of the original image after EXIF orientation.
    """

    image: Tensor
    c2w: Tensor
    intrinsics: Tensor
    mask_source: str
    foreground_box: tuple[int, int, int, int]
    crop_box: tuple[float, float, float, float]
    original_size: tuple[int, int]

    def to_pil(self) -> Image.Image:
        """The model input as an 8-bit RGB PIL image."""
        array = (self.image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(array, mode="RGB")


# ---------------------------------------------------------------------- reading
def load_image(path: str | Path) -> Image.Image:
    """Open an image file, decode it fully and apply its EXIF orientation.

    Raises:
        InputError: the file is missing, empty (0 bytes or 0 pixels) or not a readable image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file not found; check the path passed to --input")
    if not path.is_file():
        raise InputError(f"{path}: not a file; pass image files or a folder of images to --input")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); re-export or re-download the image")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError as error:
        raise InputError(f"{path}: not an image (PIL cannot identify it); pass a PNG, JPEG or WebP file") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated / corrupt data
        raise InputError(f"{path}: the image data is corrupt or truncated ({error}); re-export the image") from error
    if image.width == 0 or image.height == 0:
        raise InputError(f"{path}: the image is empty ({image.width}x{image.height} pixels)")
    return image


# ---------------------------------------------------------------------- background removal
@contextlib.contextmanager
def _rembg_home(directory: Path | None) -> Iterator[None]:
    """Temporarily point rembg's model home (``U2NET_HOME``) at ``directory``.

    rembg only loads custom model files from inside its home; a user's ``--rembg_model``
    path may be anywhere.
    """
    if directory is None:
        yield
        return
    previous = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(directory)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("U2NET_HOME", None)
        else:
            os.environ["U2NET_HOME"] = previous


def numba_cache_ready(package_dir: Path | None, cache_dir: str | None = None) -> bool:
    """True when numba's on-disk cache (``*.nbi`` index files) already holds compiled code of ``package_dir``.

    numba writes it next to the sources (``__pycache__``), or under ``NUMBA_CACHE_DIR`` (``cache_dir``) when
    that is set; no package (``None``) means nothing to compile.
    """
    if package_dir is None:
        return True
    if any(package_dir.rglob("__pycache__/*.nbi")):
        return True
    return bool(cache_dir) and any(path for path in Path(cache_dir).rglob("*.nbi") if package_dir.name in str(path))


def announce_rembg_setup(say: Callable[[str], None] | None = None) -> bool:
    """Say so (one line) before the first ``import rembg`` of this installation compiles its numba code.

    rembg imports pymatting, whose numba functions compile on their first import (about a minute on
    a small CPU) and are cached afterwards. Returns True when the line was said.
    """
    import importlib.util
    import sys

    if "rembg" in sys.modules:
        return False
    spec = importlib.util.find_spec("pymatting")
    package_dir = Path(spec.origin).parent if spec is not None and spec.origin else None
    if numba_cache_ready(package_dir, os.environ.get("NUMBA_CACHE_DIR")):
        return False
    (say or _log.warning)("background removal (rembg) is being set up: a one-off compilation of its numba code, "
                          "which may take a minute; later runs start at once")
    return True


# A remover, or a function that creates one when an image first needs it (rembg loads slowly).
RemoverSource = Union["BackgroundRemover", Callable[[], "BackgroundRemover"], None]


def _offline() -> bool:
    """True when downloads are switched off (``HF_HUB_OFFLINE``, which MIRA also applies to rembg)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


class BackgroundRemover:
    """A ``rembg`` session that gives each image a foreground alpha mask.

    Args:
        model: a rembg model name (``u2net``, ``isnet-general-use``, ``birefnet-general`` ...),
            looked up in rembg's model directory and downloaded there if missing (unless
            ``HF_HUB_OFFLINE`` is set);
            or a path to a U^2-Net-style ``.onnx`` file, loaded as rembg's ``u2net_custom``.
    Raises:
        WeightsNotFoundError: the model file is not on this machine and could not be downloaded.
    """

    def __init__(self, model: str = DEFAULT_REMBG_MODEL) -> None:
        announce_rembg_setup()
        import rembg
        from rembg.sessions import sessions as rembg_sessions

        self.model = model
        model_path = Path(model).expanduser()
        if model.endswith(".onnx") or model_path.is_file():
            if not model_path.is_file():
                raise WeightsNotFoundError(f"--rembg_model {model}: file not found; pass an existing .onnx file")
            with _rembg_home(model_path.resolve().parent):
                self.session = rembg.new_session("u2net_custom", model_path=str(model_path.resolve()))
            return
        if model not in rembg_sessions:
            raise InputError(
                f"--rembg_model '{model}' is neither a rembg model name nor an .onnx file; "
                f"rembg models: {', '.join(sorted(rembg_sessions))}"
            )
        session_class = rembg_sessions[model]
        model_dir = session_class.model_dir()
        how_to_fix = (
            f"Fix: download {model}.onnx (rembg's release page: https://github.com/danielgatis/rembg/releases) into "
            f"{model_dir}/ (rembg's model home is $U2NET_HOME if set, else $REMBG_HOME or ~/.rembg; files in the "
            "old ~/.u2net/ are found too), or pass --rembg_model /path/to/model.onnx, or use images with an alpha "
            "channel / --no_rembg."
        )
        if _offline() and model != "sam" and session_class.resolve_existing(f"{model}.onnx") is None:
            raise WeightsNotFoundError(
                f"rembg model '{model}' is not on this machine and downloads are off (HF_HUB_OFFLINE).\n{how_to_fix}"
            )
        try:
            self.session = rembg.new_session(model)
        except Exception as error:  # failed download (requests), checksum, corrupt file
            raise WeightsNotFoundError(
                f"rembg model '{model}' is not on this machine and could not be downloaded "
                f"({type(error).__name__}: {error}).\n{how_to_fix}"
            ) from error

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        """Foreground alpha (H, W) in [0, 1] of a float RGB image (H, W, 3) in [0, 1]."""
        import rembg

        image = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), mode="RGB")
        mask = rembg.remove(image, session=self.session, only_mask=True)
        alpha = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
        if alpha.shape != rgb.shape[:2]:
            raise RuntimeError(f"rembg returned a {alpha.shape} mask for a {rgb.shape[:2]} image")
        return alpha


# ---------------------------------------------------------------------- the source view
def foreground_box(alpha: np.ndarray, threshold: float = FOREGROUND_ALPHA_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Bounding box ``(left, top, right, bottom)`` (right/bottom exclusive) of ``alpha > threshold``, or None."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def preprocess_image(
    image: Image.Image,
    framing: SourceFraming,
    background_color: Sequence[float],
    remover: RemoverSource = None,
    name: str = "<image>",
) -> PreprocessedImage:
    """The model input for one PIL image of any mode (EXIF orientation already applied,
    see :func:`load_image`); the arguments are those of :func:`preprocess_arrays`."""
    rgb, alpha = image_to_float_rgba(image)
    return preprocess_arrays(rgb, alpha, framing, background_color, remover, name)


def preprocess_arrays(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    framing: SourceFraming,
    background_color: Sequence[float],
    remover: RemoverSource = None,
    name: str = "<image>",
) -> PreprocessedImage:
    """The model input for one image (see the module docstring).

    Args:
        rgb: (H, W, 3) float in [0, 1]; alpha: (H, W) float in [0, 1] or None (no alpha),
            as returned by :func:`image_to_float_rgba`.
        framing: the source-view contract (:meth:`SourceFraming.from_config`, with the run's
            ``--foreground_ratio``).
        background_color: RGB in [0, 1] (``cfg.renderer.background_color``).
        remover: used when ``alpha`` is None (a :class:`BackgroundRemover`, or a function
            returning one, called only then); None means the whole image is the object (it is
            only padded to a square, never cropped or rescaled within).
        name: the file name, for error messages.
    Raises:
        InputError: fully transparent image, an image with no content, or no object found.
    """
    if alpha is not None:
        mask_source = "alpha"
        if alpha.max() <= FOREGROUND_ALPHA_THRESHOLD:
            raise InputError(
                f"{name}: the image is fully transparent (no pixel has alpha > {FOREGROUND_ALPHA_THRESHOLD}); "
                "there is no object to reconstruct"
            )
    elif np.ptp(rgb) == 0.0:
        raise InputError(f"{name}: the image is empty: every pixel has the same colour, there is no object in it")
    elif remover is not None:
        mask_source = "rembg"
        if not isinstance(remover, BackgroundRemover):
            remover = remover()
        alpha = remover.alpha(rgb)
        if not np.isfinite(alpha).all() or alpha.max() <= FOREGROUND_ALPHA_THRESHOLD:
            raise InputError(f"{name}: background removal (rembg '{remover.model}') found no object in the image")
    else:
        mask_source = "none"
        alpha = np.ones(rgb.shape[:2], dtype=np.float32)
        framing = dataclasses.replace(framing, foreground_ratio=1.0)
    box = foreground_box(alpha)
    assert box is not None  # checked above
    rgba = torch.from_numpy(np.ascontiguousarray(np.concatenate([rgb, alpha[..., None]], axis=-1))).permute(2, 0, 1)
    view = prepare_source_view(rgba[None].float(), framing, background_color)
    height, width = rgb.shape[:2]
    return PreprocessedImage(image=view.image[0], c2w=view.c2w[0], intrinsics=view.intrinsics[0],
                             mask_source=mask_source, foreground_box=box,
                             crop_box=tuple(float(v) for v in view.crop_box[0]), original_size=(width, height))


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
