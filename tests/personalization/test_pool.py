"""The pool kept between blocks (pool.keep_warm): taken over, or replaced when it cannot be."""

from aestimo.personalization.running import pool as pool_module
from aestimo.personalization.running.pool import WorkerPool


class _Kept:
    """A kept pool that is up but cannot take a new context (a worker missed a broadcast)."""

    workers, alive, closed = 2, True, False

    def rebind(self, ctx) -> None:
        raise RuntimeError("a worker died")

    def close(self) -> None:
        self.closed = True


def _take(kept: _Kept, workers: int) -> WorkerPool:
    """What a block wanting ``workers`` workers gets while ``kept`` is the kept pool."""
    pool_module._WARM = kept
    try:
        return pool_module._take_warm(object(), workers)
    finally:
        pool_module._WARM = None


def test_a_kept_pool_that_cannot_be_rebound_is_closed_and_replaced(caplog):
    kept = _Kept()
    new = _take(kept, 2)
    assert isinstance(new, WorkerPool) and new._executor is None  # a new pool, spawned on first use
    assert kept.closed
    assert "spawning new ones" in caplog.text


def test_a_kept_pool_of_another_size_is_closed_and_keep_warm_off_closes_the_kept_one():
    kept = _Kept()
    new = _take(kept, 3)
    assert new.workers == 3 and kept.closed
    other = _Kept()
    pool_module._WARM = other
    pool_module.keep_warm(False)
    assert other.closed and pool_module._WARM is None and not pool_module._KEEP_WARM
