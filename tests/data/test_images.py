"""The image cache: decoding, resizing, views, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

from aestimo.data.images import ImageReadError, build_cache, center_view, load_image, train_view


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    paths = {}
    for fmt in ("png", "bmp", "jpg"):
        paths[fmt] = tmp_path / f"photo.{fmt}"
        Image.fromarray(arr).save(paths[fmt])
    return arr, paths


def test_load_image_decodes_and_resizes_every_format(photo):
    arr, paths = photo
    png, bmp, jpg = (load_image(paths[f], 16) for f in ("png", "bmp", "jpg"))
    assert png.shape == (3, 16, 16) and png.dtype == torch.uint8
    assert torch.equal(png, bmp)  # two lossless formats: the same pixels
    assert (jpg.float() - png.float()).abs().mean() < 20  # JPEG is lossy, but the same picture
    full = load_image(paths["png"], 40)  # no resize of the width: the height is stretched only
    assert full.shape == (3, 40, 40)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg", 8)
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(UnidentifiedImageError):
        load_image(tmp_path / "notes.jpg", 8)


def test_build_cache_names_every_bad_file(photo, tmp_path):
    _, paths = photo
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="2 image") as err:
        build_cache(["a", "b", "c"], [str(paths["png"]), str(tmp_path / "gone.jpg"), str(tmp_path / "empty.jpg")], 8, progress=False)
    assert "b (" in str(err.value) and "file not found" in str(err.value) and "c (" in str(err.value)
    cache = build_cache(["a"], [str(paths["png"])], 8, progress=False)
    assert cache.shape == (1, 3, 8, 8) and torch.equal(cache[0], load_image(paths["png"], 8))


def test_views_crop_and_flip_reproducibly():
    pixels = torch.arange(2 * 3 * 6 * 6, dtype=torch.int32).reshape(2, 3, 6, 6).to(torch.uint8)
    assert torch.equal(center_view(pixels, 4), pixels[..., 1:5, 1:5])
    a = train_view(pixels, 4, torch.Generator().manual_seed(3))
    b = train_view(pixels, 4, torch.Generator().manual_seed(3))
    assert a.shape == (2, 3, 4, 4) and torch.equal(a, b)
    # every view is a crop of its image, possibly mirrored
    for img, view in zip(pixels, a):
        crops = [img[:, t : t + 4, l : l + 4] for t in range(3) for l in range(3)]
        assert any(torch.equal(view, c) or torch.equal(view, c.flip(-1)) for c in crops)
