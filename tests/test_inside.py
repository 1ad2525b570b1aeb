"""Inside the network: each neuron's activation over the plane, and per-layer statistics for other models."""

import numpy as np
import pytest
import torch
from torch import nn

import trainlab as tl
from trainlab.inside import neuron_details


def _moons_loop(model):
    X, y = tl.datasets.moons(n=200, noise=0.2, seed=0)
    return tl.Loop(model, (X, y), "cross_entropy", lr=0.1, seed=0)


def test_an_mlp_on_the_plane_has_columns_of_neurons_from_inputs_to_output():
    model = tl.models.mlp(2, [8, 4], 2, activation="tanh", seed=0, dropout=0.1)
    layers = tl.neuron_layers(model)
    assert [(layer.name, layer.width) for layer in layers] == [("inputs", 2), ("hidden1", 8), ("hidden2", 4),
                                                               ("output", 2)]
    assert layers[1].linear is model.hidden1 and layers[1].probe is model.drop1  # after tanh and dropout
    assert layers[-1].probe is model.output


def test_each_heatmap_is_the_layers_activation_on_the_grid():
    model = tl.models.mlp(2, [8, 4], 2, activation="tanh", seed=0)
    loop = _moons_loop(model)
    loop.fit(epochs=1)
    grid = torch.cartesian_prod(torch.linspace(-2, 2, 7), torch.linspace(-2, 2, 5))
    inputs, first, second, output = tl.neuron_activations(loop, tl.neuron_layers(model), grid)
    with torch.no_grad():
        assert torch.equal(inputs, grid)
        assert torch.equal(first, torch.tanh(model.hidden1(grid)))
        assert torch.equal(second, torch.tanh(model.hidden2(first)))
        assert torch.equal(output, model(grid))
    assert model.training  # the loop's train mode is left as it was


def test_other_models_are_not_drawn_as_neurons():
    assert tl.neuron_layers(tl.models.cnn(seed=0)) is None
    assert tl.neuron_layers(tl.models.mlp(5, [4], 2)) is None  # not a plane
    assert tl.neuron_layers(nn.Linear(2, 2)) is None  # not a Sequential
    assert tl.neuron_layers(nn.Sequential(nn.Linear(2, 4), nn.Flatten(), nn.Linear(4, 2))) is None


def test_a_neurons_details_are_its_incoming_weights_bias_and_their_gradients():
    model = tl.models.mlp(2, [8], 2, seed=0)
    loop = _moons_loop(model)
    layers = tl.neuron_layers(model)
    assert neuron_details(layers[1], 3)["weight_grads"] is None  # no backward yet
    loop.step()
    details = neuron_details(layers[1], 3)
    assert details["weights"] == model.hidden1.weight[3].tolist()
    assert details["bias"] == pytest.approx(float(model.hidden1.bias.detach()[3]))
    assert details["weight_grads"] == model.hidden1.weight.grad[3].tolist()
    assert details["bias_grad"] == pytest.approx(float(model.hidden1.bias.grad[3]))


def test_a_cnn_gets_per_layer_statistics_with_dead_relus_counted():
    X, y = tl.datasets.digits(n=120, seed=0)
    model = tl.models.cnn(seed=0)
    loop = tl.Loop(model, (X, y), "cross_entropy", lr=0.1, seed=0)
    with torch.no_grad():  # kill the first conv's first 3 channels: their ReLU outputs are 0 everywhere
        model[0].weight[:3] = 0
        model[0].bias[:3] = -1
    stats = {layer.name: layer for layer in tl.activation_stats(loop, max_samples=50)}
    relu = next(name for name, module in model.named_children() if isinstance(module, nn.ReLU))
    with torch.no_grad():
        units = torch.relu(model[0](X[:50])).reshape(50, -1)
    assert stats[relu].dead_fraction == pytest.approx(float((units <= 0).all(0).float().mean()))
    assert stats[relu].dead_fraction >= 3 / model[0].out_channels
    conv = next(name for name, module in model.named_children() if isinstance(module, nn.Conv2d))
    assert stats[conv].dead_fraction is None
    with torch.no_grad():
        assert stats[conv].mean == pytest.approx(float(model[0](X[:50]).mean()), rel=1e-5)


class _CountingDataset(torch.utils.data.Dataset):
    """5,000 samples of 10 features, with a random jitter (augmentation), counting every fetch."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.X = torch.randn(5000, 10, generator=generator)
        self.y = (self.X[:, 0] > 0).long()
        self.calls = 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.calls += 1
        return self.X[i] + 0.01 * torch.randn(10), self.y[i]


def test_statistics_of_a_dataloader_loop_fetch_only_the_samples_they_use():
    dataset = _CountingDataset()
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    loop = tl.Loop(model, loader, "cross_entropy", lr=0.1, seed=0)
    twin = tl.Loop(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2)), loader, "cross_entropy",
                   lr=0.1, seed=0)
    twin.model.load_state_dict(model.state_dict())
    loop.step(), twin.step()
    torch.manual_seed(5)
    dataset.calls = 0
    stats = tl.activation_stats(loop, max_samples=256)
    assert dataset.calls <= 256 and [s.name for s in stats] == ["0", "1", "2"]
    first = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(first, torch.rand(1))  # torch's random stream: as if nothing was fetched
    for _ in range(3):  # the loop's own: batches (and their jitter) exactly as its twin's
        loop.step(), twin.step()
    assert loop.history.steps["loss"].tolist() == twin.history.steps["loss"].tolist()


def test_neuron_activations_take_arrays_and_lists_in_any_float_dtype():
    model = tl.models.mlp(2, [4], 2, activation="tanh", seed=0)
    loop = _moons_loop(model)
    layers = tl.neuron_layers(model)
    points = [[0.0, 0.5], [1.0, -1.0], [0.25, 0.0]]
    want = tl.neuron_activations(loop, layers, torch.tensor(points))
    for grid in (torch.tensor(points, dtype=torch.float64), np.array(points), np.array(points, np.float32), points):
        got = tl.neuron_activations(loop, layers, grid)
        assert all(torch.equal(a, b) for a, b in zip(got, want)), type(grid)


@pytest.mark.parametrize("layers, grid, message", [
    (None, torch.zeros(5, 2), r"layers are the columns .* tl.neuron_layers\(loop.model\) .* returns None"),
    ("hidden1", torch.zeros(5, 2), "layers are the columns"),
    ("ok", torch.zeros(5, 3), r"grid is .* an \(n, 2\) tensor, array or list .* got shape \(5, 3\)"),
    ("ok", "plane", r"grid is .* got shape \(\)|grid is .* got str"),
    ("ok", [[1, 2], [3]], "grid is .* got list"),
])
def test_neuron_activations_refuse_bad_arguments_clearly(layers, grid, message):
    model = tl.models.mlp(2, [4], 2, seed=0)
    loop = _moons_loop(model)
    layers = tl.neuron_layers(model) if layers == "ok" else layers
    with pytest.raises(ValueError, match=message):
        tl.neuron_activations(loop, layers, grid)


@pytest.mark.parametrize("max_samples", [0, -3, 2.5, True])
def test_activation_stats_refuse_a_bad_sample_count(max_samples):
    loop = _moons_loop(tl.models.mlp(2, [4], 2, seed=0))
    with pytest.raises(ValueError, match="max_samples is how many training samples"):
        tl.activation_stats(loop, max_samples=max_samples)


def test_first_train_samples_are_the_training_splits_first_rows_and_move_no_random_stream():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [8], 2, seed=0), (X, y), "cross_entropy", validation_split=0.2)
    rng = torch.get_rng_state()
    inputs, targets = loop.first_train_samples(10)
    train_x, train_y = loop.train_data
    assert torch.equal(inputs, train_x[:10]) and torch.equal(targets, train_y[:10])
    assert torch.equal(rng, torch.get_rng_state())
