"""Any image a line gives, on a fixed-size graph: region of interest, one scale, tiles.

Nothing is squashed. An image is cropped to its region of interest, scaled by the one
factor the configuration names (1.0 = native pixels, the default) keeping its aspect
ratio, padded by reflection to a multiple of the patch stride (and to at least one
tile), and cut into fixed-size tiles that overlap by ``margin`` pixels on each side.
The exported graph runs those tiles; each patch of the image's grid is then taken from
the tile in whose core it lies, at least ``margin`` pixels from that tile's edges, so a
convolution's zero padding at a tile edge never reaches a patch that is kept (except at
the image's own borders, which every image shares, the shots included).

Everything here is plain numpy and Pillow: the PyTorch path and the torch-free runtime
plan, cut and stitch identically, so a bundle sees exactly the patches the fit saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from defectkit.core.images import to_rgb
from defectkit.errors import ConfigError, ImageError


@dataclass(frozen=True)
class TileSpec:
    """How images meet the graph.

    Attributes:
        size: (H, W) of one tile in model pixels, a multiple of ``stride``.
        stride: model pixels per patch (the patch grid's step).
        margin: overlap kept clear of tile edges, model pixels, a multiple of ``stride``.
        scale: model pixels per image pixel (1.0 = native resolution).
        roi: (x0, y0, x1, y1) region of interest in image pixels, or None (whole image);
            clipped to each image.
    """

    size: tuple[int, int]
    stride: int = 8
    margin: int = 32
    scale: float = 1.0
    roi: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        th, tw = self.size
        if self.stride < 1 or th % self.stride or tw % self.stride:
            raise ConfigError(f"tile size {self.size} must be a multiple of the stride {self.stride}")
        if self.margin < 0 or self.margin % self.stride:
            raise ConfigError(f"tile margin {self.margin} must be a multiple of the stride {self.stride}")
        if min(th, tw) <= 2 * self.margin:
            raise ConfigError(f"tile size {self.size} leaves no core inside a margin of {self.margin}")
        if not (0.05 <= self.scale <= 4.0):
            raise ConfigError(f"scale must be between 0.05 and 4 model pixels per image pixel, got {self.scale}")
        if self.roi is not None:
            x0, y0, x1, y1 = self.roi
            if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
                raise ConfigError(f"region of interest {self.roi} must be x0 y0 x1 y1 with x0 < x1, y0 < y1, >= 0")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid of one tile."""
        return self.size[0] // self.stride, self.size[1] // self.stride

    def to_dict(self) -> dict:
        return {
            "size": list(self.size), "stride": self.stride, "margin": self.margin,
            "scale": self.scale, "roi": None if self.roi is None else list(self.roi),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> TileSpec:
        roi = data.get("roi")
        return cls(
            size=(int(data["size"][0]), int(data["size"][1])), stride=int(data["stride"]),
            margin=int(data["margin"]), scale=float(data["scale"]),
            roi=None if roi is None else tuple(int(v) for v in roi),
        )  # fmt: skip


@dataclass(frozen=True)
class TilePlan:
    """Where one image's tiles come from and where their patches go.

    Attributes:
        image_size: (H, W) of the original image.
        box: (x0, y0, x1, y1) of the region inspected, in image pixels.
        scaled: (h, w) of that region after scaling, in model pixels (before padding).
        grid: (GH, GW) patch grid over the scaled, padded region.
        origins: (y, x) of each tile's top-left corner, in model pixels.
        cores: per tile, ((gy0, gy1), (gx0, gx1)): the image-grid cells it supplies; its
            own cells are the same minus the origin's grid offset.
    """

    image_size: tuple[int, int]
    box: tuple[int, int, int, int]
    scaled: tuple[int, int]
    grid: tuple[int, int]
    origins: tuple[tuple[int, int], ...]
    cores: tuple[tuple[tuple[int, int], tuple[int, int]], ...]

    @property
    def n_tiles(self) -> int:
        return len(self.origins)


def clip_box(spec: TileSpec, image_size: Sequence[int]) -> tuple[int, int, int, int]:
    """The region of interest clipped to an image of ``image_size`` = (H, W)."""
    h, w = int(image_size[0]), int(image_size[1])
    if spec.roi is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = spec.roi
    box = (min(x0, w), min(y0, h), min(x1, w), min(y1, h))
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise ImageError(
            f"the region of interest {spec.roi} leaves less than 8 x 8 pixels of this "
            f"{w}x{h} image; set a region that fits every image (inspect fit --roi)"
        )
    return box


def _axis(length: int, tile: int, margin: int, stride: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Tile origins along one axis of ``length`` model pixels (a multiple of the stride,
    at least ``tile``) and the grid cells each supplies."""
    if length <= tile:
        return [0], [(0, length // stride)]
    step = tile - 2 * margin
    origins = list(range(0, length - tile, step)) + [length - tile]
    cores = []
    for i, o in enumerate(origins):
        start = 0 if i == 0 else max(o + margin, cores[-1][1] * stride) // stride
        end = length // stride if i == len(origins) - 1 else (o + tile - margin) // stride
        cores.append((start, end))
    # A late last tile can overlap its neighbour's core: hand each cell to one tile.
    for i in range(len(cores) - 1, 0, -1):
        cores[i - 1] = (cores[i - 1][0], min(cores[i - 1][1], cores[i][0]))
    return origins, cores


def plan_tiles(spec: TileSpec, image_size: Sequence[int]) -> TilePlan:
    """Plan the tiles of one image of ``image_size`` = (H, W)."""
    box = clip_box(spec, image_size)
    bw, bh = box[2] - box[0], box[3] - box[1]
    scaled = (max(1, round(bh * spec.scale)), max(1, round(bw * spec.scale)))
    s, (th, tw) = spec.stride, spec.size
    padded = (max(th, -(-scaled[0] // s) * s), max(tw, -(-scaled[1] // s) * s))
    ys, ycores = _axis(padded[0], th, spec.margin, s)
    xs, xcores = _axis(padded[1], tw, spec.margin, s)
    origins = tuple((y, x) for y in ys for x in xs)
    cores = tuple((yc, xc) for yc in ycores for xc in xcores)
    grid = (-(-scaled[0] // s), -(-scaled[1] // s))
    # Cells of the padding beyond the scaled region are dropped from every core.
    cores = tuple(
        ((yc[0], min(yc[1], grid[0])), (xc[0], min(xc[1], grid[1]))) for yc, xc in cores
    )
    keep = [i for i, (yc, xc) in enumerate(cores) if yc[1] > yc[0] and xc[1] > xc[0]]
    return TilePlan(
        image_size=(int(image_size[0]), int(image_size[1])), box=box, scaled=scaled, grid=grid,
        origins=tuple(origins[i] for i in keep), cores=tuple(cores[i] for i in keep),
    )  # fmt: skip


def _pad_reflect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    ph, pw = height - image.shape[0], width - image.shape[1]
    if ph <= 0 and pw <= 0:
        return image
    # "symmetric" repeats the edge pixel, so it also pads more than the image's size.
    return np.pad(image, ((0, max(ph, 0)), (0, max(pw, 0)), (0, 0)), mode="symmetric")


def cut_tiles(image: np.ndarray, spec: TileSpec, plan: TilePlan | None = None) -> tuple[np.ndarray, TilePlan]:
    """One image (any size, RGB/gray, 8/16-bit) -> (T x 3 x th x tw float32 in [0, 1], plan)."""
    rgb = to_rgb(image)
    plan = plan or plan_tiles(spec, rgb.shape[:2])
    x0, y0, x1, y1 = plan.box
    region = rgb[y0:y1, x0:x1]
    h, w = plan.scaled
    if region.shape[:2] != (h, w):
        region = np.asarray(Image.fromarray(region).resize((w, h), Image.BILINEAR))
    th, tw = spec.size
    gh, gw = plan.grid
    region = _pad_reflect(region, max(th, gh * spec.stride), max(tw, gw * spec.stride))
    region = _pad_reflect(region, max(region.shape[0], max(o[0] for o in plan.origins) + th),
                          max(region.shape[1], max(o[1] for o in plan.origins) + tw))  # fmt: skip
    tiles = np.stack([region[y : y + th, x : x + tw] for y, x in plan.origins])
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0), plan


def stitch(tile_maps: np.ndarray, spec: TileSpec, plan: TilePlan) -> np.ndarray:
    """T x C x gh x gw per-tile grids -> C x GH x GW over the image's region."""
    t, c = tile_maps.shape[:2]
    if t != plan.n_tiles or tuple(tile_maps.shape[2:]) != spec.grid:
        raise ValueError(f"expected {plan.n_tiles} tiles of {spec.grid}, got {tile_maps.shape}")
    out = np.empty((c, *plan.grid), dtype=tile_maps.dtype)
    s = spec.stride
    for tile, (oy, ox), ((gy0, gy1), (gx0, gx1)) in zip(tile_maps, plan.origins, plan.cores, strict=True):
        ty, tx = oy // s, ox // s
        out[:, gy0:gy1, gx0:gx1] = tile[:, gy0 - ty : gy1 - ty, gx0 - tx : gx1 - tx]
    return out


def grid_to_image(grid_map: np.ndarray, spec: TileSpec, plan: TilePlan, fill: float = 0.0) -> np.ndarray:
    """GH x GW patch map -> H x W map in the original image's pixels (bilinear; ``fill``
    outside the region of interest)."""
    gh, gw = plan.grid
    x0, y0, x1, y1 = plan.box
    h, w = plan.scaled
    s = spec.stride
    # The grid covers gh*s x gw*s model pixels from the region's corner: resample it onto
    # the region's image pixels with cell centres where they lie.
    img = Image.fromarray(np.ascontiguousarray(grid_map, dtype=np.float32), mode="F")
    box_model = (0.0, 0.0, w / s, h / s)  # the part of the grid that covers the region
    region = np.asarray(
        img.resize((x1 - x0, y1 - y0), Image.BILINEAR, box=box_model), dtype=np.float32
    )
    if (x0, y0, x1, y1) == (0, 0, plan.image_size[1], plan.image_size[0]):
        return region
    out = np.full(plan.image_size, fill, dtype=np.float32)
    out[y0:y1, x0:x1] = region
    return out


def mask_to_grid(mask: np.ndarray, spec: TileSpec, plan: TilePlan) -> np.ndarray:
    """H x W bool mask in image pixels -> GH x GW fraction of each patch it covers."""
    x0, y0, x1, y1 = plan.box
    region = np.asarray(mask, dtype=bool)[y0:y1, x0:x1].astype(np.float32)
    h, w = plan.scaled
    gh, gw = plan.grid
    s = spec.stride
    img = Image.fromarray(region, mode="F").resize((w, h), Image.BILINEAR)
    scaled = _pad_zero(np.asarray(img, dtype=np.float32), gh * s, gw * s)
    return scaled.reshape(gh, s, gw, s).mean(axis=(1, 3))


def _pad_zero(a: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width), dtype=a.dtype)
    out[: a.shape[0], : a.shape[1]] = a[:height, :width]
    return out


#: Shots up to this many pixels (at the configured scale, rounded up) run as one tile
#: of their own size: tiles overlap by twice their margin, so cutting a 1130 x 460
#: spindle into three 480 x 512 tiles computed a third more pixels than it has (and the
#: memory-bank distances with them); one 480 x 1152 tile is 20 % faster end to end.
ONE_TILE_PIXELS = 1 << 20


def choose_tile_size(
    sizes: Sequence[Sequence[int]], scale: float, *, stride: int, largest: int = 512,
    whole: int = ONE_TILE_PIXELS,
) -> tuple[int, int]:  # fmt: skip
    """A tile that fits the shots: each side the largest scaled image side rounded up to
    32 pixels; when that tile has more than ``whole`` pixels, each side at most
    ``largest`` (so a 128 px crop and a 1130 x 460 spindle run as one tile each, a
    24 MP photo as 512 x 512 tiles)."""
    if not sizes:
        raise ConfigError("no images to choose a tile size from")
    unit = max(32, stride)
    side = []
    for axis in (0, 1):
        longest = max(round(int(s[axis]) * scale) for s in sizes)
        side.append(int(max(unit * 2, -(-longest // unit) * unit)))
    if side[0] * side[1] > whole:
        side = [min(largest, s) for s in side]
    return side[0], side[1]
