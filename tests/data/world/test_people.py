"""Held-out people are disjoint from training raters and pools; realism within loose bounds."""

import polars as pl

from aestimo.data.world import read_truth, smoke_config, world_statistics


def test_flickr_test_workers_are_held_out(smoke_world):
    root, _ = smoke_world
    fa = root / "flickr_aes"
    df = pl.read_csv(fa / "FLICKR-AES_image_labeled_by_each_worker.csv").rename(lambda c: c.strip())
    test = set((fa / "FLICKR-AES_test_workers.txt").read_text().split())
    te, tr = df.filter(pl.col("worker").is_in(test)), df.filter(~pl.col("worker").is_in(test))
    assert not set(te["imagePair"]) & set(tr["imagePair"])  # training workers never rate test images
    counts = te.group_by("worker").len()["len"]
    assert counts.len() == len(test) and counts.min() >= 30
    per_image = te.group_by("imagePair").len()["len"]
    assert per_image.mean() >= 2  # test images are rated by several test people
    truth = read_truth(root)
    lat = truth["image_latents"].filter(pl.col("source") == "flickr_aes")
    assert set(lat.filter(pl.col("pool") == "test")["image_id"]) == {f"flickr_aes:{i}" for i in te["imagePair"]}
    r = truth["raters"].filter(pl.col("source") == "flickr_aes")
    assert set(r.filter(pl.col("is_test"))["rater_id"]) == test


def test_para_test_users_are_held_out(smoke_world):
    root, _ = smoke_world
    pa = root / "para/annotation"
    im = pl.read_csv(pa / "PARA-Images.csv")
    test = set((pa / "PARA-TestUsers.txt").read_text().split())
    gtest = pl.read_csv(pa / "PARA-GiaaTest.csv")
    gtrain = pl.read_csv(pa / "PARA-GiaaTrain.csv")
    key = pl.col("sessionId") + "/" + pl.col("imageName")
    test_imgs = set(gtest.select(key).to_series())
    assert not test_imgs & set(gtrain.select(key).to_series())
    rated_by_test = set(im.filter(pl.col("userId").is_in(test)).select(key).to_series())
    rated_by_train = set(im.filter(~pl.col("userId").is_in(test)).select(key).to_series())
    assert rated_by_test == test_imgs and not rated_by_train & test_imgs
    counts = im.filter(pl.col("userId").is_in(test)).group_by("userId").len()["len"]
    assert counts.len() == smoke_config().para_test_users and counts.min() >= 30


def test_realism_statistics_on_smoke_world(smoke_world):
    root, _ = smoke_world
    st = world_statistics(root)
    assert st.columns == ["name", "source", "value", "target_lo", "target_hi", "ok"]
    v = {(s, n): x for n, s, x in st.select("name", "source", "value").iter_rows()}
    print(st)
    for src in ("flickr_aes", "para"):  # loose bounds: the smoke world has few raters per image
        assert 0.2 <= v[(src, "test_user_srocc_vs_generic_mean")] <= 0.9
        assert 0.6 <= v[(src, "test_user_srocc_vs_utility")] <= 0.97
    assert 0.7 <= v[("ava", "middle_mass_4_to_7")] <= 0.95
    assert 0.02 <= v[("ava", "tail_mass_1_2_9_10")] <= 0.15
    assert 5.0 <= v[("ava", "vote_mean")] <= 5.8
    assert v[("all", "experience_vs_noise_corr")] < 0
    assert 0.1 <= v[("all", "criterion_corr_min")] and v[("all", "criterion_corr_max")] <= 0.95
