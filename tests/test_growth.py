"""Growing a checkpoint's decoder at --init_from (mira/training/growth.py): the kernel-4 upsampler reproduces the
kernel-2 triplanes exactly, the projective bias adds its slopes, and nothing trained is ever dropped."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from helpers_training import tiny_config
from mira import cameras
from mira.models import MIRA
from mira.training.factories import build_model


def saved_model(directory: Path, **overrides) -> MIRA:
    """A tiny MIRA with random (non-zero) upsampler weights, saved with save_pretrained to ``directory``."""
    torch.manual_seed(0)
    model = MIRA(tiny_config(directory / "unused", **overrides)).eval()
    with torch.no_grad():
        model.decoder.upsample.weight.normal_(std=0.5)
        model.decoder.upsample.bias.normal_(std=0.5)
    model.save_pretrained(directory)
    return model


def triplanes(model: MIRA) -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 56, 56, generator=generator)
    c2w = cameras.canonical_source_c2w(torch.full((2,), 2.2))
    intrinsics = torch.tensor([[1.3, 1.3, 0.5, 0.5]]).expand(2, 4)
    with torch.no_grad():
        return model.eval().forward_triplanes(images, c2w, intrinsics)


def test_kernel_4_grown_from_kernel_2_gives_the_same_triplanes(tmp_path):
    source = saved_model(tmp_path / "ckpt")
    grown = build_model(tiny_config(tmp_path / "run", model_preloading_strategy=str(tmp_path / "ckpt"),
                                    triplane_upsample_kernel=4))
    assert grown.config.model.triplane_upsample_kernel == 4
    assert grown.decoder.upsample.weight.shape[-2:] == (4, 4)
    torch.testing.assert_close(triplanes(grown), triplanes(source), rtol=1e-5, atol=1e-5)


def test_projective_bias_grown_keeps_every_trained_weight(tmp_path):
    source = saved_model(tmp_path / "ckpt")
    grown = build_model(tiny_config(tmp_path / "run", model_preloading_strategy=str(tmp_path / "ckpt"),
                                    projective_attention_bias=True))
    assert grown.config.model.projective_attention_bias
    trained = source.state_dict()
    for key, value in grown.state_dict().items():
        if ".locality." in key:
            continue
        torch.testing.assert_close(value, trained[key], msg=key)
    assert all(block.locality is not None for block in grown.decoder.blocks)
    assert not torch.allclose(triplanes(grown), triplanes(source))  # the bias acts from the first step


def test_a_smaller_option_is_not_taken_from_the_config(tmp_path, caplog):
    saved_model(tmp_path / "ckpt", projective_attention_bias=True, triplane_upsample_kernel=4)
    with caplog.at_level(logging.INFO, logger="mira.training"):
        model = build_model(tiny_config(tmp_path / "run", model_preloading_strategy=str(tmp_path / "ckpt")))
    assert model.config.model.projective_attention_bias and model.config.model.triplane_upsample_kernel == 4
    assert "would discard trained weights" in caplog.text


def test_other_architecture_keys_come_from_the_checkpoint_and_are_named(tmp_path, caplog):
    saved_model(tmp_path / "ckpt")
    with caplog.at_level(logging.INFO, logger="mira.training"):
        model = build_model(tiny_config(tmp_path / "run", model_preloading_strategy=str(tmp_path / "ckpt"), num_layers=3))
    assert len(model.decoder.blocks) == 2  # tiny.json's
    assert "the config's values of num_layers are not used" in caplog.text
