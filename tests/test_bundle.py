"""Tensor bundles: safetensors round trip, atomic save, a mapping with a short repr, clear errors."""

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
