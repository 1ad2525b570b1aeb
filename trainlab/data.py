"""What a loop trains and validates on: tensors on its device, or a DataLoader drawn through, checked once.

``LoopData`` takes what a learner passes (a pair of tensors or arrays, a Dataset, a
DataLoader), works out how accuracy is counted for it, checks the targets against the
loss, puts the tensors on the device in a dtype the model runs on, and splits off the
validation part. With a DataLoader only two samples are read here (for the checks); the
batches are fetched later, one at a time (see ``batching.LoaderFetch``).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from trainlab.batching import (EpochSampler, LoaderFetch, as_tensors, call_model, kept_generators, like,
                               loader_generators, map_tensors, rows, split_validation)
from trainlab.checks import in_model_dtype, predict_batch, probe
from trainlab.metrics import accuracy_kind, eval_mode, evaluate, pick
from trainlab.options import check_targets

__all__ = ["LoopData"]


class LoopData:
    """The training split (or a DataLoader's fetcher), the validation data, and how to bring more data in line."""

    def __init__(self, data: Any, model: nn.Module, loss_fn: Callable[..., Tensor], loss_name: str,
                 accuracy: bool | None, part: int | str | None, device: torch.device, shuffle: bool | None,
                 validation_split: float, val_data: Any, seed: int) -> None:
        if val_data is not None and validation_split:
            raise ValueError("give either validation_split or val_data, not both")
        self.model, self.loss_fn, self.loss_name, self.part, self.device = model, loss_fn, loss_name, part, device
        self.fetch = LoaderFetch(data, shuffle) if isinstance(data, DataLoader) else None
        if self.fetch is not None and validation_split:
            raise ValueError("validation_split needs the data in memory; with a DataLoader, give "
                             "val_data= (another DataLoader, or (X, y))")
        inputs, targets = self._first_look(data)
        self.accuracy_kind = _accuracy_kind(loss_fn, targets, accuracy)
        targets = check_targets(loss_name, self.accuracy_kind, targets, "data")
        inputs, targets = self.on_device(inputs, targets)
        self.cast = in_model_dtype(model, inputs)  # numpy's float64 -> the model's float32, if it must
        inputs, targets = self.converted(inputs, targets)
        n = self.fetch.n if self.fetch is not None else len(targets)
        self.train_indices, self.val_indices = split_validation(n, validation_split, seed)
        if validation_split:
            self.train = rows(inputs, self.train_indices), targets[self.train_indices]
            self.val = rows(inputs, self.val_indices), targets[self.val_indices]
        else:
            self.train = inputs, targets  # with a DataLoader: two samples, for shapes and types
            self.val = self.prepared(val_data, "val_data") if val_data is not None else None
        probe(model, loss_fn, self.accuracy_kind, *self.train, part=part)
        self.n = self.fetch.n if self.fetch is not None else len(self.train[1])  # samples in an epoch
        self._collected: tuple[Any, Tensor] | None = None

    def _first_look(self, data: Any) -> tuple[Any, Tensor]:
        if self.fetch is None:
            return as_tensors(data, "data")
        with torch.random.fork_rng(devices=[]), kept_generators(loader_generators(self.fetch.loader)):
            return self.fetch.fetch(torch.arange(min(2, self.fetch.n)))  # looking at two samples leaves no trace

    def sampler(self, shuffle: bool | None, loader_shuffle: bool | None, seed: int,
                with_loop_rng: Callable[..., Any]) -> EpochSampler:
        """The epoch order: the loop's own (a seeded shuffle, or the data's order), or a DataLoader sampler's."""
        if shuffle is None:  # as the DataLoader was made; True for tensors (and for a sampler of its own)
            shuffle = loader_shuffle is not False
        fetch = self.fetch
        if fetch is None:
            return EpochSampler(self.n, shuffle, seed)
        return EpochSampler(self.n, shuffle, seed, draw=lambda: with_loop_rng(fetch.draw_order),
                            drop_last=fetch.drop_last, generators=loader_generators(fetch.loader))

    def on_device(self, inputs: Any, targets: Tensor) -> tuple[Any, Tensor]:
        """The tensors on the loop's device."""
        return map_tensors(inputs, lambda t: t.to(self.device)), targets.to(self.device)

    def converted(self, inputs: Any, targets: Tensor) -> tuple[Any, Tensor]:
        """Floats in the model's dtype, where the data's (float64 from numpy, say) would not run."""
        cast = self.cast
        if cast is None:
            return inputs, targets
        return (map_tensors(inputs, lambda t: t.to(cast) if t.is_floating_point() else t),
                targets.to(cast) if targets.is_floating_point() else targets)

    def fetched(self, indices: Tensor) -> tuple[Any, Tensor]:
        """A DataLoader's batch of these samples, on the device (call it with the loop's random stream)."""
        return self.converted(*self.on_device(*self.fetch.fetch(indices)))

    @property
    def whole_train(self) -> tuple[Any, Tensor]:
        """The training split; from a DataLoader, all its batches, collected when first asked."""
        if self.fetch is None:
            return self.train
        if self._collected is None:  # through the loader, leaving no trace on any random stream
            self._collected = self.converted(*self.on_device(*as_tensors(self.fetch.loader, "data")))
        return self._collected

    def first_train(self, n: int) -> tuple[Any, Tensor]:
        """The first ``n`` training samples; from a DataLoader only those are fetched, leaving no trace
        on any random stream (its augmentation draws some), as ``whole_train`` does."""
        if self.fetch is None or self._collected is not None:
            inputs, targets = self.whole_train
            return map_tensors(inputs, lambda x: x[:n]), targets[:n]
        sampler = self.fetch.sampler  # a sampler of the loader's own (a subset, weights) picks the samples
        with torch.random.fork_rng(devices=[]), kept_generators(loader_generators(self.fetch.loader)):
            first = range(min(n, self.fetch.n)) if sampler is None else itertools.islice(iter(sampler), n)
            return self.fetched(torch.tensor(list(first), dtype=torch.int64))

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's input shape, like (2,) or (1, 8, 8); None for a model taking several inputs."""
        inputs = self.train[0]
        return tuple(inputs.shape[1:]) if isinstance(inputs, Tensor) else None

    def scores(self, data: Any = None) -> dict[str, float]:
        """The model's loss (and accuracy) on ``data``, or on the validation data; in eval mode, without gradients."""
        if data is None and self.val is None:
            raise ValueError("this loop has no validation data: build it with validation_split=0.2 "
                             "or val_data=(X, y), or pass data: loop.evaluate((X_test, y_test))")
        inputs, targets = self.val if data is None else self.prepared(data, "evaluate's data")
        return evaluate(self.model, self.loss_fn, self.accuracy_kind, inputs, targets, self.part)

    def predictions(self, inputs: Any) -> Tensor:
        """The model's predictions for ``inputs`` (the ``outputs`` part), in eval mode, without gradients."""
        x = predict_batch(inputs, self.train[0], self.device)
        with eval_mode(self.model), torch.no_grad():
            return pick(call_model(self.model, x), self.part)

    def prepared(self, data: Any, what: str) -> tuple[Any, Tensor]:
        """Validation or test data as tensors like the training data's, checked like it."""
        inputs, targets = as_tensors(data, what)
        targets = check_targets(self.loss_name, self.accuracy_kind, targets, what)
        train_x, train_y = self.train
        # On the device, converted like the training data was (numpy's float64, say).
        inputs, targets = self.on_device(like(inputs, train_x, what), targets)
        if targets.is_floating_point() and train_y.is_floating_point():
            targets = targets.to(train_y.dtype)
        probe(self.model, self.loss_fn, self.accuracy_kind, inputs, targets, part=self.part)  # labels, shapes
        return inputs, targets


def _accuracy_kind(loss_fn: Any, targets: Tensor, accuracy: bool | None) -> str | None:
    """How accuracy is counted: by the loss; for a loss function of one's own with accuracy=True, by the targets."""
    if accuracy is False:
        return None
    kind = accuracy_kind(loss_fn, targets)
    if accuracy is True and kind is None:
        if isinstance(loss_fn, nn.modules.loss._Loss) or targets.is_floating_point() or targets.dim() != 1:
            raise ValueError("accuracy=True needs a classification loss (cross_entropy or bce), or class "
                             "labels as targets (int64, shape (n,)) for a loss function of your own")
        return "multiclass"
    return kind
