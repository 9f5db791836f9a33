"""Writes PARA: per-user ratings with attributes, user profiles, test users and the GIAA aggregates.

Files under ``para/annotation/``: ``PARA-Images.csv``, ``PARA-UserInfo.csv``,
``PARA-TestUsers.txt``, ``PARA-GiaaTrain.csv`` / ``PARA-GiaaTest.csv``.
Images go to ``para/imgs/{session}/{name}``; sessions never mix the splits.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import LATENTS, PARA_ATTRIBUTES, THEMES, para_attribute_criteria, rng_for
from ..people import (
    EXPERIENCE_LEVELS, PARA_ATTR_DIST, PARA_DIST, assign_balanced, assign_topk, latent_responses, make_raters,
    quantise, utilities,
)
from ..pools import Pool
from ..truth import Truth
from ._files import fixed, write_text
from ._ids import unique_strings
from ._votes import group_hist, group_stats

EMOTIONS = ("Amusement", "Excitement", "Contentment", "Awe", "Disgust", "Sadness", "Fear", "Neutral")
AGE_BANDS = ("18-21", "22-25", "26-29", "30-34", "35-39", "40-49", "50-59")
EDUCATION = ("HighSchool", "JuniorCollege", "University", "Master", "Doctor")
PARA_GIAA_ATTRS = ("composition", "color", "dof", "light", "content", "contentPreference", "willingnessToShare")


def _para_user(rng) -> str:
    return f"A{rng.integers(10000, 100000)}{string.ascii_lowercase[rng.integers(0, 26)]}"


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    tr = Pool(cfg, "para", "train", cfg.para_train_images)
    te = Pool(cfg, "para", "test", cfg.para_test_images)
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
    users = unique_strings(rng, n_tr + n_te, _para_user)
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
    write_text(root / "para/annotation/PARA-Images.csv", "\n".join(rows) + "\n")

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
    write_text(root / "para/annotation/PARA-UserInfo.csv", "\n".join(urows) + "\n")
    write_text(root / "para/annotation/PARA-TestUsers.txt", "".join(f"{x}\n" for x in test_u.ids))

    # GIAA aggregates
    head = ["imageName", "sessionId", "semantic"] + [f"aestheticScore_{v:.1f}" for v in np.arange(1, 5.01, 0.5)]
    head += ["aestheticScore_mean", "aestheticScore_std", "qualityScore_mean", "qualityScore_std"]
    for a in PARA_GIAA_ATTRS:
        head += [f"{a}Score_{v}" for v in range(1, 6)] + [f"{a}Score_mean", f"{a}Score_std"]
    off = 0
    for (pool, img, _, _), fname in zip(pools, ("PARA-GiaaTrain.csv", "PARA-GiaaTest.csv")):
        sl = slice(off, off + len(img))
        off += len(img)
        H = group_hist(aes_bin[sl], img, pool.n, 9)
        am, asd = group_stats(aes[sl], img, pool.n)
        qm, qsd = group_stats(attr["quality"][sl].astype(float), img, pool.n)
        per_attr = {a: (group_hist(attr[a][sl] - 1, img, pool.n, 5), *group_stats(attr[a][sl].astype(float), img, pool.n))
                    for a in PARA_GIAA_ATTRS}
        lines = [",".join(head)]
        for i in range(pool.n):
            if H[i].sum() == 0:
                continue
            cells = [pool.image_names[i], pool.sessions[i], THEMES[pool.themes[i]], *map(str, H[i]),
                     fixed(am[i]), fixed(asd[i]), fixed(qm[i]), fixed(qsd[i])]
            for a in PARA_GIAA_ATTRS:
                h, m, s = per_attr[a]
                cells += [*map(str, h[i]), fixed(m[i]), fixed(s[i])]
            lines.append(",".join(cells))
        write_text(root / "para/annotation" / fname, "\n".join(lines) + "\n")

    truth.add_pool(tr), truth.add_pool(te)
    truth.add_raters(train_u), truth.add_raters(test_u)
    truth.add_utilities("para", rid, iid, u)
    counts["para"] = {"images": tr.n + te.n, "test_images": te.n, "ratings": n, "raters": n_tr + n_te,
                      "test_raters": n_te}
    return [tr, te]
