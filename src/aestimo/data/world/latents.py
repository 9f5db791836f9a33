"""Latent image attributes, themes, derived features and the six source criteria.

Every image has ``LATENTS`` in [0, 1] plus a theme. ``features`` turns them
into standardised "aesthetic features" (sharp, well exposed, on the thirds,
...), and each source's criterion is a fixed weighted sum of features (TAD66K's
weights depend on the theme), standardised over a fixed reference population
so that criterion values are comparable across pools and seeds.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

LATENTS = (
    "exposure",
    "contrast",
    "colorfulness",
    "sharpness",
    "noise",
    "warmth",
    "placement",  # 0 = centred subject, 1 = on a rule-of-thirds point
    "subject_size",
    "symmetry",
    "clutter",
    "dof",  # background blur (shallow depth of field)
)
THEMES = ("landscape", "portrait", "animal", "architecture", "food", "night", "abstract")
SOURCES = ("ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq")

FEATURES = (
    "sharp",
    "clean",
    "well_exposed",
    "contrast_ok",
    "brightness",
    "contrast",
    "colorful",
    "warm",
    "thirds",
    "size_ok",
    "symmetric",
    "tidy",
    "bokeh",
) + tuple(f"theme_{t}" for t in THEMES)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """An independent, reproducible numpy Generator stream per named component."""
    keys = [int(seed)] + [zlib.crc32(n.encode()) for n in names]
    return np.random.default_rng(np.random.SeedSequence(keys))


# Beta(a, b) per latent: a broad default, tilted per theme and per source pool.
_BASE_BETA = {name: (2.2, 2.2) for name in LATENTS}
_BASE_BETA.update({"sharpness": (3.0, 1.8), "noise": (1.6, 3.2), "exposure": (2.6, 2.4)})
_THEME_BETA = {
    "landscape": {"colorfulness": (3.0, 2.0), "dof": (1.5, 3.5), "subject_size": (2.0, 2.8)},
    "portrait": {"dof": (3.5, 1.6), "subject_size": (3.0, 2.0), "warmth": (3.0, 2.2)},
    "animal": {"dof": (2.8, 2.0), "clutter": (2.6, 2.2)},
    "architecture": {"symmetry": (3.2, 1.8), "colorfulness": (1.8, 2.8), "warmth": (2.0, 2.6)},
    "food": {"warmth": (4.0, 1.8), "subject_size": (3.2, 2.0), "dof": (3.0, 2.0)},
    "night": {"exposure": (1.4, 4.5), "noise": (2.6, 2.0), "sharpness": (2.2, 2.4), "warmth": (2.0, 3.0)},
    "abstract": {"colorfulness": (4.0, 1.6), "symmetry": (2.6, 2.0), "clutter": (2.6, 2.2)},
}
# Source pools differ in what kind of photos they hold (IQA sets carry more distortions).
_SOURCE_BETA = {
    "ava": {"sharpness": (3.6, 1.6), "noise": (1.4, 3.8)},
    "flickr_aes": {},
    "tad66k": {},
    "para": {},
    "koniq10k": {"sharpness": (2.6, 1.1), "noise": (0.9, 2.6), "exposure": (2.2, 2.0), "contrast": (2.0, 1.7)},
    "spaq": {"sharpness": (1.5, 1.3), "noise": (1.3, 1.6), "exposure": (1.6, 1.6), "contrast": (1.6, 1.6), "colorfulness": (1.6, 1.6)},
    # one's own albums (phone photos): a little less sharp and clean than curated sets
    "real_cur": {"sharpness": (2.4, 1.7), "noise": (1.7, 2.8)},
    # AADB deliberately mixes professional and consumer Flickr photos (blur, noise)
    "aadb": {"sharpness": (2.2, 1.7), "noise": (1.6, 2.6)},
    "reference": {},
}
_SOURCE_THEMES = {
    "ava": (1.4, 1.0, 1.0, 1.0, 0.7, 1.0, 0.8),
    "flickr_aes": (1.2, 1.3, 1.0, 0.9, 0.8, 0.8, 0.5),
    "tad66k": (1, 1, 1, 1, 1, 1, 1),
    "para": (1.2, 1.3, 1.0, 1.0, 0.9, 0.8, 0.6),
    "koniq10k": (1.2, 1.2, 0.8, 1.2, 0.8, 0.8, 0.3),
    "spaq": (1.0, 1.3, 0.8, 1.0, 1.0, 1.2, 0.3),
    "real_cur": (1.2, 1.6, 0.9, 0.9, 1.1, 0.7, 0.3),
    "aadb": (1.2, 1.2, 1.0, 1.0, 0.8, 0.8, 0.6),
    "reference": (1, 1, 1, 1, 1, 1, 1),
}


def sample_latents(rng: np.random.Generator, n: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(themes[n] as int index, latents[n, len(LATENTS)])`` for a pool of ``source``."""
    p = np.asarray(_SOURCE_THEMES[source], dtype=float)
    themes = rng.choice(len(THEMES), size=n, p=p / p.sum())
    lat = np.empty((n, len(LATENTS)))
    for j, name in enumerate(LATENTS):
        a = np.full(n, _BASE_BETA[name][0])
        b = np.full(n, _BASE_BETA[name][1])
        if name in _SOURCE_BETA[source]:
            a[:], b[:] = _SOURCE_BETA[source][name]
        for t, tname in enumerate(THEMES):
            if name in _THEME_BETA[tname]:
                ta, tb = _THEME_BETA[tname][name]
                m = themes == t
                # blend the pool's and the theme's shape so both show
                a[m] = 0.5 * (a[m] + ta)
                b[m] = 0.5 * (b[m] + tb)
        lat[:, j] = rng.beta(a, b)
    return themes, lat


def raw_features(themes: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Un-standardised features (see ``FEATURES``) of images."""
    L = {name: lat[:, j] for j, name in enumerate(LATENTS)}
    cols = [
        L["sharpness"],
        1.0 - L["noise"] ** 0.8,
        1.0 - 4.0 * (L["exposure"] - 0.55) ** 2,
        1.0 - 4.0 * (L["contrast"] - 0.62) ** 2,
        L["exposure"],
        L["contrast"],
        L["colorfulness"],
        L["warmth"],
        L["placement"],
        1.0 - 6.0 * (L["subject_size"] - 0.45) ** 2,
        L["symmetry"],
        1.0 - L["clutter"],
        L["dof"],
    ]
    onehot = (themes[:, None] == np.arange(len(THEMES))[None, :]).astype(float)
    return np.column_stack(cols + [onehot[:, t] for t in range(len(THEMES))])


def _w(**kw) -> np.ndarray:
    v = np.zeros(len(FEATURES))
    for k, x in kw.items():
        v[FEATURES.index(k)] = x
    return v


# Criterion weights on standardised features.
_CRITERIA = {
    "ava": _w(sharp=0.25, clean=0.15, well_exposed=0.30, contrast_ok=0.20, colorful=0.30, thirds=0.35,
              size_ok=0.25, tidy=0.35, bokeh=0.25, symmetric=0.05, theme_landscape=0.15, theme_night=0.10,
              theme_food=-0.15, theme_abstract=-0.10),
    "flickr_aes": _w(sharp=0.12, clean=0.08, well_exposed=0.25, contrast_ok=0.10, colorful=0.45, warm=0.35,
                     thirds=0.15, size_ok=0.30, tidy=0.15, bokeh=0.35, theme_portrait=0.15, theme_animal=0.20,
                     theme_abstract=-0.20, theme_architecture=-0.10),
    "para": _w(sharp=0.20, clean=0.20, well_exposed=0.40, contrast_ok=0.15, colorful=0.30, warm=0.10,
               thirds=0.25, size_ok=0.35, tidy=0.20, bokeh=0.30, symmetric=0.10, theme_landscape=0.10,
               theme_animal=0.15, theme_night=-0.10),
    "koniq10k": _w(sharp=0.65, clean=0.55, well_exposed=0.35, contrast_ok=0.30, colorful=0.10),
    "spaq": _w(sharp=0.45, clean=0.40, brightness=0.30, well_exposed=0.15, contrast=0.25, colorful=0.30),
}
# TAD66K: the criterion depends on the theme.
_TAD_THEME = {
    "landscape": _w(colorful=0.45, contrast_ok=0.35, sharp=0.35, thirds=0.25, well_exposed=0.2),
    "portrait": _w(bokeh=0.55, thirds=0.35, size_ok=0.35, warm=0.25, well_exposed=0.2),
    "animal": _w(sharp=0.50, size_ok=0.40, bokeh=0.30, tidy=0.25),
    "architecture": _w(symmetric=0.60, sharp=0.35, contrast_ok=0.30, tidy=0.25),
    "food": _w(warm=0.50, well_exposed=0.35, colorful=0.30, size_ok=0.30, bokeh=0.2),
    "night": _w(clean=0.55, contrast_ok=0.40, sharp=0.25, colorful=0.2),
    "abstract": _w(colorful=0.50, symmetric=0.40, contrast_ok=0.30, tidy=0.15),
}

# PARA attribute criteria (before mixing with the rater's own overall impression).
PARA_ATTRIBUTES = ("quality", "composition", "color", "dof", "light", "content")
_PARA_ATTR = {
    "quality": _w(sharp=0.6, clean=0.5, well_exposed=0.3),
    "composition": _w(thirds=0.6, size_ok=0.45, tidy=0.45, symmetric=0.15),
    "color": _w(colorful=0.7, warm=0.3, contrast_ok=0.2),
    "dof": _w(bokeh=0.9, sharp=0.2),
    "light": _w(well_exposed=0.7, contrast_ok=0.4),
    "content": _w(size_ok=0.4, theme_animal=0.5, theme_landscape=0.4, theme_portrait=0.3, theme_food=-0.2,
                  theme_abstract=-0.4, theme_architecture=-0.1),
}


@lru_cache(maxsize=1)
def _reference() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed reference population (independent of the world seed) used to standardise."""
    rng = np.random.default_rng(12345)
    themes, lat = sample_latents(rng, 40000, "reference")
    f = raw_features(themes, lat)
    mu, sd = f.mean(0), f.std(0)
    return themes, lat, np.vstack([mu, sd])


def features(themes: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Standardised features (zero mean, unit sd on the reference population)."""
    _, _, ms = _reference()
    return (raw_features(themes, lat) - ms[0]) / ms[1]


def _raw_criteria(themes: np.ndarray, F: np.ndarray) -> np.ndarray:
    out = np.empty((F.shape[0], len(SOURCES)))
    for j, s in enumerate(SOURCES):
        if s == "tad66k":
            W = np.stack([_TAD_THEME[t] for t in THEMES])[themes]  # per-image weights
            out[:, j] = (F * W).sum(1)
        else:
            out[:, j] = F @ _CRITERIA[s]
    return out


@lru_cache(maxsize=1)
def _criteria_norm() -> np.ndarray:
    themes, lat, _ = _reference()
    c = _raw_criteria(themes, features(themes, lat))
    attrs = features(themes, lat) @ np.stack([_PARA_ATTR[a] for a in PARA_ATTRIBUTES], 1)
    return np.vstack([c.mean(0), c.std(0)]), np.vstack([attrs.mean(0), attrs.std(0)])


def criteria(themes: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Standardised criterion values ``[n, len(SOURCES)]`` (zero mean, unit sd on the reference)."""
    (ms, _) = _criteria_norm()
    return (_raw_criteria(themes, features(themes, lat)) - ms[0]) / ms[1]


def para_attribute_criteria(themes: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Standardised PARA attribute criteria ``[n, len(PARA_ATTRIBUTES)]``."""
    (_, ms) = _criteria_norm()
    a = features(themes, lat) @ np.stack([_PARA_ATTR[x] for x in PARA_ATTRIBUTES], 1)
    return (a - ms[0]) / ms[1]


@lru_cache(maxsize=1)
def reference_correlations() -> tuple[np.ndarray, np.ndarray]:
    """Correlation matrices of the criteria and of the features on the reference population."""
    themes, lat, _ = _reference()
    F = features(themes, lat)
    C = criteria(themes, lat)
    return np.corrcoef(C, rowvar=False), np.corrcoef(F, rowvar=False)
