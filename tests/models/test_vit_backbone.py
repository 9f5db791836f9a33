"""A ViT as the backbone: θ0 records its timm arguments, task vectors merge exactly, instant's
per-layer derivatives match autograd without a whole-network fallback, and the CNN-only
accelerations (batch-norm folding, the staged scorer) decline.

Small, randomly initialised ViTs (timm's ``vit_tiny_patch16_224`` at 32 px), no weights downloaded.
"""

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.models._per_image import per_image_derivatives
from aestimo.bundle import TensorBundle, load_bundle, save_bundle
from aestimo.console import main as cli
from aestimo.models import layer_derivatives as ld
from aestimo.models.backbone import backbone_preprocessing, create_backbone
from aestimo.models.folding import BatchNormFolding, folded_copy
from aestimo.models.merged import MergedScorer, build_task_vectors, merge_state
from aestimo.models.staged import StagedScorer
from aestimo.models.theta0 import load_scorer, make_theta0
from aestimo.personalization.methods.linearized import score_features

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")]

VIT = "vit_tiny_patch16_224"
KWARGS = {"img_size": 32}
#: every token layout and layer kind of timm's VisionTransformer: register tokens, position embeddings on
#: the patches only, LayerScale, average pooling with a layer norm on the pooled features (fc_norm);
#: smaller patches (16 tokens); two blocks
VARIANT = {"img_size": 32, "patch_size": 8, "depth": 2, "reg_tokens": 2, "no_embed_class": True, "init_values": 0.1,
           "global_pool": "avg"}
TEMPLATE = torch.arange(1.0, 11.0)
SOURCES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def theta0():
    return make_theta0(VIT, None, head_seed=0, allow_random=True, input_size=32, cache_size=40, model_kwargs=KWARGS)


@pytest.fixture(scope="module")
def experts(theta0):
    """Three 'experts': θ0 with every parameter moved (buffers kept, as fine-tuning keeps them)."""
    g = torch.Generator().manual_seed(5)
    names = [n for n, _ in load_scorer(theta0).named_parameters()]
    return {s: {k: v + 0.02 * torch.randn(v.shape, generator=g) if k in names else v.clone()
                for k, v in theta0.tensors.items()} for s in SOURCES}


@pytest.fixture(scope="module")
def task_vectors(theta0, experts):
    return build_task_vectors(load_scorer(theta0), theta0.tensors, experts)


def images(n=5, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_theta0_records_model_kwargs_and_rebuilds_the_same_vit(theta0, tmp_path):
    assert theta0.meta["backbone"] == VIT and theta0.meta["model_kwargs"] == KWARGS
    path = tmp_path / "theta0.safetensors"
    save_bundle(theta0, path)
    again = load_bundle(path)
    scorer = load_scorer(again)
    assert scorer.backbone.patch_embed.img_size == (32, 32)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(scorer(x), load_scorer(theta0)(x), rtol=0, atol=0)


def test_a_vit_at_another_input_size_is_refused_naming_img_size():
    with pytest.raises(ValueError, match="model_kwargs.img_size: 64"):  # a ViT left at 224 px, fed 64 px crops
        make_theta0(VIT, None, head_seed=0, allow_random=True, input_size=64, cache_size=72)


def test_theta0_without_model_kwargs_keeps_its_metadata():
    meta = make_theta0("tf_efficientnet_lite0", None, head_seed=0, allow_random=True, input_size=32, cache_size=40).meta
    assert set(meta) == {"backbone", "weights", "head_seed", "input_size", "cache_size", "mean", "std"}


def test_model_kwargs_reach_timm_and_bad_ones_are_clear():
    model = create_backbone(VIT, None, allow_random=True, model_kwargs=VARIANT)
    assert model.patch_embed.img_size == (32, 32) and len(model.blocks) == 2 and model.num_prefix_tokens == 3
    assert isinstance(model.fc_norm, torch.nn.LayerNorm) and model.no_embed_class
    with pytest.raises(ValueError, match="does not take model_kwargs"):
        create_backbone(VIT, None, allow_random=True, model_kwargs={"no_such_argument": 1})
    with pytest.raises(ValueError, match="num_classes"):
        create_backbone(VIT, None, allow_random=True, model_kwargs={"num_classes": 3})
    with pytest.raises(ValueError, match="Unknown timm model"):
        create_backbone("no_such_vit", None, allow_random=True)


def test_vit_weights_file_at_another_resolution_with_a_classifier_loads(tmp_path):
    """A timm-layout ViT file made at 64 px with a 10-class head fits a 32-px feature extractor:
    the head is dropped and the position embeddings resampled (timm's checkpoint filter)."""
    torch.manual_seed(0)
    source = create_backbone(VIT, None, allow_random=True, num_classes=10, model_kwargs={"img_size": 64, "depth": 2})
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = create_backbone(VIT, str(path), model_kwargs={"img_size": 32, "depth": 2})
    assert model.pos_embed.shape == (1, 5, 192)
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)
    torch.testing.assert_close(model.cls_token, source.cls_token)
    with pytest.raises(ValueError, match="do not fit"):
        create_backbone(VIT, str(path), model_kwargs={"img_size": 32, "depth": 3})


def test_preprocessing_from_timms_pretrained_config_without_download():
    mean, std = backbone_preprocessing("vit_base_patch16_clip_224.openai")
    assert mean == pytest.approx((0.48145466, 0.4578275, 0.40821073)) and std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert backbone_preprocessing("tf_efficientnet_lite0") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert len(backbone_preprocessing(VIT)[0]) == 3


def test_cnn_accelerations_decline_for_a_vit(theta0, task_vectors):
    scorer = load_scorer(theta0)
    assert BatchNormFolding.of(scorer, (2, 3, 32, 32)) is None
    assert StagedScorer.of(scorer, (2, 3, 32, 32)) is None
    assert folded_copy(scorer, (2, 3, 32, 32)) is scorer
    merged = MergedScorer.from_bundles(theta0, task_vectors)
    assert merged.folding is None and merged.staged is None


def test_merge_identities(theta0, experts, task_vectors):
    """λ = one-hot on expert i gives expert i's outputs; λ = 0 gives θ0's (layer-wise and layer-agnostic),
    through the merged scorer, its batched scoring and the merged state the CLI builds."""
    merged = MergedScorer.from_bundles(theta0, task_vectors)
    n, L = merged.shape
    assert (n, L) == (3, len(task_vectors.meta["names"]))
    x = images(6)
    with torch.no_grad():
        want0 = load_scorer(theta0)(x)
        for lam in (torch.zeros(n, L), torch.zeros(n)):
            torch.testing.assert_close(merged(x, lam), want0, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(merged.probs(x, lam, batch=4), want0, rtol=1e-5, atol=1e-6)
        for i, s in enumerate(SOURCES):
            want = load_scorer(theta0, experts[s])(x)
            onehot = torch.zeros(n, L)
            onehot[i] = 1.0
            torch.testing.assert_close(merged(x, onehot), want, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(merged(x, onehot[:, 0]), want, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(load_scorer(theta0, merge_state(theta0, task_vectors, onehot))(x), want,
                                       rtol=1e-4, atol=1e-5)
        people = merged.batched(torch.stack([x, x]), torch.stack([torch.zeros(n, L), onehot]))
        torch.testing.assert_close(people[0], want0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(people[1], want, rtol=1e-4, atol=1e-5)


def test_exact_lambda_gradients_reach_every_layer(theta0, task_vectors):
    """Exact λ learning differentiates the merged ViT with respect to λ: every layer gets a gradient."""
    merged = MergedScorer.from_bundles(theta0, task_vectors)
    lam = torch.full(merged.shape, 0.3, requires_grad=True)
    (merged(images(4), lam) @ TEMPLATE).sum().backward()
    assert torch.isfinite(lam.grad).all() and (lam.grad.abs().amax(0) > 0).all()


@pytest.fixture
def no_fallback(monkeypatch):
    """Fail if any layer falls back to torch.func per image (the whole backbone for cls_token / pos_embed)."""
    def refuse(mod, *args, **kwargs):
        raise AssertionError(f"{type(mod).__name__} fell back to per-image torch.func")
    monkeypatch.setattr(ld, "_any_layer", refuse)


def reference(net, weights, names, directions, x):
    return per_image_derivatives(net, weights, names, directions, x, TEMPLATE)


@pytest.mark.parametrize("kwargs", [KWARGS, VARIANT], ids=["vit_tiny_32px", "reg_tokens_layer_scale"])
def test_layer_derivatives_match_per_image_gradients(kwargs, no_fallback):
    from aestimo.models.scorer import build_scorer

    torch.manual_seed(1)
    net = build_scorer(VIT, None, allow_random=True, model_kwargs=kwargs).eval()
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    names = [n for n, _ in net.named_parameters()]
    assert {"backbone.cls_token", "backbone.pos_embed", "backbone.blocks.0.norm1.weight",
            "backbone.blocks.0.attn.qkv.weight"} <= set(names)
    g = torch.Generator().manual_seed(2)
    directions = [torch.randn(3, *weights[n].shape, generator=g) for n in names]
    x = images(4, seed=3)
    expected = reference(net, weights, names, directions, x)
    value, got = ld.directional_derivatives(net, weights, names, directions, x, lambda probs: probs @ TEMPLATE)
    with torch.no_grad():
        torch.testing.assert_close(value, net(x) @ TEMPLATE)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert (got.abs().amax(dim=(0, 1)) > 0).all()  # every tensor reaches the score, the tokens included


def test_instant_features_equal_autograd_through_the_merged_scorer(theta0, task_vectors, no_fallback):
    """Instant's φ = ∂s/∂λ (layer-wise and per source) from the layer rules equals autograd through the
    merged ViT, image by image."""
    merged = MergedScorer.from_bundles(theta0, task_vectors)
    at = torch.rand(merged.shape, generator=torch.Generator().manual_seed(4)) * 0.5
    x = images(3, seed=6)
    base, phi = score_features(merged, x, at, TEMPLATE, batch=2)
    for b in range(len(x)):
        lam = at.clone().requires_grad_(True)
        s = merged(x[b : b + 1], lam)[0] @ TEMPLATE
        (want,) = torch.autograd.grad(s, lam)
        torch.testing.assert_close(base[b], s.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(phi[b], want, rtol=1e-4, atol=1e-5)
    _, per_source = score_features(merged, x, at[:, 0].contiguous(), TEMPLATE)
    at_flat = at[:, 0][:, None].expand_as(at)
    _, full = score_features(merged, x, at_flat, TEMPLATE)
    torch.testing.assert_close(per_source, full.sum(-1), rtol=1e-5, atol=1e-5)


def test_cli_scores_a_photo_with_a_vit_theta0_from_files(theta0, task_vectors, tmp_path):
    save_bundle(theta0, tmp_path / "theta0.safetensors")
    save_bundle(task_vectors, tmp_path / "task_vectors.safetensors")
    lam = torch.tensor([[0.5], [0.2], [0.3]]).expand(3, len(task_vectors.meta["names"])).contiguous()
    save_bundle(TensorBundle({"instant/k10/r0/lambda": lam}, {"source": "ava", "deploy_method": "instant"}),
                tmp_path / "ava__someone.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 60, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    out = tmp_path / "scores.csv"
    code = cli(["score", "--theta0", str(tmp_path / "theta0.safetensors"), "--task-vectors",
                str(tmp_path / "task_vectors.safetensors"), "--coefficients", str(tmp_path / "ava__someone.safetensors"),
                str(tmp_path / "photo.png"), "-o", str(out)])
    assert code == 0
    table = pl.read_csv(out)
    assert table.height == 1 and np.isfinite(table["score"].to_numpy()).all()
