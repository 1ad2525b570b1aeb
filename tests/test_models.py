"""Tests for trainlab.models: layer names, shapes, seeding and that the models can learn."""

import pytest
import torch
from torch import nn

import trainlab.datasets as ds
import trainlab.models as models


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- mlp: structure ----------------------------------------------------------------


def test_mlp_parameter_names_read_like_the_layers():
    net = models.mlp(2, [16, 8], 3)
    assert [name for name, _ in net.named_parameters()] == [
        "hidden1.weight",
        "hidden1.bias",
        "hidden2.weight",
        "hidden2.bias",
        "output.weight",
        "output.bias",
    ]
    assert [name for name, _ in net.named_children()] == ["hidden1", "act1", "hidden2", "act2", "output"]
    assert net.hidden1.weight.shape == (16, 2)
    assert net.hidden2.weight.shape == (8, 16)
    assert net.output.weight.shape == (3, 8)


def test_mlp_without_hidden_layers_is_one_linear():
    net = models.mlp(10, [], 1)
    assert [name for name, _ in net.named_children()] == ["output"]
    assert isinstance(net.output, nn.Linear)
    assert net(torch.zeros(4, 10)).shape == (4, 1)


@pytest.mark.parametrize("hidden", [[], [5], [7, 7, 7], (4, 3)])
@pytest.mark.parametrize("batch", [1, 6])
def test_mlp_output_shape(hidden, batch):
    net = models.mlp(3, hidden, 4)
    assert net(torch.randn(batch, 3)).shape == (batch, 4)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("relu", nn.ReLU),
        ("ReLU", nn.ReLU),
        ("tanh", nn.Tanh),
        ("Sigmoid", nn.Sigmoid),
        ("gelu", nn.GELU),
        ("LEAKY_RELU", nn.LeakyReLU),
        ("linear", nn.Identity),
        (None, nn.Identity),
    ],
)
def test_mlp_activation_choice(name, kind):
    net = models.mlp(2, [4, 4], 1, activation=name)
    assert type(net.act1) is kind and type(net.act2) is kind
    assert net.act1 is not net.act2  # one module per position, so hooks can tell them apart


def test_mlp_linear_activation_is_a_linear_function():
    net = models.mlp(2, [8, 8], 1, activation=None, seed=0)
    a, b = torch.randn(5, 2), torch.randn(5, 2)
    zero = net(torch.zeros(1, 2))
    with torch.no_grad():
        assert torch.allclose(net(a + b) - zero, (net(a) - zero) + (net(b) - zero), atol=1e-5)


# --- mlp: seeding -------------------------------------------------------------------


def test_mlp_seed_is_reproducible():
    a = models.mlp(2, [16, 16], 2, seed=7)
    b = models.mlp(2, [16, 16], 2, seed=7)
    c = models.mlp(2, [16, 16], 2, seed=8)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


def test_mlp_seed_matches_torch_manual_seed():
    seeded = models.mlp(3, [5], 2, seed=42)
    torch.manual_seed(42)
    plain = models.mlp(3, [5], 2)
    assert _same_weights(seeded, plain)


def test_mlp_seed_leaves_global_rng_untouched():
    torch.manual_seed(99)
    state = torch.get_rng_state()
    expected = torch.rand(4)
    torch.set_rng_state(state)
    models.mlp(2, [32, 32], 2, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(4), expected)


def test_mlp_without_seed_uses_the_global_rng():
    torch.manual_seed(5)
    a = models.mlp(2, [8], 2)
    b = models.mlp(2, [8], 2)  # the global RNG moved on, so b differs from a
    torch.manual_seed(5)
    c = models.mlp(2, [8], 2)
    assert not _same_weights(a, b)
    assert _same_weights(a, c)


# --- mlp: bad arguments ---------------------------------------------------------------


def test_mlp_dropout_follows_each_hidden_activation_and_is_off_in_eval_mode():
    model = models.mlp(2, [8, 8], 3, dropout=0.5, seed=0)
    assert [name for name, _ in model.named_children()] == [
        "hidden1", "act1", "drop1", "hidden2", "act2", "drop2", "output"]
    assert model.drop1.p == 0.5
    x = torch.randn(16, 2)
    model.train()
    assert not torch.equal(model(x), model(x))  # a new random mask each call
    model.eval()
    assert torch.equal(model(x), model(x))
    plain = models.mlp(2, [8, 8], 3, seed=0)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    assert torch.equal(model.hidden1.weight, plain.hidden1.weight)  # dropout draws nothing at build time


def test_mlp_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError) as info:
        models.mlp(2, [4], 1, activation="swish")
    for choice in ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "linear"):
        assert repr(choice) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        (dict(in_features=0, hidden=[4], out_features=1), "in_features"),
        (dict(in_features=2.0, hidden=[4], out_features=1), "in_features"),
        (dict(in_features=2, hidden=[4], out_features=0), "out_features"),
        (dict(in_features=2, hidden=16, out_features=1), r"hidden=\[16\]"),
        (dict(in_features=2, hidden=[4, 0], out_features=1), "hidden=\\[16, 16\\]"),
        (dict(in_features=2, hidden="16", out_features=1), "hidden=\\[16, 16\\]"),
        (dict(in_features=2, hidden=[4], out_features=1, activation=3), "choose one of"),
        (dict(in_features=2, hidden=[4], out_features=1, seed=0.5), "seed"),
        (dict(in_features=2, hidden=[4], out_features=1, seed=2**70), "seed"),
        (dict(in_features=2, hidden=[4], out_features=1, dropout=1.0), "dropout=0.2"),
        (dict(in_features=2, hidden=[4], out_features=1, dropout=-0.1), "dropout=0.2"),
        (dict(in_features=2, hidden=[4], out_features=1, dropout=float("nan")), "dropout=0.2"),
        (dict(in_features=2, hidden=[4], out_features=1, dropout=True), "dropout=0.2"),
    ],
)
def test_mlp_bad_arguments_raise_with_a_hint(kwargs, hint):
    with pytest.raises(ValueError, match=hint):
        models.mlp(**kwargs)


# --- cnn ------------------------------------------------------------------------------------


def test_cnn_output_shape_for_digit_batch():
    net = models.cnn()
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_cnn_layer_names_and_sizes():
    net = models.cnn(num_classes=4, channels=(3, 6))
    assert [name for name, _ in net.named_children()] == [
        "conv1",
        "relu1",
        "pool1",
        "conv2",
        "relu2",
        "pool2",
        "flatten",
        "output",
    ]
    assert net.conv1.weight.shape == (3, 1, 3, 3)
    assert net.conv2.weight.shape == (6, 3, 3, 3)
    assert net.output.weight.shape == (4, 6 * 2 * 2)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


def test_cnn_runs_on_real_digits():
    X, _ = ds.digits(n=16)
    assert models.cnn(seed=0)(X).shape == (16, 10)


def test_cnn_seed_is_reproducible_and_leaves_global_rng_untouched():
    state = torch.get_rng_state()
    a = models.cnn(seed=3)
    b = models.cnn(seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same_weights(a, b)
    assert not _same_weights(a, models.cnn(seed=4))


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=2.5), "num_classes"),
        (dict(channels=(8,)), r"channels=\(8, 16\)"),
        (dict(channels=(8, 0)), r"channels=\(8, 16\)"),
        (dict(channels=8), r"channels=\(8, 16\)"),
        (dict(seed="0"), "seed"),
    ],
)
def test_cnn_bad_arguments_raise_with_a_hint(kwargs, hint):
    with pytest.raises(ValueError, match=hint):
        models.cnn(**kwargs)


# --- the models learn -------------------------------------------------------------------


def _train(net: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> tuple[float, float]:
    """Full-batch SGD; returns the loss before and after."""
    # The update is written out rather than using torch.optim.SGD (the same
    # maths), because the first optimizer built in a process costs ~1.5 s of
    # imports, which would double this file's run time.
    loss_fn = nn.CrossEntropyLoss()
    with torch.no_grad():
        before = loss_fn(net(X), y).item()
    for _ in range(steps):
        net.zero_grad()
        loss_fn(net(X), y).backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad
    with torch.no_grad():
        after = loss_fn(net(X), y).item()
    return before, after


def test_a_few_sgd_steps_on_moons_lower_the_loss():
    X, y = ds.moons(n=200, seed=0)
    net = models.mlp(2, [16, 16], 2, activation="tanh", seed=0)
    before, after = _train(net, X, y, steps=50, lr=0.5)
    assert after < 0.7 * before
    accuracy = (net(X).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.8


def test_a_few_sgd_steps_on_digits_with_cnn_lower_the_loss():
    X, y = ds.digits(n=150, seed=0)
    net = models.cnn(seed=0)
    before, after = _train(net, X, y, steps=50, lr=0.5)
    assert after < 0.7 * before


def test_module_exports():
    assert set(models.__all__) == {"ACTIVATIONS", "mlp", "cnn"}
    assert models.mlp.__doc__ and models.cnn.__doc__
