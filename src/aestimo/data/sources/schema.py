"""The canonical tables every source adapter returns, and the error they raise.

Keys: ``image_id`` is unique across sources (``"{source}:{id within source}"``);
a rater is identified by ``(source, rater_id)``; ``rater_id`` keeps the data
set's own id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from aestimo.data.sources.messages import clip

IMAGES_SCHEMA = {
    "image_id": pl.String,  # "{source}:{id}", unique across sources
    "source": pl.String,
    "path": pl.String,  # str(root / relative path), as the adapter was given root
    "theme": pl.String,  # theme / semantic tag / scene when known, else null
}

RATINGS_SCHEMA = {
    "source": pl.String,
    "image_id": pl.String,
    "rater_id": pl.String,  # null where the data set only has aggregates
    "score": pl.Float64,  # on the source's own scale (aestimo.data.scales.SCALES[source])
    "score_template": pl.Float64,  # the same score mapped onto the source's template
}

# Per-image aggregates. Attribute means follow as extra Float64 columns named
# "attr_<name>" (attr_quality, attr_composition, attr_brightness, ...), null
# where a source lacks them; tables of different sources concat diagonally.
GENERIC_SCORES_SCHEMA = {
    "source": pl.String,
    "image_id": pl.String,
    "mean": pl.Float64,  # source scale
    "std": pl.Float64,  # source scale, null when unknown
    "n_votes": pl.Int64,  # null when unknown
    "mean_template": pl.Float64,
    "dist": pl.List(pl.Float64),  # 10 bins on the template, sums to 1; null when none
}

USER_PROFILES_SCHEMA = {
    "source": pl.String,
    "rater_id": pl.String,
    "age": pl.String,
    "gender": pl.String,
    "education": pl.String,
    "art_experience": pl.String,  # beginner / competent / proficient / expert
    "photo_experience": pl.String,
    "big5_E": pl.Int64,  # 1..9
    "big5_A": pl.Int64,
    "big5_N": pl.Int64,
    "big5_O": pl.Int64,
    "big5_C": pl.Int64,
}

OFFICIAL_SPLITS_SCHEMA = {
    "source": pl.String,
    "image_id": pl.String,
    "split": pl.String,  # train / val / test
}

DROPPED_SCHEMA = {
    "source": pl.String,
    "file": pl.String,
    "row": pl.Int64,
    "column": pl.String,
    "reason": pl.String,
}

EXPERIENCE_LEVELS = ("beginner", "competent", "proficient", "expert")
BIG5 = ("E", "A", "N", "O", "C")


class RawDataError(ValueError):
    """Bad raw input: names the file, the row (1-based line as an editor shows it,
    header included; the sheet row for xlsx) and the column (each where there is one).

    ``column`` keeps the header name as read; the message shows it cut to 80 characters.
    """

    def __init__(self, file: str | Path, row: int | None, column: str | None, message: str):
        self.file, self.row, self.column, self.reason = str(file), row, column, message
        where = str(file)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += ", column '" + clip(column) + "'"
        super().__init__(f"{where}: {message}")


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


@dataclass
class SourceTables:
    """What one adapter reads from one data set's folder."""

    images: pl.DataFrame
    ratings: pl.DataFrame
    generic_scores: pl.DataFrame
    user_profiles: pl.DataFrame = field(default_factory=lambda: empty(USER_PROFILES_SCHEMA))
    official_splits: pl.DataFrame = field(default_factory=lambda: empty(OFFICIAL_SPLITS_SCHEMA))
    dropped: pl.DataFrame = field(default_factory=lambda: empty(DROPPED_SCHEMA))
