"""Text mode: a prompt -> an image of one centred object on a plain background (diffusers).

The image then goes through the image path (background removal, centring, reconstruction).

Default model: ``stabilityai/sdxl-turbo``. It is an adversarially distilled SDXL that makes a
512 x 512 image in 1-4 denoising steps without classifier-free guidance (about 0.1-0.3 s on
one H100 in fp16, versus several seconds for 25-50 step SDXL / SD 1.5), with SDXL-level
prompt following, which matters for "a single object on a white background". Its licence is
non-commercial research (Stability AI Community / sai-nc); pass ``--text_model`` for any
other diffusers text-to-image repo or local directory (e.g. ``stabilityai/sd-turbo``, smaller;
or a 25-step SDXL with ``--text_steps 25 --text_guidance_scale 5``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from PIL import Image

from mira.hub import hub_offline_reason
from mira.inference.errors import InputError, WeightsNotFoundError

DEFAULT_TEXT_MODEL = "stabilityai/sdxl-turbo"
DEFAULT_TEXT_STEPS = 4  # SDXL-Turbo: 1 works, 4 gives cleaner object edges
DEFAULT_GUIDANCE_SCALE = 0.0  # Turbo models are trained without classifier-free guidance
DEFAULT_TEXT_IMAGE_SIZE = 512  # SDXL-Turbo's training resolution
# A single, whole, centred object on a plain background: what background removal and a
# model trained on object-centric renders expect.
PROMPT_TEMPLATE = (
    "{prompt}, a single object, centered, full view, isolated on a plain white background, "
    "studio lighting, high quality 3D render"
)
NEGATIVE_PROMPT = "multiple objects, cropped, out of frame, text, watermark, busy background, cast shadow, blurry"

log = logging.getLogger(__name__)


def in_hub_cache(model_id: str) -> bool:
    """True when the Hugging Face cache holds the pipeline index (``model_index.json``) of hub id ``model_id``."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "model_index.json")
    except ValueError:  # not a valid repo id (HFValidationError)
        return False
    return isinstance(found, str)


def missing_model_message(model_id: str, offline: str | None, error: Exception | None = None) -> str:
    """The one message for a text-to-image model that cannot be loaded: why, and how to get it."""
    from huggingface_hub import constants

    why = f"it cannot be downloaded now: {offline}" if offline else "it could not be downloaded"
    message = (
        f"text-to-image model '{model_id}' is not a local diffusers directory nor in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and {why}.\nFix: on a machine with internet run `hf download {model_id}` "
        f"(older huggingface_hub: `huggingface-cli download {model_id}`; HF_HOME sets the cache), "
        f"or pass --text_model /path/to/a/diffusers/pipeline/dir."
    )
    return message + (f"\nOriginal error: {type(error).__name__}: {error}" if error is not None else "")


def build_prompt(prompt: str) -> str:
    """The full prompt for the user's ``prompt``; an empty prompt is an :class:`InputError`."""
    prompt = prompt.strip()
    if not prompt:
        raise InputError("the prompt is empty; pass a description of one object, e.g. --input \"a red wooden chair\"")
    return PROMPT_TEMPLATE.format(prompt=prompt)


class TextToImage:
    """A diffusers text-to-image pipeline (``AutoPipelineForText2Image``), loaded once.

    Args:
        model_id: a diffusers hub id or a local directory written by ``save_pretrained``.
        device: where the pipeline runs; on CUDA it runs in fp16.
    Raises:
        WeightsNotFoundError: the model is neither a local directory nor in the Hugging Face
            cache, and could not be downloaded. With ``HF_HUB_OFFLINE`` set or the hub unreachable
            (:func:`mira.hub.hub_offline_reason`) this comes at once, without download retries.
    """

    def __init__(self, model_id: str = DEFAULT_TEXT_MODEL, device: str | torch.device = "cpu") -> None:
        self.model_id = model_id
        self.device = torch.device(device)
        offline = None if Path(model_id).expanduser().is_dir() else hub_offline_reason()
        if offline is not None and not in_hub_cache(model_id):
            raise WeightsNotFoundError(missing_model_message(model_id, offline))  # at once: no retries
        from diffusers import AutoPipelineForText2Image

        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        try:
            pipeline = self._load(AutoPipelineForText2Image, model_id, dtype, local_files_only=offline is not None)
        except (OSError, ValueError) as error:
            raise WeightsNotFoundError(missing_model_message(model_id, offline, error)) from error
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline.to(self.device)

    @staticmethod
    def _load(pipeline_class: type, model_id: str, dtype: torch.dtype, local_files_only: bool = False):
        """``from_pretrained``; in fp16, the repo's fp16 weight files when it has them (half the download).

        ``local_files_only``: read the Hugging Face cache only (offline), never the network.
        """
        local = Path(model_id).expanduser()
        source = str(local) if local.is_dir() else model_id
        options = {"torch_dtype": dtype, "local_files_only": local_files_only}
        with warnings.catch_warnings():
            # diffusers >= 0.36 renames torch_dtype to dtype; torch_dtype works in every supported version.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            # diffusers passes huggingface_hub a deprecated argument (a warning per file, nothing for the user to do).
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*", category=UserWarning)
            if dtype == torch.float16 and not local.is_dir():
                try:
                    return pipeline_class.from_pretrained(source, variant="fp16", **options)
                except (OSError, ValueError) as error:
                    log.info("no fp16 weight files in %s (%s); loading the default weights in fp16", model_id, error)
            return pipeline_class.from_pretrained(source, **options)

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        seed: int = 0,
        num_steps: int = DEFAULT_TEXT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        size: int = DEFAULT_TEXT_IMAGE_SIZE,
    ) -> Image.Image:
        """One RGB image for ``prompt`` (templated by :func:`build_prompt`), reproducible by ``seed``."""
        full_prompt = build_prompt(prompt)
        generator = torch.Generator("cpu").manual_seed(seed)  # CPU noise: the same image on any device
        result = self.pipeline(
            prompt=full_prompt,
            negative_prompt=NEGATIVE_PROMPT if guidance_scale > 1.0 else None,
            num_inference_steps=num_steps,
            guidance_scale=guidance_scale,
            height=size,
            width=size,
            generator=generator,
        )
        return result.images[0].convert("RGB")
