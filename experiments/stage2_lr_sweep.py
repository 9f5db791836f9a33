"""Choose stage 2's backbone learning rate on the experts' own validation splits.

The papers move the backbone for 5k steps at 1.5e-6; the CPU budget allows 100
steps, so the rate is a free choice. For each ``--lr`` this script trains the
experts in a copy of the project (the copy's run environment, ``conf/local``
or ``--env``, sets stage 2's backbone rate to lr -> lr / 10; the raw and
ingested data are copied, so the project itself is left untouched) and reads
back, per source, the best stage-2 validation loss and the own-source test
SROCC. It picks the rate with the
lowest geometric mean, over sources, of the validation loss relative to the
first rate's. Nothing the personalization stage computes is read: the choice is
blind to the held-out people.

    python experiments/stage2_lr_sweep.py --lr 7.5e-5 1.5e-4 3e-4 6e-4

About 5 to 6 minutes per rate on this 2-core machine (ingest is copied, not rerun).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import yaml

import aestimo  # noqa: F401  (puts the hub offline and telemetry off, here and in the runs it starts)
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

INGESTED = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input")  # what the experts read


def _context(project: Path, env: str | None):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        return session.load_context()


def _set_rate(env_dir: Path, lr: float) -> None:
    """Set ``experts.stage2.lr_backbone`` in the environment folder (deep-merged over base).

    An environment may hold the ``experts`` key in one file only, so the file
    that already has it is edited; otherwise a new file is written.
    """
    candidates = sorted([*env_dir.glob("parameters*.yml"), *env_dir.glob("parameters*.yaml")])
    files = [f for f in candidates if "experts" in (yaml.safe_load(f.read_text()) or {})]
    path = files[0] if files else env_dir / "parameters_experts.yml"
    params = yaml.safe_load(path.read_text()) if files else {}
    params.setdefault("experts", {}).setdefault("stage2", {})["lr_backbone"] = [lr, float(f"{lr / 10:.6g}")]
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _copy_project(project: Path, env: str | None, data_root: str, dest: Path, lr: float) -> None:
    """conf (the run environment's folder gains the rate), pyproject, and the ingested data layers."""
    shutil.copytree(project / "conf", dest / "conf")  # conf/local too: a user's overrides stay in force
    (dest / "conf" / "local").mkdir(exist_ok=True)
    _set_rate(dest / "conf" / (env or "local"), lr)
    for name in ("pyproject.toml", ".telemetry"):
        if (project / name).exists():
            shutil.copy(project / name, dest / name)
    (dest / "src").mkdir()  # the package is installed; Kedro only wants the folder
    for layer in INGESTED:
        if (project / data_root / layer).exists():
            shutil.copytree(project / data_root / layer, dest / data_root / layer)


def _kedro_run(cwd: Path, env: str | None, pipeline: str, *extra: str) -> None:
    cmd = [sys.executable, "-m", "kedro", "run", "--pipeline", pipeline, *extra] + (["--env", env] if env else [])
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed in {cwd}:\n{done.stderr[-3000:]}")


def read_expert_results(project: Path, env: str | None) -> pl.DataFrame:
    """Per source: best stage-2 validation loss and own-source test SROCC of a trained copy."""
    context = _context(project, env)
    catalog, sources = context.catalog, context.params["experts"]["sources"]
    metrics = catalog.load("expert_metrics").filter(pl.col("expert") == pl.col("source"))
    rows = []
    for source in sources:
        history = catalog.load(f"{source}.stage2_history")
        srocc = metrics.filter(pl.col("source") == source)["srocc"]
        rows.append({"source": source, "val_loss": float(history["val_loss"].min()), "test_srocc": float(srocc[0])})
    return pl.DataFrame(rows)


def pick(results: dict[float, pl.DataFrame]) -> tuple[pl.DataFrame, float]:
    """Table of rate x (geometric-mean validation-loss ratio to the first rate, mean test SROCC) and the chosen rate."""
    base = next(iter(results.values()))
    rows = []
    for lr, df in results.items():
        ratios = (df["val_loss"] / base["val_loss"]).to_list()
        rows.append({
            "lr_backbone": lr,
            "val_loss_ratio": math.exp(sum(math.log(r) for r in ratios) / len(ratios)),
            "mean_test_srocc": float(df["test_srocc"].mean()),
        })
    table = pl.DataFrame(rows)
    return table, float(table.sort("val_loss_ratio")["lr_backbone"][0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, nargs="+", default=[7.5e-5, 1.5e-4, 3e-4, 6e-4],
                    help="stage-2 backbone rates to try; the first is the reference for the ratios")
    ap.add_argument("--env", default=None, help="Kedro environment (default: base + local)")
    ap.add_argument("--project", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--workdir", type=Path, default=None, help="where the copies go (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if len(args.lr) < 2:
        ap.error("give at least two rates to compare")

    data_root = _context(args.project, args.env).config_loader["globals"]["data_root"]
    work = Path(tempfile.mkdtemp(prefix="stage2_lr_")) if args.workdir is None else args.workdir
    results = {}
    try:
        for lr in args.lr:
            copy = work / f"lr_{lr:g}"
            _copy_project(args.project, args.env, data_root, copy, lr)
            _kedro_run(copy, args.env, "ingest", "--only-missing-outputs")
            _kedro_run(copy, args.env, "experts")
            results[lr] = read_expert_results(copy, args.env)
            print(f"lr_backbone {lr:g}:\n{results[lr]}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    table, best = pick(results)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160):
        print(table)
    print(f"lowest validation loss (geometric mean over sources): lr_backbone {best:g}")


if __name__ == "__main__":
    main()
