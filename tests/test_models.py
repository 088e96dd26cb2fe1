"""MIRA model tests on the tiny config: shapes, gradients, attention, modulation, checkpoints, encoder loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model

from mira.cameras import ZERO123_FOV_DEG, default_source_camera, intrinsics_from_fov, orbit_cameras
from mira.config import MiraConfig, load_config
from mira.models import (
    MIRA,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    DinoV2Encoder,
    EncoderWeightsNotFoundError,
    ModulatedLayerNorm,
    MultiHeadAttention,
)

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"
BATCH, VIEWS, RENDER_SIZE, SOURCE_SIZE = 2, 2, 16, 56


def tiny_config(**overrides: object) -> MiraConfig:
    return load_config(TINY_CONFIG, **overrides)


def tiny_model(seed: int = 0, **overrides: object) -> MIRA:
    torch.manual_seed(seed)
    return MIRA(tiny_config(**overrides))


def model_inputs(batch: int = BATCH, views: int = VIEWS, size: int = SOURCE_SIZE, seed: int = 1) -> dict:
    """Images, a source camera per item (different elevations) and orbit render cameras."""
    generator = torch.Generator().manual_seed(seed)
    intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG)
    source_c2w = torch.stack([default_source_camera(2.5, 10.0 + 15.0 * b) for b in range(batch)])
    return {
        "images": torch.rand(batch, 3, size, size, generator=generator),
        "source_c2w": source_c2w,
        "source_intrinsics": intrinsics.expand(batch, 4).clone(),
        "render_c2w": orbit_cameras(views, 20.0, 2.5).expand(batch, views, 4, 4).clone(),
        "render_intrinsics": intrinsics.expand(batch, views, 4).clone(),
        "render_size": RENDER_SIZE,
    }


def randomize_modulation(model: torch.nn.Module, std: float = 0.2, seed: int = 3) -> None:
    """Give every adaLN projection non-zero weights (as after some training)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, ModulatedLayerNorm):
            linear = module.modulation[1]
            with torch.no_grad():
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * std)
                linear.bias.copy_(torch.randn(linear.bias.shape, generator=generator) * std)


def save_tiny_dinov2(directory: Path, seed: int = 5) -> Dinov2Model:
    torch.manual_seed(seed)
    encoder = Dinov2Model(Dinov2Config(hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=48, patch_size=14, image_size=56))
    encoder.save_pretrained(directory)
    return encoder


# ---------------------------------------------------------------------- shapes
def test_forward_shapes_and_dtypes_whole_images_and_patches() -> None:
    model = tiny_model().eval()
    cfg = model.config.model
    inputs = model_inputs()
    with torch.no_grad():
        out = model(**inputs)
    triplane_shape = (BATCH, 3, cfg.triplane_dim, cfg.triplane_res, cfg.triplane_res)
    assert out["triplanes"].shape == triplane_shape
    assert out["rgb"].shape == (BATCH, VIEWS, 3, RENDER_SIZE, RENDER_SIZE)
    assert out["depth"].shape == out["opacity"].shape == (BATCH, VIEWS, 1, RENDER_SIZE, RENDER_SIZE)
    for value in out.values():
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    assert 0.0 <= out["rgb"].min() and out["rgb"].max() <= 1.0

    uv = torch.rand(BATCH, VIEWS, 10, 2) * RENDER_SIZE
    with torch.no_grad():
        patches = model(**inputs, uv=uv)
    assert patches["rgb"].shape == (BATCH, VIEWS, 10, 3) and patches["opacity"].shape == (BATCH, VIEWS, 10, 1)
    # Rendering chosen pixels equals the same pixels of the whole image (eval mode is deterministic).
    pixel_uv = torch.tensor([[0.5, 0.5], [7.5, 3.5], [15.5, 15.5]])
    with torch.no_grad():
        chosen = model(**inputs, uv=pixel_uv)["rgb"]
    rows, cols = (pixel_uv[:, 1] - 0.5).long(), (pixel_uv[:, 0] - 0.5).long()
    torch.testing.assert_close(chosen, out["rgb"][:, :, :, rows, cols].permute(0, 1, 3, 2), rtol=1e-5, atol=1e-6)


def test_bad_source_camera_shape_is_a_clear_error() -> None:
    model = tiny_model()
    inputs = model_inputs()
    with pytest.raises(ValueError, match="source_c2w"):
        model.forward_triplanes(inputs["images"], inputs["source_c2w"][0], inputs["source_intrinsics"])


def test_triplanes_under_bf16_autocast_are_finite() -> None:
    model = tiny_model().eval()
    inputs = model_inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        triplanes = model.forward_triplanes(inputs["images"], inputs["source_c2w"], inputs["source_intrinsics"])
    assert torch.isfinite(triplanes.float()).all()


def test_token_layout_maps_each_token_to_its_plane_cell() -> None:
    """Token p*R*R + i*R + j fills plane p, rows 2i..2i+1, columns 2j..2j+1 (and nothing else)."""
    decoder = tiny_model().decoder
    r, dim = decoder.resolution, decoder.tokens.shape[1]
    with torch.no_grad():
        decoder.upsample.bias.zero_()
        tokens = torch.zeros(1, 3 * r * r, dim)
        plane, row, col = 2, 3, 5
        tokens[0, plane * r * r + row * r + col] = 1.0
        triplanes = decoder.tokens_to_triplanes(tokens)
    nonzero = triplanes[0].abs().sum(dim=1).nonzero().tolist()  # (plane, y, x) cells with any channel != 0
    assert sorted(nonzero) == [[plane, y, x] for y in (2 * row, 2 * row + 1) for x in (2 * col, 2 * col + 1)]


def test_overlapping_upsampler_spreads_each_token_over_4x4_cells() -> None:
    """triplane_upsample_kernel 4: token (i, j) reaches rows 2i-1..2i+2 and columns 2j-1..2j+2 of its plane
    (clipped at the border), the triplane keeps its 2R side, and a bad kernel is a clear config error."""
    decoder = tiny_model(triplane_upsample_kernel=4).decoder
    r, dim = decoder.resolution, decoder.tokens.shape[1]
    with torch.no_grad():
        decoder.upsample.bias.zero_()
        for row, col in ((3, 5), (0, 0)):
            tokens = torch.zeros(1, 3 * r * r, dim)
            tokens[0, 1 * r * r + row * r + col] = 1.0
            triplanes = decoder.tokens_to_triplanes(tokens)
            assert triplanes.shape[-2:] == (2 * r, 2 * r)
            nonzero = triplanes[0].abs().sum(dim=1).nonzero().tolist()
            rows = [y for y in range(2 * row - 1, 2 * row + 3) if 0 <= y < 2 * r]
            cols = [x for x in range(2 * col - 1, 2 * col + 3) if 0 <= x < 2 * r]
            assert sorted(nonzero) == [[1, y, x] for y in rows for x in cols]
    with pytest.raises(Exception, match="triplane_upsample_kernel"):
        tiny_config(triplane_upsample_kernel=3)


# ---------------------------------------------------------------------- gradients
def rgb_loss(model: MIRA, inputs: dict) -> torch.Tensor:
    out = model(**inputs)
    return out["rgb"].square().mean() + out["opacity"].mean()


def grads_are_nonzero(model: MIRA) -> dict[str, bool]:
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters() if p.requires_grad}


def test_gradients_reach_every_trainable_parameter() -> None:
    model = tiny_model().train()  # tiny: encoder_trainable_blocks = -1
    inputs = model_inputs()
    rgb_loss(model, inputs).backward()
    reached = grads_are_nonzero(model)
    # Zero-initialised adaLN: at step 0 the camera embedder cannot influence the output yet,
    # but the modulation projections already receive gradient, and everything else does too.
    assert {n for n, ok in reached.items() if not ok} == {n for n in reached if n.startswith("camera_embedder.")}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    rgb_loss(model, inputs).backward()
    missing = [n for n, ok in grads_are_nonzero(model).items() if not ok]
    assert not missing, f"no gradient after one step: {missing}"
    assert model.encoder.backbone.embeddings.mask_token.requires_grad is False  # unused by design


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode() -> None:
    model = tiny_model(encoder_trainable_blocks=0).train()
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert not model.encoder.backbone.training and model.decoder.training
    rgb_loss(model, model_inputs()).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    trainable = {id(p) for group in model.trainable_parameter_groups(0.05) for p in group["params"]}
    assert trainable == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(id(p) in trainable for p in model.encoder.parameters())


def test_last_n_encoder_blocks_trainable() -> None:
    model = tiny_model(encoder_trainable_blocks=1)
    rgb_loss(model, model_inputs()).backward()
    backbone = model.encoder.backbone
    assert all(p.grad is not None for p in backbone.encoder.layer[-1].parameters())
    assert all(p.grad is not None for p in backbone.layernorm.parameters())
    assert all(p.grad is None and not p.requires_grad for p in backbone.encoder.layer[0].parameters())
    assert all(not p.requires_grad for p in backbone.embeddings.parameters())
    with pytest.raises(ValueError, match="encoder_trainable_blocks"):
        tiny_model(encoder_trainable_blocks=3)  # the tiny encoder has 2 blocks


def test_gradient_checkpointing_matches_plain_backward() -> None:
    inputs = model_inputs(batch=1, views=1)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(gradient_checkpointing=checkpointing).train()
        randomize_modulation(model)
        model.renderer.eval()  # deterministic samples, so both runs see the same rays
        calls, block = [], model.decoder.blocks[0]
        block_forward = block.forward
        block.forward = lambda *args: calls.append(1) or block_forward(*args)  # counts recomputations too
        rgb_loss(model, inputs).backward()
        assert len(calls) == (2 if checkpointing else 1)  # checkpointed blocks re-run in backward
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_every_recomputes_only_every_nth_block() -> None:
    """gradient_checkpointing_every = 2 re-runs blocks 0, 2, ... in the backward pass, not 1, 3, ...;
    the gradients stay those of the plain backward."""
    inputs = model_inputs(batch=1, views=1)
    model = tiny_model(gradient_checkpointing=True, gradient_checkpointing_every=2, num_layers=3).train()
    plain = tiny_model(gradient_checkpointing=False, num_layers=3).train()
    plain.load_state_dict(model.state_dict())
    for each in (model, plain):
        each.renderer.eval()
    calls = []
    for index, block in enumerate(model.decoder.blocks):
        block.forward = (lambda forward, i: lambda *args: calls.append(i) or forward(*args))(block.forward, index)
    rgb_loss(model, inputs).backward()
    assert sorted(calls) == [0, 0, 1, 2, 2]
    rgb_loss(plain, inputs).backward()
    for (name, parameter), other in zip(model.named_parameters(), plain.parameters()):
        if parameter.grad is not None:
            torch.testing.assert_close(parameter.grad, other.grad, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------------- attention
def reference_attention(attention: MultiHeadAttention, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V written out, with the module's own projections."""
    query, key, value = attention.project(x, context)  # (B, H, N|M, d)
    weights = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(attention.head_dim), dim=-1)
    merged = (weights @ value).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    return attention.to_out(merged)


@pytest.mark.parametrize("backend", ["auto", "cudnn", "math"])
@pytest.mark.parametrize("context_len", [None, 7])
def test_sdpa_attention_equals_explicit_softmax(context_len: int | None, backend: str) -> None:
    """Every attention_backend computes the same attention (on the CPU, "cudnn" falls through to a CPU kernel)."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(dim=16, num_heads=4, context_dim=None if context_len is None else 12,
                                   backend=backend).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    context = None if context_len is None else torch.randn(2, context_len, 12, dtype=torch.float64)
    torch.testing.assert_close(attention(x, context), reference_attention(attention, x, context), rtol=1e-10, atol=1e-12)
    # and not trivially: the same keys with permuted queries permute the output
    permuted = attention(x[:, [4, 3, 2, 1, 0]], context)
    torch.testing.assert_close(permuted, attention(x, context)[:, [4, 3, 2, 1, 0]], rtol=1e-10, atol=1e-12)


def test_attention_backend_names_match_config_and_bad_names_are_clear_errors() -> None:
    from mira.config import ATTENTION_BACKEND_NAMES
    from mira.models.attention import ATTENTION_BACKENDS

    assert set(ATTENTION_BACKEND_NAMES) == set(ATTENTION_BACKENDS)
    with pytest.raises(ValueError, match="attention_backend must be one of"):
        MultiHeadAttention(dim=16, num_heads=4, backend="fast")
    with pytest.raises(ValueError, match="attention_backend"):
        MiraConfig.from_dict({"model": {"attention_backend": "fast"}})


# ---------------------------------------------------------------------- modulation
def test_modulated_layernorm_formula_and_zero_init() -> None:
    torch.manual_seed(0)
    module = ModulatedLayerNorm(dim=8, cond_dim=4)
    x, cond = torch.randn(3, 5, 8), torch.randn(3, 4)
    plain = F.layer_norm(x, (8,), eps=1e-6)
    torch.testing.assert_close(module(x, cond), plain)  # zero-init: exactly a LayerNorm
    randomize_modulation(module)
    scale, shift = module.modulation(cond).chunk(2, dim=-1)
    torch.testing.assert_close(module(x, cond), plain * (1 + scale[:, None]) + shift[:, None])


def test_camera_changes_triplanes_only_through_modulation() -> None:
    model = tiny_model().eval()
    inputs = model_inputs(batch=1)
    images, intrinsics = inputs["images"], inputs["source_intrinsics"]
    camera_a, camera_b = default_source_camera(2.5, 0.0)[None], default_source_camera(2.0, 40.0)[None]
    with torch.no_grad():
        start_a = model.forward_triplanes(images, camera_a, intrinsics)
        start_b = model.forward_triplanes(images, camera_b, intrinsics)
        assert torch.equal(start_a, start_b)  # zero-initialised modulation: camera ignored at start
        randomize_modulation(model)
        a = model.forward_triplanes(images, camera_a, intrinsics)
        b = model.forward_triplanes(images, camera_b, intrinsics)
        a_again = model.forward_triplanes(images, camera_a, intrinsics)
    assert torch.equal(a, a_again)
    assert (a - b).abs().mean() > 1e-2 * a.abs().mean()


# ---------------------------------------------------------------------- checkpoints
def test_save_and_load_round_trip_is_exact(tmp_path: Path) -> None:
    model = tiny_model().eval()
    randomize_modulation(model)
    inputs = model_inputs()
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "optimizer_state.pt").write_bytes(b"kept")  # other files in the directory survive
    model.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind
    saved = json.loads((target / "config.json").read_text())
    assert saved["model"]["encoder_config"]["hidden_size"] == 32 and "renderer" in saved

    loaded = MIRA.from_pretrained(target)
    assert not loaded.training and loaded.config == model.config
    assert (target / "optimizer_state.pt").read_bytes() == b"kept"
    with torch.no_grad():
        expected, actual = model(**inputs), loaded(**inputs)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_checkpoint_that_does_not_match_config_is_a_clear_error(tmp_path: Path) -> None:
    tiny_model().save_pretrained(tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    original = json.loads(config_path.read_text())

    deeper = json.loads(json.dumps(original))
    deeper["model"]["num_layers"] = 3
    config_path.write_text(json.dumps(deeper))
    with pytest.raises(CheckpointMismatchError, match="checkpoint does not match the config") as error:
        MIRA.from_pretrained(tmp_path / "ckpt")
    assert "decoder.blocks.2." in str(error.value) and "missing keys" in str(error.value)

    wider = json.loads(json.dumps(original))
    wider["model"]["triplane_dim"] = 4
    config_path.write_text(json.dumps(wider))
    with pytest.raises(CheckpointMismatchError, match="decoder.upsample.weight"):
        MIRA.from_pretrained(tmp_path / "ckpt")


def test_missing_checkpoint_files_and_hub_ids_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointNotFoundError, match="hf download mira-tests/no-such-checkpoint"):
        MIRA.from_pretrained("mira-tests/no-such-checkpoint", cache_dir=tmp_path / "hf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        MIRA.from_pretrained(tmp_path / "empty")


# ---------------------------------------------------------------------- encoder
def test_pretrained_encoder_loads_from_a_local_directory(tmp_path: Path) -> None:
    reference = save_tiny_dinov2(tmp_path / "dinov2")
    config = tiny_config()
    config.model.encoder_config = None
    config.model.encoder_model_id = str(tmp_path / "dinov2")
    model = MIRA(config)
    assert config.model.encoder_config is None  # the caller's config is not modified ...
    assert model.config.model.encoder_config["hidden_size"] == 24  # ... the model's copy records the encoder
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.encoder.backbone.state_dict()[name], tensor), name

    # The saved MIRA is self-contained: it loads after the encoder directory is gone.
    model.save_pretrained(tmp_path / "mira")
    for file in (tmp_path / "dinov2").iterdir():
        file.unlink()
    (tmp_path / "dinov2").rmdir()
    loaded = MIRA.from_pretrained(tmp_path / "mira")
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.encoder.backbone.state_dict()[name], tensor), name


def test_missing_encoder_hub_id_names_id_cache_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = tiny_config()
    config.model.encoder_config = None
    config.model.encoder_model_id = "mira-tests/no-such-dinov2"
    with pytest.raises(EncoderWeightsNotFoundError) as error:
        MIRA(config)
    message = str(error.value)
    assert "mira-tests/no-such-dinov2" in message
    assert str(huggingface_hub.constants.HF_HUB_CACHE) in message
    assert "hf download mira-tests/no-such-dinov2" in message and "local" in message


def test_encoder_normalises_inside_and_interpolates_positions() -> None:
    encoder = DinoV2Encoder(tiny_config().model).eval()
    backbone = encoder.backbone
    images = torch.rand(2, 3, 56, 56)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = encoder(images)
        torch.testing.assert_close(tokens, backbone(pixel_values=(images - mean) / std).last_hidden_state)
        assert tokens.shape == (2, encoder.num_tokens(56), 32) == (2, 1 + 4 * 4, 32)

        # A second input size: 84 px = 6 x 6 patches, position embeddings interpolated from 4 x 4.
        large = F.interpolate(images, size=(84, 84), mode="bilinear", align_corners=False)
        large_tokens = encoder(large)
        assert large_tokens.shape == (2, 1 + 6 * 6, 32) and torch.isfinite(large_tokens).all()
        interpolated = backbone.embeddings.interpolate_pos_encoding(torch.zeros(1, 37, 32), 84, 84)
        assert interpolated.shape == (1, 37, 32)
        assert not torch.allclose(interpolated[:, 1:], interpolated[:, 1:].mean(dim=1, keepdim=True))

        model = tiny_model().eval()
        inputs = model_inputs(batch=1, size=84)
        triplanes = model.forward_triplanes(inputs["images"], inputs["source_c2w"], inputs["source_intrinsics"])
    assert triplanes.shape == (1, 3, 8, 16, 16)


def test_checkpoints_load_across_transformers_renames_of_dinov2_attention(tmp_path) -> None:
    """transformers 5.2x renamed DINOv2's attention weights (attention.attention.query -> attention.q_proj, ...):
    a checkpoint written under either spelling loads into a model of the other; other bad keys still fail."""
    from mira.models.encoder import DINOV2_RENAMED_KEYS
    from mira.models.mira import CheckpointMismatchError

    torch.manual_seed(0)
    model = MIRA(load_config(TINY_CONFIG))
    state = model.state_dict()
    new_spelling = any(new in key for key in state for _, new in DINOV2_RENAMED_KEYS)
    other = {}
    for key, value in state.items():
        for old, new in DINOV2_RENAMED_KEYS:
            key = key.replace(new, old) if new_spelling else key.replace(old, new)
        other[key] = value.clone()
    assert set(other) != set(state)
    fresh = MIRA(load_config(TINY_CONFIG))
    fresh.load_checkpoint_state(other)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, state[key])
    other["encoder.backbone.not_a_weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="not_a_weight"):
        fresh.load_checkpoint_state(other)


def test_frozen_position_cache_recomputes_only_when_the_table_changes() -> None:
    """The cached resized position table is served while frozen, refreshed after an in-place update,
    and bypassed for a trainable table (whose gradient must flow)."""
    from mira.models.encoder import FrozenPositionCache

    embeddings = torch.nn.Module()
    embeddings.position_embeddings = torch.nn.Parameter(torch.randn(1, 5, 4), requires_grad=False)
    calls = []

    def interpolate(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        calls.append((height, width))
        return embeddings.position_embeddings * 2.0

    cache = FrozenPositionCache(interpolate, embeddings)
    tokens = torch.zeros(2, 5, 4)
    first = cache(tokens, 28, 28)
    assert torch.equal(cache(tokens, 28, 28), first) and len(calls) == 1
    cache(tokens, 42, 28)
    assert len(calls) == 2  # another size
    with torch.no_grad():
        embeddings.position_embeddings.add_(1.0)  # e.g. a checkpoint loaded in place
    assert torch.allclose(cache(tokens, 42, 28), embeddings.position_embeddings * 2.0) and len(calls) == 3
    embeddings.position_embeddings.requires_grad_(True)
    out = cache(tokens, 42, 28)
    assert out.requires_grad and len(calls) == 4
    cache(tokens, 42, 28)
    assert len(calls) == 5


def test_compiled_code_never_fills_the_frozen_caches() -> None:
    """Under torch.compile (test.py --compile) the position-embedding resize and the projective bias's patch
    grid are traced into the graph, not cached: a tensor cached from a CUDA-graph replay is overwritten by the
    next replay (it failed so on an H100 before, benchmarks/bench_reconstruct.py)."""
    from mira.models.encoder import FrozenPositionCache
    from mira.models.projective_bias import ProjectiveAttentionBias, patch_centres
    from mira.rendering.triplane import PLANE_AXES_BY_NAME

    embeddings = torch.nn.Module()
    embeddings.position_embeddings = torch.nn.Parameter(torch.randn(1, 5, 4), requires_grad=False)
    cache = FrozenPositionCache(lambda tokens, height, width: embeddings.position_embeddings * 2.0, embeddings)
    projection = ProjectiveAttentionBias(4, next(iter(PLANE_AXES_BY_NAME.values())), (-1.0,) * 3, (1.0,) * 3, 14)

    @torch.compile(backend="eager", fullgraph=True)
    def traced(tokens: torch.Tensor) -> torch.Tensor:
        return cache(tokens, 28, 28).sum() + projection.patch_grid(28, 28, tokens.device).sum()

    expected = embeddings.position_embeddings.sum() * 2.0 + patch_centres(28, 28, 14).sum() / 14
    torch.testing.assert_close(traced(torch.zeros(2, 5, 4)), expected)
    assert cache.key is None and cache.value is None and projection._centres == {}
