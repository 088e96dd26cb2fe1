"""Image preprocessing: file checks, every PIL mode, EXIF, alpha / rembg masks, centring, camera."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers_inference import build_tiny_rembg_onnx, object_image, tiny_config
from mira.cameras import canonical_source_c2w
from mira.data.source_view import SourceFraming
from mira.inference.errors import InputError, WeightsNotFoundError
from mira.inference.preprocess import (
    BackgroundRemover,
    foreground_box,
    image_to_float_rgba,
    load_image,
    preprocess_image,
)

WHITE = (1.0, 1.0, 1.0)


def framing(size: int, ratio: float = 0.85) -> SourceFraming:
    return SourceFraming(size=size, foreground_ratio=ratio)


# ---------------------------------------------------------------------- files
def test_bad_files_raise_clear_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "notes.png")
    buffer = io.BytesIO()
    Image.fromarray(object_image()).save(buffer, format="PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated.png"):
        load_image(tmp_path / "truncated.png")


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:4, :4] = (255, 0, 0)  # red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "rotated.jpg")
    assert image.size == (20, 40)  # displayed upright: width and height swapped
    displayed = np.asarray(image)
    assert displayed[:4, -4:, 0].mean() > 200 and displayed[:4, :4, 0].mean() < 60  # marker now top-right


# ---------------------------------------------------------------------- modes
def _mode_images() -> dict[str, Image.Image]:
    rgba = Image.fromarray(object_image(), mode="RGBA")
    palette_with_alpha = rgba.convert("P")
    palette_with_alpha.info["transparency"] = 0
    grey16 = Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    return {
        "RGBA": rgba,
        "RGB": rgba.convert("RGB"),
        "L": rgba.convert("L"),
        "LA": rgba.convert("LA"),
        "1": rgba.convert("1"),
        "P": rgba.convert("RGB").convert("P"),
        "P+transparency": palette_with_alpha,
        "CMYK": rgba.convert("RGB").convert("CMYK"),
        "I;16": grey16,
        "I": grey16.convert("I"),
        "F": Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)),
    }


@pytest.mark.parametrize("mode", list(_mode_images()))
def test_every_mode_gives_a_valid_model_input(tmp_path, mode):
    image = _mode_images()[mode]
    prepared = preprocess_image(image, framing(32), WHITE, remover=None)
    assert prepared.image.shape == (3, 32, 32) and prepared.image.dtype == torch.float32
    assert torch.isfinite(prepared.image).all() and prepared.image.min() >= 0 and prepared.image.max() <= 1
    expected_source = "alpha" if mode in ("RGBA", "LA", "P+transparency") else "none"
    assert prepared.mask_source == expected_source
    assert prepared.image.std() > 0.05  # the content survived the conversion


def test_sixteen_bit_grey_uses_its_full_range():
    grey16 = _mode_images()["I;16"]
    rgb, alpha = image_to_float_rgba(grey16)
    assert alpha is None
    assert rgb.min() == 0.0 and rgb.max() == pytest.approx(1.0)
    assert rgb[24, 32, 0] == pytest.approx(0.5, abs=0.02)  # not clipped at 255 / 65535


def test_palette_transparency_and_opaque_alpha():
    _, alpha = image_to_float_rgba(_mode_images()["P+transparency"])
    assert alpha is not None and alpha.min() == 0.0 and alpha.max() == 1.0
    opaque = Image.fromarray(np.full((8, 8, 4), 255, np.uint8), mode="RGBA")
    assert image_to_float_rgba(opaque)[1] is None  # an all-opaque alpha says nothing about the object


# ---------------------------------------------------------------------- centring
def test_alpha_object_is_cropped_centred_and_scaled():
    box = (10, 50, 40, 70)  # 30 wide, 20 tall, far off-centre
    image = Image.fromarray(object_image(width=120, height=90, box=box), mode="RGBA")
    background = (0.0, 0.0, 1.0)
    prepared = preprocess_image(image, framing(64, 0.5), background, remover=None)
    assert prepared.foreground_box == box and prepared.original_size == (120, 90)
    out = prepared.image.numpy()
    is_object = np.abs(out - np.array(background)[:, None, None]).max(axis=0) > 0.5
    rows, cols = np.nonzero(is_object)
    assert cols.max() - cols.min() + 1 == pytest.approx(32, abs=1)  # 0.5 * 64: longer side
    assert rows.max() - rows.min() + 1 == pytest.approx(32 * 20 / 30, abs=1)
    assert (cols.min() + cols.max() + 1) / 2 == pytest.approx(32, abs=1)
    assert (rows.min() + rows.max() + 1) / 2 == pytest.approx(32, abs=1)
    np.testing.assert_allclose(out[:, 0, 0], background)  # corners show the training background


def test_premultiplied_resampling_has_no_dark_fringe():
    """A white object whose transparent surround is black RGB: on a white background the
    result must be white everywhere (straight-alpha resampling would draw a dark outline)."""
    pixels = np.zeros((50, 50, 4), dtype=np.uint8)
    pixels[10:40, 12:38] = (255, 255, 255, 255)
    prepared = preprocess_image(Image.fromarray(pixels, mode="RGBA"), framing(37), WHITE, remover=None)
    assert prepared.image.min() > 0.99


def test_no_alpha_without_rembg_uses_the_whole_image():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    prepared = preprocess_image(Image.fromarray(pixels), framing(40), WHITE, remover=None)
    assert prepared.mask_source == "none" and prepared.foreground_box == (0, 0, 40, 20)
    out = prepared.image.numpy()
    assert out[:, 10:30, 25:35].max() < 0.05  # the black right half, padded above and below only
    assert out[:, :9, :].min() > 0.95


def test_fully_transparent_and_uniform_images_are_rejected():
    transparent = Image.fromarray(np.zeros((16, 16, 4), dtype=np.uint8), mode="RGBA")
    with pytest.raises(InputError, match="fully transparent"):
        preprocess_image(transparent, framing(32), WHITE, name="ghost.png")
    uniform = Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8))
    with pytest.raises(InputError, match="empty"):
        preprocess_image(uniform, framing(32), WHITE, name="grey.png")
    with pytest.raises(ValueError, match="foreground_ratio"):
        framing(32, 1.5)


def test_foreground_box():
    alpha = np.zeros((10, 12), dtype=np.float32)
    assert foreground_box(alpha) is None
    alpha[2:5, 3:9] = 1.0
    assert foreground_box(alpha) == (3, 2, 9, 5)


# ---------------------------------------------------------------------- rembg
def _dark_object_on_white(box=(30, 20, 70, 60)) -> np.ndarray:
    pixels = np.full((80, 100, 3), 255, dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (90, 20, 30)
    return pixels


def test_rembg_custom_onnx_session_finds_the_object(tmp_path, monkeypatch):
    """rembg's real u2net_custom session with a tiny ONNX model, from outside rembg's home."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "rembg_home"))
    model = build_tiny_rembg_onnx(tmp_path / "elsewhere" / "tiny_u2net.onnx")
    remover = BackgroundRemover(str(model))
    prepared = preprocess_image(Image.fromarray(_dark_object_on_white()), framing(32), WHITE, remover=remover)
    assert prepared.mask_source == "rembg"
    np.testing.assert_allclose(prepared.foreground_box, (30, 20, 70, 60), atol=3)
    import os

    assert os.environ["U2NET_HOME"] == str(tmp_path / "rembg_home")  # restored


def test_rembg_missing_weights_say_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        BackgroundRemover("u2net")
    message = str(info.value)
    assert "u2net.onnx" in message and str(tmp_path / "home") in message and "--rembg_model" in message
    with pytest.raises(InputError, match="neither a rembg model name"):
        BackgroundRemover("no-such-model")
    with pytest.raises(WeightsNotFoundError, match="file not found"):
        BackgroundRemover(str(tmp_path / "missing.onnx"))


def test_camera_of_a_photo_follows_the_framing_and_the_config():
    """No camera in the file: the assumed camera (focal_length x larger side, principal point) is
    cropped with the framing, and the canonical camera sits at distance_per_focal x that focal."""
    cfg = tiny_config()
    cfg.override(focal_length=1.2, principal_point=[0.45, 0.55], source_distance_per_focal=1.5)
    box = (20, 30, 60, 50)  # 40 x 20 px object in a 120 x 90 photo
    image = Image.fromarray(object_image(width=120, height=90, box=box), mode="RGBA")
    prepared = preprocess_image(image, SourceFraming.from_config(cfg, foreground_ratio=0.5), WHITE)
    side = 40 / 0.5  # the crop: longer side / ratio, centred on the box
    left, top = 40 - side / 2, 40 - side / 2
    np.testing.assert_allclose(prepared.crop_box, (left, top, left + side, top + side), atol=1e-4)
    focal = 1.2 * 120 / side
    expected = [focal, focal, (0.45 * 120 - left) / side, (0.55 * 90 - top) / side]
    np.testing.assert_allclose(prepared.intrinsics.numpy(), expected, rtol=1e-5)
    expected_c2w = canonical_source_c2w(torch.tensor(1.5 * focal))
    np.testing.assert_allclose(prepared.c2w.numpy(), expected_c2w.numpy(), atol=1e-5)
    np.testing.assert_allclose(prepared.c2w[:3, 2].numpy(), [-1.0, 0.0, 0.0], atol=1e-6)  # looks at the origin
