"""Procedural RGB images whose look is driven by the latent attributes and the theme.

Vectorised numpy/scipy per image (no per-pixel Python loops). The order of
operations: themed background + clutter -> depth-of-field blur of the
background -> themed subject placed centre / on a thirds point -> mirror blend
(symmetry) -> white balance (warmth) -> saturation (colorfulness) -> contrast
-> exposure -> global blur (sharpness) -> sensor noise.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from .latents import LATENTS, THEMES

_IDX = {n: i for i, n in enumerate(LATENTS)}

# (background top, background bottom, subject main, subject accent) per theme
_PALETTE = {
    "landscape": ((0.45, 0.65, 0.92), (0.30, 0.52, 0.22), (0.42, 0.40, 0.45), (0.98, 0.85, 0.35)),
    "portrait": ((0.55, 0.52, 0.55), (0.38, 0.36, 0.40), (0.92, 0.72, 0.58), (0.25, 0.18, 0.15)),
    "animal": ((0.55, 0.70, 0.40), (0.35, 0.50, 0.22), (0.58, 0.38, 0.20), (0.15, 0.10, 0.08)),
    "architecture": ((0.62, 0.72, 0.88), (0.55, 0.55, 0.55), (0.78, 0.70, 0.60), (0.25, 0.30, 0.40)),
    "food": ((0.85, 0.78, 0.66), (0.70, 0.58, 0.45), (0.96, 0.96, 0.94), (0.88, 0.30, 0.12)),
    "night": ((0.04, 0.05, 0.18), (0.02, 0.02, 0.06), (1.00, 0.88, 0.45), (0.85, 0.90, 1.00)),
    "abstract": ((0.70, 0.30, 0.60), (0.20, 0.40, 0.80), (0.95, 0.80, 0.10), (0.10, 0.80, 0.60)),
}


def _disc(yy, xx, cy, cx, ry, rx, S):
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - d) * min(ry, rx) * S + 0.5, 0.0, 1.0)


def _rect(yy, xx, y0, y1, x0, x1, S):
    a = np.clip((yy - y0) * S + 0.5, 0, 1) * np.clip((y1 - yy) * S + 0.5, 0, 1)
    return a * np.clip((xx - x0) * S + 0.5, 0, 1) * np.clip((x1 - xx) * S + 0.5, 0, 1)


def _subject(theme: str, yy, xx, cy, cx, r, S, rng, main, accent):
    """Return a list of (mask, colour) layers for the subject of a theme."""
    main, accent = np.asarray(main), np.asarray(accent)
    if theme == "landscape":
        mountain = np.clip(((yy - (cy - r)) - 1.6 * np.abs(xx - cx)) * S * 0.5, 0, 1) * (yy < cy + 0.6 * r)
        sun = _disc(yy, xx, cy - 1.1 * r, cx + 0.9 * r, 0.25 * r, 0.25 * r, S)
        return [(mountain, main), (sun, accent)]
    if theme == "portrait":
        body = _disc(yy, xx, cy + 1.2 * r, cx, 0.9 * r, 0.8 * r, S)
        head = _disc(yy, xx, cy, cx, 0.62 * r, 0.5 * r, S)
        hair = _disc(yy, xx, cy - 0.35 * r, cx, 0.4 * r, 0.55 * r, S) * (yy < cy - 0.2 * r)
        return [(body, main * 0.45), (head, main), (hair, accent)]
    if theme == "animal":
        body = _disc(yy, xx, cy, cx, 0.55 * r, 0.95 * r, S)
        head = _disc(yy, xx, cy - 0.45 * r, cx + 0.9 * r, 0.4 * r, 0.4 * r, S)
        eye = _disc(yy, xx, cy - 0.55 * r, cx + 1.05 * r, 0.08 * r, 0.08 * r, S)
        return [(body, main), (head, main * 1.1), (eye, accent)]
    if theme == "architecture":
        bld = _rect(yy, xx, cy - 1.2 * r, cy + 1.2 * r, cx - 0.7 * r, cx + 0.7 * r, S)
        win = bld * ((np.sin((xx - cx) * np.pi * 5 / max(r, 1e-3)) > 0.3) & (np.sin((yy - cy) * np.pi * 5 / max(r, 1e-3)) > 0.3))
        roof = np.clip(((yy - (cy - 1.9 * r)) - 1.0 * np.abs(xx - cx)) * S * 0.5, 0, 1) * (yy < cy - 1.2 * r)
        return [(bld, main), (roof, main * 0.7), (win, accent)]
    if theme == "food":
        plate = _disc(yy, xx, cy, cx, r, r, S)
        meal = _disc(yy, xx, cy, cx, 0.6 * r, 0.65 * r, S)
        garnish = _disc(yy, xx, cy - 0.2 * r, cx + 0.25 * r, 0.18 * r, 0.18 * r, S)
        return [(plate, main), (meal, accent), (garnish, np.array([0.2, 0.6, 0.15]))]
    if theme == "night":
        moon = _disc(yy, xx, cy, cx, 0.5 * r, 0.5 * r, S)
        k = 6
        ly = cy + 0.9 * r + rng.uniform(-0.3, 0.3, k) * r
        lx = cx + rng.uniform(-1.5, 1.5, k) * r
        lights = np.max(np.stack([_disc(yy, xx, a, b, 0.12 * r, 0.12 * r, S) for a, b in zip(ly, lx)]), 0)
        return [(moon, accent), (lights, main)]
    # abstract: concentric rings
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / max(r, 1e-3)
    disc = np.clip((1.0 - d) * r * S + 0.5, 0, 1)
    rings = disc * (np.sin(d * 9.0) > 0)
    return [(disc, main), (rings, accent)]


@lru_cache(maxsize=8)
def _grid(S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1] and a bilinear upsampling matrix (S x 6)."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    yy, xx = (yy + 0.5) / S, (xx + 0.5) / S
    pos = np.linspace(0, 5, S)
    up = np.clip(1 - np.abs(pos[:, None] - np.arange(6)[None, :]), 0, None)
    for a in (yy, xx, up):
        a.setflags(write=False)
    return yy, xx, up


def render(theme_idx: int, lat: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one image as uint8 ``[size, size, 3]``."""
    theme = THEMES[int(theme_idx)]
    L = {n: float(lat[i]) for n, i in _IDX.items()}
    S = size
    yy, xx, up = _grid(S)
    top, bottom, main, accent = (np.asarray(c) for c in _PALETTE[theme])
    jitter = rng.normal(0, 0.06, (4, 3))
    if theme == "abstract":
        jitter = rng.normal(0, 0.2, (4, 3))
    top, bottom, main, accent = (np.clip(c + j, 0, 1) for c, j in zip((top, bottom, main, accent), jitter))

    # background: gradient (with a horizon for landscape / animal) + low-frequency texture
    horizon = rng.uniform(0.45, 0.7)
    if theme in ("landscape", "animal"):
        t = np.clip((yy - horizon) * S * 0.3 + 0.5, 0, 1)
    else:
        t = yy
    img = top * (1 - t[..., None]) + bottom * t[..., None]
    tex = up @ rng.normal(0, 1, (6, 6)) @ up.T
    img = img + 0.03 * tex[..., None]

    # clutter: up to 24 small random shapes of random colours
    n_cl = int(round(L["clutter"] ** 1.2 * 24))
    if n_cl:
        cy, cx = rng.uniform(0, 1, n_cl), rng.uniform(0, 1, n_cl)
        rr = rng.uniform(0.03, 0.09, n_cl)
        cols = rng.uniform(0, 1, (n_cl, 3))
        sq = rng.uniform(0, 1, n_cl) < 0.5
        for k in range(n_cl):  # paint in order, each shape only inside its bounding box
            y0, y1 = max(int((cy[k] - rr[k]) * S) - 1, 0), min(int((cy[k] + rr[k]) * S) + 2, S)
            x0, x1 = max(int((cx[k] - rr[k]) * S) - 1, 0), min(int((cx[k] + rr[k]) * S) + 2, S)
            if y1 <= y0 or x1 <= x0:
                continue
            dy, dx = yy[y0:y1, x0:x1] - cy[k], xx[y0:y1, x0:x1] - cx[k]
            d = np.maximum(np.abs(dy), np.abs(dx)) if sq[k] else np.sqrt(dy * dy + dx * dx)
            m = np.clip((rr[k] - d) * S + 0.5, 0, 1)[..., None]
            img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - m) + cols[k] * m

    # depth of field: blur the background only
    sig_bg = (L["dof"] ** 1.3) * 3.2 * S / 80
    if sig_bg > 0.05:
        img = gaussian_filter(img, (sig_bg, sig_bg, 0))

    # subject: centred vs on a thirds point
    p = L["placement"]
    ty, tx = rng.choice([1 / 3, 2 / 3]), rng.choice([1 / 3, 2 / 3])
    cy = 0.5 * (1 - p) + ty * p + rng.normal(0, 0.02)
    cx = 0.5 * (1 - p) + tx * p + rng.normal(0, 0.02)
    r = 0.07 + 0.26 * L["subject_size"]
    for mask, col in _subject(theme, yy, xx, cy, cx, r, S, rng, main, accent):
        mask = np.asarray(mask, dtype=np.float64)
        img = img * (1 - mask[..., None]) + np.clip(col, 0, 1) * mask[..., None]

    # symmetry: blend with the mirror image
    a = 0.5 * L["symmetry"] ** 1.5
    img = (1 - a) * img + a * img[:, ::-1]

    # warmth: white balance
    w = L["warmth"] - 0.5
    img = img * np.array([1 + 0.45 * w, 1 + 0.08 * w, 1 - 0.45 * w])

    # colorfulness: saturation around the grey level
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * (0.05 + 2.0 * L["colorfulness"] ** 1.1)

    # contrast around the mean
    mu = img.mean()
    img = mu + (img - mu) * (0.3 + 1.5 * L["contrast"])

    # exposure (stops)
    img = np.clip(img, 0, None) * 2.0 ** (2.6 * (L["exposure"] - 0.5))

    # sharpness: global blur
    sig = (1 - L["sharpness"]) ** 1.5 * 2.2 * S / 80
    if sig > 0.05:
        img = gaussian_filter(img, (sig, sig, 0))

    # sensor noise (luminance + some chroma)
    sd = 0.22 * L["noise"] ** 1.3
    if sd > 0:
        img = (img + sd * rng.standard_normal((S, S, 1), dtype=np.float32)
               + (0.5 * sd) * rng.standard_normal((S, S, 3), dtype=np.float32))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def jpeg_bytes(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=int(quality), optimize=False)
    return buf.getvalue()

