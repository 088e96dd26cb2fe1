"""A binary glTF 2.0 (``.glb``) writer and reader for one triangle mesh, colour spaces per the spec.

Why not ``trimesh``'s exporter: glTF defines vertex colours (``COLOR_0``) as *linear*, and trimesh
writes the sRGB bytes it holds as 8-bit values (washed-out colours in every viewer; even
converted, 8 bits of linear colour band visibly in the darks), and a mesh without a material gets
glTF's default material, which is fully metallic. This writer stores:

* ``POSITION`` (float32, with the min / max the spec requires), ``NORMAL`` (float32, unit);
* vertex colours as ``COLOR_0``: linear RGBA, 16-bit normalised (``srgb_to_linear`` of the
  field's sRGB colour);
* or a texture: ``TEXCOORD_0`` (float32, glTF's v-down convention) and a PNG image as the
  material's ``baseColorTexture`` (glTF reads base-colour textures as sRGB, so the baked sRGB
  bytes go in unchanged);
* a dielectric, fully rough material (``metallicFactor`` 0, ``roughnessFactor`` 1): the colour
  field already contains the shading the input image had;
* ``uint32`` indices, every buffer view 4-byte aligned.

Positions and normals are written as given: the caller turns MIRA's world into glTF's frame
(:data:`mira.export.mesh.MIRA_TO_Y_UP`).
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GLB_MAGIC = 0x46546C67  # "glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
# glTF enums (the WebGL constants the spec uses).
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
TRIANGLES = 4
LINEAR, LINEAR_MIPMAP_LINEAR, CLAMP_TO_EDGE = 9729, 9987, 33071
COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DTYPES = {FLOAT: np.float32, UNSIGNED_SHORT: np.uint16, UNSIGNED_INT: np.uint32, 5121: np.uint8}


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear values in [0, 1] (IEC 61966-2-1, exact piecewise)."""
    srgb = np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] -> sRGB-encoded values in [0, 1] (inverse of :func:`srgb_to_linear`)."""
    linear = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1.0 / 2.4) - 0.055)


class _Builder:
    """Collects buffer views and accessors into one binary buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.buffer_views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def accessor(self, array: np.ndarray, component_type: int, kind: str, target: int,
                 normalized: bool = False, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array, dtype=DTYPES[component_type])
        accessor: dict[str, Any] = {
            "bufferView": self.view(array.tobytes(), target), "componentType": component_type,
            "count": int(len(array)), "type": kind,
        }
        if normalized:
            accessor["normalized"] = True
        if bounds:
            accessor["min"] = array.reshape(len(array), -1).min(axis=0).tolist()
            accessor["max"] = array.reshape(len(array), -1).max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def glb_bytes(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None = None,
    vertex_colors_srgb: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    texture_png: bytes | None = None,
    name: str = "mira",
) -> bytes:
    """One mesh as a GLB file.

    Args:
        vertices: (V, 3) positions, already in glTF's frame (+Y up).
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        normals: (V, 3) unit vertex normals, or None.
        vertex_colors_srgb: (V, 3|4) uint8 sRGB colours, written linear as ``COLOR_0``; or None.
        uv: (V, 2) texture coordinates, v up (OBJ / trimesh convention; flipped to glTF's v down).
        texture_png: PNG bytes of the sRGB base-colour texture (needs ``uv``).
        name: mesh and material name.
    Returns:
        The ``.glb`` file content.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"glb_bytes needs vertices (V, 3) and faces (F>0, 3), got {vertices.shape} and {faces.shape}")
    if (texture_png is None) != (uv is None):
        raise ValueError("a texture needs both uv and texture_png")
    builder = _Builder()
    attributes = {"POSITION": builder.accessor(vertices, FLOAT, "VEC3", ARRAY_BUFFER, bounds=True)}
    if normals is not None:
        attributes["NORMAL"] = builder.accessor(normals, FLOAT, "VEC3", ARRAY_BUFFER)
    if vertex_colors_srgb is not None:
        srgb = np.asarray(vertex_colors_srgb)[:, :3].astype(np.float64) / 255.0
        linear = np.concatenate([srgb_to_linear(srgb), np.ones((len(srgb), 1))], axis=1)  # VEC4 keeps 4-byte alignment
        attributes["COLOR_0"] = builder.accessor(np.round(linear * 65535.0), UNSIGNED_SHORT, "VEC4", ARRAY_BUFFER,
                                                 normalized=True)
    material: dict[str, Any] = {
        "name": name,
        "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0},
    }
    tree: dict[str, Any] = {}
    if uv is not None and texture_png is not None:
        uv_gltf = np.asarray(uv, dtype=np.float64)[:, :2].copy()
        uv_gltf[:, 1] = 1.0 - uv_gltf[:, 1]
        attributes["TEXCOORD_0"] = builder.accessor(uv_gltf, FLOAT, "VEC2", ARRAY_BUFFER)
        tree["images"] = [{"bufferView": builder.view(texture_png), "mimeType": "image/png"}]
        tree["samplers"] = [{"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR,
                             "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}]
        tree["textures"] = [{"source": 0, "sampler": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0, "texCoord": 0}
    indices = builder.accessor(faces.reshape(-1), UNSIGNED_INT, "SCALAR", ELEMENT_ARRAY_BUFFER)
    tree.update({
        "asset": {"version": "2.0", "generator": "MIRA (mira.export.gltf)"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attributes, "indices": indices, "material": 0, "mode": TRIANGLES}]}],
        "materials": [material],
        "accessors": builder.accessors,
        "bufferViews": builder.buffer_views,
        "buffers": [{"byteLength": len(builder.blob)}],
    })
    return pack_glb(tree, bytes(builder.blob))


def pack_glb(tree: dict[str, Any], blob: bytes) -> bytes:
    """glTF JSON + binary buffer -> GLB container (12-byte header, JSON chunk, BIN chunk)."""
    json_chunk = json.dumps(tree, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    bin_chunk = blob + b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join([
        struct.pack("<III", GLB_MAGIC, 2, total),
        struct.pack("<II", len(json_chunk), CHUNK_JSON), json_chunk,
        struct.pack("<II", len(bin_chunk), CHUNK_BIN), bin_chunk,
    ])


@dataclass
class GLBContent:
    """A parsed GLB: its JSON tree and binary buffer."""

    tree: dict[str, Any]
    blob: bytes

    def accessor(self, index: int) -> np.ndarray:
        """Accessor ``index`` as an array (count, components), raw (not de-normalised); tightly packed views only."""
        accessor = self.tree["accessors"][index]
        view = self.tree["bufferViews"][accessor["bufferView"]]
        dtype = np.dtype(DTYPES[accessor["componentType"]])
        components = COMPONENTS[accessor["type"]]
        start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
        data = np.frombuffer(self.blob, dtype=dtype, count=accessor["count"] * components, offset=start)
        return data.reshape(accessor["count"], components)

    def image(self, index: int = 0) -> bytes:
        """The bytes of image ``index`` (stored in a buffer view)."""
        view = self.tree["bufferViews"][self.tree["images"][index]["bufferView"]]
        start = view.get("byteOffset", 0)
        return self.blob[start : start + view["byteLength"]]


def read_glb(path_or_bytes: str | Path | bytes) -> GLBContent:
    """Parse a ``.glb`` file (or its bytes) into its JSON tree and binary chunk; a ``ValueError`` if it is not one."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    stream = io.BytesIO(data)
    if len(data) < 20:
        raise ValueError("not a GLB file: shorter than its header")
    magic, version, total = struct.unpack("<III", stream.read(12))
    if magic != GLB_MAGIC or version != 2 or total != len(data):
        raise ValueError(f"not a glTF 2.0 binary file (magic {magic:#x}, version {version}, length {total} / {len(data)})")
    tree, blob = None, b""
    while stream.tell() < len(data):
        length, kind = struct.unpack("<II", stream.read(8))
        chunk = stream.read(length)
        if kind == CHUNK_JSON:
            tree = json.loads(chunk.decode("utf-8"))
        elif kind == CHUNK_BIN:
            blob = chunk
    if tree is None:
        raise ValueError("GLB file has no JSON chunk")
    return GLBContent(tree, blob)
