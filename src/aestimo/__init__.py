"""Aestimo: personalized image aesthetic assessment with layer-wise task vectors."""

__version__ = "0.1.0"


def score(images, user: str, **kwargs):
    """Score image files or folders for one personalized person (see aestimo.scoring.score)."""
    from aestimo.scoring import score as _score

    return _score(images, user=user, **kwargs)
