"""The training loops' AdamW (multi-tensor) gives the per-tensor loop's numbers, bit for bit."""

import copy

import torch

from aestimo.training.optim import adamw


def _train(make_opt, steps: int = 40) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 10))
    net = copy.deepcopy(net)
    x, y = torch.randn(16, 64), torch.randn(16, 10)
    opt = make_opt([{"params": net[0].parameters(), "lr": 3e-3}, {"params": net[2].parameters(), "lr": 1e-3}])
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] *= 0.97  # a schedule, as the loops set one every step
        loss = ((net(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net


def test_adamw_equals_the_per_tensor_loop_bit_for_bit():
    ours = _train(lambda groups: adamw(groups, lr=1e-3, weight_decay=0.01))
    loop = _train(lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01, foreach=False))
    start = _train(lambda groups: adamw(groups, lr=1e-3, weight_decay=0.01), steps=0)
    for a, b, c in zip(ours.parameters(), loop.parameters(), start.parameters()):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)  # it trained: the equality above is about something
