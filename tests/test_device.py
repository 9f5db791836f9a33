"""The one device setting: resolved once, checked when a run starts, honoured by training and inference."""

import pytest
import torch

from aestimo import config
from aestimo import device as devices

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_is_the_best_present_and_names_are_checked():
    best = devices.resolve("auto")
    assert best.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    assert devices.resolve("cpu") == torch.device("cpu") and devices.resolve(None) == best
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        devices.resolve("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is visible"):
            devices.resolve("cuda:0")


STAGE = {"steps": 10, "batch_size": 4, "lr_head": [1e-3, 1e-4]}
EXPERTS = {"sources": ["ava"], "stage1": STAGE, "stage2": STAGE, "checkpoint_dir": "data/06_models/ckpt"}


def test_a_device_that_is_not_here_stops_the_run_naming_the_parameter():
    with pytest.raises(ValueError, match=r"parameter 'experts.device'.*unknown device 'tpu'"):
        config.parse("experts", dict(EXPERTS, device="tpu"))
    with pytest.raises(ValueError, match=r"parameter 'experts.precision'"):
        config.parse("experts", dict(EXPERTS, precision="fp8"))
    assert config.parse("experts", dict(EXPERTS, device="cpu")).torch_device == torch.device("cpu")
    assert config.parse("experts", EXPERTS).device == "auto"


def test_fp32_adds_no_autocast_and_no_scaler_on_the_cpu():
    cpu = torch.device("cpu")
    with devices.autocast(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with devices.autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert devices.grad_scaler(cpu, "fp16") is None and devices.grad_scaler(cpu, "fp32") is None


def _head_training(device):
    from aestimo.models.head import ScoreHead
    from aestimo.models.scorer import template_tensor
    from aestimo.training.data import Labels
    from aestimo.training.experts import StageConfig, train_head
    from aestimo.training.long_tail import LongTailOptions

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(96, 8, generator=gen)
    y = Labels((3 + feats[:, 0]).clamp(1, 5), torch.softmax(torch.randn(96, 10, generator=gen), 1))
    head = ScoreHead(8, hidden=16, dropout=0.0)
    head.reset_parameters(0)
    cfg = StageConfig(steps=20, batch_size=16, lr_head=(1e-2, 1e-3), eval_every=10, checkpoint_every=100,
                      long_tail=LongTailOptions(tfa=True, flsa=1.0))
    best, history = train_head(head.to(device), feats[:64], y.subset(torch.arange(64)), feats[64:], y.subset(torch.arange(64, 96)),
                               template_tensor("five"), cfg, seed=3)
    return {k: v.cpu() for k, v in best.items()}, history


def test_head_training_draws_its_batches_on_the_cpu_whatever_the_device():
    best, history = _head_training(torch.device("cpu"))
    again, _ = _head_training(torch.device("cpu"))
    assert all(torch.equal(best[k], again[k]) for k in best) and len(history) == 2


@cuda
def test_head_training_on_cuda_matches_the_cpu():
    cpu, _ = _head_training(torch.device("cpu"))
    gpu, _ = _head_training(torch.device("cuda"))
    for k in cpu:
        torch.testing.assert_close(gpu[k], cpu[k], rtol=1e-3, atol=1e-4)


@cuda
def test_merged_scorer_and_exact_lambda_on_cuda_match_the_cpu():
    from aestimo.models.merged import MergedScorer, build_task_vectors
    from aestimo.models.scorer import template_tensor
    from aestimo.models.theta0 import load_scorer, make_theta0

    torch.manual_seed(0)
    theta0 = make_theta0("tf_efficientnet_lite0", None, 0, True, 32, 32)
    experts = {}
    for i, s in enumerate(("a", "b")):
        torch.manual_seed(i + 1)
        experts[s] = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() and "running" not in k else v
                      for k, v in theta0.tensors.items()}
    tv = build_task_vectors(load_scorer(theta0), theta0.tensors, experts)
    x = torch.randn(4, 3, 32, 32)
    lam = torch.full(MergedScorer.from_bundles(theta0, tv).shape, 0.5)
    cpu = MergedScorer.from_bundles(theta0, tv).probs(x, lam) @ template_tensor("ten")
    gpu = MergedScorer.from_bundles(theta0, tv, "cuda").probs(x.cuda(), lam) @ template_tensor("ten").cuda()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


def _field_models(device):
    """The field's three generic models trained on small synthetic fields (as their own tests build them)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "personalization"))
    import test_multi_attribute as M
    import test_pa_iaa as A
    import test_prompts as P

    from aestimo.personalization.methods.field.multi_attribute import MultiAttributeTrainOptions, train_multi_attribute
    from aestimo.personalization.methods.field.pa_iaa import train_pa_iaa
    from aestimo.personalization.methods.field.prompts import train_prompt_model

    return {
        "pa_iaa": train_pa_iaa(A.synthetic_field(), A.FAST.model_copy(update={"steps": 20}), device),
        "prompt": train_prompt_model(P.synthetic_field(), P.TINY.model_copy(update={"epochs": 3}), device),
        "multi_attribute": train_multi_attribute(M._world()[0], MultiAttributeTrainOptions(**{**M.FAST, "steps": 20}), device),
    }


def test_the_field_models_train_on_a_named_device_and_come_back_on_the_cpu():
    default = _field_models(None)
    on_cpu = _field_models(torch.device("cpu"))
    for name, bundle in on_cpu.items():
        assert all(t.device.type == "cpu" for t in bundle.tensors.values()), name
        assert all(torch.equal(bundle.tensors[k], default[name].tensors[k]) for k in bundle.tensors), name


@cuda
def test_the_field_models_on_cuda_match_the_cpu():
    cpu, gpu = _field_models(torch.device("cpu")), _field_models(torch.device("cuda"))
    for name in cpu:
        for k, v in cpu[name].tensors.items():
            assert gpu[name].tensors[k].device.type == "cpu"
            torch.testing.assert_close(gpu[name].tensors[k], v, rtol=1e-2, atol=1e-3, msg=f"{name}: {k}")
