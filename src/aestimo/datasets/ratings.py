"""The catalog's datasets for new people's own ratings files (``new_people_ratings``): thin Kedro
wrappers over :mod:`aestimo.personalization.new_person`.

* :class:`RatingsCSVDataset` reads one person's ratings file (image path, score), relative image
  paths resolved against the file's folder, every problem named by file, row and column;
* :class:`OptionalPartitionedDataset` is kedro-datasets' ``PartitionedDataset``, except that an
  empty or absent folder loads as no partitions instead of an error (nobody dropped a file yet).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

from aestimo.data.own_ratings import Ratings, parse_scale, read_ratings


class RatingsCSVDataset(AbstractDataset[None, Ratings]):
    """``type: aestimo.datasets.ratings.RatingsCSVDataset`` with a ``filepath`` (and an optional
    ``scale: LO-HI`` that wins over the file's ``# scale:`` line). Read-only."""

    def __init__(self, filepath: str, scale: str | None = None, metadata: dict[str, Any] | None = None):
        self._filepath = PurePosixPath(filepath)
        self._scale = parse_scale(scale) if scale is not None else None
        self.metadata = metadata

    def load(self) -> Ratings:
        return read_ratings(Path(self._filepath), self._scale)

    def save(self, data: Ratings) -> None:
        raise DatasetError(f"{self._filepath}: a person's ratings file is written by hand, never by a run")

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "scale": self._scale}


class OptionalPartitionedDataset(PartitionedDataset):
    """A ``partitions.PartitionedDataset`` whose empty or absent folder loads as ``{}``."""

    def load(self) -> dict[str, Any]:
        self._invalidate_caches()
        if not self._filesystem.exists(self._normalized_path) or not self._list_partitions():
            return {}
        return super().load()
