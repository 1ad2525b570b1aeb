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

The entries of issue 26 (the second half of ``ZOO``) train with ``hand_train_epochs``, a hand loop
that knows where each epoch ends: it divides each micro-batch's loss by k and steps every k batches
and at the epoch's end (``accumulate``), runs the forward pass and loss under autocast
(``precision="bf16"``), clips by value, steps several optimizers, steps a ReduceLROnPlateau with the
epoch's accuracy, drops a short tail (``drop_last``) or joins a one-sample tail to the batch before
(BatchNorm), as trainlab documents.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset, WeightedRandomSampler

import trainlab as tl

__all__ = ["Case", "ZOO", "make_loop", "hand_train", "hand_batches", "hand_epochs", "build_optimizer", "call", "part",
           "weights", "assert_same_weights"]

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
    params: Callable[[nn.Module], Any] | None = None  # the optimizer's parameter groups (default: all parameters)
    random_in_eval: bool = False  # the model draws random numbers in eval mode too (FractionalMaxPool2d)
    updates_per_epoch: int | None = None  # when not one per batch of BATCH (accumulate, drop_last, a joined tail)

    @property
    def by_epochs(self) -> bool:
        """Whether the hand loop must know where epochs end (the entries of issue 26)."""
        keys = {"accumulate", "precision", "clip_grad_value", "scheduler", "drop_last"}
        return bool(keys & set(self.loop_options)) or self.params is not None or self.updates_per_epoch is not None \
            or not isinstance(self.optimizer, (str, type))

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
    return tl.Loop(model, case.data(), case.loss, optimizer=build_optimizer(case, model), **options)


def build_optimizer(case: Case, model: nn.Module) -> Any:
    """The case's optimizer object over the model (its parameter groups), or several (a function's list)."""
    if isinstance(case.optimizer, str):
        return HAND_OPTIMIZERS[case.optimizer](model.parameters(), **case.options)
    if not isinstance(case.optimizer, type):  # a function: model -> optimizer(s)
        return case.optimizer(model)
    return case.optimizer(case.params(model) if case.params else model.parameters(), **case.options)


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
    n = len(y[0]) if isinstance(y, tuple) else len(y)  # several targets: a tuple
    shuffle = case.loop_options.get("shuffle", True)
    while True:
        order = torch.randperm(n, generator=own) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            yield _rows(X, index), _rows(y, index)


def hand_epochs(case: Case, data: tuple[Any, Any]) -> Iterator[list[tuple[Any, Any]]]:
    """Each epoch's batches of (X, y) tensors, in trainlab's order: a short tail dropped with drop_last, a
    one-sample tail joined to the batch before with BatchNorm (targets may be several: a tuple)."""
    X, y = data
    n = len(y[0]) if isinstance(y, tuple) else len(y)
    batch_size = case.loop_options.get("batch_size", BATCH)
    drop_last = case.loop_options.get("drop_last", False)
    joins = not drop_last and any(isinstance(m, nn.BatchNorm1d) for m in build_model(case).modules())
    own = torch.Generator().manual_seed(case.seed)
    while True:
        order = torch.randperm(n, generator=own) if case.loop_options.get("shuffle", True) else torch.arange(n)
        starts = list(range(0, n, batch_size))
        if drop_last and n - starts[-1] < batch_size:
            starts.pop()
        stops = [min(start + batch_size, n) for start in starts]
        if joins and n - starts[-1] == 1:
            starts.pop()
            stops.pop()
            stops[-1] = n
        yield [(_rows(X, order[a:b]), _rows(y, order[a:b])) for a, b in zip(starts, stops)]


HALVES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # precision= -> the autocast dtype


def hand_train_epochs(case: Case, steps: int) -> tuple[nn.Module, list[float]]:
    """``steps`` updates of a hand loop that knows where epochs end (see the module's docstring)."""
    model = build_model(case)
    loss_fn = HAND_LOSSES[case.loss]() if isinstance(case.loss, str) else case.loss
    built = build_optimizer(case, model)
    optimizers = built if isinstance(built, list) else [built]
    options = case.loop_options
    scheduler = options["scheduler"](optimizers[0]) if "scheduler" in options else None
    k, clip_value = options.get("accumulate", 1), options.get("clip_grad_value")
    precision = options.get("precision")
    autocast = ((lambda: torch.autocast("cpu", dtype=HALVES[precision])) if precision in HALVES
                else contextlib.nullcontext)
    scaler = torch.amp.GradScaler("cpu") if precision == "fp16" else None  # the usual fp16 recipe
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.seed)
        model.train()
        for batches in hand_epochs(case, case.data()):
            correct, samples, update = 0.0, 0, [0.0, 0]
            for i, (inputs, targets) in enumerate(batches):
                with autocast():
                    outputs = call(model, inputs)
                    loss = loss_fn(outputs, targets)
                if i % k == 0:
                    for optimizer in optimizers:
                        optimizer.zero_grad()
                scaled = loss / k if k > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                size = len(targets[0]) if isinstance(targets, tuple) else len(targets)
                update = [update[0] + loss.item() * size, update[1] + size]
                samples += size
                if scheduler is not None:
                    correct += (part(outputs, options.get("outputs")).argmax(1) == targets).sum().item()
                if (i + 1) % k == 0 or i == len(batches) - 1:
                    if scaler is not None:
                        for optimizer in optimizers:
                            scaler.unscale_(optimizer)
                    if clip_value is not None:
                        nn.utils.clip_grad_value_(model.parameters(), clip_value)
                    for optimizer in optimizers:
                        scaler.step(optimizer) if scaler is not None else optimizer.step()
                    if scaler is not None:
                        scaler.update()
                    losses.append(loss.item() if k == 1 else update[0] / update[1])
                    update = [0.0, 0]
                    if len(losses) == steps:
                        return model, losses
            if scheduler is not None:
                scheduler.step(correct / samples)


def hand_train(case: Case, steps: int) -> tuple[nn.Module, list[float]]:
    """``steps`` updates of a plain PyTorch loop; returns the model and each step's loss."""
    if case.by_epochs:
        return hand_train_epochs(case, steps)
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


# --- 16-25 (issue 26): the optimizer's own groups, sparse gradients, random layers, per-token classes, ---
# --- several targets, a BatchNorm tail, accumulation, bf16, a plateau scheduler ---------------------

def adamw_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The usual AdamW recipe: weights decay, biases do not; the output layer learns more slowly."""
    first, last = model[0], model[-1]
    return [{"params": [first.weight], "weight_decay": 0.05},
            {"params": [first.bias, last.bias], "weight_decay": 0.0},
            {"params": [last.weight], "weight_decay": 0.05, "lr": 0.003}]


class SparseBag(nn.Module):
    """An embedding with sparse gradients (mean of the tokens) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8, sparse=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc(self.embedding(tokens).mean(dim=1))


def sparse_and_dense(model: nn.Module) -> list[torch.optim.Optimizer]:
    """The usual recipe for sparse embeddings: SparseAdam for them, Adam for the rest."""
    return [torch.optim.SparseAdam(list(model.embedding.parameters()), lr=0.05),
            torch.optim.Adam(list(model.fc.parameters()), lr=0.01)]


def fractional_pool_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.FractionalMaxPool2d(2, output_size=5),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 10))


class GRUWithDropout(nn.Module):
    """Two GRU layers with dropout between them (a random layer that is no nn.Dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 8, num_layers=2, dropout=0.5, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.rnn(x)[1][-1])


class Tagger(nn.Module):
    """Token ids (b, SEQ) -> one score per tag for each token, (b, tags, SEQ): a part-of-speech tagger."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8)
        self.rnn = nn.LSTM(8, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc(self.rnn(self.embedding(tokens))[0]).transpose(1, 2)


def tagged_data() -> tuple[Tensor, Tensor]:
    tokens = torch.randint(1, VOCAB, (N, SEQ), generator=_gen(15))
    tags = tokens % 3
    tags[torch.arange(N) % 3 == 0, -2:] = -100  # padding in every third sentence: no tag
    return tokens, tags


class TwoHeads(nn.Module):
    """A class and a number from the same features: multi-task, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(10, 16)
        self.classes = nn.Linear(16, 3)
        self.value = nn.Linear(16, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.body(x))
        return self.classes(h), self.value(h).squeeze(-1)


def two_target_data() -> tuple[Tensor, tuple[Tensor, Tensor]]:
    X, y = tabular_data()
    return X, (y, X[:, 0] - X[:, 1])


def class_and_value(outputs: tuple[Tensor, Tensor], targets: tuple[Tensor, Tensor]) -> Tensor:
    (logits, value), (label, target) = outputs, targets
    return F.cross_entropy(logits, label) + F.mse_loss(value, target)


def tabular_65() -> tuple[Tensor, Tensor]:
    X = torch.randn(N + 1, 10, generator=_gen(16))  # 65 = 4 * 16 + 1: a one-sample tail
    return X, _labels(X, 3, 16)


def tabular_70() -> tuple[Tensor, Tensor]:
    X = torch.randn(N + 6, 10, generator=_gen(17))  # 70: with drop_last, 4 batches and 6 dropped
    return X, _labels(X, 3, 17)


def plateau_on_accuracy(optimizer: torch.optim.Optimizer) -> Any:
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=0, factor=0.5)


def bn_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


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
    # issue 26
    Case("plateau_on_accuracy_drop_last", dropout_mlp, tabular_70, "cross_entropy", torch.optim.SGD,
         dict(lr=0.2, momentum=0.9), updates_per_epoch=4,
         loop_options=dict(scheduler=plateau_on_accuracy, scheduler_metric="accuracy", drop_last=True)),
    Case("adamw_param_groups", dropout_mlp, tabular_data, "cross_entropy", torch.optim.AdamW, dict(lr=0.01),
         params=adamw_groups),
    Case("sparse_embedding_two_optimizers", SparseBag, token_data(2), "cross_entropy", sparse_and_dense, {}),
    Case("fractional_max_pool", fractional_pool_cnn, cifar_data, "cross_entropy", "sgd", dict(lr=0.05),
         random_in_eval=True),
    Case("gru_dropout_between_layers", GRUWithDropout, sequence_data, "cross_entropy", "adam", dict(lr=0.01)),
    Case("per_token_tagger", Tagger, tagged_data, nn.CrossEntropyLoss(ignore_index=-100), "adam", dict(lr=0.01)),
    Case("two_targets", TwoHeads, two_target_data, class_and_value, "sgd", dict(lr=0.1),
         loop_options=dict(outputs=0, accuracy=0)),
    Case("batchnorm_joined_tail", bn_mlp, tabular_65, "cross_entropy", "sgd", dict(lr=0.1, momentum=0.9),
         updates_per_epoch=4),
    Case("accumulate_two", dropout_mlp, tabular_data, "cross_entropy", "adam", dict(lr=0.01),
         loop_options=dict(accumulate=2), updates_per_epoch=2),
    Case("bf16_clip_value", CifarNet, cifar_data, "cross_entropy", "sgd", dict(lr=0.05, momentum=0.9),
         loop_options=dict(precision="bf16", clip_grad_value=0.05)),
    Case("fp16_grad_scaler_accumulate", CifarNet, cifar_data, "cross_entropy", "sgd", dict(lr=0.05, momentum=0.9),
         loop_options=dict(precision="fp16", accumulate=2, clip_grad_value=0.05), updates_per_epoch=2),
]
