"""tl.ActivationStats: every layer's activations on a probe batch over time, dead units counted for any rectifier."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab as tl

X = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


class FunctionalReLU(nn.Module):
    """ReLU written in forward, as PyTorch's tutorials do: no module to hook."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def with_dead_units(layer: nn.Linear) -> nn.Linear:
    """Units 0..5 of the layer can never be positive (no weights, a negative bias): dead for every input."""
    with torch.no_grad():
        layer.weight[:6] = 0
        layer.bias[:6] = -1
    return layer


def hand_dead(values: torch.Tensor) -> float:
    return float((values.reshape(len(values), -1) <= 0).all(0).float().mean())


@pytest.mark.parametrize("kind", ["functional relu", "nn.ReLU", "nn.GELU", "nn.LeakyReLU"])
def test_dead_unit_shares_equal_a_count_by_hand(kind):
    torch.manual_seed(0)
    if kind == "functional relu":
        model, name, act = FunctionalReLU(), "relu after fc1", F.relu
        first = model.fc1
    else:
        module = {"nn.ReLU": nn.ReLU, "nn.GELU": nn.GELU, "nn.LeakyReLU": nn.LeakyReLU}[kind]()
        model, name, act = nn.Sequential(nn.Linear(6, 16), module, nn.Linear(16, 2)), "1", module
        first = model[0]
    with_dead_units(first)
    loop = tl.Loop(model, (X, Y), "cross_entropy", lr=0.1, seed=0)
    acts = tl.ActivationStats(loop, every=2, samples=100)
    for _ in range(6):
        loop.step()
    assert acts.steps.tolist() == [2, 4, 6]
    assert name in acts.layers and acts.kinds[name] in ("relu", "gelu", "leaky_relu")
    with torch.no_grad():
        values = act(first(X[:100]))
    dead = hand_dead(values)
    assert dead >= 6 / 16
    assert acts.dead[name][-1] == pytest.approx(dead)
    assert acts.mean[name][-1] == pytest.approx(float(values.mean()), rel=1e-5)
    assert acts.std[name][-1] == pytest.approx(float(values.std()), rel=1e-5)
    low, high = acts.ranges[name][-1]
    assert (low, high) == pytest.approx((float(values.min()), float(values.max())))
    histogram = torch.histc(values.reshape(-1), bins=acts.bins)
    np.testing.assert_array_equal(acts.histograms[name][-1], histogram.numpy())
    before_act = {"functional relu": "fc1"}.get(kind, "0")
    assert np.isnan(acts.dead[before_act]).all()  # a Linear's outputs are not units that die


def test_tanh_units_get_no_dead_share_and_every_layer_is_in_forward_order():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    loop = tl.Loop(model, (X, Y), "cross_entropy", seed=0)
    acts = tl.ActivationStats(loop, every=1)
    loop.step()
    assert acts.layers == ["0", "1", "2"] and acts.kinds == {"0": None, "1": "tanh", "2": None}
    assert np.isnan(acts.dead["1"]).all()
    stats = {s.name: s for s in tl.activation_stats(loop)}
    assert stats["1"].dead_fraction is None


def test_activation_stats_count_dead_units_of_functional_activations_too():
    model = FunctionalReLU()
    with_dead_units(model.fc1)
    loop = tl.Loop(model, (X, Y), "cross_entropy", seed=0)
    stats = {s.name: s for s in tl.activation_stats(loop, max_samples=50)}
    assert list(stats) == ["fc1", "relu after fc1", "fc2"]
    with torch.no_grad():
        assert stats["relu after fc1"].dead_fraction == pytest.approx(hand_dead(F.relu(model.fc1(X[:50]))))
    assert stats["fc1"].dead_fraction is None


def test_an_in_place_relu_does_not_change_what_the_layer_before_it_output():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    loop = tl.Loop(model, (X, Y), "cross_entropy", seed=0)
    stats = {s.name: s for s in tl.activation_stats(loop, max_samples=64)}
    with torch.no_grad():
        linear = model[0](X[:64])
    assert stats["0"].mean == pytest.approx(float(linear.mean()), rel=1e-5)  # negative values kept
    assert stats["1"].dead_fraction == pytest.approx(hand_dead(torch.relu(linear)))


def test_a_layer_used_twice_gets_a_row_per_call():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(6, 8), relu, nn.Linear(8, 8), relu, nn.Linear(8, 2))
    loop = tl.Loop(model, (X, Y), "cross_entropy", seed=0)
    assert [s.name for s in tl.activation_stats(loop)] == ["0", "1", "2", "1 (call 2)", "4"]


def test_the_timeline_stays_bounded_and_follows_rewinds():
    loop = tl.Loop(FunctionalReLU(), (X, Y), "cross_entropy", lr=0.1, batch_size=10, seed=0)
    acts = tl.ActivationStats(loop, every=1, max_rows=16, samples=32)
    for _ in range(60):
        loop.step()
    assert len(acts) <= 16 and acts.steps[-1] == 60 and acts.rows.thinnings > 0
    loop.rewind(3)
    assert acts.steps[-1] == 57
    acts.detach()
    loop.step()
    assert acts.steps[-1] == 57
