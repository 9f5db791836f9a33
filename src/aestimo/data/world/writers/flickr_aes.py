"""Writes FLICKR-AES: each AMT worker's 1-5 ratings, the per-image mean scores and the test workers.

Training images are rated by the training workers, test images by the test
workers (a people split, as in the real set). Images go to ``flickr_aes/40K/``.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import rng_for
from ..people import FLICKR_DIST, assign_balanced, assign_topk, latent_responses, make_raters, quantise, utilities
from ..pools import Pool
from ..truth import Truth
from ._files import fixed, write_text
from ._ids import unique_strings
from ._votes import group_stats


def _amt_id(rng) -> str:
    chars = np.array(list(string.ascii_uppercase + string.digits))
    return "A" + "".join(rng.choice(chars, 12))


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    tr = Pool(cfg, "flickr_aes", "train", cfg.flickr_train_images)
    te = Pool(cfg, "flickr_aes", "test", cfg.flickr_test_images)
    rng = rng_for(cfg.seed, "ids", "flickr_aes")
    hexd = np.array(list("0123456789abcdef"))

    def name(r):
        return (f"farm{r.integers(1, 10)}_{r.integers(1, 1000)}_{r.integers(10**7, 10**11)}_"
                f"{''.join(r.choice(hexd, 10))}.jpg")

    names = unique_strings(rng, tr.n + te.n, name)
    tr.names, te.names = names[: tr.n], names[tr.n:]
    workers = unique_strings(rng, cfg.flickr_train_workers + cfg.flickr_test_workers, _amt_id)
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
    write_text(root / "flickr_aes/FLICKR-AES_image_labeled_by_each_worker.csv", "\n".join(lines) + "\n")

    all_names = tr.names + te.names
    gid = np.concatenate([tr_img, tr.n + te_img])
    mean, _ = group_stats(score.astype(float), gid, len(all_names))
    lead = rng.random(len(all_names)) < 0.3
    write_text(root / "flickr_aes/FLICKR-AES_image_score.txt",
                "".join(f"{' ' if lead[k] else ''}{n} {fixed(mean[k], 6)}\n" for k, n in enumerate(all_names)))
    write_text(root / "flickr_aes/FLICKR-AES_test_workers.txt", "".join(f"{w}\n" for w in test_w.ids))

    truth.add_pool(tr), truth.add_pool(te)
    truth.add_raters(train_w), truth.add_raters(test_w)
    truth.add_utilities("flickr_aes", rows_w, [f"flickr_aes:{i}" for i in rows_i], np.concatenate([u_tr, u_te]))
    counts["flickr_aes"] = {"images": tr.n + te.n, "test_images": te.n, "ratings": len(score),
                            "raters": n_tr + cfg.flickr_test_workers, "test_raters": cfg.flickr_test_workers}
    return [tr, te]
