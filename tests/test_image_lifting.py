"""Pixel-aligned triplane features (mira/models/image_lifting.py): where each cell reads the image (against
brute-force projection), that the lifted model starts as the model without it, learns through it, grows from a
checkpoint without it, round-trips through save_pretrained, and rejects bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers_training import tiny_config
from mira import cameras
from mira.config import ConfigError, load_config
from mira.models import MIRA
from mira.models.image_lifting import ImageLifting, cell_line_points
from mira.rendering.triplane import PLANE_AXES, PLANE_AXES_BY_NAME
from mira.training.factories import build_model

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"
SIZE, PATCH = 56, 14
FOCAL = 1.09375 / 0.85  # a framed source view's normalised focal


def canonical_camera(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    c2w = cameras.canonical_source_c2w(torch.full((batch,), 1.6 * FOCAL))
    return c2w, torch.tensor([[FOCAL, FOCAL, 0.5, 0.5]]).expand(batch, 4)


def lifting(plane_axes=PLANE_AXES, depth_samples: int = 4) -> ImageLifting:
    return ImageLifting(2, 8, 4, 16, PATCH, plane_axes, [-1.0] * 3, [1.0] * 3, channels=2, depth_samples=depth_samples)


def coordinate_map(height: int, width: int, image_size: int) -> torch.Tensor:
    """(1, 2, h, w) a feature map whose channels are the image pixel coordinates (u, v) of each cell's centre
    (bilinear interpolation of this linear ramp is exact inside the map)."""
    v, u = torch.meshgrid((torch.arange(height) + 0.5) * image_size / height,
                          (torch.arange(width) + 0.5) * image_size / width, indexing="ij")
    return torch.stack([u, v])[None]


@pytest.mark.parametrize("plane_axes", sorted(PLANE_AXES_BY_NAME))
def test_each_cell_reads_the_image_where_its_line_projects(plane_axes: str) -> None:
    """Reading a map of pixel coordinates returns each line point's projection (oblique camera, off-centre
    principal point), in order along the line; points outside the image read zeros."""
    axes = PLANE_AXES_BY_NAME[plane_axes]
    module = lifting(axes)
    eye = cameras.spherical_to_cartesian(torch.tensor([35.0]), torch.tensor([20.0]), torch.tensor([2.6]))
    c2w, intrinsics = cameras.look_at(eye), torch.tensor([[1.5, 1.5, 0.45, 0.55]])
    read = module.read_lines(coordinate_map(SIZE // 2, SIZE // 2, SIZE), c2w, intrinsics, (SIZE, SIZE))
    read = read.view(1, -1, module.depth_samples, 2)
    points = cell_line_points(4, module.depth_samples, axes, [-1.0] * 3, [1.0] * 3).reshape(1, -1, 3)
    uv, depth = cameras.project_points(points, c2w, intrinsics, SIZE, SIZE)
    assert bool((depth > 0).all())
    uv = uv.view(1, -1, module.depth_samples, 2)
    half_cell = SIZE / (SIZE // 2) / 2
    inside = ((uv >= half_cell) & (uv <= SIZE - half_cell)).all(-1)
    outside = ((uv < -1.0) | (uv > SIZE + 1.0)).any(-1)
    assert inside.sum() > 20 and outside.sum() > 0
    torch.testing.assert_close(read[inside], uv[inside], atol=1e-3, rtol=1e-4)
    assert bool((read[outside] == 0).all())


def test_the_facing_plane_reads_its_own_place() -> None:
    """Canonical camera on +X looking along -X (image right = +Y, down = -Z): at any one depth along the lines
    (here the far half, x < 0, which stays in the image), a YZ cell of higher y reads further right and one of
    higher z further up; an XY cell's points (z free) run down one image column."""
    module = lifting(depth_samples=8)
    c2w, intrinsics = canonical_camera()
    read = module.read_lines(coordinate_map(SIZE // 2, SIZE // 2, SIZE), c2w, intrinsics, (SIZE, SIZE))
    read = read.view(3, 4, 4, module.depth_samples, 2)  # plane, row, column, depth (x from -1 up), (u, v)
    far = read[2, :, :, :4]  # YZ plane: rows z, columns y; x < 0
    assert bool((far[:, 1:, :, 0] > far[:, :-1, :, 0] + 1.0).all())  # higher y: further right
    assert bool((far[1:, :, :, 1] < far[:-1, :, :, 1] - 1.0).all())  # higher z: further up
    column = read[0, 2, 2, 2:6]  # XY plane, a cell near the centre (x, y fixed), z along the line (|z| < 0.5)
    assert float(column[:, 0].max() - column[:, 0].min()) < 1.0
    assert bool((column[1:, 1] < column[:-1, 1]).all()) and float(column[0, 1] - column[-1, 1]) > SIZE / 8


def tiny_model(**overrides: object) -> MIRA:
    torch.manual_seed(0)
    return MIRA(load_config(TINY_CONFIG, **overrides))


def forward(model: MIRA, images: torch.Tensor | None = None) -> torch.Tensor:
    c2w, intrinsics = canonical_camera(2)
    if images is None:
        images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return model.forward_triplanes(images, c2w, intrinsics)


def test_lifted_model_starts_as_the_model_without_it_and_learns_through_it() -> None:
    plain, lifted = tiny_model(), tiny_model(image_lifting=True)
    lifted.load_state_dict({**lifted.state_dict(), **plain.state_dict()})
    torch.testing.assert_close(forward(lifted), forward(plain))
    optimiser = torch.optim.Adam(lifted.parameters(), lr=1e-2)
    for _ in range(2):  # the zero output layers move first, then the stem sees gradients through them
        optimiser.zero_grad()
        forward(lifted).square().mean().backward()
        optimiser.step()
    assert float(lifted.lifting.stem[0].weight.grad.abs().sum()) > 0
    assert float(lifted.lifting.patch_projection.weight.grad.abs().sum()) > 0
    lifted.eval()
    with torch.no_grad():
        images = torch.rand(2, 3, SIZE, SIZE)
        tokens = lifted.encoder(images)
        token_offsets, cell_offsets = lifted.lifting(images, tokens, *canonical_camera(2))
    assert token_offsets.shape == (2, 3 * 8 * 8, 32) and cell_offsets.shape == (2, 3, 8, 16, 16)
    assert float(cell_offsets.abs().mean()) > 0 and float(token_offsets.abs().mean()) > 0


def test_lifted_features_follow_the_image_locally() -> None:
    """With the output layers non-zero, changing one corner of the image changes the cells that see it more
    than those that do not."""
    model = tiny_model(image_lifting=True).eval()
    with torch.no_grad():
        for layer in (model.lifting.to_cells, model.lifting.to_tokens):
            layer.weight.normal_(std=0.5)
        images = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
        changed = images.clone()
        changed[:, :, SIZE // 2 + 8:, SIZE // 2 + 8:] = 1.0 - changed[:, :, SIZE // 2 + 8:, SIZE // 2 + 8:]
        tokens, c2w, intrinsics = model.encoder(images), *canonical_camera(1)
        before = model.lifting(images, tokens, c2w, intrinsics)[1]
        after = model.lifting(changed, tokens, c2w, intrinsics)[1]  # same tokens: the stem's path alone
    difference = (after - before).abs().sum(2)[0, 2]  # YZ plane, (z rows, y columns)
    bottom_right, top_left = difference[:6, -6:].mean(), difference[-6:, :6].mean()
    assert float(bottom_right) > 20 * float(top_left)


def test_grown_from_a_checkpoint_without_lifting_gives_the_same_triplanes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = MIRA(tiny_config(tmp_path / "unused")).eval()
    source.save_pretrained(tmp_path / "ckpt")
    grown = build_model(tiny_config(tmp_path / "run", model_preloading_strategy=str(tmp_path / "ckpt"),
                                    image_lifting=True)).eval()
    assert grown.config.model.image_lifting and grown.lifting is not None
    trained = source.state_dict()
    for key, value in grown.state_dict().items():
        if not key.startswith("lifting."):
            torch.testing.assert_close(value, trained[key], msg=key)
    with torch.no_grad():
        torch.testing.assert_close(forward(grown), forward(source), rtol=1e-5, atol=1e-5)


def test_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    model = tiny_model(image_lifting=True).eval()
    with torch.no_grad():
        model.lifting.to_cells.weight.normal_()
    model.save_pretrained(tmp_path / "lifted")
    loaded = MIRA.from_pretrained(tmp_path / "lifted")
    assert loaded.lifting is not None
    with torch.no_grad():
        torch.testing.assert_close(forward(loaded), forward(model))


@pytest.mark.parametrize("key", ["image_lifting_channels", "image_lifting_depth_samples"])
def test_bad_lifting_sizes_are_clear_errors(key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("_depth_samples", "_channels")):
        load_config(TINY_CONFIG, image_lifting=True, **{key: 0})
