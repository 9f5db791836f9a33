"""Decode and resize every image once into a uint8 tensor cache.

Every later stage (features, expert fine-tuning, personalization, scoring of
known images) reads pixels from this cache instead of decoding files again.
Training views are random crops with horizontal flips; evaluation views are a
deterministic centre crop (no flips, no random crops).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class ImageReadError(ValueError):
    """One or more images are missing or cannot be decoded; lists each id and path."""


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Decode one image file as RGB and resize it to ``size × size`` (uint8, CHW).

    PIL decodes (torchvision's own decoders are deprecated in favour of
    TorchCodec); torchvision's v2 transforms resize (bilinear) and convert. A
    missing file raises FileNotFoundError; a file that is no image raises PIL's
    UnidentifiedImageError.
    """
    with Image.open(path) as im:
        return TF.pil_to_tensor(TF.resize(im.convert("RGB"), [size, size], interpolation=InterpolationMode.BILINEAR))


def build_cache(
    image_ids: Sequence[str], paths: Sequence[str], size: int, workers: int = 2, progress: bool = True
) -> torch.Tensor:
    """Decode ``paths`` into one ``(N, 3, size, size)`` uint8 tensor, in the order given.

    Every unreadable file is collected first, then one error names them all
    (id and path), so a user fixes the data set in one pass.
    """
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    bad: list[str] = []

    def work(i: int) -> None:
        try:
            out[i] = load_image(paths[i], size)
        except FileNotFoundError:
            bad.append(f"{image_ids[i]} ({paths[i]}): file not found")
        except (UnidentifiedImageError, OSError, ValueError) as err:
            bad.append(f"{image_ids[i]} ({paths[i]}): cannot decode ({err})")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(tqdm(pool.map(work, range(len(paths))), total=len(paths), desc="decode images", disable=not progress))
    if bad:
        raise ImageReadError(
            f"{len(bad)} image(s) are missing or corrupt; fix or remove them from the rating files:\n  "
            + "\n  ".join(sorted(bad)[:50])
        )
    return out


def to_float(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NCHW -> normalised float32, channels_last (fast on CPU for convnets)."""
    x = pixels.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def center_view(pixels: torch.Tensor, crop: int) -> torch.Tensor:
    """The deterministic evaluation view: a centre crop of ``crop`` pixels."""
    return TF.center_crop(pixels, [crop, crop])


def train_view(pixels: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop and horizontal flip per image, drawn from ``generator`` (reproducible)."""
    n, _, h, w = pixels.shape
    tops = torch.randint(0, h - crop + 1, (n,), generator=generator)
    lefts = torch.randint(0, w - crop + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    views = []
    for i in range(n):
        v = TF.crop(pixels[i], int(tops[i]), int(lefts[i]), crop, crop)
        views.append(TF.horizontal_flip(v) if flips[i] else v)
    return torch.stack(views) if views else pixels[:, :, :crop, :crop]


@dataclass
class CachedImages:
    """The image cache (uint8, NCHW) and how a model sees it (centre crop, normalisation).

    Calling it with cache rows gives the normalised evaluation view of those
    images; rows are small to send to a worker process, pixels travel once.
    """

    pixels: torch.Tensor
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        return to_float(center_view(self.pixels[rows], self.crop), self.mean, self.std)
