"""Tensor bundles: safetensors round trip, atomic save, a mapping with a short repr, clear errors."""

import numpy as np
import pytest
import torch

from aestimo.bundle import BundleError, TensorBundle, load_bundle, save_bundle


def test_roundtrip_mapping_and_short_repr(tmp_path):
    b = TensorBundle({f"m/k10/r{i}/lambda": torch.full((6, 300), float(i)) for i in range(6)}, {"source": "para"})
    save_bundle(b, tmp_path / "p.safetensors")
    back = load_bundle(tmp_path / "p.safetensors")
    assert back.meta == {"source": "para"} and list(back.keys()) == list(b.keys()) and len(back) == 6
    assert torch.equal(back["m/k10/r3/lambda"], b["m/k10/r3/lambda"])
    text = repr(back)
    assert len(text) < 300 and "6 tensors" in text and "10,800 values" in text and "(+2)" in text
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left beside it


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_bundle(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="bad.safetensors is not a readable safetensors file"):
        load_bundle(tmp_path / "bad.safetensors")


def test_a_bundle_written_in_place_is_mapped_moved_into_place_and_equal_to_a_saved_one(tmp_path):
    from aestimo.bundle import BundleWriter, mapped_origin

    pixels = torch.arange(5 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(5, 3, 4, 4)
    feats = torch.randn(5, 7)
    with BundleWriter(tmp_path / "scratch", {"pixels": (torch.uint8, (5, 3, 4, 4)), "f": (torch.float32, (5, 7))}, {"ids": list("abcde")}) as w:
        for i in range(0, 5, 2):  # block by block, as a feature pass writes
            w.rows("pixels")[i : i + 2] = pixels[i : i + 2].numpy()
            w.rows("f")[i : i + 2] = feats[i : i + 2].numpy()
    written = w.bundle
    assert written.scratch and written.path.parent == tmp_path / "scratch"
    save_bundle(written, tmp_path / "store.safetensors")  # moves the file: never loads it whole
    assert written.path == tmp_path / "store.safetensors" and not written.scratch
    assert not list((tmp_path / "scratch").iterdir())
    plain = load_bundle(tmp_path / "store.safetensors")  # safetensors itself reads what the writer laid out
    assert plain.meta == {"ids": list("abcde")} and torch.equal(plain["pixels"], pixels) and torch.equal(plain["f"], feats)
    mapped = load_bundle(tmp_path / "store.safetensors", mmap=True)
    assert torch.equal(mapped["pixels"][torch.tensor([4, 1])], pixels[[4, 1]])
    assert mapped_origin(mapped["pixels"]) == (str(tmp_path / "store.safetensors"), "pixels")
    assert mapped_origin(mapped["pixels"][1:]) is None and mapped_origin(plain["pixels"]) is None


def test_rows_written_in_place_must_fit_their_place(tmp_path):
    from aestimo.bundle import BundleWriter

    with BundleWriter(tmp_path, {"f": (torch.float32, (4, 3))}) as w:
        out = w.rows("f")
        with pytest.raises(ValueError, match="rows 1..3"):
            out[1:3] = np.zeros((2, 4), dtype=np.float32)  # rows of 4, not 3
        out[3] = np.arange(3)  # converted to the tensor's dtype
    assert torch.equal(load_bundle(w.bundle.path)["f"][3], torch.arange(3.0))


def test_a_failed_in_place_write_leaves_nothing_behind(tmp_path):
    from aestimo.bundle import BundleWriter

    with pytest.raises(RuntimeError):
        with BundleWriter(tmp_path, {"p": (torch.uint8, (3,))}) as w:
            w.rows("p")[:1] = 1
            raise RuntimeError("decode failed")
    assert not list(tmp_path.iterdir())


def test_a_mapped_image_store_travels_to_a_worker_as_its_path(tmp_path):
    import pickle

    from aestimo.data.images import CachedImages

    pixels = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    save_bundle(TensorBundle({"pixels": pixels}), tmp_path / "s.safetensors")
    images = CachedImages(load_bundle(tmp_path / "s.safetensors", mmap=True)["pixels"], 6, (0.5,) * 3, (0.5,) * 3)
    sent = pickle.dumps(images)
    assert len(sent) < 1000  # the path, not 1152 bytes of pixels
    back = pickle.loads(sent)
    rows = torch.tensor([5, 0, 2])
    assert torch.equal(back(rows), images(rows))
    in_memory = pickle.dumps(CachedImages(pixels, 6, (0.5,) * 3, (0.5,) * 3))
    assert len(in_memory) > pixels.numel()  # an in-memory table still travels as its values


def test_stored_rows_read_what_the_file_holds_row_by_row(tmp_path):
    import pickle

    from aestimo.bundle import StoredRows

    pixels = torch.randint(0, 256, (9, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    save_bundle(TensorBundle({"pixels": pixels, "f": torch.randn(9, 5)}), tmp_path / "s.safetensors")
    rows = StoredRows(tmp_path / "s.safetensors", "pixels")
    assert len(rows) == 9 and rows.shape == (9, 3, 4, 4) and rows.dtype == torch.uint8 and rows.numel() == pixels.numel()
    for index in (torch.tensor([8, 0, 1, 2, 5, 4]), [3], slice(2, 7), slice(None, None, 2), torch.empty(0, dtype=torch.long)):
        assert torch.equal(rows[index], pixels[index]), index
    assert torch.equal(rows[4], pixels[4])
    back = pickle.loads(pickle.dumps(rows))  # to a worker: the file and key, opened there
    assert len(pickle.dumps(rows)) < 600 and torch.equal(back[[7, 1]], pixels[[7, 1]])
    assert torch.equal(StoredRows(tmp_path / "s.safetensors", "f")[[2, 3]], load_bundle(tmp_path / "s.safetensors")["f"][[2, 3]])
    with pytest.raises(IndexError, match="rows outside 0..8"):
        rows[[9]]
