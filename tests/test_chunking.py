"""The chunking helper: the same result as one call, whatever the chunk size; renderer queries through it."""

from __future__ import annotations

import pytest
import torch

from mira.rendering.chunking import chunk_slices, chunked
from helpers_inference import sphere_renderer


def test_chunk_slices_cover_the_range():
    assert list(chunk_slices(7, 3)) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert list(chunk_slices(0, 3)) == []
    assert list(chunk_slices(0, 3, at_least_one=True)) == [slice(0, 0)]
    with pytest.raises(ValueError, match="at least 1"):
        list(chunk_slices(5, 0))


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 100])
def test_chunked_outputs_match_one_call(chunk_size):
    a, b = torch.randn(2, 10, 3), torch.randn(2, 10, 1)
    calls = []

    def fn(x, y):
        calls.append(x.shape[1])
        return x.sum(-1, keepdim=True) + y, (x, y * 3), {"x": x}

    whole = fn(a, b)
    parts = chunked(lambda x, y: fn(x, y), a, b, chunk_size=chunk_size, dim=1)
    assert torch.equal(parts[0], whole[0])
    assert torch.equal(parts[1][0], whole[1][0]) and torch.equal(parts[1][1], whole[1][1])
    assert torch.equal(parts[2]["x"], whole[2]["x"])
    assert max(calls[1:]) <= chunk_size and sum(calls[1:]) == 10


def test_chunked_empty_input_calls_once_and_checks_sizes():
    out = chunked(lambda x: x * 2, torch.zeros(0, 3), chunk_size=4)
    assert out.shape == (0, 3)
    with pytest.raises(ValueError, match="differ in size"):
        chunked(lambda x, y: x, torch.zeros(4, 3), torch.zeros(5, 3), chunk_size=2)


def test_renderer_query_and_rays_are_chunk_size_independent():
    renderer, triplanes, _ = sphere_renderer((0.0, 0.1, 0.0), 0.5, 10.0, triplane_res=16)
    points = torch.rand(1, 1000, 3) * 2 - 1
    origins = torch.tensor([[0.0, 0.0, 3.0]]).expand(1, 37, 3).contiguous()
    directions = torch.nn.functional.normalize(torch.randn(1, 37, 3) * 0.1 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    renderer.eval()
    with torch.no_grad():
        reference_query = renderer.query(triplanes, points)
        reference_rays = renderer(triplanes, origins, directions)
        renderer.ray_chunk_size = 3  # query chunks of 3 * samples per ray, rays in chunks of 3
        query = renderer.query(triplanes, points)
        rays = renderer(triplanes, origins, directions)
    for key in reference_query:
        torch.testing.assert_close(query[key], reference_query[key], rtol=1e-5, atol=1e-6)
    for key in reference_rays:
        torch.testing.assert_close(rays[key], reference_rays[key], rtol=1e-5, atol=1e-6)
