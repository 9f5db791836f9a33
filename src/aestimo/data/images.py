"""Decode and resize every image once into a uint8 image store on disk.

Every later stage (features, expert fine-tuning, personalization, scoring of
known images) reads pixels from this store instead of decoding files again.
The store is a safetensors file written in place (:func:`build_store`) and
read row by row (:func:`pixels_of`), so no process holds every pixel. Training views are random crops with horizontal flips; evaluation views
are a deterministic centre crop (no flips, no random crops).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from tqdm.auto import tqdm

from aestimo.bundle import BundleWriter, StoredRows, TensorBundle, mapped_origin, mapped_tensor
from aestimo.data.loading import apply_views, draw_views

log = logging.getLogger(__name__)


class ImageReadError(ValueError):
    """One or more images are missing or cannot be decoded; lists each id and path."""


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Decode one image file as RGB and resize it to ``size × size`` (uint8, CHW).

    PIL decodes (torchvision's own decoders are deprecated in favour of
    TorchCodec); torchvision's v2 transforms resize (bilinear) and convert. A
    JPEG at least four times ``size`` on each side is decoded at a reduced scale
    (PIL's ``draft``: libjpeg's DCT scaling, kept at twice ``size`` or more so the
    resize still has detail to average), which makes a 4000-px phone photo
    several times cheaper; a smaller one decodes as is. A
    missing file raises FileNotFoundError; a file that is no image raises PIL's
    UnidentifiedImageError.
    """
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft(im.mode, (2 * size, 2 * size))
        return TF.pil_to_tensor(TF.resize(im.convert("RGB"), [size, size], interpolation=InterpolationMode.BILINEAR))


def _decode_into(out: np.ndarray, image_ids: Sequence[str], paths: Sequence[str], size: int, workers: int | None, progress: bool) -> None:
    """Decode ``paths`` into the rows of ``out`` on ``workers`` threads (PIL decodes and resizes
    outside the GIL; None = every core). Every unreadable file is collected first, then one error
    names them all (id and path), so a user fixes the data set in one pass."""
    bad: list[str] = []

    def work(i: int) -> None:
        try:
            out[i] = load_image(paths[i], size).numpy()
        except FileNotFoundError:
            bad.append(f"{image_ids[i]} ({paths[i]}): file not found")
        except (UnidentifiedImageError, OSError, ValueError) as err:
            bad.append(f"{image_ids[i]} ({paths[i]}): cannot decode ({err})")

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(tqdm(pool.map(work, range(len(paths))), total=len(paths), desc="decode images", disable=not progress))
    if bad:
        raise ImageReadError(
            f"{len(bad)} image(s) are missing or corrupt; fix or remove them from the rating files:\n  "
            + "\n  ".join(sorted(bad)[:50])
        )


def build_cache(
    image_ids: Sequence[str], paths: Sequence[str], size: int, workers: int | None = 2, progress: bool = True
) -> torch.Tensor:
    """Decode ``paths`` into one in-memory ``(N, 3, size, size)`` uint8 tensor, in the order given
    (a handful of images; a data set goes to :func:`build_store`)."""
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    _decode_into(out.numpy(), image_ids, paths, size, workers, progress)
    return out


def build_store(
    image_ids: Sequence[str], paths: Sequence[str], size: int, folder: str | Path, workers: int | None = None,
    progress: bool = True,
) -> TensorBundle:
    """Decode ``paths`` into an image store on disk: a safetensors file in ``folder`` holding
    ``pixels`` ``(N, 3, size, size)`` uint8 in the order given, with the ids and the decode size
    in its metadata. Written in place on every core, never held in memory; returned mapped and
    marked scratch (saving it to the catalog moves the file into place). On an error nothing
    is left behind."""
    meta = {"image_ids": list(image_ids), "size": size}
    with BundleWriter(folder, {"pixels": (torch.uint8, (len(paths), 3, size, size))}, meta) as writer:
        _decode_into(writer.rows("pixels"), image_ids, paths, size, workers, progress)
    return writer.bundle


def to_float(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NCHW -> normalised float32, channels_last (fast on CPU for convnets)."""
    x = pixels.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def center_view(pixels: torch.Tensor, crop: int) -> torch.Tensor:
    """The deterministic evaluation view: a centre crop of ``crop`` pixels."""
    return TF.center_crop(pixels, [crop, crop])


def train_view(pixels: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop and horizontal flip per image, drawn from ``generator`` (reproducible)."""
    return apply_views(pixels, crop, *draw_views(len(pixels), pixels.shape[-2], pixels.shape[-1], crop, generator))


def rows_of(bundle: TensorBundle, key: str) -> torch.Tensor | StoredRows:
    """A per-image table of a bundle (the image store's pixels, θ0's features): read row by row from
    its file when it has one (memory stays flat however many rows a node reads), the tensor itself
    when it lives in memory."""
    return StoredRows(bundle.path, key) if bundle.path is not None else bundle[key]


def pixels_of(store: TensorBundle) -> torch.Tensor | StoredRows:
    """The pixel table of an image store (:func:`rows_of`)."""
    return rows_of(store, "pixels")


class Rows:
    """Some rows of a pixel table, indexed lazily: ``rows_view[idx]`` reads ``pixels[rows[idx]]``
    only (a training split of a store larger than memory is never copied out whole)."""

    def __init__(self, pixels: torch.Tensor, rows: torch.Tensor):
        self.pixels, self.rows = pixels, rows
        self.shape = (len(rows), *pixels.shape[1:])
        self.dtype = pixels.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> torch.Tensor:
        return self.pixels[self.rows[idx]]

    def blocks(self, size: int = 1024):
        """The rows in order, ``size`` at a time (for digests and evaluation passes)."""
        for i in range(0, len(self.rows), size):
            yield self.pixels[self.rows[i : i + size]]


@dataclass
class CachedImages:
    """The image store (uint8, NCHW) and how a model sees it (centre crop, normalisation).

    Calling it with store rows gives the normalised evaluation view of those
    images; rows are small to send to a worker process. A store mapped from its
    file travels to a worker as the file's path (the worker maps it too), never
    as a copy of its pixels.
    """

    pixels: torch.Tensor
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device | None = None  # where the views are made (None: the CPU)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        pixels = self.pixels[rows]
        if self.device is not None:
            pixels = pixels.to(self.device)
        return to_float(center_view(pixels, self.crop), self.mean, self.std)

    def __reduce__(self):
        origin = mapped_origin(self.pixels) if isinstance(self.pixels, torch.Tensor) else None
        if origin is None:
            return (CachedImages, (self.pixels, self.crop, self.mean, self.std, self.device))
        return (_mapped_images, (*origin, self.crop, self.mean, self.std, self.device))


def _mapped_images(path: str, key: str, crop: int, mean, std, device=None) -> CachedImages:
    return CachedImages(mapped_tensor(path, key), crop, mean, std, device)
