"""Aestimo: personalized image aesthetic assessment with layer-wise task vectors.

Importing the package puts the Hugging Face hub offline and turns Kedro's
telemetry off (unless the environment already says otherwise), so no run,
test or notebook waits on the network.
"""

import os

for _name in ("HF_HUB_OFFLINE", "KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"


def score(images, user: str | None = None, *, theta0=None, task_vectors=None, coefficients=None,
          project=".", env=None, method=None, k=None, repeat=0):
    """Score image files or folders for one personalized person.

    Give the person's files (``theta0``, ``task_vectors``, ``coefficients``:
    paths to safetensors files) to score from anywhere, or a person id
    (``user="flickr_aes:<worker id>"``) to find them in the Kedro project at
    ``project``. Returns a :class:`aestimo.scoring.ScoreResult` (a path/score
    table and the files that could not be scored).

    Raises ``ValueError`` when ``project`` is not an Aestimo project (with ``user=``) or the
    arguments do not name a person, :class:`aestimo.personalization.running.keys.UnknownPersonError`
    (a ``KeyError``) for an unknown person, and ``FileNotFoundError`` for missing model files.
    """
    from aestimo.scoring import PersonalScorer, score_images

    if coefficients is not None:
        if theta0 is None or task_vectors is None:
            raise ValueError("coefficients= needs theta0= and task_vectors= (the files of the run that made them)")
        scorer = PersonalScorer.from_files(theta0, task_vectors, coefficients, method, k, repeat)
    elif user is not None:
        from aestimo.console import project_scorer

        scorer = project_scorer(user, project, env, method, k, repeat)
    else:
        raise ValueError("give user= (a person of the project) or coefficients= with theta0= and task_vectors=")
    return score_images(scorer, images)
