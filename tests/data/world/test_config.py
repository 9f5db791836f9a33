import pytest

from aestimo.data.world import SMOKE_OVERRIDES, WorldConfig, smoke_config


def test_defaults_are_the_default_world():
    cfg = WorldConfig.from_dict({})
    assert cfg == WorldConfig()
    assert cfg.ava_images == 1500 and cfg.flickr_test_workers == 37 and cfg.para_test_users == 40


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="ava_imgs"):
        WorldConfig.from_dict({"ava_imgs": 3, "seed": 1})


def test_bad_values_name_the_parameter():
    with pytest.raises(ValueError, match="world.image_size"):
        WorldConfig.from_dict({"image_size": 4})
    with pytest.raises(ValueError, match="world.seed"):
        WorldConfig.from_dict({"seed": "x"})
    with pytest.raises(ValueError, match="flickr_test_images_per_worker_max"):
        WorldConfig.from_dict({"flickr_test_images": 10})


def test_smoke_config_roundtrip():
    cfg = smoke_config()
    assert WorldConfig.from_dict(cfg.to_dict()) == cfg
    assert set(SMOKE_OVERRIDES) <= set(cfg.to_dict())
