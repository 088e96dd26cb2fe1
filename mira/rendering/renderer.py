"""The NeRF triplane renderer: rays -> samples -> triplane field -> composited colour/depth/opacity."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mira.cameras import pixel_centers, rays_from_pixels
from mira.config import PROJECT_PLANES_MODES, RendererConfig
from mira.rendering.chunking import chunked
from mira.rendering.compositing import composite
from mira.rendering.eg3d_marching import (
    EMPTY_LOGIT,
    composite_intervals,
    intersect_box_reciprocal,
    linspace_samples,
    smoothed_importance_samples,
)
from mira.rendering.field import TriplaneField
from mira.rendering.field_kernels import fused_field_raw, fused_field_supported
from mira.rendering.midpoint_marching import composite_normalized, intersect_shrunk_box, midpoint_samples
from mira.rendering.occupancy import OccupancyGrid
from mira.rendering.ray_sampler import (
    importance_samples,
    intersect_box,
    interval_edges,
    merge_samples,
    stratified_samples,
)
from mira.rendering.triplane import PLANE_AXES_BY_NAME, aggregated_dim, normalize_points, sample_triplane
from mira.rendering.triplane_kernels import fused_sampling_available

OUTPUT_CHANNELS = {"rgb": 3, "depth": 1, "opacity": 1}


class TriplaneRenderer(nn.Module):
    """Volume renderer of a triplane radiance field; owns the field MLP.

    Per ray: clip to the box ``[box_min, box_max]``; ``rendering_samples_per_ray`` stratified
    samples (jittered when ``self.training``, bin midpoints in eval); ``importance_samples_per_ray``
    fine samples drawn from the coarse weights; the field is evaluated at the fine samples and
    merged (sorted) with the coarse ones, and the merged set is composited over
    ``background_color``. Rays are processed ``ray_chunk_size`` at a time (over the whole batch).

    Outputs follow the device of the inputs; compositing runs in float32 (or float64 for
    float64 rays), so the renderer is safe under bf16/fp16 autocast.

    ``ray_marching = "eg3d"`` replaces the sampling and compositing by EG3D's (OpenLRM's):
    :mod:`mira.rendering.eg3d_marching`; ``"normalized_midpoint"`` by TripoSR's:
    :mod:`mira.rendering.midpoint_marching`. ``plane_axes`` and ``field_activation`` choose the
    triplane layout and the field MLP's activation.
    """

    def __init__(self, cfg: RendererConfig, triplane_dim: int) -> None:
        super().__init__()
        if triplane_dim < 1:
            raise ValueError(f"mira/rendering/renderer.py: triplane_dim must be positive, got {triplane_dim}")
        if cfg.rendering_samples_per_ray < 2 or cfg.importance_samples_per_ray < 0 or cfg.ray_chunk_size < 1:
            raise ValueError(
                "mira/rendering/renderer.py: need rendering_samples_per_ray >= 2, importance_samples_per_ray >= 0 "
                f"and ray_chunk_size >= 1, got {cfg.rendering_samples_per_ray}, {cfg.importance_samples_per_ray}, "
                f"{cfg.ray_chunk_size}; fix the renderer section of the config"
            )
        self.config = cfg
        self.triplane_dim = triplane_dim
        self.aggregation = cfg.triplane_aggregation
        self.num_coarse_samples = cfg.rendering_samples_per_ray
        self.num_fine_samples = cfg.importance_samples_per_ray
        self.ray_chunk_size = cfg.ray_chunk_size
        self.field = TriplaneField(
            input_dim=aggregated_dim(triplane_dim, cfg.triplane_aggregation),
            hidden_dim=cfg.mlp_hidden_dim,
            num_layers=cfg.mlp_num_layers,
            density_bias=cfg.density_bias,
            color_widening=cfg.color_sigmoid_widening,
            activation=cfg.field_activation,
            density_activation=cfg.density_activation,
        )
        self.plane_axes = cfg.plane_axes
        self.projects_planes = planes_are_projected(cfg.project_planes, cfg.mlp_hidden_dim, triplane_dim)
        # (triplanes, their projected planes) while a render or query call runs (_planes_shared)
        self._shared_planes: tuple[Tensor, Tensor] | None = None
        self.fuses_field = (cfg.fused_field and self.projects_planes
                            and fused_field_supported(self.field, cfg.mlp_hidden_dim, cfg.field_activation))
        self.ray_marching = cfg.ray_marching
        if self.ray_marching == "eg3d" and (self.num_coarse_samples < 4 or self.num_fine_samples < 0):
            raise ValueError("mira/rendering/renderer.py: ray_marching 'eg3d' needs rendering_samples_per_ray >= 4")
        # Derived from the config, so not saved with the weights.
        self.register_buffer("box_min", torch.tensor(cfg.box_min, dtype=torch.float32), persistent=False)
        self.register_buffer("box_max", torch.tensor(cfg.box_max, dtype=torch.float32), persistent=False)
        self.register_buffer("background", torch.tensor(cfg.background_color, dtype=torch.float32), persistent=False)

    # ------------------------------------------------------------------ field
    def point_field(self, triplanes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw field at world points: density (B, P, 1) >= 0 and colour (B, P, 3) (widened sigmoid).

        Args:
            triplanes: (B, 3, C, R, R).
            points: (B, P, 3) world points.
        """
        logit, rgb = self.point_logits(triplanes, points)
        return self.field.activate_density(logit), rgb

    def point_logits(self, triplanes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Density logits (B, P, 1) (before the field's ``activate_density``) and colour (B, P, 3) at world points."""
        planes = self._field_planes(triplanes)
        # the fused field keeps only its inputs for the backward: nothing to gain from recomputing it
        recompute = self.config.field_checkpointing and self.training and torch.is_grad_enabled()
        if recompute and not self._runs_fused_field(planes, points):
            return checkpoint(self._field_logits, planes, points, use_reentrant=False)
        return self._field_logits(planes, points)

    def _field_planes(self, triplanes: Tensor) -> Tensor:
        """What the field reads: the triplanes, or with ``renderer.project_planes`` the planes times the MLP's first
        layer (:meth:`TriplaneField.project_planes`), computed once per render or query call (:meth:`_planes_shared`)."""
        if not self.projects_planes:
            return triplanes
        shared = self._shared_planes
        if shared is not None and shared[0] is triplanes:
            return shared[1]
        return self.field.project_planes(triplanes, self.aggregation)

    @contextmanager
    def _planes_shared(self, triplanes: Tensor) -> Iterator[None]:
        """Within the block, every chunk's field query of ``triplanes`` reads the same projected planes (one
        projection per render or query call, not one per chunk and per coarse / fine pass)."""
        previous = self._shared_planes
        self._shared_planes = (triplanes, self.field.project_planes(triplanes, self.aggregation)) if self.projects_planes else None
        try:
            yield
        finally:
            self._shared_planes = previous

    def _field_logits(self, planes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`point_logits` without checkpointing, from :meth:`_field_planes`' ``planes``."""
        if self.projects_planes:  # the MLP's first layer applied to the planes (renderer.project_planes)
            if self._runs_fused_field(planes, points):
                normalized = normalize_points(points.float(), self.box_min, self.box_max)
                raw = fused_field_raw(planes, normalized, self.field, PLANE_AXES_BY_NAME[self.plane_axes],
                                      self.config.field_activation)
                return self.field.split_raw(raw)
            first = sample_triplane(planes, points, self.box_min, self.box_max, "sum", self.plane_axes,
                                    fused=self.config.fused_sampling)
            return self.field.forward_raw_after_first_layer(first + self.field.mlp[0].bias.to(first.dtype))
        features = sample_triplane(planes, points, self.box_min, self.box_max, self.aggregation, self.plane_axes,
                                   fused=self.config.fused_sampling)
        return self.field.forward_raw(features)

    def _fused_field_on(self, triplanes: Tensor) -> bool:
        """Whether the field of ``triplanes`` can run in the fused kernel (``renderer.fused_field``): on CUDA with
        Triton, projected planes and a supported MLP."""
        return self.fuses_field and fused_sampling_available(triplanes)

    def _runs_fused_field(self, triplanes: Tensor, points: Tensor) -> bool:
        """Whether the field at ``points`` runs in the fused kernel: :meth:`_fused_field_on`, and points that need
        no gradient."""
        return self._fused_field_on(triplanes) and not points.requires_grad

    def _renders_in_one_chunk(self, triplanes: Tensor) -> bool:
        """Whether a render of ``triplanes`` takes all its rays in one chunk: while back-propagating into them
        with the fused field. Autograd keeps every chunk's saved tensors until the backward anyway, and the
        fused field has no per-sample activations for chunks to bound, so chunks would only add launches and
        a concatenation (mira-base's training step: 28.8 -> 29.5 samples/s on an H100, docs/BENCHMARKS.md)."""
        return self._fused_field_on(triplanes) and torch.is_grad_enabled() and triplanes.requires_grad

    def query(self, triplanes: Tensor, points: Tensor) -> dict[str, Tensor]:
        """Density and colour at arbitrary world points (mesh extraction, analysis).

        Args:
            triplanes: (B, 3, C, R, R).
            points: (B, P, 3) world points; evaluated in chunks of
                ``ray_chunk_size * rendering_samples_per_ray`` points.
        Returns:
            {"density": (B, P, 1) >= 0, "rgb": (B, P, 3) in [0, 1]}.
        """
        _check_batch(triplanes, points, "points")
        chunk = max(1, self.ray_chunk_size * self.num_coarse_samples // max(1, points.shape[0]))

        def field(part: Tensor) -> dict[str, Tensor]:
            density, rgb = self.point_field(triplanes, part)
            return {"density": density, "rgb": rgb.clamp(0.0, 1.0)}

        with self._planes_shared(triplanes):
            return chunked(field, points, chunk_size=chunk, dim=1)

    # ------------------------------------------------------------------ rays
    def forward(self, triplanes: Tensor, origins: Tensor, directions: Tensor,
                background: Tensor | None = None, occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """Render rays.

        Args:
            triplanes: (B, 3, C, R, R).
            origins: (B, N, 3) ray origins (world).
            directions: (B, N, 3) unit ray directions (world).
            background: (B, 3) colour behind each triplane's object; None: ``background_color``.
            occupancy: empty-space skipping for one triplane (B = 1): the field is evaluated only
                at samples in its occupied cells (:mod:`mira.rendering.occupancy`); None: everywhere.
        Returns:
            {"rgb": (B, N, 3), "depth": (B, N, 1), "opacity": (B, N, 1)}; depth is the expected
            distance along the ray of the visible surface (0 for empty rays).
        """
        _check_batch(triplanes, origins, "origins")
        if directions.shape != origins.shape:
            raise ValueError(
                f"mira/rendering/renderer.py: directions {tuple(directions.shape)} must match origins {tuple(origins.shape)}"
            )
        background = self._background(background, origins)
        if occupancy is not None and triplanes.shape[0] != 1:
            raise ValueError(f"mira/rendering/renderer.py: an occupancy grid belongs to one triplane, got a batch of {triplanes.shape[0]}")
        if occupancy is not None:
            return self._render_occupied_rays(triplanes, origins, directions, background, occupancy)
        return self._render_rays(triplanes, origins, directions, background)

    def _render_rays(self, triplanes: Tensor, origins: Tensor, directions: Tensor, background: Tensor,
                     occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """:meth:`forward` of (B, N, 3) rays over (B, 1, 3) backgrounds, ``ray_chunk_size`` rays at a time (all at
        once where :meth:`_renders_in_one_chunk`)."""
        rays_per_chunk = max(1, self.ray_chunk_size // origins.shape[0])
        if self._renders_in_one_chunk(triplanes):
            rays_per_chunk = max(1, origins.shape[1])
        with self._planes_shared(triplanes):
            out = chunked(lambda o, d: self._render_chunk(triplanes, o, d, background, occupancy), origins, directions,
                          chunk_size=rays_per_chunk, dim=1)  # N = 0 still gives one (empty) chunk
        return {key: out[key] for key in OUTPUT_CHANNELS}

    def _render_occupied_rays(self, triplanes: Tensor, origins: Tensor, directions: Tensor, background: Tensor,
                              occupancy: OccupancyGrid) -> dict[str, Tensor]:
        """:meth:`forward` with empty-space skipping (B = 1): only the rays that meet the occupied cells'
        bounding box are rendered; the others, which have no sample in an occupied cell and so would
        composite nothing, get the background, depth 0 and opacity 0 directly (the same values)."""
        count = origins.shape[1]
        out = {"rgb": background.to(origins.dtype).expand(1, count, 3).clone(),
               "depth": origins.new_zeros(1, count, 1), "opacity": origins.new_zeros(1, count, 1)}
        bounds = occupancy.bounds()
        if bounds is None:
            return out
        _, _, hit = intersect_box(origins[0], directions[0], *bounds)
        rays = hit[:, 0].nonzero().squeeze(-1)
        rendered = self._render_rays(triplanes, origins[:, rays], directions[:, rays], background, occupancy)
        for key, value in rendered.items():
            out[key] = out[key].to(value.dtype).index_copy_(1, rays, value)
        return out

    def render_pixels(
        self,
        triplanes: Tensor,
        c2w: Tensor,
        intrinsics: Tensor,
        uv: Tensor,
        height: int,
        width: int,
        background: Tensor | None = None,
        occupancy: OccupancyGrid | None = None,
    ) -> dict[str, Tensor]:
        """Render chosen pixels of V views per triplane.

        Args:
            triplanes: (B, 3, C, R, R).
            c2w: (B, V, 4, 4) OpenCV camera-to-world.
            intrinsics: (B, V, 4) normalised fx, fy, cx, cy.
            uv: (B, V, N, 2) pixel coordinates (pixel centres at +0.5), or (N, 2) shared by all views.
            height, width: the image size ``uv`` refers to.
            background: (B, 3) colour per triplane; None: ``background_color``.
            occupancy: empty-space skipping (see :meth:`forward`).
        Returns:
            {"rgb": (B, V, N, 3), "depth": (B, V, N, 1), "opacity": (B, V, N, 1)}.
        """
        if c2w.dim() != 4 or c2w.shape[-2:] != (4, 4) or intrinsics.shape != (*c2w.shape[:2], 4):
            raise ValueError(
                "mira/rendering/renderer.py: render_pixels needs c2w (B, V, 4, 4) and intrinsics (B, V, 4), got "
                f"{tuple(c2w.shape)} and {tuple(intrinsics.shape)}"
            )
        batch, views = c2w.shape[:2]
        if uv.dim() == 2:
            uv = uv.expand(batch, views, *uv.shape)
        if uv.dim() != 4 or uv.shape[:2] != (batch, views) or uv.shape[-1] != 2:
            raise ValueError(
                f"mira/rendering/renderer.py: uv must be (B, V, N, 2) = ({batch}, {views}, N, 2) or (N, 2), got {tuple(uv.shape)}"
            )
        num_pixels = uv.shape[2]
        origins, directions = rays_from_pixels(
            c2w.reshape(batch * views, 4, 4), intrinsics.reshape(batch * views, 4), uv.reshape(batch * views, num_pixels, 2),
            width, height,
        )
        out = self(triplanes, origins.reshape(batch, views * num_pixels, 3), directions.reshape(batch, views * num_pixels, 3),
                   background, occupancy)
        return {key: value.reshape(batch, views, num_pixels, value.shape[-1]) for key, value in out.items()}

    def render_images(self, triplanes: Tensor, c2w: Tensor, intrinsics: Tensor, height: int, width: int,
                      background: Tensor | None = None, occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """Render whole images of V views per triplane.

        Args:
            triplanes: (B, 3, C, R, R); c2w: (B, V, 4, 4); intrinsics: (B, V, 4) normalised;
            background: (B, 3) colour per triplane, None: ``background_color``;
            occupancy: empty-space skipping (see :meth:`forward`).
        Returns:
            {"rgb": (B, V, 3, H, W), "depth": (B, V, 1, H, W), "opacity": (B, V, 1, H, W)}.
        """
        uv = pixel_centers(height, width, device=c2w.device).to(c2w.dtype)
        out = self.render_pixels(triplanes, c2w, intrinsics, uv, height, width, background, occupancy)
        batch, views = c2w.shape[:2]
        return {
            key: value.reshape(batch, views, height, width, value.shape[-1]).permute(0, 1, 4, 2, 3)
            for key, value in out.items()
        }

    # ------------------------------------------------------------------ internals
    def _field_along_rays(self, triplanes: Tensor, origins: Tensor, directions: Tensor, t: Tensor,
                          occupancy: OccupancyGrid | None = None) -> tuple[Tensor, Tensor]:
        """Field at ``origins + t * directions``: (B, n, S) samples -> density (B, n, S, 1), colour (B, n, S, 3).

        With ``occupancy`` (B = 1) only samples in occupied cells are evaluated; the rest are 0.
        """
        batch, rays, samples = t.shape
        points = (origins.unsqueeze(-2) + t.unsqueeze(-1) * directions.unsqueeze(-2)).reshape(batch, rays * samples, 3)
        if occupancy is None:
            density, rgb = self.point_field(triplanes, points)
        else:
            keep = occupancy.contains(points[0]).nonzero().squeeze(-1)  # (P_occupied,)
            kept_density, kept_rgb = self.point_field(triplanes, points[:, keep])
            density = kept_density.new_zeros(batch, rays * samples, 1).index_copy_(1, keep, kept_density)
            rgb = kept_rgb.new_zeros(batch, rays * samples, 3).index_copy_(1, keep, kept_rgb)
        return density.reshape(batch, rays, samples, 1), rgb.reshape(batch, rays, samples, 3)

    def _background(self, background: Tensor | None, origins: Tensor) -> Tensor:
        """The background as (B, 1, 3) (broadcast over the rays of each triplane)."""
        if background is None:
            return self.background.expand(origins.shape[0], 3)[:, None]
        if background.shape != (origins.shape[0], 3):
            raise ValueError(
                f"mira/rendering/renderer.py: background must be (B, 3) = ({origins.shape[0]}, 3), got {tuple(background.shape)}"
            )
        return background[:, None].to(self.background.device, torch.float32)

    def _logits_along_rays(self, triplanes: Tensor, origins: Tensor, directions: Tensor, t: Tensor,
                           occupancy: OccupancyGrid | None = None) -> tuple[Tensor, Tensor]:
        """Density logits (B, n, S, 1) and colours (B, n, S, 3) at (B, n, S) samples; samples outside the
        box (or, with ``occupancy``, outside its occupied cells) are empty: logit ``EMPTY_LOGIT``, colour 0."""
        batch, rays, samples = t.shape
        points = (origins.unsqueeze(-2) + t.unsqueeze(-1) * directions.unsqueeze(-2)).reshape(batch, rays * samples, 3)
        inside = ((points >= self.box_min.to(points)) & (points <= self.box_max.to(points))).all(dim=-1)  # (B, P)
        if occupancy is not None:
            inside = inside & occupancy.contains(points[0])[None]
        logits, rgb = self.point_logits(triplanes, points)
        logits = torch.where(inside[..., None], logits, torch.full_like(logits, EMPTY_LOGIT))
        rgb = torch.where(inside[..., None], rgb, torch.zeros_like(rgb))
        return logits.reshape(batch, rays, samples, 1), rgb.reshape(batch, rays, samples, 3)

    def _render_chunk_eg3d(self, triplanes: Tensor, origins: Tensor, directions: Tensor, background: Tensor,
                           occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """``ray_marching = "eg3d"`` (:mod:`mira.rendering.eg3d_marching`): (B, n, 3) rays ->
        {"rgb": (B, n, 3), "depth": (B, n, 1), "opacity": (B, n, 1)}."""
        near, far, _ = intersect_box_reciprocal(origins, directions, self.box_min, self.box_max)
        t = linspace_samples(near, far, self.num_coarse_samples, jitter=self.training)
        logits, rgb = self._logits_along_rays(triplanes, origins, directions, t, occupancy)
        activate = self.field.activate_density
        if self.num_fine_samples > 0:
            with torch.no_grad():
                weights = composite_intervals(logits, rgb, t, background, activate)["weights"]
            t_fine = smoothed_importance_samples(t, weights, self.num_fine_samples, deterministic=not self.training)
            logits_fine, rgb_fine = self._logits_along_rays(triplanes, origins, directions, t_fine, occupancy)
            t, (logits, rgb) = merge_samples(t, [logits, rgb], t_fine, [logits_fine, rgb_fine])
        out = composite_intervals(logits, rgb, t, background, activate)
        return {key: out[key] for key in OUTPUT_CHANNELS}

    def _render_chunk_normalized(self, triplanes: Tensor, origins: Tensor, directions: Tensor, background: Tensor,
                                 occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """``ray_marching = "normalized_midpoint"`` (:mod:`mira.rendering.midpoint_marching`, TripoSR's):
        (B, n, 3) rays -> {"rgb": (B, n, 3), "depth": (B, n, 1), "opacity": (B, n, 1)}."""
        near, far, valid = intersect_shrunk_box(origins, directions, self.box_min, self.box_max)
        t, deltas = midpoint_samples(near, far, self.num_coarse_samples)
        density, rgb = self._field_along_rays(triplanes, origins, directions, t, occupancy)
        out = composite_normalized(density, rgb, t, deltas, valid, background)
        return {key: out[key] for key in OUTPUT_CHANNELS}

    def _render_chunk(self, triplanes: Tensor, origins: Tensor, directions: Tensor, background: Tensor,
                      occupancy: OccupancyGrid | None = None) -> dict[str, Tensor]:
        """Render (B, n, 3) rays over backgrounds (B, 1, 3) in one go:
        {"rgb": (B, n, 3), "depth": (B, n, 1), "opacity": (B, n, 1)}."""
        dtype = torch.promote_types(origins.dtype, torch.float32)
        origins, directions = origins.to(dtype), directions.to(dtype)
        if self.ray_marching == "eg3d":
            return self._render_chunk_eg3d(triplanes, origins, directions, background, occupancy)
        if self.ray_marching == "normalized_midpoint":
            return self._render_chunk_normalized(triplanes, origins, directions, background, occupancy)
        near, far, _ = intersect_box(origins, directions, self.box_min, self.box_max)
        t = stratified_samples(near, far, self.num_coarse_samples, jitter=self.training)
        density, rgb = self._field_along_rays(triplanes, origins, directions, t, occupancy)
        if self.num_fine_samples > 0:
            edges = interval_edges(t, near, far)
            with torch.no_grad():
                weights = composite(density, rgb, t, edges, background)["weights"]
            t_fine = importance_samples(edges, weights, self.num_fine_samples, deterministic=not self.training)
            density_fine, rgb_fine = self._field_along_rays(triplanes, origins, directions, t_fine, occupancy)
            t, (density, rgb) = merge_samples(t, [density, rgb], t_fine, [density_fine, rgb_fine],
                                              presorted=not self.training)
        out = composite(density, rgb, t, interval_edges(t, near, far), background)
        return {key: out[key] for key in OUTPUT_CHANNELS}


def planes_are_projected(mode: str, hidden_dim: int, triplane_dim: int) -> bool:
    """Whether ``renderer.project_planes`` = ``mode`` applies the field's first layer to the planes: "on", or
    "auto" when the projected planes have no more channels (``hidden_dim``) than the planes (``triplane_dim``)."""
    if mode not in PROJECT_PLANES_MODES:
        raise ValueError(f"mira/rendering/renderer.py: project_planes must be auto, on or off, got '{mode}'")
    return mode == "on" or (mode == "auto" and hidden_dim <= triplane_dim)


def _check_batch(triplanes: Tensor, tensor: Tensor, name: str) -> None:
    """Raise a clear error unless triplanes are (B, 3, C, R, R) and ``tensor`` is (B, N, 3)."""
    if triplanes.dim() != 5 or triplanes.shape[1] != 3:
        raise ValueError(f"mira/rendering/renderer.py: triplanes must be (B, 3, C, R, R), got {tuple(triplanes.shape)}")
    if tensor.dim() != 3 or tensor.shape[-1] != 3 or tensor.shape[0] != triplanes.shape[0]:
        raise ValueError(
            f"mira/rendering/renderer.py: {name} must be (B, N, 3) with B = {triplanes.shape[0]} "
            f"(the triplane batch), got {tuple(tensor.shape)}"
        )
