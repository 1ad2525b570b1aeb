"""Data in, batches out: tensors from what a learner passes, a validation split, and batches.

The loop owns batching so the batch size can change in the middle of an epoch: each
epoch draws one order of the training samples, and every batch is the next slice of
what is left of that order. So every sample is used exactly once per epoch, whatever
batch sizes were set along the way.

Inputs may be one tensor, or several (a tuple, or a dict of named tensors): the model is
called as ``model(x)``, ``model(*inputs)`` or ``model(**inputs)``. A DataLoader is drawn
*through*: each batch is ``collate_fn([dataset[i] for i in indices])``, fetched afresh
each epoch (random augmentation stays random), in the order its sampler gives (a plain
``shuffle=True`` is the loop's own seeded shuffle, as for tensors), with its ``drop_last``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import (BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler,
                              TensorDataset, default_collate)

__all__ = ["as_tensors", "as_targets", "loader_settings", "split_validation", "EpochSampler", "LoaderFetch", "call_model",
           "map_tensors", "n_rows", "head", "rows", "joined", "like", "first_tensor", "leaves", "as_inputs",
           "loader_generators", "kept_generators"]


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(x)``; with several inputs ``model(*inputs)`` (a tuple) or ``model(**inputs)`` (a dict)."""
    if isinstance(inputs, Tensor):
        return model(inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(*inputs)


def map_tensors(inputs: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` applied to the tensor, or to each of several inputs (a tuple, list or dict)."""
    if isinstance(inputs, Tensor):
        return fn(inputs)
    if isinstance(inputs, dict):
        return {key: fn(value) for key, value in inputs.items()}
    return tuple(fn(value) for value in inputs)


def first_tensor(inputs: Any) -> Tensor:
    """The input tensor, or the first of several."""
    if isinstance(inputs, Tensor):
        return inputs
    return next(iter(inputs.values())) if isinstance(inputs, dict) else inputs[0]


def n_rows(inputs: Any) -> int:
    """The number of samples in one input or several."""
    return len(first_tensor(inputs))


def head(inputs: Any, k: int) -> Any:
    """The first ``k`` samples."""
    return map_tensors(inputs, lambda t: t[:k])


def rows(inputs: Any, index: Tensor) -> Any:
    """The samples at ``index``."""
    return map_tensors(inputs, lambda t: t[index])


def like(inputs: Any, example: Any, what: str) -> Any:
    """``inputs`` in the example's dtypes, after checking each has the example's shape per sample."""
    if type(inputs) is not type(example) or (isinstance(inputs, dict) and inputs.keys() != example.keys()) or (
            isinstance(inputs, tuple) and len(inputs) != len(example)):
        raise ValueError(f"{what}: its inputs are not laid out like the training inputs (one tensor, a tuple "
                         "or a dict of the same names)")
    pairs = (zip(inputs.values(), example.values()) if isinstance(inputs, dict) else
             [(inputs, example)] if isinstance(inputs, Tensor) else zip(inputs, example))
    converted = []
    for given, train in pairs:
        if given.shape[1:] != train.shape[1:]:
            raise ValueError(f"{what}: each input has shape {tuple(given.shape[1:])} but the training "
                             f"inputs have {tuple(train.shape[1:])}")
        converted.append(given.to(train.dtype))
    if isinstance(inputs, Tensor):
        return converted[0]
    return dict(zip(inputs, converted)) if isinstance(inputs, dict) else tuple(converted)


def as_tensors(data: Any, what: str = "data") -> tuple[Any, Any]:
    """``(inputs, y)`` tensors from a pair, a Dataset of pairs, or (all of) a DataLoader's batches.

    ``inputs`` is a tensor of any dtype (int64 token ids pass as they are), or several: a
    tuple or dict of tensors with one row per sample. So is ``y``: several targets (a tuple or
    dict, a multi-task model's) reach the loss as they are.
    """
    if isinstance(data, DataLoader):
        inputs, targets = _collect(data, what)
    elif isinstance(data, TensorDataset) and len(data.tensors) == 2:
        inputs, targets = data.tensors
    elif isinstance(data, Dataset):
        inputs, targets = _stack_dataset(data, what)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        inputs = as_inputs(data[0], what)
        targets = as_targets(data[1], n_rows(inputs), what)
    else:
        raise ValueError(
            f"{what} must be a pair (X, y) of tensors, a Dataset of (x, y) pairs or a DataLoader; "
            f"got {type(data).__name__}"
        )
    for part, name in ((inputs, "inputs"), (targets, "targets")):
        sizes = {len(t) for t in leaves(part)}
        if len(sizes) > 1:
            raise ValueError(f"{what}'s {name} have different numbers of rows {sorted(sizes)}; give each one row "
                             "per sample")
    if n_rows(inputs) != n_rows(targets):
        raise ValueError(
            f"{what} has {n_rows(inputs)} inputs but {n_rows(targets)} targets; "
            "give one target per input (X and y need the same first dimension)"
        )
    if n_rows(targets) == 0:
        raise ValueError(f"{what} is empty; give at least one (input, target) pair")
    return inputs, targets


def as_inputs(part: Any, what: str) -> Any:
    """One input tensor, or several (a tuple/list of tensors, or a dict of named tensors)."""
    if isinstance(part, dict):
        return {key: _as_tensor(value, what) for key, value in part.items()}
    if isinstance(part, (tuple, list)) and part and all(_is_array(p) for p in part):
        return tuple(_as_tensor(value, what) for value in part)
    return _as_tensor(part, what)


def as_targets(part: Any, n: int, what: str) -> Any:
    """One target tensor, or several (a dict, or a tuple/list of tensors other than one per sample)."""
    several = isinstance(part, dict) or (isinstance(part, (tuple, list)) and 0 < len(part) != n
                                         and all(_is_array(p) for p in part))
    return as_inputs(part, what) if several else _as_tensor(part, what)


def _is_array(value: Any) -> bool:
    """A tensor or an array with one row per sample (numpy's, or anything with a shape of 1 or more axes)."""
    return isinstance(value, Tensor) or len(getattr(value, "shape", ())) >= 1


def leaves(inputs: Any) -> list[Tensor]:
    """The input tensors, as a list."""
    if isinstance(inputs, Tensor):
        return [inputs]
    return list(inputs.values()) if isinstance(inputs, dict) else list(inputs)


def _collect(loader: DataLoader, what: str) -> tuple[Any, Tensor]:
    """Every batch of a DataLoader (through its collate_fn), joined: for validation and test data."""
    with torch.random.fork_rng(devices=[]), kept_generators(loader_generators(loader)):  # leaves no trace
        batches = [_pair(batch, what) for batch in loader]
    if not batches:
        raise ValueError(f"{what} is empty; give at least one (input, target) pair")
    return joined([b[0] for b in batches]), joined([b[1] for b in batches])


def joined(parts: list[Any]) -> Any:
    """Batches of one tensor, or of several (a tuple, list or dict: a tuple of them), joined along the samples."""
    first = parts[0]
    if isinstance(first, Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {key: torch.cat([part[key] for part in parts]) for key in first}
    return tuple(torch.cat([part[i] for part in parts]) for i in range(len(first)))


def loader_generators(loader: DataLoader) -> list[torch.Generator]:
    """The random generators a DataLoader draws from besides torch's own: its own and its sampler's."""
    found = [loader.generator, getattr(loader.sampler, "generator", None)]
    return [g for i, g in enumerate(found) if g is not None and g not in found[:i]]


@contextmanager
def kept_generators(generators: list[torch.Generator]) -> Iterator[None]:
    """Put these generators back as they were when the block ends (like torch.random.fork_rng for them)."""
    states = [g.get_state() for g in generators]
    try:
        yield
    finally:
        for generator, state in zip(generators, states):
            generator.set_state(state)


def _pair(batch: Any, what: str) -> tuple[Any, Tensor]:
    """A collated batch as (inputs, targets), or a ValueError saying what the collate_fn must return."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"{what}: each batch must be an (inputs, targets) pair; the DataLoader's collate_fn "
                         f"returned a {type(batch).__name__}")
    inputs = as_inputs(batch[0], what)
    return inputs, as_targets(batch[1], n_rows(inputs), what)


def _as_tensor(part: Any, what: str) -> Tensor:
    try:
        tensor = torch.as_tensor(part)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what}: could not turn {type(part).__name__} into a tensor ({error})") from None
    if tensor.dim() == 0:
        raise ValueError(f"{what} must hold one row per sample; got a single number")
    return tensor


def _stack_dataset(dataset: Dataset, what: str) -> tuple[Any, Any]:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what}: the Dataset has no len(); trainlab needs a sized Dataset") from None
    if n == 0:
        raise ValueError(f"{what} is empty; give at least one (input, target) pair")
    first = dataset[0]
    if isinstance(first, (tuple, list)) and len(first) == 2 and any(map(_is_several, first)):
        # Items like ({"x": ..., "mask": ...}, y) or (x, (y1, y2)): read as a DataLoader of it reads them.
        items = [first] + [dataset[i] for i in range(1, n)]
        inputs, targets = _pair(_collated(items, what), what)
        _warn_if_random(dataset, items[0])
        return inputs, targets
    inputs, targets = [], []
    for i in range(n):  # one pass: each item is checked against item 0 as it is read
        x, y = _dataset_item(first if i == 0 else dataset[i], i, what)
        if i and (x.shape != inputs[0].shape or y.shape != targets[0].shape):
            raise ValueError(f"{what}: Dataset item {i} has input shape {tuple(x.shape)} and target shape "
                             f"{tuple(y.shape)}, but item 0 has {tuple(inputs[0].shape)} and "
                             f"{tuple(targets[0].shape)}; every item needs the same shapes to be batched")
        inputs.append(x)
        targets.append(y)
    _warn_if_random(dataset, first)
    return torch.stack(inputs), torch.stack(targets)


def _is_several(part: Any) -> bool:
    """Several inputs or targets in one item: a dict, or a tuple/list of tensors or arrays."""
    return isinstance(part, dict) or (isinstance(part, (tuple, list)) and bool(part) and all(map(_is_array, part)))


def _collated(items: list[Any], what: str) -> Any:
    try:
        return default_collate(items)
    except (TypeError, RuntimeError) as error:
        raise ValueError(f"{what}: the Dataset's items cannot be batched together ({error}); give every item "
                         "the same layout and shapes") from None


def _warn_if_random(dataset: Dataset, first: Any) -> None:
    """A plain Dataset is read once: warn when reading item 0 again gives something else (random augmentation)."""
    with torch.random.fork_rng(devices=[]):  # the second read leaves torch's random stream as it was
        again = dataset[0]
    if not _same(first, again):
        warnings.warn("the Dataset's items change from one read to the next (random augmentation?), but a plain "
                      "Dataset is read once, when the loop is built, so every epoch sees the same items; wrap it "
                      "in a DataLoader (DataLoader(dataset, batch_size=32, shuffle=True)) to fetch items each epoch",
                      stacklevel=5)


def _same(a: Any, b: Any) -> bool:
    """Whether two dataset items hold the same numbers (tensors, arrays, numbers, nested in tuples and dicts)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    try:
        return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
    except (TypeError, ValueError, RuntimeError):
        return a == b


def _dataset_item(item: Any, i: int, what: str) -> tuple[Tensor, Tensor]:
    """Item ``i`` of a Dataset as (input, target) tensors, or a ValueError naming it."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = type(item).__name__ + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
        raise ValueError(f"{what}: each Dataset item must be an (x, y) pair; item {i} is a {got}; "
                         "make __getitem__ return (input, target)")
    try:
        return torch.as_tensor(item[0]), torch.as_tensor(item[1])
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{what}: Dataset item {i} is not a pair of numbers or tensors ({error})") from None


def loader_settings(data: Any) -> tuple[int | None, bool | None]:
    """The batch size and shuffling a DataLoader was made with (None when not a DataLoader, or not a flag)."""
    if not isinstance(data, DataLoader):
        return None, None
    return data.batch_size, _shuffle_flag(data.sampler)


def _shuffle_flag(sampler: Any) -> bool | None:
    """True/False for the samplers DataLoader's shuffle= makes; None for any other (it decides the order)."""
    if type(sampler) is SequentialSampler:
        return False
    if type(sampler) is RandomSampler and not sampler.replacement and sampler._num_samples is None:
        return True
    return None


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted train and validation indices: a seeded random ``fraction`` of the n samples is held out."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(
            f"validation_split must be a number in [0, 1), like 0.2 to hold out 20%; got {fraction!r}"
        )
    n_val = n - int(n * (1 - fraction))  # Keras' rounding: the training part is rounded down
    if fraction > 0 and (n_val == 0 or n_val == n):
        raise ValueError(
            f"validation_split={fraction} of {n} samples leaves an empty training or validation set; "
            "use more data or another fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


class EpochSampler:
    """Hands out the positions of each batch: consecutive slices of a per-epoch order.

    The order is the loop's own (a seeded shuffle, or the data's order), or ``draw()``'s: a
    DataLoader's sampler, listed once per epoch. With ``drop_last``, a tail shorter than the
    batch size is left out, as a DataLoader does. With ``no_single`` (a model whose BatchNorm
    cannot train on one sample), a one-sample tail joins the batch before it.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, draw: Callable[[], Tensor | None] | None = None,
                 drop_last: bool = False, generators: list[torch.Generator] | None = None) -> None:
        self.n = n
        self.generators = generators or []  # a DataLoader's (and its sampler's) own: saved and put back too
        self.shuffle = shuffle
        self.draw = draw  # called at each epoch's start; an order it returns replaces the loop's own
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self._generator_state = self.generator.get_state()  # it only moves when an epoch starts
        self.order: Tensor | None = None  # this epoch's order (None: not drawn yet)
        self.position = n  # samples of this epoch already handed out; n means "epoch done"
        self.no_single = False  # never hand out a one-sample batch (BatchNorm fails on one)

    @property
    def epoch_done(self) -> bool:
        """Whether every sample of the current epoch has been handed out."""
        return self.position >= self.n

    def start_epoch(self) -> None:
        """Draw the next epoch's order (the identity when not shuffling)."""
        drawn = self.draw() if self.draw is not None else None
        if drawn is not None:
            self.order = drawn
            self.n = len(drawn)
        elif self.shuffle:  # unshuffled, the generator never moves: no state to copy
            self.order = torch.randperm(self.n, generator=self.generator)
            self._generator_state = self.generator.get_state()
        self.position = 0

    def check_batch_size(self, size: int) -> int:
        """``size``, if a batch of it can be drawn (with drop_last, not above the samples of an epoch)."""
        if self.drop_last and size > self.n:
            raise ValueError(f"the data's last batch is dropped when shorter than the batch size (drop_last=True), "
                             f"so a batch size above its {self.n} samples leaves no batch at all")
        if self.no_single and size == 1:
            raise ValueError("the model's BatchNorm cannot train on a batch of one sample (it needs more than one "
                             "value per channel); use a batch size of at least 2")
        return size

    def short_of(self, batch_size: int) -> bool:
        """With drop_last, whether what is left of this epoch is too short for a batch of this size."""
        return self.drop_last and not self.epoch_done and self.n - self.position < batch_size

    def take(self, batch_size: int) -> tuple[int, int]:
        """Claim the next ``batch_size`` samples (fewer at the epoch's end): returns (start, stop)."""
        start = self.position
        stop = min(start + batch_size, self.n)
        if self.no_single and not self.drop_last and self.n - stop == 1:
            stop = self.n  # a one-sample tail joins this batch: BatchNorm cannot train on one sample
        self.position = stop
        if self.drop_last and self.n - self.position < batch_size:
            self.position = self.n  # the tail is too short for a batch: dropped
        return start, stop

    def indices(self, start: int, stop: int) -> Tensor:
        """The sample indices at positions start..stop of this epoch's order."""
        return self.order[start:stop] if self.order is not None else torch.arange(start, stop)

    def rows(self, inputs: Any, targets: Any, start: int, stop: int) -> tuple[Any, Any]:
        """The (inputs, targets) rows for positions start..stop of this epoch's order."""
        if self.order is None:  # views: no copy when the data is not shuffled
            return map_tensors(inputs, lambda t: t[start:stop]), map_tensors(targets, lambda t: t[start:stop])
        index = self.order[start:stop]
        return (map_tensors(inputs, lambda t: t.index_select(0, index)),
                map_tensors(targets, lambda t: t.index_select(0, index)))

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence of batches later."""
        state = {"rng": self._generator_state, "order": self.order, "position": self.position}
        if self.generators:
            state["generators"] = [generator.get_state() for generator in self.generators]
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Go back to a state from ``state()``."""
        self.generator.set_state(state["rng"])
        self._generator_state = self.generator.get_state()
        self.order = state["order"]
        self.position = state["position"]
        if self.order is not None:
            self.n = len(self.order)
        for generator, saved in zip(self.generators, state.get("generators", ())):
            generator.set_state(saved)


class LoaderFetch:
    """Batches drawn through a DataLoader: its dataset, collate_fn, drop_last, and a sampler of its own.

    Samplers other than shuffle=True/False's (weighted, subset, a custom one) decide the
    order: ``draw_order`` lists them once per epoch, as the DataLoader's own iterator does.
    """

    def __init__(self, loader: DataLoader, shuffle: bool | None) -> None:
        if isinstance(loader.dataset, IterableDataset):
            raise ValueError("the DataLoader's dataset is an IterableDataset; trainlab needs a map-style Dataset "
                             "(with __len__ and __getitem__) to draw batches of a size that can change")
        if loader.batch_size is None or type(loader.batch_sampler) is not BatchSampler:
            raise ValueError("the DataLoader has a batch_sampler, which fixes each batch's size; trainlab's batch "
                             "size is live: give the DataLoader a sampler= (and batch_size=) instead")
        own_order = _shuffle_flag(loader.sampler)
        if own_order is None and shuffle is not None:
            raise ValueError(f"the DataLoader's {type(loader.sampler).__name__} decides the order of samples; "
                             "leave shuffle unset (shuffle=None)")
        if loader.num_workers:
            warnings.warn(f"trainlab fetches the DataLoader's items in this process (num_workers="
                          f"{loader.num_workers} is not used), so the batch size can change between batches",
                          stacklevel=3)
        self.loader = loader
        self.dataset = loader.dataset
        self.collate = loader.collate_fn
        self.drop_last = loader.drop_last
        self.sampler = loader.sampler if own_order is None else None  # None: the loop orders the samples
        self.n = len(loader.sampler)

    def draw_order(self) -> Tensor | None:
        """At an epoch's start, this epoch's indices from the sampler, or None when the loop orders them.

        Run with the loop's random stream as torch's. The DataLoader's iterator first draws a
        base seed for its workers: drawn here too, so a hand loop ``for x, y in loader`` meets
        the same random numbers (augmentation, a weighted sampler) in the same order.
        """
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        return torch.tensor(list(iter(self.sampler)), dtype=torch.int64) if self.sampler is not None else None

    def fetch(self, indices: Tensor, what: str = "data") -> tuple[Any, Tensor]:
        """The batch of these samples: each item fetched afresh, then collated."""
        return _pair(self.collate([self.dataset[i] for i in indices.tolist()]), what)
