"""Writes AADB: the 36 label files, the images and the per-rater AMT results ``AllinAll.csv``.

The release's label files ``aadb/imgListFiles_label/imgList{Train,Validation,Test}Regression_{Attr}.txt``
hold one ``<imageName> <value>`` line per image: the overall score in [0, 1] and 11 attributes
in [-1, 1]. Its raters' answers were published as the Mechanical Turk batch results
``AllinAll.csv``: one quoted CSV row per HIT assignment (``WorkerId``, ten
``Input.image_url<i>`` Flickr URLs, the answers ``Answer.overallScore<i>`` 1-5 and per attribute
``Answer.<Attr><i>`` = Positive / Negative / Neutral), the image file name being
``<farm>_<server>_<file>`` of the URL. Here the label files are derived from those answers: the
score is ``(mean rating - 1) / 4``, an attribute the mean of its answers coded +1 / -1 / 0.
Images go to ``aadb/datasetImages_originalSize/``.

Workers and HITs (see :class:`~aestimo.data.world.config.WorldConfig`): each HIT of
``aadb_images_per_hit`` images is done by ``aadb_raters_per_image`` distinct workers. The
``aadb_test_raters`` each do ``aadb_test_hits_min..max`` HITs, spread so that every HIT has at
least one of them; the other workers each do fewer than ``aadb_test_hits_min``. So the rule
"raters with at least ``aadb_images_per_hit * aadb_test_hits_min`` ratings" holds out exactly the
test raters, and every image is rated by a held-out person. Every worker's taste mixes the six
criteria with no source of its own (``mixed_taste_concentration``) plus an idiosyncratic part.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import FEATURES, rng_for
from ..people import AADB_DIST, latent_responses, make_raters, quantise, utilities
from ..pools import Pool
from ..truth import Truth
from ._files import fixed, write_text
from ._ids import unique_strings
from ._votes import group_stats

SOURCE = "aadb"
LABEL_SPLITS = ("Train", "Validation", "Test")
# label-file attribute <- the AMT answer it aggregates, and the features behind it
ATTRIBUTES = {
    "BalacingElements": ("VisualBalance", {"symmetric": 0.5, "tidy": 0.6}),
    "ColorHarmony": ("ColorHarmony", {"colorful": 0.5, "warm": 0.4, "contrast_ok": 0.3}),
    "Content": ("Content", {"size_ok": 0.4, "theme_animal": 0.4, "theme_landscape": 0.3, "theme_portrait": 0.3,
                            "theme_abstract": -0.4}),
    "DoF": ("DoF", {"bokeh": 0.9}),
    "Light": ("choiceLight", {"well_exposed": 0.7, "contrast_ok": 0.4}),
    "MotionBlur": ("MotionBlur", {"sharp": 0.9}),
    "Object": ("ObjectEmphasis", {"size_ok": 0.5, "bokeh": 0.5}),
    "Repetition": ("Repetition", {"theme_abstract": 0.5, "theme_architecture": 0.4, "tidy": -0.3}),
    "RuleOfThirds": ("RuleOfThirds", {"thirds": 0.9}),
    "Symmetry": ("Symmetry", {"symmetric": 0.9}),
    "VividColor": ("StrongColor", {"colorful": 0.9}),
}
ANSWERS = {1: "Positive", -1: "Negative", 0: "Neutral"}
HIT_COLUMNS = (
    "HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
    "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
    "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime",
    "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback", "WorkTimeInSeconds",
    "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate",
)
_UPPER = np.array(list(string.ascii_uppercase + string.digits))
_HEX = np.array(list("0123456789abcdef"))


def _amt_id(rng, n: int) -> str:
    return "".join(rng.choice(_UPPER, n))


def _number(x: float) -> str:
    """A label value as the release writes it: a plain decimal without trailing zeros."""
    s = fixed(x, 4).rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _plan_hits(cfg: WorldConfig, rng: np.random.Generator) -> list[list[int]]:
    """Workers per HIT: held-out workers (index < aadb_test_raters) first, spread evenly so that
    every HIT has one; then the other workers, each on fewer than ``aadb_test_hits_min`` HITs."""
    n_hits = cfg.aadb_images // cfg.aadb_images_per_hit
    n_test, rpi = cfg.aadb_test_raters, cfg.aadb_raters_per_image
    workers: list[list[int]] = [[] for _ in range(n_hits)]
    cover = np.zeros(n_hits, int)
    for w, c in enumerate(rng.integers(cfg.aadb_test_hits_min, cfg.aadb_test_hits_max + 1, n_test)):
        pick = np.lexsort((rng.random(n_hits), cover))[:c]  # least-covered HITs first
        cover[pick] += 1
        for h in pick:
            workers[h].append(w)
    cap = cfg.aadb_test_hits_min - 1
    n_train = cfg.aadb_train_raters
    log_activity = rng.normal(0, 0.8, n_train)
    used = np.zeros(n_train, int)
    for h in range(n_hits):
        need = rpi - len(workers[h])
        free = np.flatnonzero(used < cap)
        if len(free) < need:
            raise ValueError("world.aadb_train_raters: too few workers to fill every HIT at fewer than "
                             f"aadb_test_hits_min HITs each; raise it (got {n_train})")
        keys = log_activity[free] + np.log(cap - used[free]) + rng.gumbel(size=len(free))
        pick = free[np.argsort(-keys)[:need]]
        used[pick] += 1
        workers[h] += [n_test + int(w) for w in pick]
        rng.shuffle(workers[h])
    return workers


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    pool = Pool(cfg, SOURCE, "train", cfg.aadb_images)
    rng = rng_for(cfg.seed, "ids", SOURCE)

    def photo(r):
        return (int(r.integers(1, 10)), int(r.integers(1, 10000)), int(r.integers(10**9, 10**11)),
                "".join(r.choice(_HEX, 10)))

    photos = unique_strings(rng, pool.n, lambda r: "|".join(map(str, photo(r))))
    urls, names = [], []
    for p in photos:
        farm, server, pid, secret = p.split("|")
        urls.append(f"http://farm{farm}.staticflickr.com/{server}/{pid}_{secret}.jpg")
        names.append(f"farm{farm}_{server}_{pid}_{secret}.jpg")
    pool.names = names
    pool.paths = [f"{SOURCE}/datasetImages_originalSize/{n}" for n in names]
    n_test, n_all = cfg.aadb_test_raters, cfg.aadb_test_raters + cfg.aadb_train_raters
    worker_ids = unique_strings(rng, n_all, lambda r: "A" + _amt_id(r, int(r.integers(12, 14))))
    is_test = np.arange(n_all) < n_test
    raters = make_raters(rng_for(cfg.seed, "people", SOURCE), SOURCE, n_all, worker_ids, is_test, cfg,
                         cfg.rater_noise_sd, concentration=cfg.mixed_taste_concentration)

    arng = rng_for(cfg.seed, "assign", SOURCE)
    per_hit = cfg.aadb_images_per_hit
    hits = arng.permutation(pool.n).reshape(-1, per_hit)  # the images of each HIT
    plan = _plan_hits(cfg, arng)
    asg_hit = np.array([h for h, ws in enumerate(plan) for _ in ws], int)  # one row per assignment
    asg_worker = np.array([w for ws in plan for w in ws], int)
    img = hits[asg_hit].reshape(-1)  # one rating per (assignment, slot)
    rat = np.repeat(asg_worker, per_hit)

    u = utilities(raters, pool.crit, pool.feats)[rat, img]
    rrng = rng_for(cfg.seed, "ratings", SOURCE)
    y = latent_responses(rrng, raters, rat, u)
    score = quantise(y, AADB_DIST) + 1
    ystd = (y - y.mean()) / (y.std() + 1e-12)
    answers = {}
    for attr, (_, w) in ATTRIBUTES.items():  # each answer: the attribute's look, the rater's impression, noise
        v = np.zeros(len(FEATURES))
        for f, x in w.items():
            v[FEATURES.index(f)] = x
        look = pool.feats[img] @ v / np.linalg.norm(v)
        z = 0.8 * look + 0.4 * ystd + 0.6 * rrng.normal(0, 1, len(img))
        answers[attr] = np.where(z > 1.1, 1, np.where(z < -1.1, -1, 0))

    # labels: score (mean rating - 1) / 4 and attribute means, one file per split and attribute
    mean, _ = group_stats(score.astype(float), img, pool.n)
    label = {"score": (mean - 1) / 4}
    for attr in ATTRIBUTES:
        label[attr], _ = group_stats(answers[attr].astype(float), img, pool.n)
    srng = rng_for(cfg.seed, "splits", SOURCE)
    n_val, n_te = int(round(cfg.aadb_val_fraction * pool.n)), int(round(cfg.aadb_test_fraction * pool.n))
    order = srng.permutation(pool.n)
    split_of = np.zeros(pool.n, int)
    split_of[order[:n_val]], split_of[order[n_val:n_val + n_te]] = 1, 2
    for s, split in enumerate(LABEL_SPLITS):
        members = np.flatnonzero(split_of == s)
        for attr, values in label.items():
            lines = "".join(f"{names[i]} {_number(values[i])}\n" for i in members)
            write_text(root / SOURCE / "imgListFiles_label" / f"imgList{split}Regression_{attr}.txt", lines)

    # the AMT batch results
    n_slots = per_hit
    answer_cols = sorted(f"Answer.{a}{i}" for a in [amt for amt, _ in ATTRIBUTES.values()] + ["overallScore"]
                         for i in range(1, n_slots + 1))
    header = [*HIT_COLUMNS, *[f"Input.image_url{i}" for i in range(1, n_slots + 1)], *answer_cols, "Approve", "Reject"]
    hrng = rng_for(cfg.seed, "hits", SOURCE)
    hit_ids = [_amt_id(hrng, 30) for _ in range(len(plan))]
    type_id = _amt_id(hrng, 30)
    done = {w: int(c) for w, c in zip(*np.unique(asg_worker, return_counts=True))}
    amt_of = {amt: attr for attr, (amt, _) in ATTRIBUTES.items()}
    rows = [",".join(f'"{c}"' for c in header)]
    for a, (h, w) in enumerate(zip(asg_hit, asg_worker)):
        q = slice(a * per_hit, (a + 1) * per_hit)
        day = 13 + h * 10 // max(len(plan), 1)
        cell = {
            "HITId": hit_ids[h], "HITTypeId": type_id, "Title": "Rate the aesthetics of photos",
            "Description": "Rate each photo, then mark the attributes that make it better or worse",
            "Keywords": "photo, aesthetics, attributes", "Reward": "$0.10",
            "CreationTime": f"Tue Jan {day:02d} 09:00:00 PST 2015", "MaxAssignments": str(cfg.aadb_raters_per_image),
            "RequesterAnnotation": "BatchId:1", "AssignmentDurationInSeconds": "3600",
            "AutoApprovalDelayInSeconds": "259200", "Expiration": f"Tue Jan {day + 7:02d} 09:00:00 PST 2015",
            "AssignmentId": _amt_id(hrng, 30), "WorkerId": worker_ids[w], "AssignmentStatus": "Approved",
            "AcceptTime": f"Wed Jan {day + 1:02d} 10:00:00 PST 2015",
            "SubmitTime": f"Wed Jan {day + 1:02d} 10:12:00 PST 2015",
            "AutoApprovalTime": f"Sat Jan {day + 4:02d} 10:12:00 PST 2015",
            "ApprovalTime": f"Thu Jan {day + 2:02d} 08:00:00 PST 2015",
            "WorkTimeInSeconds": str(int(hrng.integers(120, 900))),
            "LifetimeApprovalRate": f"100% ({done[w]}/{done[w]})",
            "Last30DaysApprovalRate": f"100% ({done[w]}/{done[w]})",
            "Last7DaysApprovalRate": f"100% ({done[w]}/{done[w]})",
        }
        for i, k in enumerate(range(q.start, q.stop), start=1):
            cell[f"Input.image_url{i}"] = urls[img[k]]
            cell[f"Answer.overallScore{i}"] = str(score[k])
            for amt, attr in amt_of.items():
                cell[f"Answer.{amt}{i}"] = ANSWERS[int(answers[attr][k])]
        rows.append(",".join(f'"{cell.get(c, "")}"' for c in header))
    write_text(root / SOURCE / "AllinAll.csv", "\n".join(rows) + "\n")

    truth.add_pool(pool)
    truth.add_raters(raters)
    truth.add_utilities(SOURCE, [worker_ids[r] for r in rat], [f"{SOURCE}:{names[i]}" for i in img], u)
    counts[SOURCE] = {"images": pool.n, "ratings": len(img), "raters": len(done), "test_raters": n_test,
                      "hits": len(plan), "official_test_images": n_te}
    return [pool]
