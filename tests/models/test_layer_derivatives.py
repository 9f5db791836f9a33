"""Per-image, per-layer directional derivatives against torch.func's per-image gradients."""

import pytest
import torch
from timm.layers import BatchNormAct2d, Conv2dSame
from torch import nn
from torch.func import functional_call

from tests.models._per_image import per_image_derivatives
from aestimo.models.layer_derivatives import directional_derivatives


class Net(nn.Module):
    """Every layer kind the rules cover: "same" and padded convolutions, depthwise and grouped ones,
    1×1 convolutions over many and over few positions, batch norms with and without an in-place
    activation, a layer with no rule of its own (GroupNorm), linear layers with biases."""

    def __init__(self):
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, stride=2, bias=False)
        self.bn1 = BatchNormAct2d(8, act_layer=nn.ReLU6, inplace=True)
        self.dw = nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8, bias=False)
        self.bn2 = BatchNormAct2d(8, act_layer=nn.ReLU6, inplace=True)
        self.pw = nn.Conv2d(8, 16, 1, bias=True)
        self.bn3 = nn.BatchNorm2d(16)
        self.grouped = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=2)
        self.norm = nn.GroupNorm(4, 16)
        self.late = nn.Conv2d(16, 12, 1)  # 2×2 positions: the few-positions route
        self.fc1 = nn.Linear(12, 10)
        self.fc2 = nn.Linear(10, 5)

    def forward(self, x):
        x = self.bn1(self.stem(x))
        x = self.bn2(self.dw(x))
        x = self.bn3(self.pw(x))
        x = self.norm(self.grouped(x))
        x = self.late(nn.functional.avg_pool2d(x, 2)).mean((2, 3))
        return torch.softmax(self.fc2(torch.tanh(self.fc1(x))), -1)


def net_and_data(seed=0, size=32):
    torch.manual_seed(seed)
    net = Net()
    for m in net.modules():  # statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.3)
    net.eval()
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    names = [n for n, _ in net.named_parameters()]
    g = torch.Generator().manual_seed(seed + 1)
    directions = [torch.randn(3, *weights[n].shape, generator=g) for n in names]
    x = torch.randn(7, 3, size, size, generator=g)
    return net, weights, names, directions, x


TEMPLATE = torch.arange(1.0, 6.0)


def reference(net, weights, names, directions, x):
    return per_image_derivatives(net, weights, names, directions, x, TEMPLATE)


@pytest.mark.parametrize("channels_last", [False, True])
def test_every_layer_kind_matches_per_image_gradients(channels_last):
    net, weights, names, directions, x = net_and_data()
    expected = reference(net, weights, names, directions, x)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        weights = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in weights.items()}
    value, got = directional_derivatives(net, weights, names, directions, x, lambda probs: probs @ TEMPLATE)
    assert got.shape == (7, 3, len(names))
    with torch.no_grad():
        torch.testing.assert_close(value, net(x) @ TEMPLATE)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert (got.abs().amax(dim=(0, 1)) > 0).all()  # every layer reaches the score


def test_derivatives_equal_finite_differences_along_each_direction():
    net, weights, names, directions, x = net_and_data(seed=3)
    net, template = net.double(), TEMPLATE.double()
    weights, x = {k: v.double() if v.is_floating_point() else v for k, v in weights.items()}, x.double()
    directions = [d.double() for d in directions]
    _, got = directional_derivatives(net, weights, names, directions, x, lambda probs: probs @ template)
    eps = 1e-6
    with torch.no_grad():
        for l in range(len(names)):
            for i in range(3):
                moved = lambda s: functional_call(net, {**weights, names[l]: weights[names[l]] + s * eps * directions[l][i]}, (x,))  # noqa: E731
                fd = ((moved(1) - moved(-1)) @ template) / (2 * eps)
                torch.testing.assert_close(got[:, i, l], fd, rtol=1e-5, atol=1e-8)


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 5)

    def forward(self, x):
        h = self.a(x)
        h.mul_(2.0)  # changes layer a's output after it ran
        return torch.softmax(self.b(h), -1)


def test_a_layer_output_changed_in_place_is_refused():
    net = InPlace().eval()
    weights = {k: v.detach() for k, v in net.state_dict().items()}
    names = list(weights)
    with pytest.raises(RuntimeError, match="changed in place"):
        directional_derivatives(net, weights, names, [torch.randn(2, *weights[n].shape) for n in names],
                                torch.randn(3, 4), lambda probs: probs @ TEMPLATE)
