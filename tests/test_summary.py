"""tl.summary: every layer's output shape, parameters and gradient norm, against numbers worked out by hand."""

import math

import pytest
import torch
from torch import nn

import trainlab as tl


def rows(summary):
    return {row.name: row for row in summary.rows}


def test_the_mlp():
    X, y = tl.datasets.moons(n=100, seed=0)
    loop = tl.Loop(tl.models.mlp(2, [16, 16], 2, seed=0), (X, y), "cross_entropy", batch_size=32)
    summary = tl.summary(loop)
    table = rows(summary)
    assert list(table) == ["", "hidden1", "act1", "hidden2", "act2", "output"]
    # (in + 1) * out weights and biases per Linear; none in the activations
    assert [table[name].trainable for name in table] == [0, 3 * 16, 0, 17 * 16, 0, 17 * 2]
    assert summary.total == summary.trainable == 48 + 272 + 34 == sum(p.numel() for p in loop.model.parameters())
    assert summary.frozen == 0
    assert [tuple(table[name].output_shape) for name in table] == [(32, 2), (32, 16), (32, 16), (32, 16), (32, 16),
                                                                   (32, 2)]
    assert all(row.grad_norm is None for row in summary.rows)  # no backward yet
    text = str(summary)
    assert text.splitlines()[-3:] == ["Total params: 354", "Trainable params: 354", "Frozen params: 0"]
    assert "hidden1" in text and "[32, 16]" in text and "Linear" in text


def test_the_digits_cnn_and_its_gradient_norms_after_a_step():
    X, y = tl.datasets.digits(n=64, seed=0)
    loop = tl.Loop(tl.models.cnn(seed=0), (X, y), "cross_entropy", batch_size=16)
    loop.step()
    table = rows(tl.summary(loop))
    shapes = {"conv1": (16, 8, 8, 8), "relu1": (16, 8, 8, 8), "pool1": (16, 8, 4, 4), "conv2": (16, 16, 4, 4),
              "relu2": (16, 16, 4, 4), "pool2": (16, 16, 2, 2), "flatten": (16, 64), "output": (16, 10)}
    assert {name: tuple(table[name].output_shape) for name in shapes} == shapes
    # a 3x3 conv: in * out * 9 weights + out biases
    counts = {"conv1": 1 * 8 * 9 + 8, "conv2": 8 * 16 * 9 + 16, "output": 64 * 10 + 10}
    assert {name: table[name].trainable for name in counts} == counts
    model = loop.model
    for name in ("conv1", "conv2", "output"):
        layer = getattr(model, name)
        hand = math.sqrt(layer.weight.grad.pow(2).sum().item() + layer.bias.grad.pow(2).sum().item())
        assert table[name].grad_norm == pytest.approx(hand, rel=1e-5)
    assert table["relu1"].grad_norm is None  # no parameters, no gradients


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        out, (h, c) = self.rnn(x)
        return self.fc(h[-1])


def test_an_lstm():
    X = torch.randn(40, 5, 4)
    loop = tl.Loop(Recurrent(), (X, (X[:, :, 0].sum(1) > 0).long()), "cross_entropy", batch_size=10)
    table = rows(tl.summary(loop))
    out, (h, c) = table["rnn"].output_shape
    assert (tuple(out), tuple(h), tuple(c)) == ((10, 5, 8), (1, 10, 8), (1, 10, 8))
    assert table["rnn"].shape_text == "([10, 5, 8], ([1, 10, 8], [1, 10, 8]))"
    # four gates: 4*8 rows of (4 inputs + 8 hidden) weights, and two biases of 4*8
    assert table["rnn"].trainable == 4 * 8 * (4 + 8) + 2 * 4 * 8
    assert table["fc"].trainable == 8 * 2 + 2


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return torch.relu(self.norm(self.linear(x))) + x


class Nested(nn.Module):
    """A user's model: its own parameter, a Sequential of blocks, a frozen embedding, a layer used twice."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.embed = nn.Linear(3, 6)
        self.embed.requires_grad_(False)
        self.blocks = nn.Sequential(Block(6), Block(6))
        self.head = nn.Linear(6, 2)
        self.unused = nn.Linear(6, 6)

    def forward(self, x):
        x = self.blocks(self.embed(x) * self.scale)
        return self.head(self.blocks[1](x))  # the second block runs twice


def test_a_users_nested_module():
    X = torch.randn(30, 3)
    loop = tl.Loop(Nested(), (X, (X[:, 0] > 0).long()), "cross_entropy", batch_size=8)
    loop.step()
    summary = tl.summary(loop)
    table = rows(summary)
    assert list(table) == ["", "embed", "blocks", "blocks.0", "blocks.0.linear", "blocks.0.norm", "blocks.1",
                           "blocks.1.linear", "blocks.1.norm", "head", "unused"]
    assert [table[name].depth for name in ("", "blocks", "blocks.0", "blocks.0.linear")] == [0, 1, 2, 3]
    assert table[""].trainable == 1  # the model's own parameter, scale
    assert (table["embed"].trainable, table["embed"].frozen) == (0, 3 * 6 + 6)
    assert table["blocks.0.linear"].trainable == 6 * 6 + 6 and table["blocks.0.norm"].trainable == 2 * 6
    assert table["blocks"].trainable == 0  # a container: its layers hold its parameters
    assert tuple(table["blocks.1"].output_shape) == (8, 6) and tuple(table[""].output_shape) == (8, 2)
    assert table["unused"].output_shape is None and table["unused"].shape_text == "-"
    assert summary.frozen == 24
    assert summary.trainable == 1 + 2 * (42 + 12) + 14 + 42
    assert summary.total == sum(p.numel() for p in loop.model.parameters())
    assert table["embed"].grad_norm is None and table["unused"].grad_norm is None  # frozen; never used
    assert table[""].grad_norm == pytest.approx(loop.model.scale.grad.abs().item(), rel=1e-6)
    text = str(summary).splitlines()
    assert text[-3:] == [f"Total params: {summary.total:,}", f"Trainable params: {summary.trainable:,}",
                         "Frozen params: 24"]
    assert any(line.startswith("      linear") for line in text)  # indented by depth
    assert "<table" in summary.to_html()


def test_a_shared_layer_is_counted_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    loop = tl.Loop(model, (torch.randn(20, 4), torch.randint(0, 2, (20,))), "cross_entropy")
    summary = tl.summary(loop)
    assert summary.total == 20 + 10 == sum(p.numel() for p in model.parameters())
