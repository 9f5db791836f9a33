"""Configuration of the synthetic aesthetic world (every knob, with the default world's values)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of :func:`aestimo.data.world.generate_world`; the defaults give the default world.

    Pool sizes count images; ``*_test_*`` knobs describe the held-out people
    (test workers / test users) and the separate test pool they rate.
    """

    seed: int = 20240607
    image_size: int = 80
    jpeg_quality: int = 92
    # AVA: anonymous vote histograms on 1..10
    ava_images: int = 1500
    ava_votes_min: int = 78
    ava_votes_max: int = 549
    ava_votes_median: int = 200
    ava_test_fraction: float = 0.2
    ava_voters: int = 600  # >= ava_votes_max (an image never gets two votes from one voter)
    # FLICKR-AES: per-worker ratings on 1..5
    flickr_train_images: int = 1200
    flickr_test_images: int = 800
    flickr_train_workers: int = 173
    flickr_raters_per_image: int = 5
    flickr_test_workers: int = 37
    flickr_test_images_per_worker_min: int = 105
    flickr_test_images_per_worker_max: int = 180
    # TAD66K: theme-dependent criterion, image means on 0..10
    tad66k_images: int = 1000
    tad66k_test_fraction: float = 0.2
    tad66k_voters: int = 200
    tad66k_votes_per_image: int = 30
    # PARA: per-user ratings with attributes and profiles
    para_train_images: int = 1200
    para_test_images: int = 800
    para_train_users: int = 120
    para_raters_per_image: int = 25
    para_test_users: int = 40
    para_test_images_per_user_min: int = 150
    para_test_images_per_user_max: int = 250
    para_images_per_session: int = 40
    # KonIQ-10k: technical quality, anonymous vote histograms on 1..5
    koniq10k_images: int = 1000
    koniq10k_votes_per_image: int = 120
    koniq10k_voters: int = 300
    koniq10k_val_fraction: float = 0.1
    koniq10k_test_fraction: float = 0.2
    # SPAQ: smartphone quality, slider MOS on 0..100 plus five attributes
    spaq_images: int = 800
    spaq_voters: int = 100
    spaq_votes_per_image: int = 15
    # people
    taste_concentration: float = 2.0  # Dirichlet total mass of the criterion mixing weights
    own_source_weight: float = 0.45  # prior share of a rater's own source criterion
    idiosyncratic_mean: float = 0.72  # mean share of utility variance that is personal
    voter_idiosyncratic_mean: float = 0.45  # the same for the anonymous crowds (AVA, TAD66K, KonIQ, SPAQ)
    trait_taste_coupling: float = 0.5  # how strongly Big-Five / experience tilt taste
    bias_sd: float = 0.25
    scale_log_sd: float = 0.2
    rater_noise_sd: float = 0.5  # per-rating noise of identified raters (utility sd = 1)
    voter_noise_sd: float = 1.1  # per-vote noise of anonymous AVA / TAD66K voters
    quality_voter_noise_sd: float = 0.7  # per-vote noise of KonIQ / SPAQ voters

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "WorldConfig":
        """Build from a mapping (e.g. Kedro ``params:world``); unknown keys raise, naming them."""
        d = dict(d or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"world: unknown parameter(s) {unknown}; known: {sorted(known)}")
        kwargs = {}
        for k, v in d.items():
            typ = known[k].type
            try:
                if typ in ("int", int):
                    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                        raise TypeError
                    v = int(v)
                elif typ in ("float", float):
                    if isinstance(v, bool):
                        raise TypeError
                    v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"world.{k}: expected {typ}, got {v!r}") from None
            kwargs[k] = v
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first parameter with an impossible value."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "seed":
                if v < 0:
                    raise ValueError("world.seed: must be >= 0")
                continue
            if v < 0:
                raise ValueError(f"world.{f.name}: must be >= 0, got {v}")
        checks = [
            ("image_size", self.image_size >= 16, ">= 16"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "in 1..100"),
            ("ava_votes_min", 1 <= self.ava_votes_min <= self.ava_votes_median <= self.ava_votes_max, "min <= median <= max"),
            ("flickr_raters_per_image", 1 <= self.flickr_raters_per_image <= self.flickr_train_workers, "in 1..flickr_train_workers"),
            ("para_raters_per_image", 1 <= self.para_raters_per_image <= self.para_train_users, "in 1..para_train_users"),
            ("flickr_test_images_per_worker_max", self.flickr_test_images_per_worker_min <= self.flickr_test_images_per_worker_max <= self.flickr_test_images, "min <= max <= flickr_test_images"),
            ("para_test_images_per_user_max", self.para_test_images_per_user_min <= self.para_test_images_per_user_max <= self.para_test_images, "min <= max <= para_test_images"),
            ("tad66k_votes_per_image", 1 <= self.tad66k_votes_per_image <= self.tad66k_voters, "in 1..tad66k_voters"),
            ("koniq10k_votes_per_image", 1 <= self.koniq10k_votes_per_image <= self.koniq10k_voters, "in 1..koniq10k_voters"),
            ("spaq_votes_per_image", 1 <= self.spaq_votes_per_image <= self.spaq_voters, "in 1..spaq_voters"),
            ("ava_voters", self.ava_voters >= 1, ">= 1"),
            ("own_source_weight", 0 < self.own_source_weight < 1, "in (0, 1)"),
            ("idiosyncratic_mean", 0 < self.idiosyncratic_mean < 1, "in (0, 1)"),
            ("voter_idiosyncratic_mean", 0 < self.voter_idiosyncratic_mean < 1, "in (0, 1)"),
            ("taste_concentration", self.taste_concentration > 0, "> 0"),
            ("ava_test_fraction", self.ava_test_fraction < 1, "< 1"),
            ("tad66k_test_fraction", self.tad66k_test_fraction < 1, "< 1"),
            ("koniq10k_test_fraction", self.koniq10k_val_fraction + self.koniq10k_test_fraction < 1, "val + test fraction < 1"),
            ("para_images_per_session", self.para_images_per_session >= 1, ">= 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"world.{name}: must be {what}, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smoke_config(seed: int = 7) -> WorldConfig:
    """The tiny world used by tests and ``kedro run --env smoke`` (a few seconds)."""
    return WorldConfig.from_dict(SMOKE_OVERRIDES | {"seed": seed})


SMOKE_OVERRIDES: dict[str, Any] = {
    "image_size": 40,
    "ava_images": 80,
    "ava_votes_min": 78,
    "ava_votes_max": 200,
    "ava_votes_median": 110,
    "ava_voters": 150,
    "flickr_train_images": 60,
    "flickr_test_images": 50,
    "flickr_train_workers": 20,
    "flickr_test_workers": 4,
    "flickr_test_images_per_worker_min": 30,
    "flickr_test_images_per_worker_max": 45,
    "tad66k_images": 60,
    "tad66k_voters": 60,
    "para_train_images": 60,
    "para_test_images": 50,
    "para_train_users": 30,
    "para_raters_per_image": 10,
    "para_test_users": 4,
    "para_test_images_per_user_min": 30,
    "para_test_images_per_user_max": 45,
    "para_images_per_session": 20,
    "koniq10k_images": 60,
    "koniq10k_votes_per_image": 60,
    "koniq10k_voters": 80,
    "spaq_images": 60,
    "spaq_voters": 30,
}
