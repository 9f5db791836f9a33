"""Every raw file exists with the real format's header, columns and value ranges."""

import re

import numpy as np
import openpyxl
import polars as pl
from PIL import Image

from aestimo.data.world import read_truth, smoke_config


def _csv(path):
    return pl.read_csv(path)


def test_ava(smoke_world):
    root, _ = smoke_world
    rows = [ln.split(" ") for ln in (root / "ava/AVA.txt").read_text().splitlines()]
    assert all(len(r) == 15 for r in rows)
    a = np.array(rows, dtype=np.int64)
    assert (a[:, 0] == np.arange(1, len(a) + 1)).all()
    n = a[:, 2:12].sum(1)
    cfg = smoke_config()
    assert n.min() >= cfg.ava_votes_min and n.max() <= cfg.ava_votes_max
    ids = {str(i) for i in a[:, 1]}
    test = (root / "ava/aesthetics_image_lists/generic_test.jpgl").read_text().split()
    assert test and set(test) <= ids
    for i in list(ids)[:5]:
        assert (root / f"ava/images/{i}.jpg").is_file()


def test_flickr(smoke_world):
    root, _ = smoke_world
    fa = root / "flickr_aes"
    text = (fa / "FLICKR-AES_image_labeled_by_each_worker.csv").read_text()
    assert text.splitlines()[0] == "worker, imagePair, score"
    df = pl.read_csv(fa / "FLICKR-AES_image_labeled_by_each_worker.csv")
    assert df.columns == ["worker", " imagePair", " score"]
    assert all(re.fullmatch(r"A[A-Z0-9]{12}", w) for w in df["worker"])
    assert all(re.fullmatch(r"farm\d_\d+_\d+_[0-9a-f]{10}\.jpg", p) for p in df[" imagePair"])
    assert set(df[" score"].unique()) <= {1, 2, 3, 4, 5}
    lines = (fa / "FLICKR-AES_image_score.txt").read_text().splitlines()
    assert any(ln.startswith(" ") for ln in lines)
    means = {ln.split()[0]: float(ln.split()[1]) for ln in lines}
    assert set(means) == set(df[" imagePair"])
    check = df.group_by(" imagePair").agg(pl.col(" score").mean())
    for name, m in check.iter_rows():
        assert abs(means[name] - m) < 1e-5
    test = (fa / "FLICKR-AES_test_workers.txt").read_text().split()
    assert len(test) == smoke_config().flickr_test_workers
    for name in list(means)[:5]:
        assert (fa / "40K" / name).is_file()


def test_tad66k(smoke_world):
    root, _ = smoke_world
    frames = []
    for split in ("train", "test"):
        df = _csv(root / f"tad66k/labels/merge/{split}.csv")
        assert df.columns == ["image", "score"]
        assert df["score"].min() >= 0 and df["score"].max() <= 10
        frames.append(df)
    assert not set(frames[0]["image"]) & set(frames[1]["image"])
    assert (root / "tad66k/TAD66K" / frames[1]["image"][0]).is_file()


PARA_IMAGES = ["sessionId", "imageName", "userId", "aestheticScore", "qualityScore", "compositionScore", "colorScore",
               "dofScore", "contentScore", "lightScore", "isObjectEmphasis", "imgEmotion", "difficultyOfJudgment",
               "contentPreference", "willingnessToShare", "semantic"]


def test_para(smoke_world):
    root, _ = smoke_world
    pa = root / "para/annotation"
    im = _csv(pa / "PARA-Images.csv")
    assert im.columns == PARA_IMAGES
    assert set(im["aestheticScore"].unique()) <= set(np.arange(1, 5.01, 0.5))
    for c in PARA_IMAGES[4:10] + ["contentPreference", "willingnessToShare"]:
        assert im[c].dtype == pl.Int64 and im[c].min() >= 1 and im[c].max() <= 5
    assert all(re.fullmatch(r"A\d{5}[a-z]", u) for u in im["userId"])
    ui = _csv(pa / "PARA-UserInfo.csv")
    assert ui.columns == ["userId", "age", "gender", "EducationalLevel", "artExperience", "photographyExperience",
                          "personality-E", "personality-A", "personality-N", "personality-O", "personality-C"]
    assert set(im["userId"]) == set(ui["userId"])
    levels = {"beginner", "competent", "proficient", "expert"}
    assert set(ui["artExperience"]) <= levels and set(ui["photographyExperience"]) <= levels
    for t in "EANOC":
        assert ui[f"personality-{t}"].min() >= 1 and ui[f"personality-{t}"].max() <= 9
    assert all(re.fullmatch(r"\d\d-\d\d", a) for a in ui["age"])
    bins = [f"aestheticScore_{v:.1f}" for v in np.arange(1, 5.01, 0.5)]
    for name in ("PARA-GiaaTrain.csv", "PARA-GiaaTest.csv"):
        g = _csv(pa / name)
        assert g.columns[:12] == ["imageName", "sessionId", "semantic"] + bins
        assert g.columns[12:16] == ["aestheticScore_mean", "aestheticScore_std", "qualityScore_mean", "qualityScore_std"]
        for a in ("composition", "color", "dof", "light", "content", "contentPreference", "willingnessToShare"):
            for c in [f"{a}Score_{k}" for k in range(1, 6)] + [f"{a}Score_mean", f"{a}Score_std"]:
                assert c in g.columns
        h = g.select(bins).to_numpy()
        mean = (h * np.arange(1, 5.01, 0.5)).sum(1) / h.sum(1)
        assert np.allclose(mean, g["aestheticScore_mean"].to_numpy(), atol=1e-4)
    test_users = (pa / "PARA-TestUsers.txt").read_text().split()
    assert len(test_users) == smoke_config().para_test_users
    r = im.row(0, named=True)
    assert (root / "para/imgs" / r["sessionId"] / r["imageName"]).is_file()


KONIQ = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]


def test_koniq(smoke_world):
    root, _ = smoke_world
    df = _csv(root / "koniq10k/koniq10k_scores_and_distributions.csv")
    assert df.columns == KONIQ
    c = df.select([f"c{k}" for k in range(1, 6)]).to_numpy()
    assert (c.sum(1) == df["c_total"].to_numpy()).all()
    assert np.allclose((c * np.arange(1, 6)).sum(1) / c.sum(1), df["MOS"].to_numpy(), atol=1e-5)
    assert df["MOS"].min() >= 1 and df["MOS"].max() <= 5
    assert df["MOS_zscore"].min() >= 0 and df["MOS_zscore"].max() <= 100
    s = _csv(root / "koniq10k/koniq10k_distributions_sets.csv")
    assert s.columns == KONIQ + ["set"]
    assert set(s["set"]) == {"training", "validation", "test"}
    assert (root / "koniq10k/512x384" / df["image_name"][0]).is_file()


def test_spaq(smoke_world):
    root, _ = smoke_world
    wb = openpyxl.load_workbook(root / "spaq/Annotations/MOS and Image attribute scores.xlsx", read_only=True)
    rows = list(wb.active.iter_rows(values_only=True))
    assert list(rows[0]) == ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    vals = np.array([r[1:] for r in rows[1:]], float)
    assert vals.min() >= 0 and vals.max() <= 100
    assert rows[1][0] == "00001.jpg"
    scenes = openpyxl.load_workbook(root / "spaq/Annotations/Scene category labels.xlsx", read_only=True)
    srows = list(scenes.active.iter_rows(values_only=True))
    assert list(srows[0]) == ["Image name", "Scene category"] and len(srows) == len(rows)
    assert (root / "spaq/TestImage/00001.jpg").is_file()


def test_images_and_truth_ids(smoke_world):
    root, manifest = smoke_world
    truth = read_truth(root)
    lat = truth["image_latents"]
    size = smoke_config().image_size
    jpgs = [f["path"] for f in manifest["files"] if f["path"].endswith(".jpg")]
    assert len(jpgs) == lat.height
    with Image.open(root / jpgs[0]) as im:
        assert im.size == (size, size) and im.mode == "RGB"
    ids = set(lat["image_id"])
    assert len(ids) == lat.height
    ava = (root / "ava/AVA.txt").read_text().split("\n")[0].split(" ")[1]
    assert f"ava:{ava}" in ids
    assert f"koniq10k:{_csv(root / 'koniq10k/koniq10k_scores_and_distributions.csv')['image_name'][0]}" in ids
    assert "spaq:00001.jpg" in ids
    assert f"tad66k:{_csv(root / 'tad66k/labels/merge/train.csv')['image'][0]}" in ids
    im = _csv(root / "para/annotation/PARA-Images.csv")
    assert {f"para:{s}/{n}" for s, n in zip(im["sessionId"], im["imageName"])} == set(
        lat.filter(pl.col("source") == "para")["image_id"])
    assert lat.select(pl.col("theme").n_unique()).item() >= 6
    u = truth["utilities"]
    fl = pl.read_csv(root / "flickr_aes/FLICKR-AES_image_labeled_by_each_worker.csv")
    assert u.filter(pl.col("source") == "flickr_aes").height == fl.height
    assert u.filter(pl.col("source") == "para").height == im.height
    assert set(u["image_id"]) <= ids
    r = truth["raters"]
    assert set(r.filter(pl.col("source") == "para")["rater_id"]) == set(im["userId"])
    w = r.select([c for c in r.columns if c.startswith("w_")]).to_numpy()
    assert np.allclose(w.sum(1), 1)
