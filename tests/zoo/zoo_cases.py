"""The zoo: tiny versions of the models PyTorch's tutorials and common courses train.

Each entry is a ``Case``: how to build the model (always the same initial weights), the
data (made here from a seeded generator; nothing is downloaded), the loss, the optimizer
and the Loop's options. ``make_loop(case)`` builds a trainlab Loop from it and
``hand_train(case, steps)`` trains the same model with a hand-written PyTorch loop that
draws its batches in trainlab's documented order:

- ``(X, y)`` tensors: each epoch ``order = torch.randperm(n, generator=g)`` with
  ``g = torch.Generator().manual_seed(seed)`` made once (``shuffle=False``: ``arange``);
  batches are consecutive slices of that order.
- a DataLoader whose sampler decides the order (``shuffle=False``, a WeightedRandomSampler):
  ``for x, y in loader`` itself.
- a DataLoader made with ``shuffle=True``: the loop's own seeded shuffle, as for tensors;
  each batch is ``collate_fn([dataset[i] for i in chunk])``, a short tail dropped with drop_last.
- random numbers in forward (dropout) and in ``__getitem__``/samplers: the loop's stream
  starts as ``torch.manual_seed(seed)``, so the hand loop seeds torch once before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset, WeightedRandomSampler

import trainlab as tl

__all__ = ["Case", "ZOO", "make_loop", "hand_train", "hand_batches", "call", "part", "weights", "assert_same_weights"]

N = 64  # samples per data set
BATCH = 16  # 4 batches per epoch (3 for the drop_last entry)


@dataclass
class Case:
    """One zoo entry: a model, its data, loss and optimizer, and the Loop's other options."""

    name: str
    model: Callable[[], nn.Module]  # built with torch seeded 0: every build has the same weights
    data: Callable[[], Any]  # fresh (X, y) pair or DataLoader
    loss: Any  # a name or a callable loss(outputs, targets)
    optimizer: str | type  # a trainlab name ("sgd") or an optimizer class, given as an object
    options: dict[str, Any]  # the optimizer's options (lr, momentum, ...)
    loop_options: dict[str, Any] = field(default_factory=dict)  # batch_size, shuffle, outputs, accuracy
    inputs: Callable[[], Any] | None = None  # inputs for predict (default: the data's X)
    seed: int = 0

    def __repr__(self) -> str:
        return self.name


# --- plumbing shared by the checks ------------------------------------------------------------

HAND_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "bce": nn.BCEWithLogitsLoss}
HAND_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                   "rmsprop": torch.optim.RMSprop}


def build_model(case: Case) -> nn.Module:
    """The case's model, with the same initial weights every time; torch's global RNG is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return case.model()


def make_loop(case: Case, **overrides: Any) -> tl.Loop:
    """A trainlab Loop for the case (a fresh model and fresh data)."""
    model = build_model(case)
    options: dict[str, Any] = {"batch_size": BATCH, "seed": case.seed}
    options.update(case.loop_options)
    options.update(overrides)
    if isinstance(case.optimizer, str):
        return tl.Loop(model, case.data(), case.loss, optimizer=case.optimizer, **case.options, **options)
    optimizer = case.optimizer(model.parameters(), **case.options)
    return tl.Loop(model, case.data(), case.loss, optimizer=optimizer, **options)


def call(model: nn.Module, inputs: Any) -> Any:
    """What a user writes: model(x), model(a, b) or model(**named)."""
    if isinstance(inputs, Tensor):
        return model(inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(*inputs)


def part(outputs: Any, which: Any) -> Tensor:
    """The predictions in what the model returned (``outputs=`` of the Loop)."""
    return outputs if which is None else outputs[which]


def _rows(inputs: Any, index: Tensor) -> Any:
    if isinstance(inputs, Tensor):
        return inputs[index]
    if isinstance(inputs, dict):
        return {key: value[index] for key, value in inputs.items()}
    return tuple(value[index] for value in inputs)


def hand_batches(case: Case, data: Any) -> Iterator[tuple[Any, Tensor]]:
    """(inputs, targets) batches in trainlab's order, epoch after epoch, for ever."""
    batch_size = case.loop_options.get("batch_size", BATCH)
    if isinstance(data, DataLoader) and type(data.sampler) is not RandomSampler:
        while True:  # the sampler decides: iterate the DataLoader itself, once per epoch
            yield from data
    own = torch.Generator().manual_seed(case.seed)  # the loop's own shuffle, made once
    if isinstance(data, DataLoader):  # shuffle=True: the loop's order, items fetched through the loader
        n = len(data.dataset)
        while True:
            order = torch.randperm(n, generator=own)
            for start in range(0, n, batch_size):
                chunk = order[start:start + batch_size]
                if data.drop_last and len(chunk) < batch_size:
                    break
                yield data.collate_fn([data.dataset[i] for i in chunk.tolist()])
    X, y = data
    n = len(y)
    shuffle = case.loop_options.get("shuffle", True)
    while True:
        order = torch.randperm(n, generator=own) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            yield _rows(X, index), y[index]


def hand_train(case: Case, steps: int) -> tuple[nn.Module, list[float]]:
    """``steps`` updates of a plain PyTorch loop; returns the model and each step's loss."""
    model = build_model(case)
    data = case.data()
    loss_fn = HAND_LOSSES[case.loss]() if isinstance(case.loss, str) else case.loss
    optimizer_class = HAND_OPTIMIZERS[case.optimizer] if isinstance(case.optimizer, str) else case.optimizer
    optimizer = optimizer_class(model.parameters(), **case.options)
    batches = hand_batches(case, data)
    losses = []
    with torch.random.fork_rng(devices=[]):  # the hand loop's randomness: torch seeded once
        torch.manual_seed(case.seed)
        model.train()
        for _ in range(steps):
            inputs, targets = next(batches)
            outputs = call(model, inputs)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return model, losses


def weights(model: nn.Module) -> dict[str, Tensor]:
    """A copy of every parameter and buffer, by name."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_same_weights(got: dict[str, Tensor], want: dict[str, Tensor], what: str = "") -> None:
    """Every parameter and buffer exactly equal (torch.equal), naming the first that is not."""
    assert got.keys() == want.keys(), f"{what}: different names {sorted(got.keys() ^ want.keys())}"
    for name in want:
        if not torch.equal(got[name], want[name]):
            diff = (got[name].double() - want[name].double()).abs().max().item()
            raise AssertionError(f"{what}: {name} differs (max abs difference {diff:.3g})")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _labels(X: Tensor, classes: int, seed: int) -> Tensor:
    """Class labels that depend on the inputs (a random linear rule), so there is something to learn."""
    w = torch.randn(X[0].numel(), classes, generator=_gen(seed + 100))
    return (X.flatten(1).float() @ w).argmax(1)


# --- 1. CIFAR-style CNN (PyTorch's "Training a classifier" tutorial), SGD with momentum ---------

class CifarNet(nn.Module):
    """conv -> pool -> conv -> pool -> fc -> fc -> fc, as in the tutorial, for 3x8x8 images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 12)
        self.fc3 = nn.Linear(12, 10)

    def forward(self, x: Tensor) -> Tensor:  # (b, 3, 8, 8) -> (b, 10)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def cifar_data() -> tuple[Tensor, Tensor]:
    X = torch.randn(N, 3, 8, 8, generator=_gen(1))
    return X, _labels(X, 10, 1)


# --- 2. MLP with BatchNorm1d and Dropout ----------------------------------------------------

def bn_dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))


def tabular_data() -> tuple[Tensor, Tensor]:
    X = torch.randn(N, 10, generator=_gen(2))
    return X, _labels(X, 3, 2)


# --- 3, 4. LSTM and GRU sequence classifiers (the last hidden state) ----------------------------

class RecurrentClassifier(nn.Module):
    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cell(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:  # (b, seq, 4) -> (b, 2)
        _, hidden = self.rnn(x)
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c)
        return self.fc(h[-1])


def sequence_data() -> tuple[Tensor, Tensor]:
    X = torch.randn(N, 5, 4, generator=_gen(3))
    return X, (X[:, :, 0].sum(1) > 0).long()


# --- 5, 6. Text classifiers on int64 token ids: Embedding (mean) and EmbeddingBag -------------

VOCAB, SEQ = 20, 6


class EmbeddingClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, tokens: Tensor) -> Tensor:  # (b, seq) int64 -> (b, 2)
        return self.fc(self.embedding(tokens).mean(dim=1))


class BagClassifier(nn.Module):
    """PyTorch's text-classification tutorial model: EmbeddingBag (mean) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(VOCAB, 8, mode="mean")
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens: Tensor) -> Tensor:  # (b, seq) int64: one bag per row -> (b, 3)
        return self.fc(self.embedding(tokens))


def token_data(classes: int) -> Callable[[], tuple[Tensor, Tensor]]:
    def make() -> tuple[Tensor, Tensor]:
        tokens = torch.randint(0, VOCAB, (N, SEQ), generator=_gen(4))
        return tokens, (tokens % classes).sum(1) % classes
    return make


# --- 7. Regression with MSELoss on (n, 1) targets -------------------------------------------

def regression_data() -> tuple[Tensor, Tensor]:
    X = torch.randn(N, 10, generator=_gen(5))
    w = torch.randn(10, 1, generator=_gen(6))
    return X, X @ w + 0.1 * torch.randn(N, 1, generator=_gen(7))


# --- 8. Multi-label with BCEWithLogitsLoss on (n, 3) float targets ----------------------------

def multilabel_data() -> tuple[Tensor, Tensor]:
    X = torch.randn(N, 6, generator=_gen(8))
    return X, (X[:, :3] > 0).float()


# --- 9. Reassigned buffers: d2l's from-scratch BatchNorm --------------------------------------

class ScratchBatchNorm(nn.Module):
    """d2l's BatchNorm: the moving statistics are new tensors after each batch."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n))
        self.beta = nn.Parameter(torch.zeros(n))
        self.register_buffer("moving_mean", torch.zeros(n))  # persistent: in the state_dict
        self.register_buffer("moving_var", torch.ones(n))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            x_hat = (x - self.moving_mean) / torch.sqrt(self.moving_var + 1e-5)
        else:
            mean = x.mean(dim=0)
            var = ((x - mean) ** 2).mean(dim=0)
            x_hat = (x - mean) / torch.sqrt(var + 1e-5)
            self.moving_mean, self.moving_var = (0.9 * self.moving_mean + 0.1 * mean.detach(),
                                                 0.9 * self.moving_var + 0.1 * var.detach())
        return self.gamma * x_hat + self.beta


def scratch_bn_model() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 8), ScratchBatchNorm(8), nn.Tanh(), nn.Linear(8, 3))


# --- 10-12. DataLoaders: a custom collate_fn, random augmentation, a WeightedRandomSampler ----

class Sentences(Dataset):
    """Token-id lists of different lengths (2..6), as a tokenizer gives them, with a label."""

    def __init__(self, n: int = 60) -> None:
        g = _gen(9)
        lengths = torch.randint(2, SEQ + 1, (n,), generator=g).tolist()
        self.items = [torch.randint(1, VOCAB, (k,), generator=g).tolist() for k in lengths]
        self.labels = [len(ids) % 2 for ids in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.items[i], self.labels[i]


def pad_collate(items: list[tuple[list[int], int]]) -> tuple[Tensor, Tensor]:
    """Pads each batch's token lists with 0 to SEQ: (b, SEQ) int64 ids, (b,) labels."""
    ids = torch.zeros(len(items), SEQ, dtype=torch.int64)
    for row, (tokens, _) in enumerate(items):
        ids[row, :len(tokens)] = torch.tensor(tokens)
    return ids, torch.tensor([label for _, label in items])


class PaddedClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8, padding_idx=0)
        self.fc = nn.Linear(8, 2)

    def forward(self, ids: Tensor) -> Tensor:
        mask = (ids != 0).float().unsqueeze(-1)  # mean over the real tokens only
        return self.fc((self.embedding(ids) * mask).sum(1) / mask.sum(1))


def collate_loader() -> DataLoader:
    # 60 items, batches of 16, drop_last: 3 batches per epoch, 12 items left out each epoch.
    return DataLoader(Sentences(), batch_size=BATCH, shuffle=True, collate_fn=pad_collate, drop_last=True)


def padded_inputs() -> Tensor:
    return pad_collate([Sentences()[i] for i in range(60)])[0]


class NoisyFlips(Dataset):
    """1x4x4 images; each read adds noise and flips left-right half the time (torch's global RNG)."""

    def __init__(self) -> None:
        self.X = torch.randn(N, 1, 4, 4, generator=_gen(10))
        self.y = _labels(self.X, 2, 10)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.X[i] + 0.1 * torch.randn(self.X[i].shape)
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def small_convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(4 * 4 * 4, 2))


def augment_loader() -> DataLoader:
    return DataLoader(NoisyFlips(), batch_size=BATCH, shuffle=False)


def weighted_loader() -> DataLoader:
    X, y = tabular_data()
    counts = torch.bincount(y, minlength=3).float()
    sample_weights = (1.0 / counts)[y]  # rare classes drawn as often as common ones
    sampler = WeightedRandomSampler(sample_weights, num_samples=N, replacement=True)
    return DataLoader(TensorDataset(X, y), batch_size=BATCH, sampler=sampler)


# --- 13, 14. Several inputs: a tuple (model(a, b)) and a dict (model(**inputs)) ----------------

class TwoTower(nn.Module):
    """Two inputs, each through its own layer, joined: forward(a, b)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(3, 8)
        self.head = nn.Linear(16, 2)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.head(torch.cat([torch.relu(self.a(a)), torch.relu(self.b(b))], dim=1))


class NamedInputs(nn.Module):
    """Tokens and a numeric feature, by name: forward(ids=..., extra=...)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8)
        self.extra = nn.Linear(2, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, ids: Tensor, extra: Tensor) -> Tensor:
        return self.head(torch.tanh(self.embedding(ids).mean(1) + self.extra(extra)))


def two_input_data() -> tuple[tuple[Tensor, Tensor], Tensor]:
    A = torch.randn(N, 5, generator=_gen(11))
    B = torch.randn(N, 3, generator=_gen(12))
    return (A, B), (A[:, 0] + B[:, 0] > 0).long()


def named_input_data() -> tuple[dict[str, Tensor], Tensor]:
    ids = torch.randint(0, VOCAB, (N, SEQ), generator=_gen(13))
    extra = torch.randn(N, 2, generator=_gen(14))
    return {"ids": ids, "extra": extra}, (extra[:, 0] > 0).long()


# --- 15. A tuple output: (logits, aux), and a loss function that takes both ------------------

class LogitsAndFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(10, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.relu(self.body(x))
        return self.head(features), features


def logits_and_penalty(outputs: tuple[Tensor, Tensor], targets: Tensor) -> Tensor:
    """Cross-entropy on the logits plus a small activity penalty on the features."""
    logits, features = outputs
    return F.cross_entropy(logits, targets) + 1e-3 * features.pow(2).mean()


# --- the zoo ------------------------------------------------------------------------------------

ZOO = [
    Case("cifar_cnn", CifarNet, cifar_data, "cross_entropy", "sgd", dict(lr=0.05, momentum=0.9)),
    Case("mlp_batchnorm_dropout", bn_dropout_mlp, tabular_data, nn.CrossEntropyLoss(),
         torch.optim.Adam, dict(lr=0.01)),
    Case("lstm", lambda: RecurrentClassifier(nn.LSTM), sequence_data, "cross_entropy", "adam", dict(lr=0.01)),
    Case("gru", lambda: RecurrentClassifier(nn.GRU), sequence_data, nn.CrossEntropyLoss(),
         torch.optim.RMSprop, dict(lr=0.01)),
    Case("embedding", EmbeddingClassifier, token_data(2), "cross_entropy", torch.optim.AdamW, dict(lr=0.01)),
    Case("embedding_bag", BagClassifier, token_data(3), nn.CrossEntropyLoss(), "sgd", dict(lr=0.5)),
    Case("regression", lambda: nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1)),
         regression_data, "mse", "sgd", dict(lr=0.05)),
    Case("multilabel", lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)),
         multilabel_data, nn.BCEWithLogitsLoss(), torch.optim.Adam, dict(lr=0.01)),
    Case("reassigned_buffers", scratch_bn_model, tabular_data, "cross_entropy", "sgd", dict(lr=0.1)),
    Case("loader_collate_fn", PaddedClassifier, collate_loader, nn.CrossEntropyLoss(), "adam", dict(lr=0.01),
         inputs=padded_inputs),
    Case("loader_augmentation", small_convnet, augment_loader, "cross_entropy", "sgd", dict(lr=0.1),
         inputs=lambda: NoisyFlips().X),
    Case("loader_weighted_sampler", bn_dropout_mlp, weighted_loader, "cross_entropy", "sgd",
         dict(lr=0.1, momentum=0.9), inputs=lambda: tabular_data()[0]),
    Case("two_inputs", TwoTower, two_input_data, "cross_entropy", "sgd", dict(lr=0.1)),
    Case("dict_inputs", NamedInputs, named_input_data, nn.CrossEntropyLoss(), "adam", dict(lr=0.01)),
    Case("tuple_output", LogitsAndFeatures, tabular_data, logits_and_penalty, "sgd", dict(lr=0.1),
         loop_options=dict(outputs=0, accuracy=True)),
]
