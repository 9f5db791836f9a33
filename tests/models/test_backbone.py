"""Backbone loading: the package's ImageNet weights converted onto timm, and clear errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from aestimo.models import backbone as bb
from aestimo.models.backbone import backbone_preprocessing, create_backbone

ESPRESSO = 967  # ImageNet-1k class index


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aestimo-cache")


@pytest.fixture(scope="module")
def classifier(cache_dir):
    """The converted package weights with their ImageNet classifier (loaded once)."""
    return create_backbone("tf_efficientnet_lite0", "package", num_classes=1000, cache_dir=cache_dir).eval()


def _coffee_batch() -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(np.ascontiguousarray(skimage_data.coffee())).permute(2, 0, 1).float() / 255.0
    x = F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean, std = backbone_preprocessing("tf_efficientnet_lite0")
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_package_weights_classify_coffee_as_espresso(classifier):
    with torch.no_grad():
        probs = classifier(_coffee_batch()).softmax(-1)[0]
    assert int(probs.argmax()) == ESPRESSO  # top-1
    assert float(probs[ESPRESSO]) > 0.5


def test_conversion_is_cached_as_safetensors(classifier, cache_dir, monkeypatch):
    cached = cache_dir / bb.PACKAGE_WEIGHTS_FILE
    assert cached.is_file()

    def no_pickle():
        raise AssertionError("the pickle must not be read once the cache exists")

    monkeypatch.setattr(bb, "_package_pth", no_pickle)
    again = create_backbone(weights="package", num_classes=1000, cache_dir=cache_dir)
    for k, v in classifier.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_feature_extractor_drops_classifier(cache_dir):
    model = create_backbone(weights="package", cache_dir=cache_dir).eval()
    assert model.num_features == 1280
    assert not any(k.startswith("classifier") for k in model.state_dict())
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 1280)


def test_conversion_key_mapping():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert [len(s) for s in model.blocks] == [1, 2, 2, 3, 3, 4, 1]
    sd = {
        "_conv_stem.weight": 0,
        "_bn0.running_mean": 1,
        "_blocks.0._depthwise_conv.weight": 2,
        "_blocks.0._project_conv.weight": 3,
        "_blocks.1._expand_conv.weight": 4,
        "_blocks.1._bn0.weight": 5,
        "_blocks.3._depthwise_conv.weight": 6,
        "_blocks.14._project_conv.weight": 7,
        "_blocks.15._bn2.bias": 8,
        "_conv_head.weight": 9,
        "_bn1.weight": 10,
        "_fc.bias": 11,
    }
    out = bb.convert_lukemelas_state_dict(sd, model)
    assert out == {
        "conv_stem.weight": 0,
        "bn1.running_mean": 1,
        "blocks.0.0.conv_dw.weight": 2,
        "blocks.0.0.conv_pw.weight": 3,
        "blocks.1.0.conv_pw.weight": 4,
        "blocks.1.0.bn1.weight": 5,
        "blocks.2.0.conv_dw.weight": 6,
        "blocks.5.3.conv_pwl.weight": 7,
        "blocks.6.0.bn3.bias": 8,
        "conv_head.weight": 9,
        "bn2.weight": 10,
        "classifier.bias": 11,
    }


def test_safetensors_file_roundtrip(tmp_path):
    src = create_backbone(weights=None, allow_random=True)
    path = tmp_path / "backbone.safetensors"
    save_file(src.state_dict(), str(path))
    loaded = create_backbone(weights=str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_pth_file_is_loaded_weights_only(tmp_path):
    src = create_backbone(weights=None, allow_random=True)
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    loaded = create_backbone(weights=path)
    assert torch.equal(loaded.conv_stem.weight, src.conv_stem.weight)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_backbone(weights=str(missing))


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "partial.safetensors"
    save_file({"conv_stem.weight": torch.zeros(32, 3, 3, 3)}, str(path))
    with pytest.raises(ValueError, match="do not fit"):
        create_backbone(weights=str(path))


def test_unknown_weights_name_is_a_clear_error():
    with pytest.raises(ValueError, match="package"):
        create_backbone(weights="imagenet")


def test_package_weights_refuse_other_architectures():
    with pytest.raises(ValueError, match="resnet18"):
        create_backbone("resnet18", weights="package")


def test_random_init_needs_allow_random():
    with pytest.raises(ValueError, match="allow_random"):
        create_backbone(weights=None)
    assert create_backbone(weights=None, allow_random=True).num_features == 1280


def test_preprocessing():
    assert backbone_preprocessing("tf_efficientnet_lite0") == ((0.5,) * 3, (0.5,) * 3)
    mean, std = backbone_preprocessing("resnet50")
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx((0.229, 0.224, 0.225))


def test_unreachable_hub_is_a_clear_error(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("offline")
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(bb.timm, "create_model", offline)
    with pytest.raises(FileNotFoundError, match="local .safetensors"):
        create_backbone("tf_efficientnet_lite0", weights="hub")
