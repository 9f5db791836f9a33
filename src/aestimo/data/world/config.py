"""Configuration of the synthetic aesthetic world (every knob, with the default world's values)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of :func:`aestimo.data.world.generate_world`; the defaults give the default world.

    Pool sizes count images; ``*_test_*`` knobs describe the held-out people
    (test workers / test users) and the separate test pool they rate.

    Eight sources: the six with an expert (AVA, FLICKR-AES, TAD66K, PARA, KonIQ-10k, SPAQ) and
    two people sources without one, REAL-CUR (``real_cur_*``) and AADB (``aadb_*``), whose
    held-out people rate every one of their images. The new sources draw from their own seeded
    streams after the six, so adding or resizing them never changes the six sources' files.
    Default world: REAL-CUR 14 users with albums of 120–200 photos (about 2,300 images);
    AADB 1,000 images in 100 HITs, 5 workers each, 20 held-out workers with 110–200 ratings
    (5,000 ratings by about 90 workers). Smoke world: REAL-CUR 2 users × 25–35 photos; AADB
    40 images, 3 workers each, 2 held-out workers with 20–30 ratings.
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
    # REAL-CUR: real users rating their own albums on 1..5 (a test set: every user is a held-out
    # person; no expert). The release has 14 users; album sizes are chosen so that k = 100 leaves
    # at least 20 query images (the protocol's min_query is 10).
    real_cur_users: int = 14
    real_cur_album_min: int = 120
    real_cur_album_max: int = 200
    # AADB: AMT workers rate HITs of 10 images on 1..5 (per-rater ``AllinAll.csv``, aggregates in
    # the label files: score in [0, 1], 11 attributes in [-1, 1]). As in the release, each image is
    # rated by 5 workers and a HIT's 10 images by the same 5; the Train / Validation / Test label
    # files hold about 85 / 5 / 10 % of the images. The ``aadb_test_raters`` do many HITs
    # (``aadb_test_hits_min..max`` each, so 110..200 ratings) and every HIT has at least one of
    # them, so held-out by the rule "at least 110 ratings" they rate every image; the others do
    # fewer than ``aadb_test_hits_min`` HITs each.
    aadb_images: int = 1000  # a multiple of aadb_images_per_hit
    aadb_images_per_hit: int = 10
    aadb_raters_per_image: int = 5
    aadb_test_raters: int = 20
    aadb_test_hits_min: int = 11
    aadb_test_hits_max: int = 20
    aadb_train_raters: int = 100
    aadb_val_fraction: float = 0.05
    aadb_test_fraction: float = 0.1
    # people
    taste_concentration: float = 2.0  # Dirichlet total mass of the criterion mixing weights
    # the same for REAL-CUR / AADB people: no source criterion of their own, so each mixes the six
    # criteria (a more even mix than taste_concentration gives, never one expert's criterion)
    mixed_taste_concentration: float = 8.0
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
            ("real_cur_users", self.real_cur_users >= 1, ">= 1"),
            ("real_cur_album_max", 1 <= self.real_cur_album_min <= self.real_cur_album_max, "1 <= min <= max"),
            ("mixed_taste_concentration", self.mixed_taste_concentration > 0, "> 0"),
            ("aadb_images_per_hit", self.aadb_images_per_hit >= 1, ">= 1"),
            ("aadb_images", self.aadb_images >= self.aadb_images_per_hit
             and self.aadb_images % max(self.aadb_images_per_hit, 1) == 0, "a positive multiple of aadb_images_per_hit"),
            ("aadb_raters_per_image", self.aadb_raters_per_image >= 1, ">= 1"),
            ("aadb_test_fraction", self.aadb_val_fraction + self.aadb_test_fraction < 1, "val + test fraction < 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"world.{name}: must be {what}, got {getattr(self, name)}")
        self._validate_aadb_hits()

    def _validate_aadb_hits(self) -> None:
        """The AADB HIT plan must be possible: every HIT gets a held-out rater, no HIT more than
        ``aadb_raters_per_image`` workers, and the other workers fill the remaining places."""
        hits = self.aadb_images // self.aadb_images_per_hit
        lo, hi, n_test = self.aadb_test_hits_min, self.aadb_test_hits_max, self.aadb_test_raters
        rpi = self.aadb_raters_per_image
        checks = [
            ("aadb_test_hits_min", 2 <= lo <= hi, "2 <= aadb_test_hits_min <= aadb_test_hits_max"),
            ("aadb_test_hits_max", hi <= hits, f"<= {hits} (the number of HITs)"),
            ("aadb_test_raters", n_test * lo >= hits,
             f"enough for every one of the {hits} HITs to get a held-out rater (aadb_test_raters * "
             "aadb_test_hits_min >= HITs)"),
            ("aadb_test_raters", n_test * hi <= hits * rpi,
             f"at most {hits * rpi} HIT assignments in all (aadb_test_raters * aadb_test_hits_max <= HITs * "
             "aadb_raters_per_image)"),
            ("aadb_train_raters", self.aadb_train_raters >= rpi
             and self.aadb_train_raters * (lo - 1) >= hits * rpi - n_test * lo,
             f">= aadb_raters_per_image and enough, at fewer than aadb_test_hits_min HITs each, to fill the "
             f"{hits * rpi - n_test * lo} HIT assignments the held-out raters may leave"),
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
    "real_cur_users": 2,
    "real_cur_album_min": 25,
    "real_cur_album_max": 35,
    "aadb_images": 40,
    "aadb_raters_per_image": 3,
    "aadb_test_raters": 2,
    "aadb_test_hits_min": 2,
    "aadb_test_hits_max": 3,
    "aadb_train_raters": 10,
}
