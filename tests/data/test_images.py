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


def test_the_store_on_disk_holds_what_the_in_memory_cache_holds(photo, tmp_path):
    from aestimo.bundle import load_bundle, save_bundle
    from aestimo.data.images import build_store

    _, paths = photo
    files = [str(paths[f]) for f in ("png", "bmp", "jpg")]
    store = build_store(["a", "b", "c"], files, 12, tmp_path / "scratch", workers=2, progress=False)
    save_bundle(store, tmp_path / "image_cache.safetensors")
    back = load_bundle(tmp_path / "image_cache.safetensors", mmap=True)
    assert back.meta == {"image_ids": ["a", "b", "c"], "size": 12}
    assert torch.equal(back["pixels"], build_cache(["a", "b", "c"], files, 12, progress=False))


def test_a_store_with_a_bad_image_names_it_and_leaves_no_file(photo, tmp_path):
    from aestimo.data.images import build_store

    _, paths = photo
    with pytest.raises(ImageReadError, match="gone.jpg"):
        build_store(["a", "b"], [str(paths["png"]), str(tmp_path / "gone.jpg")], 8, tmp_path / "scratch", progress=False)
    assert not list((tmp_path / "scratch").iterdir())


def test_rows_read_only_what_is_indexed_and_stream_in_blocks():
    from aestimo.data.images import Rows
    from aestimo.training.checkpoints import digest

    pixels = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([7, 2, 9, 0])
    view = Rows(pixels, rows)
    assert len(view) == 4 and view.shape == (4, 3, 4, 4)
    assert torch.equal(view[torch.tensor([3, 1])], pixels[[0, 2]]) and torch.equal(view[1:3], pixels[[2, 9]])
    assert torch.equal(torch.cat(list(view.blocks(3))), pixels[rows])
    assert digest(view, 1) == digest(pixels[rows], 1) != digest(Rows(pixels, rows.flip(0)), 1)  # checkpoints stay valid


def test_large_jpegs_decode_at_a_reduced_scale_small_ones_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    big = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 256, (400, 520, 3), dtype=np.uint8)).save(big, quality=90)
    small = tmp_path / "small.jpg"
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(small, quality=90)

    def full(path, size):  # decode at full size, then resize
        import torchvision.transforms.v2.functional as TF
        from torchvision.transforms import InterpolationMode

        with Image.open(path) as im:
            return TF.pil_to_tensor(TF.resize(im.convert("RGB"), [size, size], interpolation=InterpolationMode.BILINEAR))

    assert torch.equal(load_image(small, 40), full(small, 40))  # 80 px < 4 x 40: decoded as is
    reduced, exact = load_image(big, 48), full(big, 48)  # 400 px >= 4 x 48: DCT-scaled to >= 96 px first
    assert reduced.shape == exact.shape == (3, 48, 48)
    assert (reduced.float() - exact.float()).abs().mean() < 20  # the same picture, resampled differently
