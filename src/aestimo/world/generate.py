"""Generate the synthetic aesthetic world: raw files in the real formats + hidden truth.

``generate_world(root, cfg)`` builds everything in a sibling temp folder, writes
``manifest.json`` last, then renames the folder into place, so a killed run
never leaves a half world that ``world_exists`` would accept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import string
import zipfile
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import ndtr

from .config import WorldConfig
from .latents import LATENTS, PARA_ATTRIBUTES, SOURCES, THEMES, criteria, features, para_attribute_criteria, rng_for, sample_latents
from .people import (
    AVA_VOTE_DIST, EXPERIENCE_LEVELS, FLICKR_DIST, KONIQ_VOTE_DIST, PARA_ATTR_DIST, PARA_DIST, TAD_VOTE_DIST,
    BIG5, Raters, assign_balanced, assign_topk, latent_responses, make_raters, quantise, utilities,
)
from .render import jpeg_bytes, render

MANIFEST = "manifest.json"
TRUTH_DIR = "_truth"
FORMAT_VERSION = "aestimo-world/1"

AVA_TAGS = {"landscape": 14, "portrait": 15, "animal": 19, "architecture": 1, "food": 38, "night": 22, "abstract": 3}
SPAQ_SCENES = {"landscape": "Landscape", "portrait": "Human", "animal": "Animal", "architecture": "Cityscape",
               "food": "Still life", "night": "Night scene", "abstract": "Others"}
EMOTIONS = ("Amusement", "Excitement", "Contentment", "Awe", "Disgust", "Sadness", "Fear", "Neutral")
AGE_BANDS = ("18-21", "22-25", "26-29", "30-34", "35-39", "40-49", "50-59")
EDUCATION = ("HighSchool", "JuniorCollege", "University", "Master", "Doctor")
PARA_GIAA_ATTRS = ("composition", "color", "dof", "light", "content", "contentPreference", "willingnessToShare")
_FIXED_TIME = datetime(2020, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- helpers

class _Pool:
    """Images of one source pool: names, themes, latents, features, criteria."""

    def __init__(self, cfg: WorldConfig, source: str, pool: str, n: int):
        rng = rng_for(cfg.seed, "latents", source, pool)
        self.source, self.pool, self.n = source, pool, n
        self.themes, self.lat = sample_latents(rng, n, source)
        self.feats = features(self.themes, self.lat)
        self.crit = criteria(self.themes, self.lat)
        self.names: list[str] = []  # id within source (canonical image_id = f"{source}:{name}")
        self.paths: list[str] = []  # relative to root

    @property
    def theme_names(self) -> list[str]:
        return [THEMES[t] for t in self.themes]


def _unique_strings(rng: np.random.Generator, n: int, make) -> list[str]:
    out, seen = [], set()
    while len(out) < n:
        s = make(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _amt_id(rng) -> str:
    chars = np.array(list(string.ascii_uppercase + string.digits))
    return "A" + "".join(rng.choice(chars, 12))


def _para_user(rng) -> str:
    return f"A{rng.integers(10000, 100000)}{string.ascii_lowercase[rng.integers(0, 26)]}"


def _f(x: float, nd: int = 4) -> str:
    s = f"{x:.{nd}f}"
    return "0." + "0" * nd if s.startswith("-0.") and float(s) == 0 else s


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def _write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    """Write a one-sheet workbook with byte-identical output for identical content."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    wb.properties.creator = "aestimo.world"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    # re-pack with fixed entry timestamps (zipfile stamps entries with the clock)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, src.read(info.filename))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())


def _render_batch(args) -> None:
    root, size, quality, items = args
    for rel, theme, lat, seed in items:
        arr = render(theme, np.asarray(lat), size, np.random.default_rng(seed))
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(jpeg_bytes(arr, quality))


def _render_all(root: Path, cfg: WorldConfig, pools: list[_Pool]) -> None:
    items = []
    for pool in pools:
        seeds = rng_for(cfg.seed, "render", pool.source, pool.pool).integers(0, 2**63 - 1, pool.n)
        items += [(rel, int(t), pool.lat[i].tolist(), int(s))
                  for i, (rel, t, s) in enumerate(zip(pool.paths, pool.themes, seeds))]
    try:
        workers = min(len(os.sched_getaffinity(0)), 8)
    except AttributeError:  # not on Linux
        workers = min(os.cpu_count() or 1, 8)
    if len(items) < 1500 or workers < 2:
        _render_batch((str(root), cfg.image_size, cfg.jpeg_quality, items))
        return
    chunks = [items[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        list(ex.map(_render_batch, [(str(root), cfg.image_size, cfg.jpeg_quality, c) for c in chunks]))


def _stats(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    cnt = np.bincount(groups, minlength=n_groups).astype(float)
    s1 = np.bincount(groups, weights=values, minlength=n_groups)
    s2 = np.bincount(groups, weights=values * values, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        sd = np.sqrt(np.maximum(s2 / cnt - mean**2, 0))
    return mean, sd


def _hist(bins: np.ndarray, groups: np.ndarray, n_groups: int, n_bins: int) -> np.ndarray:
    return np.bincount(groups * n_bins + bins, minlength=n_groups * n_bins).reshape(n_groups, n_bins)


class _Truth:
    def __init__(self):
        self.images: list[pl.DataFrame] = []
        self.raters: list[pl.DataFrame] = []
        self.utilities: list[pl.DataFrame] = []

    def add_pool(self, pool: _Pool) -> None:
        d = {"image_id": [f"{pool.source}:{n}" for n in pool.names], "source": [pool.source] * pool.n,
             "pool": [pool.pool] * pool.n, "theme": pool.theme_names}
        d |= {name: pool.lat[:, j] for j, name in enumerate(LATENTS)}
        d |= {f"criterion_{s}": pool.crit[:, j] for j, s in enumerate(SOURCES)}
        self.images.append(pl.DataFrame(d))

    def add_raters(self, r: Raters) -> None:
        d = {"source": [r.source] * len(r), "rater_id": r.ids, "is_test": r.is_test}
        d |= {f"w_{s}": r.weights[:, j] for j, s in enumerate(SOURCES)}
        d |= {"idiosyncratic_weight": r.idio_weight, "bias": r.bias, "scale": r.scale, "noise_sd": r.noise_sd}
        d |= {f"big5_{t}": r.big5[:, j].astype(np.int64) for j, t in enumerate(BIG5)}
        d |= {"art_experience": [EXPERIENCE_LEVELS[i] for i in r.art_exp],
              "photo_experience": [EXPERIENCE_LEVELS[i] for i in r.photo_exp]}
        df = pl.DataFrame(d).with_columns(
            pl.Series("idiosyncratic_direction", r.direction.tolist(), dtype=pl.List(pl.Float64)))
        self.raters.append(df)

    def add_utilities(self, source: str, rater_ids: list[str], image_ids: list[str], util: np.ndarray) -> None:
        self.utilities.append(pl.DataFrame({"source": [source] * len(rater_ids), "rater_id": rater_ids,
                                            "image_id": image_ids, "utility": np.asarray(util, float)}))

    def write(self, root: Path) -> None:
        d = root / TRUTH_DIR
        d.mkdir(parents=True, exist_ok=True)
        pl.concat(self.images).write_parquet(d / "image_latents.parquet", statistics=False)
        pl.concat(self.raters, how="diagonal").write_parquet(d / "raters.parquet", statistics=False)
        pl.concat(self.utilities).write_parquet(d / "utilities.parquet", statistics=False)


def _voter_votes(cfg, source, pool: _Pool, n_voters, votes_per_image: np.ndarray, noise_sd):
    """Anonymous voters: returns (image index per vote, voter index per vote, response per vote)."""
    rng = rng_for(cfg.seed, "voters", source)
    voters = make_raters(rng, source, n_voters, [f"{source}_voter{i}" for i in range(n_voters)],
                         np.zeros(n_voters, bool), cfg, noise_sd, cfg.voter_idiosyncratic_mean)
    U = utilities(voters, pool.crit, pool.feats)  # [V, n]
    rng = rng_for(cfg.seed, "votes", source)
    order = np.argsort(rng.random((pool.n, n_voters)), axis=1)
    img_idx = np.repeat(np.arange(pool.n), votes_per_image)
    voter_idx = np.concatenate([order[i, :k] for i, k in enumerate(votes_per_image)]) if pool.n else np.zeros(0, int)
    y = latent_responses(rng, voters, voter_idx, U[voter_idx, img_idx])
    return img_idx, voter_idx, y


# --------------------------------------------------------------------------- sources

def _ava(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    pool = _Pool(cfg, "ava", "train", cfg.ava_images)
    rng = rng_for(cfg.seed, "ids", "ava")
    pool.names = sorted(_unique_strings(rng, pool.n, lambda r: str(r.integers(100000, 1000000))), key=int)
    pool.paths = [f"ava/images/{i}.jpg" for i in pool.names]
    n_votes = np.clip(np.rint(cfg.ava_votes_median * np.exp(rng.normal(0, 0.3, pool.n))),
                      cfg.ava_votes_min, cfg.ava_votes_max).astype(int)
    n_votes = np.minimum(n_votes, cfg.ava_voters)
    img_idx, _, y = _voter_votes(cfg, "ava", pool, cfg.ava_voters, n_votes, cfg.voter_noise_sd)
    H = _hist(quantise(y, AVA_VOTE_DIST), img_idx, pool.n, 10)
    tag2 = rng.integers(0, 67, pool.n) * (rng.random(pool.n) < 0.6)
    challenge = rng.integers(1, 1400, pool.n)
    lines = [" ".join([str(k + 1), pool.names[k], *map(str, H[k]), str(AVA_TAGS[THEMES[pool.themes[k]]]),
                       str(tag2[k]), str(challenge[k])]) for k in range(pool.n)]
    _write_text(root / "ava/AVA.txt", "\n".join(lines) + "\n")
    n_test = int(round(cfg.ava_test_fraction * pool.n))
    test = np.sort(rng.choice(pool.n, n_test, replace=False))
    _write_text(root / "ava/aesthetics_image_lists/generic_test.jpgl", "".join(f"{pool.names[k]}\n" for k in test))
    truth.add_pool(pool)
    counts["ava"] = {"images": pool.n, "votes": int(H.sum()), "official_test_images": n_test}
    return [pool]


def _flickr(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    tr = _Pool(cfg, "flickr_aes", "train", cfg.flickr_train_images)
    te = _Pool(cfg, "flickr_aes", "test", cfg.flickr_test_images)
    rng = rng_for(cfg.seed, "ids", "flickr_aes")
    hexd = np.array(list("0123456789abcdef"))

    def name(r):
        return (f"farm{r.integers(1, 10)}_{r.integers(1, 1000)}_{r.integers(10**7, 10**11)}_"
                f"{''.join(r.choice(hexd, 10))}.jpg")

    names = _unique_strings(rng, tr.n + te.n, name)
    tr.names, te.names = names[: tr.n], names[tr.n:]
    workers = _unique_strings(rng, cfg.flickr_train_workers + cfg.flickr_test_workers, _amt_id)
    n_tr = cfg.flickr_train_workers
    prng = rng_for(cfg.seed, "people", "flickr_aes")
    train_w = make_raters(prng, "flickr_aes", n_tr, workers[:n_tr], np.zeros(n_tr, bool), cfg, cfg.rater_noise_sd)
    test_w = make_raters(prng, "flickr_aes", cfg.flickr_test_workers, workers[n_tr:],
                         np.ones(cfg.flickr_test_workers, bool), cfg, cfg.rater_noise_sd)

    arng = rng_for(cfg.seed, "assign", "flickr_aes")
    activity = np.exp(arng.normal(0, 0.8, n_tr))
    A = assign_topk(arng, tr.n, n_tr, cfg.flickr_raters_per_image, activity)
    tr_img = np.repeat(np.arange(tr.n), A.shape[1])
    tr_rat = A.reshape(-1)
    n_per = arng.integers(cfg.flickr_test_images_per_worker_min, cfg.flickr_test_images_per_worker_max + 1,
                          cfg.flickr_test_workers)
    picks = assign_balanced(arng, te.n, n_per)
    te_img = np.concatenate(picks) if picks else np.zeros(0, int)
    te_rat = np.repeat(np.arange(cfg.flickr_test_workers), n_per)
    # test images nobody rated are dropped from the pool (they would have no score)
    rated = np.zeros(te.n, bool)
    rated[te_img] = True
    keep = np.flatnonzero(rated)
    remap = -np.ones(te.n, int)
    remap[keep] = np.arange(len(keep))
    te_img = remap[te_img]
    for attr in ("themes", "lat", "feats", "crit"):
        setattr(te, attr, getattr(te, attr)[keep])
    te.names = [te.names[k] for k in keep]
    te.n = len(keep)
    tr.paths = [f"flickr_aes/40K/{n}" for n in tr.names]
    te.paths = [f"flickr_aes/40K/{n}" for n in te.names]

    u_tr = utilities(train_w, tr.crit, tr.feats)[tr_rat, tr_img]
    u_te = utilities(test_w, te.crit, te.feats)[te_rat, te_img]
    rrng = rng_for(cfg.seed, "ratings", "flickr_aes")
    y = np.concatenate([latent_responses(rrng, train_w, tr_rat, u_tr), latent_responses(rrng, test_w, te_rat, u_te)])
    score = quantise(y, FLICKR_DIST) + 1

    rows_w = [train_w.ids[r] for r in tr_rat] + [test_w.ids[r] for r in te_rat]
    rows_i = [tr.names[i] for i in tr_img] + [te.names[i] for i in te_img]
    lines = ["worker, imagePair, score"] + [f"{w},{i},{s}" for w, i, s in zip(rows_w, rows_i, score)]
    _write_text(root / "flickr_aes/FLICKR-AES_image_labeled_by_each_worker.csv", "\n".join(lines) + "\n")

    all_names = tr.names + te.names
    gid = np.concatenate([tr_img, tr.n + te_img])
    mean, _ = _stats(score.astype(float), gid, len(all_names))
    lead = rng.random(len(all_names)) < 0.3
    _write_text(root / "flickr_aes/FLICKR-AES_image_score.txt",
                "".join(f"{' ' if lead[k] else ''}{n} {_f(mean[k], 6)}\n" for k, n in enumerate(all_names)))
    _write_text(root / "flickr_aes/FLICKR-AES_test_workers.txt", "".join(f"{w}\n" for w in test_w.ids))

    truth.add_pool(tr), truth.add_pool(te)
    truth.add_raters(train_w), truth.add_raters(test_w)
    truth.add_utilities("flickr_aes", rows_w, [f"flickr_aes:{i}" for i in rows_i], np.concatenate([u_tr, u_te]))
    counts["flickr_aes"] = {"images": tr.n + te.n, "test_images": te.n, "ratings": len(score),
                            "raters": n_tr + cfg.flickr_test_workers, "test_raters": cfg.flickr_test_workers}
    return [tr, te]


def _tad66k(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    pool = _Pool(cfg, "tad66k", "train", cfg.tad66k_images)
    rng = rng_for(cfg.seed, "ids", "tad66k")
    pool.names = _unique_strings(rng, pool.n, lambda r: f"{r.integers(10**6, 10**7)}.jpg")
    pool.paths = [f"tad66k/TAD66K/{n}" for n in pool.names]
    n_votes = np.full(pool.n, cfg.tad66k_votes_per_image)
    img_idx, _, y = _voter_votes(cfg, "tad66k", pool, cfg.tad66k_voters, n_votes, cfg.voter_noise_sd)
    votes = quantise(y, TAD_VOTE_DIST) + 1.0
    mean, _ = _stats(votes, img_idx, pool.n)
    n_test = int(round(cfg.tad66k_test_fraction * pool.n))
    is_test = np.zeros(pool.n, bool)
    is_test[rng.choice(pool.n, n_test, replace=False)] = True
    for split, mask in (("train", ~is_test), ("test", is_test)):
        rows = [f"{pool.names[k]},{_f(mean[k], 4)}" for k in np.flatnonzero(mask)]
        _write_text(root / f"tad66k/labels/merge/{split}.csv", "\n".join(["image,score"] + rows) + "\n")
    truth.add_pool(pool)
    counts["tad66k"] = {"images": pool.n, "votes": len(votes), "official_test_images": n_test}
    return [pool]


def _para(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    tr = _Pool(cfg, "para", "train", cfg.para_train_images)
    te = _Pool(cfg, "para", "test", cfg.para_test_images)
    rng = rng_for(cfg.seed, "ids", "para")
    k = 0
    for pool in (tr, te):  # sessions never mix training and test images
        sess, names = [], []
        per = cfg.para_images_per_session
        first_session = (k + per - 1) // per
        for i in range(pool.n):
            sess.append(f"session{first_session + i // per + 1}")
            names.append(f"iaa_pub{k + 1}_.jpg")
            k += 1
        k = (first_session + (pool.n + per - 1) // per) * per
        pool.sessions = sess
        pool.names = [f"{s}/{n}" for s, n in zip(sess, names)]
        pool.image_names = names
        pool.paths = [f"para/imgs/{s}/{n}" for s, n in zip(sess, names)]
    n_tr, n_te = cfg.para_train_users, cfg.para_test_users
    users = _unique_strings(rng, n_tr + n_te, _para_user)
    prng = rng_for(cfg.seed, "people", "para")
    train_u = make_raters(prng, "para", n_tr, users[:n_tr], np.zeros(n_tr, bool), cfg, cfg.rater_noise_sd)
    test_u = make_raters(prng, "para", n_te, users[n_tr:], np.ones(n_te, bool), cfg, cfg.rater_noise_sd)

    arng = rng_for(cfg.seed, "assign", "para")
    A = assign_topk(arng, tr.n, n_tr, cfg.para_raters_per_image, np.exp(arng.normal(0, 0.5, n_tr)))
    tr_img, tr_rat = np.repeat(np.arange(tr.n), A.shape[1]), A.reshape(-1)
    n_per = arng.integers(cfg.para_test_images_per_user_min, cfg.para_test_images_per_user_max + 1, n_te)
    picks = assign_balanced(arng, te.n, n_per)
    te_img = np.concatenate(picks) if picks else np.zeros(0, int)
    te_rat = np.repeat(np.arange(n_te), n_per)

    U_tr, U_te = utilities(train_u, tr.crit, tr.feats), utilities(test_u, te.crit, te.feats)
    u = np.concatenate([U_tr[tr_rat, tr_img], U_te[te_rat, te_img]])
    rrng = rng_for(cfg.seed, "ratings", "para")
    y = np.concatenate([latent_responses(rrng, train_u, tr_rat, u[: len(tr_rat)]),
                        latent_responses(rrng, test_u, te_rat, u[len(tr_rat):])])
    aes_bin = quantise(y, PARA_DIST)
    aes = 1.0 + 0.5 * aes_bin
    ac = np.vstack([para_attribute_criteria(tr.themes, tr.lat)[tr_img], para_attribute_criteria(te.themes, te.lat)[te_img]])
    n = len(u)
    ystd = (y - y.mean()) / (y.std() + 1e-12)
    attr = {}
    for j, a in enumerate(PARA_ATTRIBUTES):  # halo: attributes follow the overall impression
        attr[a] = quantise(0.6 * ac[:, j] + 0.6 * ystd + 0.6 * rrng.normal(0, 1, n), PARA_ATTR_DIST) + 1
    attr["contentPreference"] = quantise(0.85 * ystd + 0.3 * ac[:, PARA_ATTRIBUTES.index("content")]
                                         + 0.5 * rrng.normal(0, 1, n), PARA_ATTR_DIST) + 1
    attr["willingnessToShare"] = quantise(0.9 * ystd + 0.5 * rrng.normal(0, 1, n), PARA_ATTR_DIST) + 1
    lat = np.vstack([tr.lat[tr_img], te.lat[te_img]])
    emphasis = ((lat[:, LATENTS.index("subject_size")] + lat[:, LATENTS.index("dof")]) / 2
                + rrng.normal(0, 0.15, n) > 0.5).astype(int)
    themes = np.concatenate([tr.themes[tr_img], te.themes[te_img]])
    emotion_idx = np.where(ystd + rrng.normal(0, 0.7, n) > 0.8, (themes % 4),
                           np.where(ystd + rrng.normal(0, 0.7, n) < -1.2, 4 + themes % 3, 7))
    difficulty = np.clip(np.rint(3 - 1.2 * np.abs(ystd) + rrng.normal(0, 0.8, n)), 1, 5).astype(int)

    pools = [(tr, tr_img, train_u, tr_rat), (te, te_img, test_u, te_rat)]
    rows = ["sessionId,imageName,userId,aestheticScore,qualityScore,compositionScore,colorScore,dofScore,"
            "contentScore,lightScore,isObjectEmphasis,imgEmotion,difficultyOfJudgment,contentPreference,"
            "willingnessToShare,semantic"]
    rid, iid = [], []
    off = 0
    for pool, img, raters, rat in pools:
        for t in range(len(img)):
            q = off + t
            i = img[t]
            rows.append(",".join([pool.sessions[i], pool.image_names[i], raters.ids[rat[t]], f"{aes[q]:.1f}",
                                  str(attr["quality"][q]), str(attr["composition"][q]), str(attr["color"][q]),
                                  str(attr["dof"][q]), str(attr["content"][q]), str(attr["light"][q]),
                                  str(emphasis[q]), EMOTIONS[emotion_idx[q]], str(difficulty[q]),
                                  str(attr["contentPreference"][q]), str(attr["willingnessToShare"][q]),
                                  THEMES[pool.themes[i]]]))
            rid.append(raters.ids[rat[t]])
            iid.append(f"para:{pool.names[i]}")
        off += len(img)
    _write_text(root / "para/annotation/PARA-Images.csv", "\n".join(rows) + "\n")

    # user info
    urows = ["userId,age,gender,EducationalLevel,artExperience,photographyExperience,personality-E,"
             "personality-A,personality-N,personality-O,personality-C"]
    irng = rng_for(cfg.seed, "userinfo", "para")
    for raters in (train_u, test_u):
        for r in range(len(raters)):
            age = AGE_BANDS[min(int(irng.gamma(2.0, 0.9)), len(AGE_BANDS) - 1)]
            b = raters.big5[r]
            urows.append(",".join([raters.ids[r], age, ("male", "female")[irng.integers(0, 2)],
                                   EDUCATION[min(int(irng.gamma(3.0, 0.6)), len(EDUCATION) - 1)],
                                   EXPERIENCE_LEVELS[raters.art_exp[r]], EXPERIENCE_LEVELS[raters.photo_exp[r]],
                                   *[str(b[j]) for j in range(5)]]))
    _write_text(root / "para/annotation/PARA-UserInfo.csv", "\n".join(urows) + "\n")
    _write_text(root / "para/annotation/PARA-TestUsers.txt", "".join(f"{x}\n" for x in test_u.ids))

    # GIAA aggregates
    head = ["imageName", "sessionId", "semantic"] + [f"aestheticScore_{v:.1f}" for v in np.arange(1, 5.01, 0.5)]
    head += ["aestheticScore_mean", "aestheticScore_std", "qualityScore_mean", "qualityScore_std"]
    for a in PARA_GIAA_ATTRS:
        head += [f"{a}Score_{v}" for v in range(1, 6)] + [f"{a}Score_mean", f"{a}Score_std"]
    off = 0
    for (pool, img, _, _), fname in zip(pools, ("PARA-GiaaTrain.csv", "PARA-GiaaTest.csv")):
        sl = slice(off, off + len(img))
        off += len(img)
        H = _hist(aes_bin[sl], img, pool.n, 9)
        am, asd = _stats(aes[sl], img, pool.n)
        qm, qsd = _stats(attr["quality"][sl].astype(float), img, pool.n)
        per_attr = {a: (_hist(attr[a][sl] - 1, img, pool.n, 5), *_stats(attr[a][sl].astype(float), img, pool.n))
                    for a in PARA_GIAA_ATTRS}
        lines = [",".join(head)]
        for i in range(pool.n):
            if H[i].sum() == 0:
                continue
            cells = [pool.image_names[i], pool.sessions[i], THEMES[pool.themes[i]], *map(str, H[i]),
                     _f(am[i]), _f(asd[i]), _f(qm[i]), _f(qsd[i])]
            for a in PARA_GIAA_ATTRS:
                h, m, s = per_attr[a]
                cells += [*map(str, h[i]), _f(m[i]), _f(s[i])]
            lines.append(",".join(cells))
        _write_text(root / "para/annotation" / fname, "\n".join(lines) + "\n")

    truth.add_pool(tr), truth.add_pool(te)
    truth.add_raters(train_u), truth.add_raters(test_u)
    truth.add_utilities("para", rid, iid, u)
    counts["para"] = {"images": tr.n + te.n, "test_images": te.n, "ratings": n, "raters": n_tr + n_te,
                      "test_raters": n_te}
    return [tr, te]


def _koniq(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    pool = _Pool(cfg, "koniq10k", "train", cfg.koniq10k_images)
    rng = rng_for(cfg.seed, "ids", "koniq10k")
    pool.names = _unique_strings(rng, pool.n, lambda r: f"{r.integers(10**9, 10**10)}.jpg")
    pool.paths = [f"koniq10k/512x384/{n}" for n in pool.names]
    k = cfg.koniq10k_votes_per_image
    n_votes = np.clip(np.rint(k * (1 + rng.uniform(-0.15, 0.15, pool.n))), 1, cfg.koniq10k_voters).astype(int)
    img_idx, voter_idx, y = _voter_votes(cfg, "koniq10k", pool, cfg.koniq10k_voters, n_votes,
                                         cfg.quality_voter_noise_sd)
    votes = quantise(y, KONIQ_VOTE_DIST)
    H = _hist(votes, img_idx, pool.n, 5)
    mos, sd = _stats(votes + 1.0, img_idx, pool.n)
    # z-scores per voter, averaged per image, mapped from [-3, 3] onto [0, 100]
    vm, vsd = _stats(votes + 1.0, voter_idx, cfg.koniq10k_voters)
    z = (votes + 1.0 - vm[voter_idx]) / np.where(vsd[voter_idx] > 0, vsd[voter_idx], 1.0)
    zm, _ = _stats(z, img_idx, pool.n)
    zscore = np.clip((zm + 3) / 6 * 100, 0, 100)
    sets = np.array(["training"] * pool.n, dtype=object)
    perm = rng.permutation(pool.n)
    n_val, n_test = int(round(cfg.koniq10k_val_fraction * pool.n)), int(round(cfg.koniq10k_test_fraction * pool.n))
    sets[perm[:n_val]] = "validation"
    sets[perm[n_val:n_val + n_test]] = "test"
    head = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
    rows = [f"{pool.names[i]},{','.join(map(str, H[i]))},{H[i].sum()},{_f(mos[i], 6)},{_f(sd[i], 6)},{_f(zscore[i], 6)}"
            for i in range(pool.n)]
    _write_text(root / "koniq10k/koniq10k_scores_and_distributions.csv", "\n".join([head] + rows) + "\n")
    _write_text(root / "koniq10k/koniq10k_distributions_sets.csv",
                "\n".join([head + ",set"] + [f"{r},{s}" for r, s in zip(rows, sets)]) + "\n")
    truth.add_pool(pool)
    counts["koniq10k"] = {"images": pool.n, "votes": int(H.sum()), "official_test_images": n_test}
    return [pool]


def _spaq(root: Path, cfg: WorldConfig, truth: _Truth, counts: dict) -> list[_Pool]:
    pool = _Pool(cfg, "spaq", "train", cfg.spaq_images)
    pool.names = [f"{i + 1:05d}.jpg" for i in range(pool.n)]
    pool.paths = [f"spaq/TestImage/{n}" for n in pool.names]
    n_votes = np.full(pool.n, cfg.spaq_votes_per_image)
    img_idx, _, y = _voter_votes(cfg, "spaq", pool, cfg.spaq_voters, n_votes, cfg.quality_voter_noise_sd)
    slider = 100 * ndtr(1.6 * (y - y.mean()) / (y.std() + 1e-12))
    mos, _ = _stats(slider, img_idx, pool.n)
    rng = rng_for(cfg.seed, "attributes", "spaq")
    L = {n: pool.lat[:, j] for j, n in enumerate(LATENTS)}

    def attr(x):
        return np.clip(100 * (0.08 + 0.84 * x) + rng.normal(0, 5, pool.n), 0, 100)

    cols = {"Brightness": attr(L["exposure"]), "Colorfulness": attr(L["colorfulness"]),
            "Contrast": attr(L["contrast"]), "Noisiness": attr(1 - L["noise"]), "Sharpness": attr(L["sharpness"])}
    head = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    rows = [[pool.names[i], round(float(mos[i]), 2)] + [round(float(cols[c][i]), 2) for c in head[2:]]
            for i in range(pool.n)]
    _write_xlsx(root / "spaq/Annotations/MOS and Image attribute scores.xlsx", head, rows)
    _write_xlsx(root / "spaq/Annotations/Scene category labels.xlsx", ["Image name", "Scene category"],
                [[pool.names[i], SPAQ_SCENES[THEMES[pool.themes[i]]]] for i in range(pool.n)])
    truth.add_pool(pool)
    counts["spaq"] = {"images": pool.n, "votes": len(slider)}
    return [pool]


# --------------------------------------------------------------------------- public API

def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def generate_world(root: Path, config: WorldConfig | None = None) -> dict:
    """Write the synthetic world under ``root`` (replacing what is there) and return its manifest.

    The manifest (also written to ``root/manifest.json``, last) holds the
    seed, the configuration, counts per source and every file with its
    sha256. Identical configurations give byte-identical files.
    """
    cfg = config or WorldConfig()
    cfg.validate()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        truth, counts, pools = _Truth(), {}, []
        for make in (_ava, _flickr, _tad66k, _para, _koniq, _spaq):
            pools += make(tmp, cfg, truth, counts)
        _render_all(tmp, cfg, pools)
        truth.write(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT_VERSION,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "counts": counts,
            "files": [{"path": p.relative_to(tmp).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)}
                      for p in files],
        }
        part = tmp / (MANIFEST + ".part")
        part.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(part, tmp / MANIFEST)
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(root: Path) -> dict:
    return json.loads((Path(root) / MANIFEST).read_text())


def world_exists(root: Path, config: WorldConfig | None = None) -> bool:
    """True when a complete world (manifest written last) is on disk; with ``config``, also that it matches."""
    p = Path(root) / MANIFEST
    if not p.is_file():
        return False
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    if m.get("format") != FORMAT_VERSION or "files" not in m:
        return False
    if config is not None and m.get("config") != config.to_dict():
        return False
    return True


def read_truth(root: Path) -> dict[str, pl.DataFrame]:
    """The hidden truth tables: ``image_latents``, ``raters``, ``utilities``."""
    d = Path(root) / TRUTH_DIR
    return {name: pl.read_parquet(d / f"{name}.parquet") for name in ("image_latents", "raters", "utilities")}
