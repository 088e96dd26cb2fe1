"""Text mode with a tiny Stable Diffusion pipeline built and saved locally (diffusers, no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers_inference import build_tiny_rembg_onnx, build_tiny_text_to_image, save_tiny_model
from mira.inference.cli import main
from mira.inference.errors import InputError, WeightsNotFoundError
from mira.inference.text_to_image import PROMPT_TEMPLATE, TextToImage, build_prompt


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return {
        "pipeline": build_tiny_text_to_image(root),
        "rembg": build_tiny_rembg_onnx(root / "rembg" / "tiny_u2net.onnx"),
        "checkpoint": save_tiny_model(root / "ckpt"),
    }


def test_text_mode_end_to_end(tmp_path, assets, capsys):
    out = tmp_path / "out"
    code = main([
        "--checkpoint_path", str(assets["checkpoint"]), "--mode", "text", "--input", "a red chair",
        "--text_model", str(assets["pipeline"]), "--text_steps", "1", "--text_image_size", "32",
        "--rembg_model", str(assets["rembg"]), "--output_path", str(out), "--export_video",
        "--num_frames", "3", "--render_size", "16", "--no_progress", "--seed", "3",
    ])
    assert code == 0, capsys.readouterr().err
    folder = out / "a_red_chair"
    assert sorted(p.name for p in folder.iterdir()) == ["generated.png", "input.png", "result.json", "video.mp4"]
    assert Image.open(folder / "generated.png").size == (32, 32)
    result = json.loads((folder / "result.json").read_text())
    assert result["prompt"] == PROMPT_TEMPLATE.format(prompt="a red chair")
    assert result["preprocessing"]["mask_source"] == "rembg"
    assert result["outputs"]["generated_image"] == "generated.png"
    assert result["timings_s"]["text_to_image"] > 0 and result["settings"]["text_model"] == str(assets["pipeline"])


def test_generation_is_seeded_and_prompts_are_checked(assets):
    text_to_image = TextToImage(str(assets["pipeline"]), "cpu")
    first = np.asarray(text_to_image.generate("a cup", seed=5, num_steps=1, size=16))
    again = np.asarray(text_to_image.generate("a cup", seed=5, num_steps=1, size=16))
    other = np.asarray(text_to_image.generate("a cup", seed=6, num_steps=1, size=16))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).mean() > 1
    with pytest.raises(InputError, match="prompt is empty"):
        text_to_image.generate("  \n", seed=0)
    assert "plain white background" in build_prompt("a cup") and build_prompt("  a cup ").startswith("a cup,")


def test_missing_text_model_says_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="hf download nobody/no-such-text-model"):
        TextToImage("nobody/no-such-text-model", "cpu")
